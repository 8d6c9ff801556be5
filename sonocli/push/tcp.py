"""XML over a plain TCP connection (XMLTOTCP_*) or over TLS (TLS_*), guide 5.2.3.

Without a site (XMLTOTCP_SITE / TLS_SITE empty) the XML document is written as is and the connection is
closed: the document's end tag is the frame. The report counts as delivered once every byte is written and
the server has closed its side (or said nothing within the disconnect timeout after our close). With TLS
the server is verified against ``cacert.pem`` (TLS_ROOT_CERT_FILE) and ``clicert.pem``/``clikey.pem`` are
sent as the client certificate.

When XMLTOTCP_IP is empty the device is the TCP *server* (Table 25): the head-end connects to
XMLTOTCP_PORT and receives the pending reports; :func:`serve_pending` does that part.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sonocli import logs
from sonocli.model.valueclass import valueclass
from sonocli.push.base import (
    Channel,
    ConfigGet,
    Report,
    as_int,
    as_text,
    client_tls_context,
    device_path,
    split_host,
)

log = logs.logger(__name__)


@valueclass(frozen=True)
class Endpoint:
    """The XMLTOTCP_* or TLS_* group, normalised."""

    tls: bool
    host: str
    port: int
    site: str
    timeout: float | None  # seconds; None = no timeout (XMLTOTCP_TIMEOUT 0)
    disconnect_timeout: float
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None

    @classmethod
    def from_config(cls, get: ConfigGet, root: Path, *, tls: bool) -> Endpoint:
        if tls:
            _, host, port = split_host(as_text(get("TLS_IP")), as_int(get("TLS_PORT"), 443))
            timeout_ms = as_int(get("TLS_TIMEOUT"), 30000)
            return cls(
                True,
                host,
                port,
                as_text(get("TLS_SITE")),
                timeout_ms / 1000.0 if timeout_ms else None,
                float(as_int(get("TLS_DISCONNECTTIMEOUT"), 60)),
                device_path(root, as_text(get("TLS_ROOT_CERT_FILE")) or "/app/cacert.pem"),
                device_path(root, as_text(get("TLS_CLI_CERT_FILE")) or "/app/clicert.pem"),
                device_path(root, as_text(get("TLS_CLI_KEY_FILE")) or "/app/clikey.pem"),
            )
        _, host, port = split_host(as_text(get("XMLTOTCP_IP")), as_int(get("XMLTOTCP_PORT"), 0))
        timeout_ms = as_int(get("XMLTOTCP_TIMEOUT"), 0)
        return cls(
            False,
            host,
            port,
            as_text(get("XMLTOTCP_SITE")),
            timeout_ms / 1000.0 if timeout_ms else None,
            float(as_int(get("XMLTOTCP_DISCONNECTTIMEOUT"), 60)),
        )

    def context(self) -> ssl.SSLContext:
        assert self.cafile is not None
        certfile = self.certfile
        if certfile is not None and not certfile.is_file() and certfile.name == "clcert.pem":
            certfile = certfile.with_name("clicert.pem")  # Table 25's default says clcert.pem, 5.2.3 clicert.pem
        return client_tls_context(self.cafile, certfile, self.keyfile, what="TLS")


class TcpChannel(Channel):
    name = "tcp"
    format = "xml"

    def __init__(self, get: Any, root: Path, *, tls: bool = False, **kwargs: Any) -> None:
        super().__init__(get, root, **kwargs)
        self.endpoint = Endpoint.from_config(get, root, tls=tls)
        if tls:
            self.name = "tls"

    def describe(self) -> str:
        e = self.endpoint
        if not e.host:
            return f"tcp server on port {e.port} (the head-end connects)"
        return f"{'tls' if e.tls else 'tcp'}://{e.host}:{e.port}"

    def report_name(self, created: int, index: int) -> str:
        return f"report_{created}_{index}.xml"

    def open(self) -> socket.socket:
        """Resolve, connect and (for TLS) handshake: the steps HTTP shares."""
        e = self.endpoint
        if not e.host:
            raise self.fail("connect", "XMLTOTCP_IP is empty: the device is the TCP server, nothing to push",
                            hint="the head-end connects to XMLTOTCP_PORT; run serve-daemon")
        if not e.port:
            raise self.fail("connect", f"port 0 is not a valid {'TLS_PORT' if e.tls else 'XMLTOTCP_PORT'}")
        self.resolve(e.host, e.port)
        with self.step("connect", f"{e.host}:{e.port}"):
            sock = self.track(socket.create_connection((e.host, e.port), timeout=e.timeout))
        if not e.tls:
            return sock
        with self.step("tls", str(e.cafile)):
            context = e.context()
            wrapped = context.wrap_socket(sock, server_hostname=e.host)
            self.track(wrapped)
        return wrapped

    def send(self, report: Report) -> None:
        sock = self.open()
        try:
            with self.step("upload", f"{len(report.payload)} bytes"):
                sock.sendall(report.payload)
            with self.step("confirm", "close"):
                _close_and_drain(sock, self.endpoint.disconnect_timeout)
        finally:
            try:
                sock.close()
            except OSError:
                pass


def _close_and_drain(sock: socket.socket, timeout: float) -> None:
    """Signal the end of the document and wait for the server to close its side.

    Plain TCP half-closes (FIN); TLS has no usable half-close in Python, so there the server's close (it
    saw the document's end tag) is awaited. A server that keeps the connection open past the disconnect
    timeout is not an error: every byte was written and acknowledged by its TCP stack.
    """
    if not isinstance(sock, ssl.SSLSocket):
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            return
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        log.info("server kept the connection open for %.0f s after the report; closing", timeout)
    except ssl.SSLError:
        pass  # an abrupt TLS close after the data; the bytes were delivered
    except ConnectionResetError:
        pass


def serve_pending(
    listener: socket.socket,
    pending: Callable[[], list[tuple[int, bytes]]],
    delivered: Callable[[int], None],
    *,
    context: ssl.SSLContext | None = None,
    timeout: float = 60.0,
) -> int:
    """Accept one head-end connection on ``listener`` and hand it every pending report, in order.

    ``pending()`` returns (outbox id, XML) pairs; each one is marked with ``delivered(id)`` once its bytes
    are written. Returns how many reports went out. The connection is closed after the last report.
    """
    conn, peer = listener.accept()
    sent = 0
    try:
        conn.settimeout(timeout)
        if context is not None:
            conn = context.wrap_socket(conn, server_side=True)
        for item_id, payload in pending():
            conn.sendall(payload)
            delivered(item_id)
            sent += 1
        log.info("tcp server: %d report(s) delivered to %s:%d", sent, peer[0], peer[1])
    finally:
        try:
            conn.close()
        except OSError:
            pass
    return sent
