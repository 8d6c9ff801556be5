"""The device as the head-end's TCP server (XMLTOTCP_ENABLE with XMLTOTCP_IP empty, Table 25).

The head-end connects to XMLTOTCP_PORT and is handed every pending ``tcp-server`` report of the outbox, in
order; each one is marked delivered once its bytes are written. The daemon only schedules this (a thread
calls :meth:`TcpServer.serve_one` until it stops), so the outbox and the push module stay behind the
engine, as the dependency rule wants.

Whoever connects gets the meter data, so the server listens only on XMLTOTCP_LISTENIP (sonocli's own,
default 127.0.0.1; 0.0.0.0 for every interface, on purpose), says where it listens, logs every client, and
with XMLTOTCP_LISTENTLS=1 speaks TLS: it shows TLS_CLI_CERT_FILE/TLS_CLI_KEY_FILE as its certificate and
accepts only clients whose certificate chains to TLS_ROOT_CERT_FILE (the TLS_* files of the Security tab).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from sonocli import logs
from sonocli.errors import ConfigError, TransportError

if TYPE_CHECKING:
    from sonocli.engine.core import Engine

CHANNEL = "tcp-server"
log = logs.logger("sonocli.tcpserver")


def server_context(engine: Engine) -> ssl.SSLContext:
    """TLS for the pull server: the device's certificate, client certificates required (TLS_* files)."""
    from sonocli.push.base import device_path

    def file(name: str) -> Path:
        path = device_path(engine.root, str(engine.get(name) or ""))
        if not path.is_file():
            raise ConfigError(f"XMLTOTCP_LISTENTLS=1 needs {name}, but {path} is missing",
                              hint="copy the file to app/, or set XMLTOTCP_LISTENTLS=0")
        return path

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(file("TLS_ROOT_CERT_FILE")))
    context.load_cert_chain(str(file("TLS_CLI_CERT_FILE")), str(file("TLS_CLI_KEY_FILE")))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _common_name(conn: socket.socket) -> str:
    cert = conn.getpeercert() if isinstance(conn, ssl.SSLSocket) else None
    for rdn in (cert or {}).get("subject", ()):
        for pair in rdn:
            if isinstance(pair, tuple) and pair[0] == "commonName":
                return str(pair[1])
    return "?"


class TcpServer:
    """A listening socket on XMLTOTCP_LISTENIP:XMLTOTCP_PORT (or ``port``; 0 picks a free one) serving the
    engine's outbox."""

    def __init__(self, engine: Engine, port: int | None = None, *, poll: float = 0.5) -> None:
        self.engine = engine
        wanted = int(engine.get("XMLTOTCP_PORT")) if port is None else port
        self.address = str(engine.get("XMLTOTCP_LISTENIP") or "127.0.0.1")
        self.context = server_context(engine) if engine.get("XMLTOTCP_LISTENTLS") else None
        try:
            self._listener = socket.create_server((self.address, wanted), reuse_port=False)
        except OSError as exc:
            raise TransportError(f"tcp server: cannot listen on {self.address}:{wanted}: {exc.strerror or exc}",
                                 hint="another program uses the port, or the address is not this computer's; "
                                 "set XMLTOTCP_PORT / XMLTOTCP_LISTENIP") from None
        # accept() returns every ``poll`` seconds so that the caller can look at its stop flag
        self._listener.settimeout(poll)
        log.info("tcp server: listening on %s", self.describe())

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def describe(self) -> str:
        """Where and how it listens, for the log and ``status``: ``127.0.0.1:4000, TLS with client certificates``."""
        how = "TLS with client certificates" if self.context is not None else "plain TCP, no authentication"
        return f"{self.address}:{self.port}, {how}"

    def serve_one(self) -> int | None:
        """Wait up to ``poll`` s for one head-end and hand it the pending reports; None: nobody came.

        A connection that breaks off (or fails its TLS handshake) is logged with the client's address;
        reports not yet written stay pending for the next connection.
        """
        try:
            conn, peer = self._listener.accept()
        except TimeoutError:
            return None
        client = f"{peer[0]}:{peer[1]}"
        log.info("tcp server: client %s connected", client)
        sent = 0
        try:
            conn.settimeout(float(self.engine.get("XMLTOTCP_DISCONNECTTIMEOUT")))
            if self.context is not None:
                try:
                    conn = self.context.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    log.warning("tcp server: client %s refused: TLS failed (%s)", client, exc)
                    return 0
                log.info("tcp server: client %s has certificate CN=%s", client, _common_name(conn))
            outbox = self.engine.outbox
            for item in outbox.items(channel=CHANNEL):
                conn.sendall(outbox.payload(item.id))
                outbox.mark_done(item.id, self.engine.now())
                sent += 1
            log.info("tcp server: %d report(s) delivered to %s", sent, client)
        except OSError as exc:
            log.warning("tcp server: client %s: connection broke off after %d report(s): %s", client, sent, exc)
        finally:
            with contextlib.suppress(OSError):
                conn.close()
        return sent

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.close()


def open_tcp_server(engine: Engine, port: int | None = None) -> TcpServer:
    """Listen on XMLTOTCP_LISTENIP:XMLTOTCP_PORT for head-ends that fetch their reports (TransportError when
    taken, ConfigError when TLS is asked for and a TLS_* file is missing)."""
    return TcpServer(engine, port)
