"""Every channel against a real server on 127.0.0.1: what arrives is compared byte for byte."""

from __future__ import annotations

import email
import socket
import threading
import time
from email import policy
from pathlib import Path
from typing import Any

import pytest

from sonocli.config.chipini_schema import by_name
from sonocli.errors import PushError
from sonocli.push.base import Report, StepEvent
from sonocli.registry import CHANNELS, load

XML = b'<?xml version="1.0" encoding="UTF-8"?>\n<MUC><ID>1234567</ID><METER>x</METER></MUC>\n'
CSV = b"Protocol-Version;3\nID;Value\n12345678;42.5\n"


def conf(**overrides: Any) -> Any:
    params = by_name()

    def get(name: str) -> Any:
        if name in overrides:
            return overrides[name]
        return params[name].default

    return get


def channel(kind: str, root: Path, steps: list[StepEvent] | None = None, **overrides: Any) -> Any:
    cls = load(CHANNELS, kind, "channel")
    extra = {k: overrides.pop(k) for k in list(overrides) if k.islower()}
    return cls(conf(**overrides), root, observer=steps.append if steps is not None else None, **extra)


def report(name: str, payload: bytes, ctype: str = "text/csv") -> Report:
    return Report(name, payload, ctype, time.time())


@pytest.fixture
def root(tmp_path: Path, pki: Any) -> Path:
    pki.install(tmp_path / "app")
    return tmp_path


@pytest.mark.parametrize("passive", [True, False], ids=["passive", "active"])
def test_ftp_upload(root: Path, ftp_server: Any, passive: bool) -> None:
    steps: list[StepEvent] = []
    ch = channel("ftp", root, steps, FTP_IP="127.0.0.1", FTP_PORT=ftp_server.port, FTP_USER="u", FTP_PASS="p",
                 FTP_PASSIVE=passive, FTP_PATH=f"/in/{'pasv' if passive else 'port'}")
    name = ch.report_name(1372759627, 1)
    assert name == "SonoCollect_111_1372759627.csv"
    ch.send(report(name, CSV))
    target = ftp_server.home / "in" / ("pasv" if passive else "port") / name
    assert target.read_bytes() == CSV
    assert not list(target.parent.glob(".*.part"))
    assert [s.step for s in steps if s.ok] == ["resolve", "connect", "login", "upload", "confirm"]


@pytest.mark.parametrize("passive", [True, False], ids=["passive", "active"])
def test_ftps_with_client_certificate(root: Path, ftps_server: Any, passive: bool) -> None:
    ch = channel("ftp", root, FTP_IP="ftps://127.0.0.1", FTP_PORT=ftps_server.port, FTP_USER="u", FTP_PASS="p",
                 FTP_PASSIVE=passive, FTP_FILEBASENAME="", FTP_PATH="")
    name = ch.report_name(1700000000 + passive, 1)
    assert name.startswith("Meter_")
    ch.send(report(name, CSV))
    assert (ftps_server.home / name).read_bytes() == CSV


def test_ftps_without_client_certificate_is_refused(root: Path, ftps_server: Any) -> None:
    (root / "app" / "ftp-clicert.pem").unlink()
    (root / "app" / "ftp-clikey.pem").unlink()
    ch = channel("ftp", root, FTP_IP="ftps://127.0.0.1", FTP_PORT=ftps_server.port, FTP_USER="u", FTP_PASS="p")
    with pytest.raises(PushError) as err:
        ch.send(report("x.csv", CSV))
    assert err.value.channel == "ftps" and err.value.step in ("tls", "login", "connect")


def test_ftps_server_certificate_that_does_not_verify(root: Path, ftps_server: Any, pki: Any) -> None:
    (root / "app" / "ftp-cacert.pem").write_bytes(pki.other_ca.read_bytes())
    ch = channel("ftp", root, FTP_IP="ftps://127.0.0.1", FTP_PORT=ftps_server.port, FTP_USER="u", FTP_PASS="p")
    with pytest.raises(PushError) as err:
        ch.send(report("x.csv", CSV))
    assert err.value.step == "tls"
    assert "does not verify" in err.value.message


def test_ftp_wrong_password(root: Path, ftp_server: Any) -> None:
    ch = channel("ftp", root, FTP_IP="127.0.0.1", FTP_PORT=ftp_server.port, FTP_USER="u", FTP_PASS="wrong")
    with pytest.raises(PushError) as err:
        ch.send(report("x.csv", CSV))
    assert (err.value.channel, err.value.step) == ("ftp", "login")


def test_ftp_retry_overwrites_same_name(root: Path, ftp_server: Any) -> None:
    ch = channel("ftp", root, FTP_IP="127.0.0.1", FTP_PORT=ftp_server.port, FTP_USER="u", FTP_PASS="p",
                 FTP_PATH="again")
    ch.send(report("Meter_1.csv", b"first"))
    ch.send(report("Meter_1.csv", CSV))
    assert sorted(p.name for p in (ftp_server.home / "again").iterdir()) == ["Meter_1.csv"]
    assert (ftp_server.home / "again" / "Meter_1.csv").read_bytes() == CSV


@pytest.mark.parametrize("passive", [True, False], ids=["passive", "active"])
def test_ftps_vsftpd_requires_session_reuse(root: Path, vsftpd_server: Any, passive: bool) -> None:
    """vsftpd with require_ssl_reuse=YES refuses data connections that do not resume the TLS session."""
    ch = channel("ftp", root, FTP_IP="ftps://127.0.0.1", FTP_PORT=vsftpd_server.port, FTP_USER=vsftpd_server.user,
                 FTP_PASS=vsftpd_server.password, FTP_PASSIVE=passive, FTP_PATH="")
    name = ch.report_name(1600000000 + passive, 1)
    ch.send(report(name, CSV * 100))
    assert (vsftpd_server.home / name).read_bytes() == CSV * 100


def test_stock_ftplib_fails_against_vsftpd_reuse(root: Path, vsftpd_server: Any, pki: Any) -> None:
    """The peer really enforces reuse: stock FTP_TLS (no session resumption) is refused on the data channel."""
    import ftplib
    import io
    import ssl

    ctx = ssl.create_default_context(cafile=str(pki.ca))
    f = ftplib.FTP_TLS(context=ctx, timeout=5)
    f.connect("127.0.0.1", vsftpd_server.port)
    f.login(vsftpd_server.user, vsftpd_server.password)
    f.prot_p()
    with pytest.raises((ftplib.Error, OSError, EOFError)):
        f.storbinary("STOR stock.csv", io.BytesIO(CSV))
    f.close()


def _sftp(root: Path, sshd: Any, **kw: Any) -> Any:
    return channel("sftp", root, FTP_IP=f"sftp://127.0.0.1:{sshd.port}", FTP_USER=sshd.user,
                   FTP_PASS=kw.pop("FTP_PASS", sshd.password), FTP_PATH=str(sshd.home / "sftp"), **kw)


def test_sftp_unknown_host_refused_then_accepted(root: Path, sshd_server: Any) -> None:
    ch = _sftp(root, sshd_server)
    with pytest.raises(PushError) as err:
        ch.send(report("Meter_1.csv", CSV))
    assert (err.value.channel, err.value.step) == ("sftp", "hostkey")
    assert "unknown host" in err.value.message
    _sftp(root, sshd_server, accept_host_key=True).send(report("Meter_1.csv", CSV))
    known = (root / "app" / "known_hosts").read_text()
    assert sshd_server.host_pub.split()[1] in known
    # from now on the key is known: a plain send works
    _sftp(root, sshd_server).send(report("Meter_2.csv", CSV))
    assert (sshd_server.home / "sftp" / "Meter_2.csv").read_bytes() == CSV
    assert (root / "app" / "ssh_id_ed25519").stat().st_mode & 0o777 == 0o600


def test_sftp_device_key_login(root: Path, sshd_server: Any) -> None:
    from sonocli.push.sftp import ensure_client_key

    key = ensure_client_key(root / "app")
    sshd_server.authorized_keys.write_text(Path(f"{key}.pub").read_text())
    try:
        ch = _sftp(root, sshd_server, FTP_PASS="", accept_host_key=True)
        ch.send(report("Meter_key.csv", CSV))
    finally:
        sshd_server.authorized_keys.write_text("")
    assert (sshd_server.home / "sftp" / "Meter_key.csv").read_bytes() == CSV


def test_sftp_changed_host_key_refused(root: Path, sshd_server: Any) -> None:
    other = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    (root / "app" / "known_hosts").write_text(f"[127.0.0.1]:{sshd_server.port} ssh-ed25519 {other}\n")
    with pytest.raises(PushError) as err:
        _sftp(root, sshd_server, accept_host_key=True).send(report("Meter_1.csv", CSV))
    assert err.value.step == "hostkey" and "CHANGED" in err.value.message


def test_sftp_wrong_password(root: Path, sshd_server: Any) -> None:
    with pytest.raises(PushError) as err:
        _sftp(root, sshd_server, FTP_PASS="nope", accept_host_key=True).send(report("Meter_1.csv", CSV))
    assert err.value.step == "login"


def test_smtp_starttls_auth(root: Path, smtp_server: Any) -> None:
    ch = channel("smtp", root, SMTP_IP=f"127.0.0.1:{smtp_server.port}", SMTP_USER=smtp_server.user,
                 SMTP_PASSWORD=smtp_server.password, SMTP_FROMADDRESS="muc@example.org",
                 SMTP_TOADDRESS="head@example.org", muc_id="1234567")
    subject = ch.report_name(1372759627, 2)
    assert subject == "SonoCollect 111 ID: 1234567, Timestamp: 1372759627 (2)"
    before = len(smtp_server.messages)
    ch.send(report(subject, XML, "application/xml"))
    envelope = smtp_server.messages[before]
    msg = email.message_from_bytes(envelope.original_content, policy=policy.default)
    assert msg["Subject"] == subject
    assert msg.get_content_type() == "text/xml"
    assert msg.get_payload(decode=True) == XML
    assert envelope.rcpt_tos == ["head@example.org"]


def test_smtp_wrong_password(root: Path, smtp_server: Any) -> None:
    ch = channel("smtp", root, SMTP_IP=f"127.0.0.1:{smtp_server.port}", SMTP_USER="mailer", SMTP_PASSWORD="bad",
                 SMTP_FROMADDRESS="a@b", SMTP_TOADDRESS="c@d")
    with pytest.raises(PushError) as err:
        ch.send(report("s", XML, "application/xml"))
    assert (err.value.channel, err.value.step) == ("smtp", "login")


def test_https_post(root: Path, https_server: Any) -> None:
    ch = channel("http", root, TLS_IP="127.0.0.1", TLS_PORT=https_server.port, TLS_SITE="/data", tls=True)
    ch.send(report("r1", XML, "application/xml"))
    path, headers, body = https_server.posts[-1]
    assert (path, body) == ("/data", XML)
    assert headers["Content-Type"] == "application/xml"


def test_https_non_2xx_is_a_failure(root: Path, https_server: Any) -> None:
    https_server.status[0] = 507
    try:
        ch = channel("http", root, TLS_IP="127.0.0.1", TLS_PORT=https_server.port, TLS_SITE="/", tls=True)
        with pytest.raises(PushError) as err:
            ch.send(report("r1", XML, "application/xml"))
    finally:
        https_server.status[0] = 200
    assert err.value.step == "confirm" and "507" in err.value.message


def test_tls_tcp(root: Path, tls_tcp_server: Any) -> None:
    ch = channel("tcp", root, TLS_IP="127.0.0.1", TLS_PORT=tls_tcp_server.port, tls=True)
    ch.send(report("r", XML, "application/xml"))
    assert tls_tcp_server.documents[-1] == XML


def test_plain_tcp(root: Path, tcp_server: Any) -> None:
    ch = channel("tcp", root, XMLTOTCP_IP="127.0.0.1", XMLTOTCP_PORT=tcp_server.port)
    ch.send(report("r", XML, "application/xml"))
    assert tcp_server.documents[-1] == XML


def test_tls_tcp_wrong_ca(root: Path, tls_tcp_server: Any, pki: Any) -> None:
    (root / "app" / "cacert.pem").write_bytes(pki.other_ca.read_bytes())
    ch = channel("tcp", root, TLS_IP="127.0.0.1", TLS_PORT=tls_tcp_server.port, tls=True)
    with pytest.raises(PushError) as err:
        ch.send(report("r", XML, "application/xml"))
    assert err.value.step == "tls"


def test_dns_failure_and_refused_connection(root: Path) -> None:
    ch = channel("ftp", root, FTP_IP="no-such-host.invalid", FTP_PORT=21)
    with pytest.raises(PushError) as err:
        ch.send(report("x", CSV))
    assert err.value.step == "resolve"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ch = channel("tcp", root, XMLTOTCP_IP="127.0.0.1", XMLTOTCP_PORT=port)
    with pytest.raises(PushError) as err:
        ch.send(report("x", XML))
    assert err.value.step == "connect" and "refused" in err.value.message


def test_abort_unblocks_a_hanging_server(root: Path) -> None:
    """A server that accepts and then never answers: abort() from another thread ends the send at once."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    ch = channel("ftp", root, FTP_IP="127.0.0.1", FTP_PORT=port, FTP_TIMEOUTSCALE=20)
    result: list[BaseException] = []

    def run() -> None:
        try:
            ch.send(report("x", CSV))
        except BaseException as exc:
            result.append(exc)

    t = threading.Thread(target=run)
    t.start()
    while not held:
        time.sleep(0.01)
    time.sleep(0.1)
    ch.abort()
    t.join(10)
    assert not t.is_alive()
    assert isinstance(result[0], PushError)
    listener.close()
    for s in held:
        s.close()


def test_ftp_server_disk_full(root: Path) -> None:
    from tests.integration.push.conftest import FtpPeer, world_dir

    peer = FtpPeer(world_dir("sonocli-full-"), None, disk_full=True)
    try:
        ch = channel("ftp", root, FTP_IP="127.0.0.1", FTP_PORT=peer.port, FTP_USER="u", FTP_PASS="p")
        with pytest.raises(PushError) as err:
            ch.send(report("Meter_1.csv", CSV))
    finally:
        peer.stop()
    assert (err.value.channel, err.value.step) == ("ftp", "upload")
    assert "452" in err.value.message
