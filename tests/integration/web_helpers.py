"""Shared by the web tests: a sim://demo root served by a real uvicorn on 127.0.0.1, and a small HTTP client."""

from __future__ import annotations

import base64
import http.client
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner

from sonocli.cli.root import cli


def sono(root: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--root", str(root), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def demo_root(base: Path) -> Path:
    """init, MBUS_PORT=sim://demo, scan --save, and the wM-Bus meters of sim://air in the temporary list."""
    root = base / "demo"
    sono(root, "init")
    sono(root, "config", "set", "MBUS_PORT", "sim://demo")
    sono(root, "scan", "--save")
    sono(root, "listen", "--port", "sim://air?count=7", "--dongle", "hex", "--count", "7")
    return root


@pytest.fixture(scope="session")
def _prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_root(tmp_path_factory.mktemp("webroot"))


@pytest.fixture()
def root(_prepared: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "root"
    shutil.copytree(_prepared, copy)
    return copy


@pytest.fixture()
def web(root: Path) -> Iterator[Any]:
    pytest.importorskip("uvicorn")
    from sonocli.engine.core import Engine
    from sonocli.web.server import start_web

    server = start_web(Engine(root), host="127.0.0.1", port=0)
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Client:
    """HTTP against the server: HTTP Basic (``auth``) or a session cookie after :meth:`login`."""

    port: int
    auth: tuple[str, str] | None = None
    cookie: str | None = None
    csrf: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, body: Any = None, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        h = dict(headers or {})
        data: bytes | None = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        if form is not None:
            data = urlencode(form).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        if self.auth:
            h["Authorization"] = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
        if self.cookie:
            h["Cookie"] = f"sonocli_session={self.cookie}"
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        out = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        conn.close()
        self.headers = hdrs
        return resp.status, hdrs, out

    def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, _, out = self.request(method, path, body)
        return status, json.loads(out)

    def login(self, user: str, password: str) -> int:
        status, hdrs, _ = self.request("POST", "/login", form={"user": user, "password": password})
        match = re.search(r"sonocli_session=([^;]+)", hdrs.get("set-cookie", ""))
        if match:
            self.cookie = match.group(1)
            _, _, page = self.request("GET", "/password")
            found = re.search(rb'name="csrf" value="([^"]+)"', page)
            self.csrf = found.group(1).decode() if found else None
        return status

    def post_form(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        return self.request("POST", path, form={"csrf": self.csrf or "", **form})
