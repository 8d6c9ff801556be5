"""The Service tab's update upload and ``POST /api/update``: the same signed path as ``update-system``.

Real signed images of this repository's sonocli (tests.integration.test_update_install builds them), a
real web server on 127.0.0.1, a real pip install into a temporary prefix: a signed image is verified,
kept as the one image in ext/Upd/ and installed; an image signed by another key, or a file that is no
image at all, is refused with one JSON error and changes nothing.
"""

# ruff: noqa: F811 - the fixtures are imported from web_helpers by name
from __future__ import annotations

import base64
import http.client
import re
import shutil
from pathlib import Path

import pytest

from sonocli.service.image import generate_signing_key, make_image
from tests.integration.test_update_install import build_wheel, run_installed
from tests.integration.web_helpers import Client, _prepared, root, web  # noqa: F401 (fixtures)

pytest.importorskip("starlette")


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("webimages")
    generate_signing_key(base / "good.pem", base / "good.pub.pem")
    generate_signing_key(base / "evil.pem", base / "evil.pub.pem")
    (base / "w").mkdir()
    wheel = build_wheel(base / "w", "1.0.0")
    make_image(wheel, base / "good.pem", base / "sonocli-1.0.0.sonoimg")
    make_image(wheel, base / "evil.pem", base / "evil-1.0.0.sonoimg")
    return {"pub": base / "good.pub.pem", "good": base / "sonocli-1.0.0.sonoimg",
            "evil": base / "evil-1.0.0.sonoimg"}


def _post(port: int, path: str, data: bytes, ctype: str, auth: tuple[str, str] | None = None,
          cookie: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    headers = {"Content-Type": ctype}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    if cookie:
        headers["Cookie"] = f"sonocli_session={cookie}"
    conn.request("POST", path, body=data, headers=headers)
    response = conn.getresponse()
    out = response.read()
    conn.close()
    return response.status, out


def _upd(root: Path) -> list[str]:
    upd = root / "ext" / "Upd"
    return sorted(p.name for p in upd.iterdir()) if upd.is_dir() else []


def test_api_refuses_what_is_not_signed_by_the_installed_key(root: Path, web: object, signed: dict[str, Path],
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SONOCLI_PREFIX", str(tmp_path / "prefix"))
    shutil.copy(signed["pub"], root / "app" / "update-pubkey.pem")
    port = web.port  # type: ignore[attr-defined]
    before = _upd(root)
    for data in (signed["evil"].read_bytes(), b"this is not an image", b""):
        status, out = _post(port, "/api/update?install=1", data, "application/octet-stream", ("admin", "admin"))
        assert status == 400 and b'"error"' in out, out
        assert _upd(root) == before  # nothing kept, no staging file left behind
    assert not (tmp_path / "prefix" / "current").exists()
    status, _ = _post(port, "/api/update", signed["good"].read_bytes(), "application/octet-stream")
    assert status == 401


def test_service_tab_upload_verifies_keeps_and_installs(root: Path, web: object, signed: dict[str, Path],
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = tmp_path / "prefix"
    monkeypatch.setenv("SONOCLI_PREFIX", str(prefix))
    shutil.copy(signed["pub"], root / "app" / "update-pubkey.pem")
    (root / "ext" / "Upd").mkdir(parents=True, exist_ok=True)
    (root / "ext" / "Upd" / "old.sonoimg").write_bytes(b"an older upload")
    client = Client(web.port)  # type: ignore[attr-defined]
    client.login("admin", "admin")
    _, _, page = client.request("GET", "/service")
    assert b'enctype="multipart/form-data"' in page and b'id="update"' in page
    boundary = "sonocliTestBoundary7"
    image = signed["good"].read_bytes()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{client.csrf}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"install\"\r\n\r\n1\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"sonocli-1.0.0.sonoimg\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    # without the session's CSRF token the same upload is refused
    forged = body.replace((client.csrf or "").encode(), b"forged")
    status, _ = _post(client.port, "/service/update", forged, f"multipart/form-data; boundary={boundary}",
                      cookie=client.cookie)
    assert status in (303, 403) and _upd(root) == ["old.sonoimg"]
    status, out = _post(client.port, "/service/update", body, f"multipart/form-data; boundary={boundary}",
                        cookie=client.cookie)
    assert status in (200, 303), out
    assert _upd(root) == ["sonocli-1.0.0.sonoimg"]  # exactly one image resides in ext/Upd/
    assert (root / "ext" / "Upd" / "sonocli-1.0.0.sonoimg").read_bytes() == image
    assert re.search(r"1\.0\.0", run_installed(prefix))
