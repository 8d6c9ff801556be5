"""Running the web interface (uvicorn in a thread) and the FTP server beside serve-daemon.

``serve-daemon`` (sonocli/cli/daemon.py) calls :func:`start_services` when WEB_ENABLE or FTPD_ENABLE is 1
and stops them when the daemon ends; tests call :func:`start_web` directly. Starlette and uvicorn (the
``web`` extra) are imported only here and only then, so a daemon without the web interface pays nothing.
The web server has its own Engine on the daemon's root: the files and their locks are shared, the caches
are not, and a saved change tells the daemon through ``on_change`` (it sends itself SIGHUP).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from sonocli.errors import SonoError

if TYPE_CHECKING:
    from sonocli.engine.core import Engine
    from sonocli.web.app import WebApp

log = logging.getLogger("sonocli.web")


class WebServer:
    """uvicorn serving a :class:`~sonocli.web.app.WebApp` in a daemon thread."""

    def __init__(self, engine: Engine, *, host: str | None = None, port: int | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        try:
            import uvicorn

            from sonocli.web.app import create_app
        except ImportError as exc:
            raise SonoError(f"the web interface needs {exc.name}", hint="pip install 'sonocli[web]'") from None
        cert = str(engine.get("WEB_CERT_FILE") or "")
        key = str(engine.get("WEB_KEY_FILE") or "")
        self.https = bool(cert)
        self.web: WebApp = create_app(engine, on_change=on_change, https=self.https)
        self.host = host if host is not None else str(engine.get("WEB_IP"))
        wanted = int(engine.get("WEB_PORT")) if port is None else port
        config = uvicorn.Config(self.web.app, host=self.host, port=wanted, log_level="warning", access_log=False,
                                ssl_certfile=cert or None, ssl_keyfile=key or None, lifespan="off",
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="sonocli-web", daemon=True)

    @property
    def port(self) -> int:
        for server in getattr(self._server, "servers", []) or []:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        raise SonoError("the web server is not listening")

    @property
    def url(self) -> str:
        return f"{'https' if self.https else 'http'}://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> WebServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise SonoError(f"the web interface could not listen on {self.host}", hint="check WEB_IP/WEB_PORT")
            time.sleep(0.02)
        log.info("web interface on %s", self.url)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)


def start_web(engine: Engine, *, host: str | None = None, port: int | None = None,
              on_change: Callable[[], None] | None = None) -> WebServer:
    """The web interface of ``engine``'s root, listening (``port=0``: a free port)."""
    return WebServer(engine, host=host, port=port, on_change=on_change).start()


@contextlib.contextmanager
def services(root: Any, *, on_change: Callable[[], None] | None = None) -> Iterator[list[str]]:
    """serve-daemon's web interface (WEB_ENABLE) and FTP server (FTPD_ENABLE) for the block; yields their URLs.

    A service that cannot start is logged and left out: the concentrator's own work goes on without it.
    """
    from sonocli.engine.core import Engine

    engine = Engine(root)
    engine.bus_purpose = "a scan or readout started from the web interface"
    running: list[Any] = []
    urls: list[str] = []
    if engine.get("WEB_ENABLE"):
        try:
            web = start_web(engine, on_change=on_change)
            running.append(web)
            urls.append(web.url)
        except SonoError as exc:
            log.error("web interface: %s", exc)
    if engine.get("FTPD_ENABLE"):
        try:
            from sonocli.web.ftpd import start_ftpd

            ftpd = start_ftpd(Engine(root))
            running.append(ftpd)
            urls.append(ftpd.url)
        except SonoError as exc:
            log.error("ftp server: %s", exc)
    try:
        yield urls
    finally:
        for service in reversed(running):
            with contextlib.suppress(Exception):
                service.stop()
        engine.close()
