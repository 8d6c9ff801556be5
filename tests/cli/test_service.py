"""sonocli service: info, regenerate-keys, format-log, stop-daemon / restart-daemon."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from sonocli.cli.root import cli
from sonocli.config.layout import RootLayout, init_root

# A process that keeps the daemon's PID-file contract (PID file, SIGHUP = reload, SIGTERM = remove the
# file and exit); its command line carries "serve-daemon" like the real one. Used where the test is
# about the contract; test_real_daemon_restart below drives the real `sonocli serve-daemon`.
PEER = textwrap.dedent(
    """
    import os, signal, sys, time, pathlib
    root = pathlib.Path(sys.argv[1])
    pid_file = root / "ext" / "sonocli-daemon.pid"
    events = root / "ext" / "events"
    def hup(*_):
        with open(events, "a") as f: f.write(f"reload {os.getpid()}\\n")
    def term(*_):
        pid_file.unlink(); sys.exit(0)
    signal.signal(signal.SIGHUP, hup)
    signal.signal(signal.SIGTERM, term)
    pid_file.write_text(str(os.getpid()))
    with open(events, "a") as f: f.write(f"start {os.getpid()} {os.environ.get('PEER_MARK', '-')}\\n")
    while True: time.sleep(0.05)
    """
)


def invoke(root: Path, *args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), *args], input=input)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def root(tmp_path: Path) -> Path:
    init_root(tmp_path / "root")
    return tmp_path / "root"


@pytest.fixture
def peer(root: Path) -> Iterator[subprocess.Popen[bytes]]:
    script = root.parent / "peer.py"
    script.write_text(PEER)
    env = dict(os.environ, PEER_MARK="kept")
    proc = subprocess.Popen([sys.executable, str(script), str(root), "serve-daemon"], env=env, cwd=root)
    pid_file = RootLayout(root).ext / "sonocli-daemon.pid"
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text().strip() == str(proc.pid):
            break
        time.sleep(0.02)
    yield proc
    for line in (root / "ext" / "events").read_text().split():
        if line.isdigit():
            try:
                os.kill(int(line), signal.SIGKILL)
            except ProcessLookupError:
                pass
    proc.wait(5)


def test_info_json(root: Path) -> None:
    code, out, _ = invoke(root, "service", "info", "--json", "--prefix", str(root / "nowhere"))
    assert code == 0
    data = json.loads(out)
    from sonocli import __version__

    assert data["software_version"] == __version__
    assert data["chip_ini_version"] == "5"
    assert data["device_handle_version"]
    assert int(data["muc_id"], 16) < 2**32
    assert data["installed_version"] is None
    assert data["problems"] == []
    again = json.loads(invoke(root, "service", "info", "--json")[1])
    assert again["muc_id"] == data["muc_id"]  # stable


def test_info_with_damaged_configuration(root: Path) -> None:
    """The Service tab still shows everything else when chip.ini or the meter list cannot be read."""
    layout = RootLayout(root)
    layout.chip_ini.write_bytes(b"\xff\xfe[MUC]\n")
    layout.device_handle.write_text("<xml")
    code, out, err = invoke(root, "service", "info", "--json", "--prefix", str(root / "nowhere"))
    assert code == 0, err
    data = json.loads(out)
    assert data["chip_ini_version"] is None and data["device_handle_version"] is None
    assert data["software_version"] and data["muc_id"]
    assert len(data["problems"]) == 2 and "chip.ini" in data["problems"][0]
    assert "device_handle.cfg" in data["problems"][1]
    code, out, err = invoke(root, "service", "info")
    assert code == 0 and "Software version" in out
    assert err.count("sonocli: warning:") == 2 and "Traceback" not in err


def test_muc_id_sources(tmp_path: Path) -> None:
    from sonocli.service.info import muc_id

    layout = RootLayout(tmp_path)
    ids = tmp_path / "machine-id"
    ids.write_text("3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    first = muc_id(layout, (ids,))
    assert first == (
        int.from_bytes(
            __import__("hashlib").sha256(b"sonocli-muc-id\0" + b"3d1219c7c4c5404aaa1f6d2a48adfda4").digest()[:4], "big"
        ),
        str(ids),
    )
    ids.write_text("ffff1219c7c4c5404aaa1f6d2a48adfd\n")
    assert muc_id(layout, (ids,))[0] != first[0]
    assert muc_id(layout, (tmp_path / "missing",))[1] == "MAC"


def test_regenerate_keys(root: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    app = RootLayout(root).app
    code, _, _ = invoke(root, "service", "regenerate-keys", input="n\n")
    assert code == 1 and not (app / "device.key").exists()  # declined: nothing written
    code, out, _ = invoke(root, "service", "regenerate-keys", "--yes", "--json")
    assert code == 0
    first = json.loads(out)
    key = serialization.load_pem_private_key((app / "device.key").read_bytes(), None)
    cert = x509.load_pem_x509_certificate((app / "device.crt").read_bytes())
    assert cert.public_key() == key.public_key()
    assert oct((app / "device.key").stat().st_mode & 0o777) == "0o600"
    assert oct((app / "ssh_host_ed25519_key").stat().st_mode & 0o777) == "0o600"
    serialization.load_ssh_private_key((app / "ssh_host_ed25519_key").read_bytes(), None)
    if shutil.which("ssh-keygen"):
        listed = subprocess.run(
            ["ssh-keygen", "-lf", str(app / "ssh_host_ed25519_key")], capture_output=True, text=True
        )
        assert first["ssh_fingerprint"] in listed.stdout
    import paramiko  # the SFTP side of sonocli loads host keys with paramiko: it must read this one

    host_key = paramiko.Ed25519Key.from_private_key_file(str(app / "ssh_host_ed25519_key"))
    assert f"{host_key.get_name()} {host_key.get_base64()}" in (app / "ssh_host_ed25519_key.pub").read_text()
    second = json.loads(invoke(root, "service", "regenerate-keys", "--yes", "--json")[1])
    assert second["tls_sha256"] != first["tls_sha256"] and second["ssh_fingerprint"] != first["ssh_fingerprint"]
    # no temp files left (the writers' lock files of chip.ini and the meter list belong there)
    assert sorted(p.name for p in app.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")) == []


def test_regenerate_keys_needs_an_existing_root(tmp_path: Path) -> None:
    code, _, err = invoke(tmp_path / "typo", "service", "regenerate-keys", "--yes")
    assert code == 2 and "does not exist; not a sonocli root" in err and "sonocli init" in err
    assert not (tmp_path / "typo").exists()


def test_format_log_keeps_upd_and_app(root: Path) -> None:
    layout = RootLayout(root)
    (layout.log_dir / "2026-11-24.csv").write_text("x" * 100)
    layout.database.write_bytes(b"y" * 50)
    (layout.upd_dir / "sonocli-2.0.sonoimg").write_bytes(b"img")
    outside = root.parent / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    (layout.ext / "link").symlink_to(outside)
    app_before = {p.name: p.read_bytes() for p in layout.app.iterdir()}
    code, _, _ = invoke(root, "service", "format-log", input="n\n")
    assert code == 1 and layout.database.exists()
    code, out, _ = invoke(root, "service", "format-log", "--yes", "--json")
    assert code == 0
    assert json.loads(out)["freed_bytes"] >= 150
    assert sorted(p.name for p in layout.ext.iterdir()) == ["Upd", "log", "tmp"]
    assert (layout.upd_dir / "sonocli-2.0.sonoimg").exists()
    assert (outside / "precious").read_text() == "keep"
    assert {p.name: p.read_bytes() for p in layout.app.iterdir()} == app_before
    code, _, _ = invoke(root, "service", "format-log", "--yes", "--include-updates")
    assert code == 0 and list(layout.upd_dir.iterdir()) == []


def test_format_log_refuses_while_daemon_runs(root: Path, peer: subprocess.Popen[bytes]) -> None:
    RootLayout(root).database.write_bytes(b"live")
    code, _, err = invoke(root, "service", "format-log", "--yes")
    assert code == 1 and f"pid {peer.pid}" in err and RootLayout(root).database.exists()


def test_missing_and_stale_pid_files(root: Path) -> None:
    pid_file = RootLayout(root).ext / "sonocli-daemon.pid"
    code, _, err = invoke(root, "service", "stop-daemon")
    assert code == 1 and "not running (no PID file" in err
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pid_file.write_text(f"{dead.pid}\n")
    code, _, err = invoke(root, "service", "restart-daemon")
    assert code == 1 and f"stale PID file {pid_file}: process {dead.pid} is not running" in err
    pid_file.write_text(f"{os.getpid()}\n")  # alive, but not a daemon: never signalled
    code, _, err = invoke(root, "service", "stop-daemon")
    assert code == 1 and "not a sonocli daemon" in err
    pid_file.write_text("garbage")
    assert invoke(root, "service", "stop-daemon")[0] == 1


def test_reload_stop_and_restart_follow_the_pid_contract(root: Path, peer: subprocess.Popen[bytes]) -> None:
    events = root / "ext" / "events"
    code, out, _ = invoke(root, "service", "restart-daemon", "--reload")
    assert code == 0 and str(peer.pid) in out
    for _ in range(100):
        if f"reload {peer.pid}" in events.read_text():
            break
        time.sleep(0.02)
    assert f"reload {peer.pid}" in events.read_text()
    code, out, _ = invoke(root, "service", "restart-daemon")
    assert code == 0, out
    new_pid = int((root / "ext" / "sonocli-daemon.pid").read_text())
    assert new_pid != peer.pid and f"(pid {peer.pid} -> {new_pid})" in out
    assert peer.wait(5) == 0  # the old one exited on SIGTERM
    # restarted with the same command line and environment (the CliRunner process has no PEER_MARK)
    assert f"start {new_pid} kept" in events.read_text()
    code, out, _ = invoke(root, "service", "stop-daemon")
    assert code == 0 and f"pid {new_pid}" in out
    assert not (root / "ext" / "sonocli-daemon.pid").exists()


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie (the restarted daemon is a child of this test process)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_real_daemon_restart(root: Path) -> None:
    try:
        import sonocli.cli.daemon  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"sonocli serve-daemon not available yet: {exc}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sonocli", "--root", str(root), "serve-daemon"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    pid_file = RootLayout(root).ext / "sonocli-daemon.pid"
    try:
        for _ in range(300):
            if pid_file.exists():
                break
            time.sleep(0.05)
        assert pid_file.exists(), "serve-daemon wrote no PID file"
        code, out, err = invoke(root, "service", "restart-daemon", "--timeout", "30")
        assert code == 0, err
        assert proc.wait(10) is not None
        new_pid = int(pid_file.read_text())
        assert new_pid != proc.pid and f"(pid {proc.pid} -> {new_pid})" in out
        assert "serve-daemon" in Path(f"/proc/{new_pid}/cmdline").read_bytes().decode()
        code, out, err = invoke(root, "service", "stop-daemon", "--timeout", "30")
        assert code == 0 and f"pid {new_pid}" in out, err
        assert not pid_file.exists() and _gone(new_pid)
    finally:
        if proc.poll() is None:
            proc.kill()
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


def test_pid_file_still_empty_while_the_daemon_starts(
    root: Path, peer: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve-daemon creates its PID file before it writes the number: a command right then must wait, not fail."""
    import threading

    from sonocli.service import daemonctl

    pid_file = RootLayout(root).ext / "sonocli-daemon.pid"
    pid_file.write_text("")
    writer = threading.Timer(0.3, lambda: pid_file.write_text(f"{peer.pid}\n"))
    writer.start()
    try:
        code, out, err = invoke(root, "service", "restart-daemon", "--reload")
    finally:
        writer.join()
    assert code == 0 and f"pid {peer.pid}" in out, err
    monkeypatch.setattr(daemonctl, "EMPTY_PID_GRACE", 0.2)
    pid_file.write_text("")  # stays empty: after the grace it is reported, never signalled
    code, _, err = invoke(root, "service", "stop-daemon")
    assert code == 1 and "holds '', not a process id" in err
    assert peer.poll() is None


def test_systemd_units_are_left_to_systemctl() -> None:
    """A daemon systemd runs (child of PID 1, INVOCATION_ID) is not stopped or restarted by PID file:
    Restart=always would race the copy restart-daemon starts."""
    from sonocli.errors import SonoError
    from sonocli.service.daemonctl import DaemonProcess, _refuse_under_systemd

    cgroup = "1:name=systemd:/system.slice/sonocli.service\n0::/system.slice/sonocli.service\n"
    unit = DaemonProcess(4242, ("sonocli", "serve-daemon"), "/", {"INVOCATION_ID": "0f3a"}, 1, cgroup)
    with pytest.raises(SonoError) as caught:
        _refuse_under_systemd(unit, "restart")
    assert "run by systemd (sonocli.service)" in str(caught.value)
    assert caught.value.hint == "systemctl restart sonocli.service"
    _refuse_under_systemd(DaemonProcess(4242, (), "/", {"INVOCATION_ID": "0f3a"}, 777, cgroup), "stop")
    _refuse_under_systemd(DaemonProcess(4242, (), "/", {}, 1, cgroup), "stop")


def test_daemon_started_from_a_systemd_terminal_is_still_ours(root: Path) -> None:
    """INVOCATION_ID alone (inherited by shells in a terminal that systemd runs) does not mean a unit."""
    script = root.parent / "peer.py"
    script.write_text(PEER)
    env = dict(os.environ, PEER_MARK="kept", INVOCATION_ID="0f3a")
    proc = subprocess.Popen([sys.executable, str(script), str(root), "serve-daemon"], env=env, cwd=root)
    pid_file = RootLayout(root).ext / "sonocli-daemon.pid"
    try:
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text().strip() == str(proc.pid):
                break
            time.sleep(0.02)
        code, out, err = invoke(root, "service", "stop-daemon")
        assert code == 0 and f"pid {proc.pid}" in out, err
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
