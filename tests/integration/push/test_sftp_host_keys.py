"""SFTP host keys an admin can act on (issue 13, item 7), against a real OpenSSH sshd.

Fingerprints are OpenSSH's ``SHA256:...`` (compared with ``ssh-keygen -lf``); a changed key is refused and
replaced only by ``sonocli service update-host-key --old ... --new ...``; ``--accept-host-key`` never adds a
second key type for a known host; paramiko's own log lines do not reach the log.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sonocli.errors import PushError
from tests.integration.push.test_push_channels import CSV, _sftp, report

# a valid key the server does not have: what known_hosts holds after the server was re-installed
OTHER_ED25519 = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def _ecdsa_blob() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).split()[1].decode()


OTHER_ECDSA = _ecdsa_blob()


def _keygen_fingerprint(tmp_path: Path, pub_line: str) -> str:
    exe = shutil.which("ssh-keygen")
    if exe is None:
        pytest.skip("ssh-keygen not installed")
    pub = tmp_path / "host.pub"
    pub.write_text(pub_line.strip() + "\n")
    out = subprocess.run([exe, "-lf", str(pub)], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sonocli", "--root", str(root), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    return tmp_path


def test_unknown_host_shows_the_openssh_fingerprint(root: Path, sshd_server: Any, tmp_path: Path) -> None:
    expected = _keygen_fingerprint(tmp_path, sshd_server.host_pub)
    with pytest.raises(PushError) as err:
        _sftp(root, sshd_server).send(report("Meter_1.csv", CSV))
    assert f"ssh-ed25519 {expected}" in err.value.message
    import paramiko

    from sonocli.push.sftp import fingerprint

    key = paramiko.Ed25519Key(data=__import__("base64").b64decode(sshd_server.host_pub.split()[1]))
    assert fingerprint(key) == expected


def test_changed_key_names_both_and_only_the_explicit_command_replaces_it(
    root: Path, sshd_server: Any, tmp_path: Path
) -> None:
    name = f"[127.0.0.1]:{sshd_server.port}"
    known = root / "app" / "known_hosts"
    known.write_text(f"{name} ssh-ed25519 {OTHER_ED25519}\n")
    old = _keygen_fingerprint(tmp_path, f"ssh-ed25519 {OTHER_ED25519}")
    new = _keygen_fingerprint(tmp_path, sshd_server.host_pub)
    for accept in (False, True):  # --accept-host-key does not accept a changed key
        with pytest.raises(PushError) as err:
            _sftp(root, sshd_server, accept_host_key=accept).send(report("Meter_1.csv", CSV))
        assert err.value.step == "hostkey" and "CHANGED" in err.value.message
        assert old in err.value.message and new in err.value.message
        assert err.value.hint is not None and f"--old {old} --new {new}" in err.value.hint
    assert known.read_text() == f"{name} ssh-ed25519 {OTHER_ED25519}\n"

    # the command, as the hint says; through chip.ini's FTP_IP
    chip = root / "app" / "chip.ini"
    chip.write_text(f"[CONFIG]\nFTP_IP=sftp://127.0.0.1:{sshd_server.port}\n")
    wrong = _cli(root, "service", "update-host-key", "--old", new, "--new", new)
    assert wrong.returncode == 2 and "not the key on file" in wrong.stderr
    wrong = _cli(root, "service", "update-host-key", "--old", old, "--new", old)
    assert wrong.returncode == 2 and "known_hosts unchanged" in wrong.stderr
    assert known.read_text() == f"{name} ssh-ed25519 {OTHER_ED25519}\n"
    done = _cli(root, "service", "update-host-key", "--old", old, "--new", new)
    assert done.returncode == 0, done.stderr
    assert old in done.stdout and new in done.stdout
    assert known.read_text() == f"{name} ssh-ed25519 {sshd_server.host_pub.split()[1]}\n"
    _sftp(root, sshd_server).send(report("Meter_replaced.csv", CSV))


def test_accept_host_key_adds_no_second_key_type(root: Path, sshd_server: Any) -> None:
    """Known by an ECDSA key, the server offers only ed25519: refused as changed, nothing added."""
    name = f"[127.0.0.1]:{sshd_server.port}"
    known = root / "app" / "known_hosts"
    known.write_text(f"{name} ecdsa-sha2-nistp256 {OTHER_ECDSA}\n")
    with pytest.raises(PushError) as err:
        _sftp(root, sshd_server, accept_host_key=True).send(report("Meter_1.csv", CSV))
    assert err.value.step == "hostkey" and "CHANGED" in err.value.message
    assert "ecdsa-sha2-nistp256 SHA256:" in err.value.message and "ssh-ed25519 SHA256:" in err.value.message
    assert known.read_text() == f"{name} ecdsa-sha2-nistp256 {OTHER_ECDSA}\n"


SEND = """
import logging, sys
from pathlib import Path
logging.basicConfig(level=logging.DEBUG, format="sonocli: %(levelname)s: %(name)s: %(message)s")  # as sonocli -vv
from tests.integration.push.test_push_channels import CSV, channel, report
from sonocli.errors import PushError
try:
    channel("sftp", Path(sys.argv[1]), FTP_IP=sys.argv[2], FTP_USER="sonotest", FTP_PASS=sys.argv[3],
            accept_host_key=True).send(report("Meter_1.csv", CSV))
except PushError as exc:
    print("push error:", exc)
"""


def test_no_stray_paramiko_log_lines(root: Path, sshd_server: Any) -> None:
    """The log of a failed login and of a server that hangs up in the key exchange has no paramiko line."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def hang_up() -> None:
        conn, _ = listener.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        conn.recv(100)
        conn.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    runs = [(f"sftp://127.0.0.1:{sshd_server.port}", "nope"), (f"sftp://127.0.0.1:{port}", "p")]
    for url, password in runs:
        run = subprocess.run([sys.executable, "-c", SEND, str(root), url, password], capture_output=True,
                             text=True, timeout=60, cwd=Path(__file__).parents[3])
        assert "push error:" in run.stdout, run.stdout + run.stderr
        assert "paramiko" not in run.stderr, run.stderr
    thread.join(5)
    listener.close()
