"""SFTP upload of CSV reports when FTP_IP starts with ``sftp://`` (guide 5.2.1).

The server's host key is checked against ``app/known_hosts``: an unknown host is refused until the
engineer accepts it once (``sonocli push --test --accept-host-key``), and a changed key is always refused -
that is the one case where a silent accept would hand meter data to whoever took over the address.
The device's own key (ed25519, ``app/ssh_id_ed25519``) is created on first use, as the device creates its
keys at first boot; it is offered first, then the password (FTP_PASS) when one is set.
paramiko is imported only here, inside the functions that need it.
"""

from __future__ import annotations

import io
import posixpath
from pathlib import Path
from typing import Any

from sonocli.fsutil import atomic_write_bytes
from sonocli.push.base import Channel, Report, as_int, as_text, split_host

BASE_TIMEOUT = 30.0
KNOWN_HOSTS = "known_hosts"
CLIENT_KEY = "ssh_id_ed25519"


def ensure_client_key(app: Path) -> Path:
    """Create the device's ed25519 key pair in app/ on first use (private 0600, public ``.pub``)."""
    key_path = app / CLIENT_KEY
    if key_path.is_file():
        return key_path
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    atomic_write_bytes(key_path, private, mode=0o600)
    atomic_write_bytes(app / f"{CLIENT_KEY}.pub", public + b" sonocli\n", mode=0o644)
    return key_path


class SftpChannel(Channel):
    name = "sftp"
    format = "csv"

    def __init__(self, get: Any, root: Path, *, accept_host_key: bool = False, **kwargs: Any) -> None:
        super().__init__(get, root, **kwargs)
        _scheme, host, port = split_host(as_text(get("FTP_IP")), as_int(get("FTP_PORT"), 21))
        if port == 21 and ":" not in as_text(get("FTP_IP")).partition("://")[2]:
            port = 22  # FTP_PORT's default belongs to FTP; an sftp:// host without a port means SSH's port
        self.host = host
        self.port = port
        self.user = as_text(get("FTP_USER"))
        self.password = as_text(get("FTP_PASS"))
        self.path = as_text(get("FTP_PATH"))
        self.basename = as_text(get("FTP_FILEBASENAME")) or "Meter"
        self.timeout = BASE_TIMEOUT * max(1, as_int(get("FTP_TIMEOUTSCALE"), 1))
        self.accept_host_key = accept_host_key

    def describe(self) -> str:
        return f"sftp://{self.user}@{self.host}:{self.port}/{self.path.lstrip('/')}"

    def report_name(self, created: int, index: int) -> str:
        return f"{self.basename}_{created}.csv"

    def send(self, report: Report) -> None:
        import paramiko

        if not self.host:
            raise self.fail("resolve", "FTP_IP is empty; set the server address in chip.ini")
        self.resolve(self.host, self.port)
        known = self.app / KNOWN_HOSTS
        client = paramiko.SSHClient()
        try:
            if known.is_file():
                client.load_host_keys(str(known))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            key_path = ensure_client_key(self.app)
            pkey = paramiko.Ed25519Key.from_private_key_file(str(key_path))
            sock = None
            with self.step("connect", f"{self.host}:{self.port}"):
                import socket

                sock = self.track(socket.create_connection((self.host, self.port), timeout=self.timeout))
            with self.step("hostkey", str(known)):
                transport = paramiko.Transport(sock)
                transport.banner_timeout = self.timeout
                transport.start_client(timeout=self.timeout)
                self._check_host_key(transport, client, known)
            with self.step("login", self.user):
                self._login(transport, pkey)
            with self.step("upload", f"{self.path or '.'}/{report.name}"):
                sftp = paramiko.SFTPClient.from_transport(transport)
                assert sftp is not None
                sftp.get_channel().settimeout(self.timeout)  # type: ignore[union-attr]
                directory = self._ensure_dir(sftp)
                final = posixpath.join(directory, report.name) if directory else report.name
                partial = posixpath.join(directory, f".{report.name}.part") if directory else f".{report.name}.part"
                sftp.putfo(io.BytesIO(report.payload), partial, file_size=len(report.payload), confirm=True)
                try:
                    sftp.posix_rename(partial, final)
                except OSError:
                    try:
                        sftp.remove(final)
                    except OSError:
                        pass
                    sftp.rename(partial, final)
                sftp.close()
        finally:
            client.close()
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass

    def _check_host_key(self, transport: Any, client: Any, known: Path) -> None:
        key = transport.get_remote_server_key()
        name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        stored = client.get_host_keys().lookup(name)
        if stored is not None and key.get_name() in stored:
            if stored[key.get_name()] == key:
                return
            raise self.fail(
                "hostkey",
                f"host key of {name} CHANGED ({key.get_name()} {key.get_fingerprint().hex()}); refusing to connect",
                hint=f"if the server was re-installed on purpose, delete its line in {known} and accept the new key",
            )
        if stored is not None and not self.accept_host_key:
            raise self.fail("hostkey", f"{name} offers a {key.get_name()} key not in {known}; refusing to connect",
                            hint="accept it once with: sonocli push --test --accept-host-key")
        if not self.accept_host_key:
            raise self.fail(
                "hostkey",
                f"unknown host {name} ({key.get_name()} SHA256 {_sha256(key)}); refusing to connect",
                hint="check the fingerprint with the server's admin, then: sonocli push --test --accept-host-key",
            )
        line = f"{name} {key.get_name()} {key.get_base64()}\n"
        existing = known.read_bytes() if known.is_file() else b""
        atomic_write_bytes(known, existing + line.encode("ascii"), mode=0o644)

    def _login(self, transport: Any, pkey: Any) -> None:
        import paramiko

        errors: list[str] = []
        try:
            transport.auth_publickey(self.user, pkey)
        except paramiko.AuthenticationException as exc:
            errors.append(f"key refused ({exc})")
        except paramiko.SSHException as exc:
            errors.append(f"key: {exc}")
        if not transport.is_authenticated() and self.password:
            try:
                transport.auth_password(self.user, self.password)
            except paramiko.AuthenticationException:
                errors.append("password refused")
        if not transport.is_authenticated():
            raise self.fail("login", f"login as {self.user!r} refused: {'; '.join(errors)}",
                            hint=f"check FTP_USER/FTP_PASS or add app/{CLIENT_KEY}.pub to the server's authorized_keys")

    def _ensure_dir(self, sftp: Any) -> str:
        if not self.path:
            return ""
        current = "/" if self.path.startswith("/") else ""
        for part in [p for p in self.path.split("/") if p]:
            current = posixpath.join(current, part) if current else part
            try:
                sftp.stat(current)
            except OSError:
                sftp.mkdir(current)
        return current


def _sha256(key: Any) -> str:
    import base64
    import hashlib

    return base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


__all__ = ["SftpChannel", "ensure_client_key"]
