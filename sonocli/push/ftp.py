"""FTP and FTPS upload of CSV reports (guide 5.2.1, 8.4, 8.5); ``sftp://`` hosts go to the SFTP channel.

File name: ``<FTP_PATH>/<FTP_FILEBASENAME or Meter>_<unix time>.csv``. The file is stored under a
temporary name and renamed when the server has confirmed the transfer, so a head-end polling the directory
never picks up half a file, and a retry after a crash overwrites the same name instead of adding a second.

FTPS is explicit TLS (AUTH TLS, PROT P), the server verified against ``app/ftp-cacert.pem`` and the client
certificate ``app/ftp-clicert.pem``/``ftp-clikey.pem`` sent when present. The data connection resumes the
control connection's TLS session: vsftpd with ``require_ssl_reuse=YES`` (its default) and many other
servers refuse a data connection that does not, which stock ``ftplib.FTP_TLS`` cannot do.
"""

from __future__ import annotations

import ftplib
import io
import socket
import ssl
from pathlib import Path
from typing import Any

from sonocli.push.base import Channel, Report, as_int, as_text, client_tls_context, split_host

BASE_TIMEOUT = 30.0


class _ActiveAddressMixin:
    """Announce FTP_LOCALIP in PORT (the device's NAT-facing address) instead of the socket's own address.

    The guide calls FTP_LOCALIP "external local IP (used for FTP passive mode)"; an address the client
    announces only exists in active mode (PORT), so that is where sonocli uses it.
    """

    local_ip: str = ""
    on_socket: Any = None  # called with every socket opened, so the watchdog can close it

    def connect(self, host: str = "", port: int = 0, timeout: float = -999, source_address: Any = None) -> str:
        # ftplib's connect, with the socket handed out before the welcome line is awaited (a silent server)
        ftp: Any = self
        ftp.host, ftp.port = host, port
        ftp.sock = socket.create_connection((host, port), ftp.timeout, source_address=ftp.source_address)
        if self.on_socket is not None:
            self.on_socket(ftp.sock)
        ftp.af = ftp.sock.family
        ftp.file = ftp.sock.makefile("r", encoding=ftp.encoding)
        ftp.welcome = ftp.getresp()
        return str(ftp.welcome)

    def makeport(self) -> socket.socket:
        ftp: Any = self
        sock = socket.create_server((ftp.sock.getsockname()[0], 0), family=ftp.af, backlog=1)
        port = sock.getsockname()[1]
        host = self.local_ip or ftp.sock.getsockname()[0]
        if ftp.af == socket.AF_INET:
            ftp.sendport(host, port)
        else:
            ftp.sendeprt(host, port)
        if ftp.timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
            sock.settimeout(ftp.timeout)
        return sock

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        conn, size = super().ntransfercmd(cmd, rest)  # type: ignore[misc]
        if self.on_socket is not None:
            self.on_socket(conn)
        return conn, size


class PlainFTP(_ActiveAddressMixin, ftplib.FTP):
    pass


class ReusingFTP_TLS(_ActiveAddressMixin, ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control connection's TLS session."""

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            control = self.sock
            session = control.session if isinstance(control, ssl.SSLSocket) else None
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        if self.on_socket is not None:
            self.on_socket(conn)
        return conn, size


class FtpChannel(Channel):
    name = "ftp"
    format = "csv"

    def __init__(self, get: Any, root: Path, **kwargs: Any) -> None:
        super().__init__(get, root, **kwargs)
        scheme, host, port = split_host(as_text(get("FTP_IP")), as_int(get("FTP_PORT"), 21))
        self.tls = scheme == "ftps"
        if self.tls:
            self.name = "ftps"
        self.host = host
        self.port = port
        self.user = as_text(get("FTP_USER")) or "anonymous"
        self.password = as_text(get("FTP_PASS"))
        self.passive = bool(get("FTP_PASSIVE"))
        self.local_ip = as_text(get("FTP_LOCALIP"))
        self.path = as_text(get("FTP_PATH"))
        self.basename = as_text(get("FTP_FILEBASENAME")) or "Meter"
        self.timeout = BASE_TIMEOUT * max(1, as_int(get("FTP_TIMEOUTSCALE"), 1))

    def describe(self) -> str:
        mode = "passive" if self.passive else "active"
        return f"{'ftps' if self.tls else 'ftp'}://{self.user}@{self.host}:{self.port}/{self.path.lstrip('/')} ({mode})"

    def report_name(self, created: int, index: int) -> str:
        return f"{self.basename}_{created}.csv"

    def _client(self) -> ftplib.FTP:
        if not self.tls:
            plain = PlainFTP(timeout=self.timeout)
            plain.local_ip = self.local_ip
            plain.on_socket = self.track
            return plain
        context = client_tls_context(
            self.app / "ftp-cacert.pem", self.app / "ftp-clicert.pem", self.app / "ftp-clikey.pem", what="FTPS"
        )
        secure = ReusingFTP_TLS(context=context, timeout=self.timeout)
        secure.local_ip = self.local_ip
        secure.on_socket = self.track
        return secure

    def hint(self, step: str, exc: BaseException) -> str | None:
        missing = self._missing_client_files() if self.tls else []
        if step == "tls" and missing:
            return (f"if the server requires a client certificate: {' and '.join(missing)} "
                    f"{'is' if len(missing) == 1 else 'are'} missing")
        return super().hint(step, exc)

    def _missing_client_files(self) -> list[str]:
        """The client certificate files an FTPS server may require that are not in app/."""
        names = ("ftp-clicert.pem", "ftp-clikey.pem")
        return [str(self.app / name) for name in names if not (self.app / name).is_file()]

    def _login(self, ftp: ftplib.FTP) -> None:
        """USER/PASS; with TLS 1.3 a server that requires a client certificate hangs up only now, at the first
        read after the handshake: that is said as what it is, naming the missing file, not as a bad password."""
        import ssl

        try:
            ftp.login(self.user, self.password)
        except (ssl.SSLError, ConnectionResetError, EOFError, BrokenPipeError) as exc:
            missing = self._missing_client_files() if isinstance(ftp, ftplib.FTP_TLS) else []
            if not missing:
                raise
            raise self.fail(
                "tls",
                f"the server closed the TLS connection ({type(exc).__name__}): it requires a client certificate, "
                f"and {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing",
                hint="copy the certificate and key the server's admin issued to app/ftp-clicert.pem and "
                "app/ftp-clikey.pem (PEM)",
            ) from None

    def send(self, report: Report) -> None:
        if not self.host:
            raise self.fail("resolve", "FTP_IP is empty; set the server address in chip.ini")
        self.resolve(self.host, self.port)
        ftp: ftplib.FTP | None = None
        try:
            with self.step("connect", f"{self.host}:{self.port}"):
                if self.tls:
                    with self.step("tls", "ftp-cacert.pem"):
                        ftp = self._client()
                else:
                    ftp = self._client()
                ftp.connect(self.host, self.port)
            assert ftp is not None
            if isinstance(ftp, ftplib.FTP_TLS):
                with self.step("tls", "AUTH TLS"):
                    ftp.auth()
                    if ftp.sock is not None:
                        self.track(ftp.sock)
            with self.step("login", self.user):
                self._login(ftp)
                if isinstance(ftp, ftplib.FTP_TLS):
                    ftp.prot_p()
                ftp.set_pasv(self.passive)
            with self.step("upload", f"{self.path or '.'}/{report.name}"):
                self._change_dir(ftp)
                partial = f".{report.name}.part"
                ftp.storbinary(f"STOR {partial}", io.BytesIO(report.payload))
                self._rename(ftp, partial, report.name)
            with self.step("confirm", "QUIT"):
                try:
                    ftp.quit()
                except (OSError, EOFError, ftplib.Error):
                    pass  # the file is already renamed and confirmed; a rude goodbye changes nothing
        finally:
            if ftp is not None:
                try:
                    ftp.close()
                except OSError:
                    pass

    def _change_dir(self, ftp: ftplib.FTP) -> None:
        if not self.path:
            return
        try:
            ftp.cwd(self.path)
            return
        except ftplib.error_perm:
            pass
        # create the target directory, one level at a time, then enter it
        if self.path.startswith("/"):
            ftp.cwd("/")
        for part in [p for p in self.path.split("/") if p]:
            try:
                ftp.cwd(part)
            except ftplib.error_perm:
                ftp.mkd(part)
                ftp.cwd(part)

    @staticmethod
    def _rename(ftp: ftplib.FTP, partial: str, final: str) -> None:
        try:
            ftp.rename(partial, final)
        except ftplib.error_perm:
            # a retry after a crash: the earlier copy of this very report is replaced, never duplicated
            try:
                ftp.delete(final)
            except ftplib.error_perm:
                pass
            ftp.rename(partial, final)
