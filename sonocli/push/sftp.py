"""SFTP upload of CSV reports when FTP_IP starts with ``sftp://`` (guide 5.2.1).

The server's host key is checked against ``app/known_hosts``: an unknown host is refused until the
engineer accepts it once (``sonocli push --test --accept-host-key``), and a changed key is always refused -
that is the one case where a silent accept would hand meter data to whoever took over the address. Only
``sonocli service update-host-key --old SHA256:... --new SHA256:...`` replaces it, naming both keys. A host
already known is asked for the key type on file first (as OpenSSH does); a host that offers only another
type is treated as changed, never trusted on first use again. Fingerprints are OpenSSH's ``SHA256:...``
(what ``ssh-keygen -lf`` prints), and paramiko's own log lines stay out of sonocli's log.
The device's own key (ed25519, ``app/ssh_id_ed25519``) is created on first use, as the device creates its
keys at first boot; it is offered first, then the password (FTP_PASS) when one is set.
paramiko is imported only here, inside the functions that need it.
"""

from __future__ import annotations

import io
import logging
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

        quiet_paramiko()
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
                prefer_known_types(transport, client.get_host_keys().lookup(self.known_name))
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

    @property
    def known_name(self) -> str:
        """The host's name in known_hosts, as OpenSSH writes it (``[host]:port`` off port 22)."""
        return known_hosts_name(self.host, self.port)

    def _check_host_key(self, transport: Any, client: Any, known: Path) -> None:
        key = transport.get_remote_server_key()
        name = self.known_name
        stored = client.get_host_keys().lookup(name)
        offered = f"{key.get_name()} {fingerprint(key)}"
        if stored is not None and key.get_name() in stored and stored[key.get_name()] == key:
            return
        if stored is not None:
            # changed, or another key type than the one on file: both are a different server until proven
            old = ", ".join(f"{kind} {fingerprint(stored[kind])}" for kind in stored)
            raise self.fail(
                "hostkey",
                f"host key of {name} CHANGED: known {old}, offered {offered}; refusing to connect",
                hint=f"if the server was re-installed on purpose (ask its admin for the new fingerprint): sonocli "
                f"service update-host-key --old {fingerprint(stored[next(iter(stored))])} "
                f"--new {fingerprint(key)}",
            )
        if not self.accept_host_key:
            raise self.fail(
                "hostkey",
                f"unknown host {name} ({offered}); refusing to connect",
                hint="check the fingerprint with the server's admin, then: sonocli push --test --accept-host-key",
            )
        write_known_host(known, name, key)

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


def fingerprint(key: Any) -> str:
    """OpenSSH's fingerprint of a paramiko key, ``SHA256:`` + unpadded base64 (as ``ssh-keygen -lf``)."""
    import base64
    import hashlib

    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def quiet_paramiko() -> None:
    """paramiko logs its transport thread's errors ("Socket exception: ...") through the root logger; the
    failure reaches the user once, as the channel's PushError, so paramiko's own lines are dropped."""
    logger = logging.getLogger("paramiko")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    logger.propagate = False


def prefer_known_types(transport: Any, stored: Any) -> None:
    """Ask for the key types on file first, so a host known by one type is not offered another (OpenSSH's
    HostKeyAlgorithms ordering): a second type would be trust on first use all over again."""
    if not stored:
        return
    options = transport.get_security_options()
    known = [kind for kind in stored if kind in options.key_types]
    if known:
        options.key_types = tuple(known) + tuple(k for k in options.key_types if k not in known)


def write_known_host(known: Path, name: str, key: Any, *, replace: bool = False) -> None:
    """Add ``name``'s key to known_hosts (atomically); ``replace`` drops its old lines first."""
    lines = known.read_text(encoding="ascii", errors="replace").splitlines(keepends=True) if known.is_file() else []
    if replace:
        lines = [line for line in lines if line.split(" ", 1)[0] not in (name, *name.split(","))]
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines.append(f"{name} {key.get_name()} {key.get_base64()}\n")
    atomic_write_bytes(known, "".join(lines).encode("ascii"), mode=0o644, private=False)


def replace_host_key(app: Path, host: str, port: int, old: str, new: str, *, timeout: float = 30.0) -> str:
    """Replace the known key of ``host:port`` by the one it offers now, only when the caller named both.

    ``old`` must be the fingerprint on file and ``new`` the one the server offers (both ``SHA256:...``):
    whoever replaces a key has compared it with the server's admin. Returns the known_hosts name.
    """
    import socket

    import paramiko

    from sonocli.errors import PushError, UsageError

    quiet_paramiko()
    known = app / KNOWN_HOSTS
    name = known_hosts_name(host, port)
    hosts = paramiko.HostKeys()
    if known.is_file():
        hosts.load(str(known))
    stored = hosts.lookup(name)
    on_file = [] if stored is None else [fingerprint(stored[kind]) for kind in stored]
    if not on_file:
        raise UsageError(f"{name} has no key in {known}; nothing to replace",
                         hint="accept a first key with: sonocli push --test --accept-host-key")
    if old not in on_file:
        raise UsageError(f"--old {old} is not the key on file for {name} ({', '.join(on_file)})")
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            transport = paramiko.Transport(sock)
            try:
                transport.banner_timeout = timeout
                prefer_known_types(transport, stored)
                transport.start_client(timeout=timeout)
                key = transport.get_remote_server_key()
            finally:
                transport.close()
    except (OSError, paramiko.SSHException) as exc:
        raise PushError(f"cannot fetch the host key of {host}:{port}: {exc}", channel="sftp",
                        step="hostkey") from None
    offered = fingerprint(key)
    if offered != new:
        raise UsageError(f"{name} offers {key.get_name()} {offered}, not --new {new}; known_hosts unchanged",
                         hint="compare the fingerprint with the server's admin again")
    write_known_host(known, name, key, replace=True)
    return name


__all__ = ["SftpChannel", "ensure_client_key", "fingerprint", "replace_host_key"]
