"""XML as an HTTP/1.1 POST (guide 5.2.3, 8.6): chosen when XMLTOTCP_SITE or TLS_SITE names a path.

Plain HTTP for XMLTOTCP_*, HTTPS with the verified TLS context of the TLS_* group. Only a 2xx answer
confirms delivery; anything else leaves the report in the outbox with the status line in the log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sonocli.push.base import Channel, Report
from sonocli.push.tcp import Endpoint


class HttpChannel(Channel):
    name = "http"
    format = "xml"

    def __init__(self, get: Any, root: Path, *, tls: bool = False, **kwargs: Any) -> None:
        super().__init__(get, root, **kwargs)
        self.endpoint = Endpoint.from_config(get, root, tls=tls)
        if tls:
            self.name = "https"

    def describe(self) -> str:
        e = self.endpoint
        return f"{'https' if e.tls else 'http'}://{e.host}:{e.port}{self._path()}"

    def report_name(self, created: int, index: int) -> str:
        return f"report_{created}_{index}.xml"

    def _path(self) -> str:
        site = self.endpoint.site.strip()
        return site if site.startswith("/") else f"/{site}"

    def send(self, report: Report) -> None:
        import http.client

        e = self.endpoint
        if not e.host:
            raise self.fail("connect", "no server address configured (XMLTOTCP_IP / TLS_IP)")
        self.resolve(e.host, e.port)
        conn: http.client.HTTPConnection
        if e.tls:
            with self.step("tls", str(e.cafile)):
                context = e.context()
            conn = http.client.HTTPSConnection(e.host, e.port, timeout=e.timeout, context=context)
        else:
            conn = http.client.HTTPConnection(e.host, e.port, timeout=e.timeout)
        try:
            with self.step("connect", f"{e.host}:{e.port}"):
                conn.connect()
                if conn.sock is not None:
                    self.track(conn.sock)
            with self.step("upload", f"POST {self._path()}"):
                conn.request(
                    "POST",
                    self._path(),
                    body=report.payload,
                    headers={
                        "Content-Type": "application/xml",
                        "Content-Length": str(len(report.payload)),
                        "X-Sonocli-Report": report.name,
                    },
                )
            with self.step("confirm", "HTTP status"):
                response = conn.getresponse()
                body = response.read(512)
                if not 200 <= response.status < 300:
                    text = body.decode("utf-8", "replace").strip().splitlines()
                    raise self.fail(
                        "confirm",
                        f"server answered {response.status} {response.reason}"
                        + (f": {text[0][:120]}" if text else ""),
                    )
        finally:
            conn.close()
