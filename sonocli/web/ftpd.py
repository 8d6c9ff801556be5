"""The FTP server of the logs (guide 5.2.2, 7.3; Security tab "FTP server active"): FTPD_ENABLE=1.

pyftpdlib, with sonocli's users (sonocli.engine.users) as its authorizer:

* the user with the FTP right (at most one besides admin) logs in to ``ext/log`` as its root, read-only:
  list and download, nothing else - it cannot leave the directory (pyftpdlib's file system keeps every path
  below the home) nor write;
* admin sees the whole sonocli root with full rights, over FTPS only (AUTH TLS before USER), with the
  certificate of WEB_CERT_FILE/WEB_KEY_FILE; without a certificate admin has no FTP access at all;
* a wrong password is answered as pyftpdlib does (530, and a delay), logged without the password.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from sonocli.engine import users as users_mod
from sonocli.errors import SonoError

if TYPE_CHECKING:
    from sonocli.engine.core import Engine

log = logging.getLogger("sonocli.ftpd")
READ_ONLY = "elr"  # change directory, list, retrieve
FULL = "elradfmwMT"


def _authorizer(engine: Engine) -> Any:
    from pyftpdlib.authorizers import AuthenticationFailed, DummyAuthorizer

    root = str(engine.layout.root.resolve())
    logs = engine.layout.log_dir

    class UsersAuthorizer(DummyAuthorizer):  # type: ignore[misc]
        """Only users with the FTP right; admin only over a TLS control connection."""

        def validate_authentication(self, username: str, password: str, handler: Any) -> None:
            user = users_mod.authenticate(engine, username, password)
            if user is None or not user.ftp:
                log.warning("ftp: failed login for user %r from %s", username[:64], handler.remote_ip)
                raise AuthenticationFailed("Authentication failed.")
            if user.is_admin and not getattr(handler, "_ssl_established", False):
                raise AuthenticationFailed("admin logs in over FTPS only (AUTH TLS first).")
            log.info("ftp: %s logged in from %s", username, handler.remote_ip)

        def get_home_dir(self, username: str) -> str:
            if username == users_mod.ADMIN:
                return root
            logs.mkdir(parents=True, exist_ok=True)
            return str(logs.resolve())

        def has_user(self, username: str) -> bool:
            try:
                return users_mod.get_user(engine, username).ftp
            except SonoError:
                return False

        def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
            return perm in self.get_perms(username)

        def get_perms(self, username: str) -> str:
            return FULL if username == users_mod.ADMIN else READ_ONLY

        def get_msg_login(self, username: str) -> str:
            return "sonocli: logged in"

        def get_msg_quit(self, username: str) -> str:
            return "Goodbye."

        def impersonate_user(self, username: str, password: str) -> None:
            return None

        def terminate_impersonation(self, username: str) -> None:
            return None

    return UsersAuthorizer()


class FtpServer:
    """pyftpdlib on FTPD_IP:FTPD_PORT in a thread, with its own IOLoop (TESTING.md section 1)."""

    def __init__(self, engine: Engine, *, host: str | None = None, port: int | None = None) -> None:
        try:
            from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
            from pyftpdlib.ioloop import IOLoop
            from pyftpdlib.servers import FTPServer
        except ImportError as exc:
            raise SonoError(f"the FTP server needs {exc.name}", hint="pip install 'sonocli[web]'") from None
        logging.getLogger("pyftpdlib").addHandler(logging.NullHandler())
        logging.getLogger("pyftpdlib").propagate = False
        cert = str(engine.get("WEB_CERT_FILE") or "")
        key = str(engine.get("WEB_KEY_FILE") or "")
        attrs: dict[str, Any] = {"authorizer": _authorizer(engine), "banner": "sonocli FTP server",
                                 "permit_foreign_addresses": False, "passive_ports": None}
        base: Any = FTPHandler
        if cert:
            base = TLS_FTPHandler
            attrs.update(certfile=cert, keyfile=key or None, tls_control_required=False, tls_data_required=False)
        handler = type("SonocliFtpHandler", (base,), attrs)
        self.host = host if host is not None else str(engine.get("FTPD_IP"))
        wanted = int(engine.get("FTPD_PORT")) if port is None else port
        try:
            self._server = FTPServer((self.host, wanted), handler, ioloop=IOLoop())
        except OSError as exc:
            raise SonoError(f"ftp server: cannot listen on {self.host}:{wanted}: {exc.strerror or exc}",
                            hint="set FTPD_IP/FTPD_PORT") from None
        self.tls = bool(cert)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sonocli-ftpd", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.address[1])

    @property
    def url(self) -> str:
        return f"ftp{'s' if self.tls else ''}://{self.host}:{self.port}"

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._server.ioloop.loop(0.1, blocking=False)
        finally:
            self._server.close_all()

    def start(self) -> FtpServer:
        self._thread.start()
        log.info("ftp server on %s", self.url)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def start_ftpd(engine: Engine, *, host: str | None = None, port: int | None = None) -> FtpServer:
    return FtpServer(engine, host=host, port=port).start()
