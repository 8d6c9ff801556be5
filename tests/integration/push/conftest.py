"""Real delivery peers on 127.0.0.1 for the push tests (recipes: /work/shared/TESTING.md).

Session-scoped: a test PKI made with cryptography (CA, server cert for 127.0.0.1/localhost, client
cert), pyftpdlib FTP and FTPS (client certificate required), vsftpd with require_ssl_reuse=YES, OpenSSH
sshd (SFTP), aiosmtpd with STARTTLS + AUTH, an HTTPS server and a TLS TCP server that keep what arrives.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import os
import pwd
import shutil
import socket
import socketserver
import ssl
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_exe

TEST_USER = "sonotest"
TEST_PASSWORD = "sonotest-pw"


# ----------------------------------------------------------------------------------------------- PKI
@dataclass
class Pki:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: verification against it must fail

    def install(self, app: Path, *, ftp: bool = True, tls: bool = True) -> None:
        """Copy the files under the names the guide uses in /app."""
        app.mkdir(parents=True, exist_ok=True)
        if ftp:
            shutil.copy(self.ca, app / "ftp-cacert.pem")
            shutil.copy(self.client_cert, app / "ftp-clicert.pem")
            shutil.copy(self.client_key, app / "ftp-clikey.pem")
        if tls:
            shutil.copy(self.ca, app / "cacert.pem")
            shutil.copy(self.client_cert, app / "clicert.pem")
            shutil.copy(self.client_key, app / "clikey.pem")

    def server_context(self, *, require_client: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.ca))
        ctx.load_cert_chain(str(self.server_cert), str(self.server_key))
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client else ssl.CERT_NONE
        return ctx


def _make_pki(d: Path) -> Pki:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def key() -> Any:
        return ec.generate_private_key(ec.SECP256R1())

    def write_key(k: Any, path: Path) -> None:
        path.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def ca_cert(cn: str) -> tuple[Any, Any]:
        k = key()
        cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn)).public_key(k.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
                .sign(k, hashes.SHA256()))
        return k, cert

    def leaf(ca_key: Any, ca: Any, cn: str, usage: Any, san: list[Any] | None) -> tuple[Any, Any]:
        k = key()
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject).public_key(k.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
             .not_valid_after(now + dt.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return k, b.sign(ca_key, hashes.SHA256())

    pem = serialization.Encoding.PEM
    ca_key, ca = ca_cert("sonocli test CA")
    _, other = ca_cert("unrelated CA")
    sk, sc = leaf(ca_key, ca, "localhost", ExtendedKeyUsageOID.SERVER_AUTH,
                  [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))])
    ck, cc = leaf(ca_key, ca, "sonocli-device", ExtendedKeyUsageOID.CLIENT_AUTH, None)
    pki = Pki(d, d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key",
              d / "other-ca.pem")
    pki.ca.write_bytes(ca.public_bytes(pem))
    pki.other_ca.write_bytes(other.public_bytes(pem))
    pki.server_cert.write_bytes(sc.public_bytes(pem))
    write_key(sk, pki.server_key)
    pki.client_cert.write_bytes(cc.public_bytes(pem))
    write_key(ck, pki.client_key)
    for path in (pki.dir, *pki.dir.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return pki


@pytest.fixture(scope="session")
def pki() -> Any:
    d = Path(tempfile.mkdtemp(prefix="sonocli-pki-"))
    d.chmod(0o755)
    yield _make_pki(d)
    shutil.rmtree(d, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"port {port} did not open")


def world_dir(prefix: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=prefix))
    d.chmod(0o777)
    return d


# ------------------------------------------------------------------------------------------ pyftpdlib
class FtpPeer:
    def __init__(self, home: Path, pki: Pki | None, *, user: str = "u", password: str = "p", port: int = 0,
                 disk_full: bool = False) -> None:
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
        from pyftpdlib.ioloop import IOLoop
        from pyftpdlib.servers import FTPServer

        logging.getLogger("pyftpdlib").addHandler(logging.NullHandler())
        logging.getLogger("pyftpdlib").propagate = False
        self.home = home
        self.user, self.password = user, password
        auth = DummyAuthorizer()
        auth.add_user(user, password, str(home), perm="elradfmwMT")
        if pki is None:
            handler: Any = type("H", (FTPHandler,), {"authorizer": auth, "permit_foreign_addresses": True})
        else:
            from OpenSSL import SSL

            ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
            ctx.use_certificate_chain_file(str(pki.server_cert))
            ctx.use_privatekey_file(str(pki.server_key))
            ctx.load_verify_locations(str(pki.ca))
            ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *a: bool(a[-1]))
            # resumed sessions with client verification need a session id context (OpenSSL), as any real
            # server that verifies clients sets; without it a resumption attempt dies with internal_error
            ctx.set_session_id(b"sonocli-test")
            handler = type("H", (TLS_FTPHandler,), {"ssl_context": ctx, "tls_control_required": True,
                                                     "tls_data_required": True, "authorizer": auth})
        if disk_full:  # a server whose disk is full answers every STOR with 452 (RFC 959)
            def full(handler_self: Any, file: str, mode: str = "w") -> None:
                handler_self.respond("452 Insufficient storage space in system.")

            handler = type("Full", (handler,), {"ftp_STOR": full})
        self.server = FTPServer(("127.0.0.1", port), handler, ioloop=IOLoop())
        self.port = int(self.server.address[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.server.ioloop.loop(0.05, blocking=False)
        self.server.close_all()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture(scope="session")
def ftp_server() -> Any:
    peer = FtpPeer(world_dir("sonocli-ftp-"), None)
    yield peer
    peer.stop()


@pytest.fixture(scope="session")
def ftps_server(pki: Pki) -> Any:
    peer = FtpPeer(world_dir("sonocli-ftps-"), pki)
    yield peer
    peer.stop()


# --------------------------------------------------------------------------------------------- vsftpd
def ensure_test_user() -> None:
    """The user .ci/run creates; made here when missing (root only), with a known password."""
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER], check=False)
    subprocess.run(["chpasswd"], input=f"{TEST_USER}:{TEST_PASSWORD}\n".encode(), check=True)
    # vsftpd enters the user's home before local_root: it must exist (useradd --no-create-home)
    Path(pwd.getpwnam(TEST_USER).pw_dir).mkdir(parents=True, exist_ok=True)


@dataclass
class VsftpdPeer:
    port: int
    home: Path
    proc: subprocess.Popen[bytes]
    user: str = TEST_USER
    password: str = TEST_PASSWORD


@pytest.fixture(scope="session")
def vsftpd_server(pki: Pki) -> Any:
    exe = need_exe("vsftpd", "vsftpd")
    if os.geteuid() != 0:
        pytest.skip("vsftpd local-user login needs root")
    ensure_test_user()
    # vsftpd authenticates through PAM; Debian's vsftpd service demands a login shell (pam_shells),
    # which the test user does not have, so the test uses a service file without that line.
    pam = Path("/etc/pam.d/sonocli-vsftpd-test")
    if not pam.exists():
        pam.write_text("@include common-auth\n@include common-account\n@include common-session\n")
    d = world_dir("sonocli-vsftpd-")
    home = d / "home"
    home.mkdir()
    home.chmod(0o777)
    empty = d / "empty"
    empty.mkdir()
    port = free_port()
    pasv = free_port()
    cfg = d / "vsftpd.conf"
    cfg.write_text(f"""listen=YES
listen_address=127.0.0.1
listen_port={port}
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_root={home}
chroot_local_user=NO
pam_service_name=sonocli-vsftpd-test
check_shell=NO
secure_chroot_dir={empty}
seccomp_sandbox=NO
pasv_enable=YES
pasv_min_port={pasv}
pasv_max_port={pasv + 20}
port_enable=YES
connect_from_port_20=NO
ssl_enable=YES
rsa_cert_file={pki.server_cert}
rsa_private_key_file={pki.server_key}
force_local_logins_ssl=YES
force_local_data_ssl=YES
require_ssl_reuse=YES
ssl_ciphers=HIGH
xferlog_enable=NO
vsftpd_log_file={d}/vsftpd.log
""")
    proc = subprocess.Popen([exe, str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, proc)
    except RuntimeError as exc:
        err = proc.stderr.read().decode() if proc.stderr else ""
        pytest.fail(f"vsftpd did not start: {exc}: {err}")
    yield VsftpdPeer(port, home, proc)
    proc.terminate()
    proc.wait(5)
    shutil.rmtree(d, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- sshd
@dataclass
class SshdPeer:
    port: int
    home: Path
    host_pub: str
    authorized_keys: Path
    proc: subprocess.Popen[bytes]
    user: str = TEST_USER
    password: str = TEST_PASSWORD


def _ed25519_openssh(path: Path) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    k = Ed25519PrivateKey.generate()
    path.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                     serialization.NoEncryption()))
    path.chmod(0o600)
    return k.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


@pytest.fixture(scope="session")
def sshd_server() -> Any:
    exe = need_exe("sshd", "openssh-server")
    if os.geteuid() != 0:
        pytest.skip("the sshd peer needs root (password login)")
    ensure_test_user()
    Path("/run/sshd").mkdir(exist_ok=True)
    d = world_dir("sonocli-sshd-")
    home = d / "upload"
    home.mkdir()
    home.chmod(0o777)
    host_pub = _ed25519_openssh(d / "host_ed25519")
    authorized = d / "authorized_keys"
    authorized.write_text("")
    authorized.chmod(0o644)
    port = free_port()
    cfg = d / "sshd_config"
    cfg.write_text(f"""ListenAddress 127.0.0.1:{port}
HostKey {d}/host_ed25519
PidFile {d}/sshd.pid
AuthorizedKeysFile {authorized}
StrictModes no
UsePAM no
PasswordAuthentication yes
PubkeyAuthentication yes
AllowUsers {TEST_USER}
Subsystem sftp internal-sftp
ForceCommand internal-sftp
""")
    exe = str(Path(exe).resolve())
    subprocess.run([exe, "-t", "-f", str(cfg)], check=True)
    proc = subprocess.Popen([exe, "-D", "-e", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    yield SshdPeer(port, home, host_pub, authorized, proc)
    proc.terminate()
    proc.wait(5)
    shutil.rmtree(d, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- SMTP
@dataclass
class SmtpPeer:
    port: int
    messages: list[Any] = field(default_factory=list)
    user: str = "mailer"
    password: str = "secret"


@pytest.fixture(scope="session")
def smtp_server(pki: Pki) -> Any:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    logging.getLogger("mail.log").setLevel(logging.ERROR)
    peer = SmtpPeer(0)

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            peer.messages.append(envelope)
            return "250 OK"

    class EphemeralController(Controller):
        def _trigger_server(self) -> None:
            self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: Any, data: Any) -> Any:
        ok = data.login == peer.user.encode() and data.password == peer.password.encode()
        return AuthResult(success=ok, handled=False)

    ctx = pki.server_context(require_client=False)
    ctl = EphemeralController(Sink(), hostname="127.0.0.1", port=0, server_hostname="localhost", tls_context=ctx,
                              require_starttls=True, auth_required=True, authenticator=authenticator)
    ctl.start()
    peer.port = int(ctl.port)
    yield peer
    ctl.stop()


# --------------------------------------------------------------------------------------- HTTPS / TLS TCP
@dataclass
class HttpPeer:
    port: int
    posts: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    status: list[int] = field(default_factory=lambda: [200])


@pytest.fixture(scope="session")
def https_server(pki: Pki) -> Any:
    peer = HttpPeer(0)

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            code = peer.status[0]
            if 200 <= code < 300:
                peer.posts.append((self.path, dict(self.headers.items()), body))
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    class S(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass

    srv = S(("127.0.0.1", 0), H)
    srv.socket = pki.server_context().wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    peer.port = int(srv.server_address[1])
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield peer
    srv.shutdown()
    srv.server_close()


@dataclass
class TcpPeer:
    port: int
    documents: list[bytes] = field(default_factory=list)


def _tcp_server(ctx: ssl.SSLContext | None) -> Any:
    peer = TcpPeer(0)

    class H(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            conn = self.request
            if ctx is not None:
                conn = ctx.wrap_socket(conn, server_side=True)
            conn.settimeout(5)
            data = b""
            # the head-end's side of the device's protocol: the XML root's end tag ends the document
            parser = ET.XMLPullParser(events=("start", "end"))
            depth = 0
            done = False
            while not done:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
                parser.feed(chunk)
                for event, _ in parser.read_events():
                    depth += 1 if event == "start" else -1
                    if event == "end" and depth == 0:
                        done = True
            peer.documents.append(data)
            conn.close()

    class S(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass

    srv = S(("127.0.0.1", 0), H)
    peer.port = int(srv.server_address[1])
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    return peer, srv


@pytest.fixture(scope="session")
def tls_tcp_server(pki: Pki) -> Any:
    peer, srv = _tcp_server(pki.server_context())
    yield peer
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="session")
def tcp_server() -> Any:
    peer, srv = _tcp_server(None)
    yield peer
    srv.shutdown()
    srv.server_close()


# ------------------------------------------------------------------------------------- sonocli roots
@pytest.fixture(scope="session")
def demo_meter_list(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """device_handle.cfg of the twelve sim://demo meters, made once by a real `scan --save`."""
    import sys

    root = tmp_path_factory.mktemp("demo-root")
    subprocess.run([sys.executable, "-m", "sonocli", "--root", str(root), "init"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-m", "sonocli", "--root", str(root), "scan", "--port", "sim://demo", "--save"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return root / "app" / "device_handle.cfg"


def make_root(root: Path, meter_list: Path, **settings: Any) -> Path:
    """A sonocli root with the demo meters and chip.ini ``settings`` (sim://demo on the wired port)."""
    from sonocli.config.chipini import ChipIni
    from sonocli.config.layout import init_root

    layout = init_root(root)
    shutil.copy(meter_list, layout.device_handle)
    chip = ChipIni.load(layout.chip_ini)
    values = {"MBUS_PORT": "sim://demo", "WMBUS_ENABLE": "0", "METER_TIME": "900", "REPORT_TIME": "15",
              "REPORT_RANDOMDELAY": "1", **{k: str(int(v) if isinstance(v, bool) else v) for k, v in settings.items()}}
    for key, value in values.items():
        chip.set(key, value)
    chip.save(layout.chip_ini)
    return root


def read_demo_meters(root: Path) -> int:
    """One readout of the root's wired meters through the Engine (stored like the daemon stores them)."""
    from sonocli.engine.core import Engine

    engine = Engine(root)
    try:
        return engine.read_wired(engine.wired_meters()).readings
    finally:
        engine.close()
