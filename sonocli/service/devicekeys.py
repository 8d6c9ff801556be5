"""regenerate-server-keys (guide Table 24): every key sonocli uses - TLS, SSH host key, SFTP login key.

Files in ``app/`` (the device keeps its keys in the application partition too):

``device.key`` / ``device.crt``
    EC P-256 private key (PKCS#8 PEM, mode 0600) and a self-signed X.509 certificate, CN
    ``sonocli-<MUC-ID>``, SAN the host name and ``localhost``, valid 10 years: what a TLS server or a
    client-certificate login on the head-end presents.
``ssh_host_ed25519_key`` / ``ssh_host_ed25519_key.pub``
    Ed25519 host key in OpenSSH format (written by cryptography; no paramiko needed) for sshd / SFTP.
``ssh_id_ed25519`` / ``ssh_id_ed25519.pub``
    The key the SFTP channel logs in with (sonocli.push.sftp): its new public key is what the head-end's
    admin must put into authorized_keys, so it is printed with its fingerprint.

All six are generated first and staged as temp files beside their targets (fsync'd); only then are they
renamed into place one after another, so a failure while generating leaves every old file as it was and
key and certificate are never from different generations except during the renames.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import socket
import tempfile
from pathlib import Path

from sonocli.errors import UsageError
from sonocli.fsutil import fsync_directory
from sonocli.model.valueclass import valueclass

TLS_KEY = "device.key"
TLS_CERT = "device.crt"
SSH_KEY = "ssh_host_ed25519_key"
SSH_PUB = "ssh_host_ed25519_key.pub"
CLIENT_KEY = "ssh_id_ed25519"  # the SFTP channel's login key (sonocli.push.sftp.CLIENT_KEY)
CLIENT_PUB = "ssh_id_ed25519.pub"
VALID_DAYS = 3650


@valueclass(frozen=True)
class GeneratedKeys:
    files: tuple[Path, ...]
    tls_fingerprint: str  # SHA-256 of the certificate (DER), as browsers show it
    ssh_fingerprint: str  # OpenSSH style "SHA256:..." of the host key
    sftp_public_key: str = ""  # the new login key's OpenSSH line: for the SFTP server's authorized_keys
    sftp_fingerprint: str = ""  # and its "SHA256:..."


def _material(common_name: str) -> dict[str, tuple[bytes, int]]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.x509.oid import NameOID

    tls_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    hosts = sorted({socket.gethostname(), "localhost"})
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(tls_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(tls_key, hashes.SHA256())
    )
    ssh_key = ed25519.Ed25519PrivateKey.generate()
    client_key = ed25519.Ed25519PrivateKey.generate()
    comment = f" {common_name}".encode()
    return {
        CLIENT_KEY: (
            client_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
            ),
            0o600,
        ),
        CLIENT_PUB: (
            client_key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            + comment
            + b"\n",
            0o644,
        ),
        TLS_KEY: (
            tls_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            0o600,
        ),
        TLS_CERT: (cert.public_bytes(serialization.Encoding.PEM), 0o644),
        SSH_KEY: (
            ssh_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
            ),
            0o600,
        ),
        SSH_PUB: (
            ssh_key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            + comment
            + b"\n",
            0o644,
        ),
    }


def ssh_fingerprint(pub_line: bytes) -> str:
    import base64

    blob = base64.b64decode(pub_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def require_app(app_dir: Path) -> None:
    """A mistyped --root must not grow a fresh app/ full of keys: the directory has to exist already."""
    if not app_dir.is_dir():
        raise UsageError(
            f"{app_dir} does not exist; not a sonocli root (is --root right?)", hint="create one with sonocli init"
        )


def regenerate(app_dir: Path, common_name: str) -> GeneratedKeys:
    """Replace the device keys in ``app_dir``; returns the files and fingerprints to show the user."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    require_app(app_dir)
    material = _material(common_name)
    staged: list[tuple[str, Path]] = []
    try:
        for name, (data, mode) in material.items():
            fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=app_dir)
            staged.append((name, Path(tmp_name)))
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        for name, staged_path in staged:
            os.replace(staged_path, app_dir / name)
    finally:
        for _, leftover in staged:
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    fsync_directory(app_dir)
    cert = x509.load_pem_x509_certificate(material[TLS_CERT][0])
    return GeneratedKeys(
        files=tuple(app_dir / name for name in material),
        tls_fingerprint=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
        ssh_fingerprint=ssh_fingerprint(material[SSH_PUB][0]),
        sftp_public_key=material[CLIENT_PUB][0].decode("ascii").strip(),
        sftp_fingerprint=ssh_fingerprint(material[CLIENT_PUB][0]),
    )
