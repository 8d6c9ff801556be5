"""The device as the head-end's TCP server (XMLTOTCP_ENABLE with XMLTOTCP_IP empty, Table 25).

The head-end connects to XMLTOTCP_PORT and is handed every pending ``tcp-server`` report of the outbox, in
order; each one is marked delivered once its bytes are written. The daemon only schedules this (a thread
calls :meth:`TcpServer.serve_one` until it stops), so the outbox and the push module stay behind the
engine, as the dependency rule wants.
"""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING

from sonocli.errors import TransportError

if TYPE_CHECKING:
    from sonocli.engine.core import Engine

CHANNEL = "tcp-server"


class TcpServer:
    """A listening socket on XMLTOTCP_PORT (or ``port``; 0 picks a free one) serving the engine's outbox."""

    def __init__(self, engine: Engine, port: int | None = None, *, poll: float = 0.5) -> None:
        self.engine = engine
        wanted = int(engine.get("XMLTOTCP_PORT")) if port is None else port
        try:
            self._listener = socket.create_server(("", wanted), reuse_port=False)
        except OSError as exc:
            raise TransportError(f"tcp server: cannot listen on port {wanted}: {exc.strerror or exc}",
                                 hint="another program uses the port; set XMLTOTCP_PORT") from None
        # accept() returns every ``poll`` seconds so that the caller can look at its stop flag
        self._listener.settimeout(poll)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def serve_one(self) -> int | None:
        """Wait up to ``poll`` s for one head-end and hand it the pending reports; None: nobody came.

        A connection that breaks off is an OSError for the caller to log; reports not yet written stay
        pending for the next connection.
        """
        from sonocli.push.tcp import serve_pending

        outbox = self.engine.outbox
        try:
            return serve_pending(
                self._listener,
                lambda: [(item.id, outbox.payload(item.id)) for item in outbox.items(channel=CHANNEL)],
                lambda item_id: outbox.mark_done(item_id, self.engine.now()),
                timeout=float(self.engine.get("XMLTOTCP_DISCONNECTTIMEOUT")),
            )
        except TimeoutError:
            return None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.close()


def open_tcp_server(engine: Engine, port: int | None = None) -> TcpServer:
    """Listen on XMLTOTCP_PORT for head-ends that fetch their reports (raises TransportError when taken)."""
    return TcpServer(engine, port)
