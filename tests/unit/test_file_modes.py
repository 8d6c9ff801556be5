"""Files with secrets are owner-only; unusable or oversized config files are refused (issue 13, items 5, 11)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sonocli.config.chipini import ChipIni
from sonocli.config.device_handle import load_meter_list, save_meter_list
from sonocli.config.layout import init_root
from sonocli.errors import ConfigError
from sonocli.fsutil import atomic_write_bytes, atomic_write_text, is_private


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture(autouse=True)
def _umask() -> object:
    old = os.umask(0o022)  # the usual umask: a plain new file would be 0644
    yield
    os.umask(old)


def test_private_files_are_created_0600(tmp_path: Path) -> None:
    layout = init_root(tmp_path)
    assert _mode(layout.chip_ini) == 0o600 and _mode(layout.device_handle) == 0o600
    atomic_write_text(tmp_path / "export.csv", "a;b\n")
    assert _mode(tmp_path / "export.csv") == 0o644  # no secret: as before


def test_rewrite_makes_0644_owner_only_and_keeps_a_tighter_mode(tmp_path: Path) -> None:
    layout = init_root(tmp_path)
    layout.chip_ini.chmod(0o644)
    chip = ChipIni.load(layout.chip_ini)
    chip.set("FTP_PASS", "pw")
    chip.save(layout.chip_ini)
    assert _mode(layout.chip_ini) == 0o600
    layout.device_handle.chmod(0o400)
    save_meter_list(layout.device_handle, load_meter_list(layout.device_handle))
    assert _mode(layout.device_handle) == 0o400
    layout.chip_ini.chmod(0o640)
    chip.save(layout.chip_ini)
    assert _mode(layout.chip_ini) == 0o600  # group read of a password: dropped


def test_key_files_by_name(tmp_path: Path) -> None:
    for name in ("device.key", "clikey.pem", "ftp-clikey.pem", "ssh_host_ed25519_key", "ssh_id_ed25519"):
        assert is_private(tmp_path / name), name
        atomic_write_bytes(tmp_path / name, b"k", mode=0o644)
        assert _mode(tmp_path / name) == 0o600, name
    for name in ("ssh_id_ed25519.pub", "known_hosts", "device.crt", "log.csv"):
        assert not is_private(tmp_path / name), name


def test_regenerate_keys_modes(tmp_path: Path) -> None:
    from sonocli.service.devicekeys import regenerate

    (tmp_path / "app").mkdir()
    keys = regenerate(tmp_path / "app", "sonocli-test")
    modes = {p.name: _mode(p) for p in keys.files}
    assert modes["device.key"] == modes["ssh_host_ed25519_key"] == modes["ssh_id_ed25519"] == 0o600
    assert modes["ssh_id_ed25519.pub"] == 0o644
    assert keys.sftp_fingerprint.startswith("SHA256:") and keys.sftp_public_key.startswith("ssh-ed25519 ")


def test_regenerate_keys_rotates_the_sftp_login_key(tmp_path: Path) -> None:
    root = tmp_path / "root"
    init_root(root)
    from sonocli.push.sftp import ensure_client_key

    key = ensure_client_key(root / "app")
    before = key.read_bytes()
    run = subprocess.run([sys.executable, "-m", "sonocli", "--root", str(root), "service", "regenerate-keys", "-y"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert key.read_bytes() != before
    public = (root / "app" / "ssh_id_ed25519.pub").read_text().strip()
    assert public in run.stdout and "authorized_keys" in run.stdout and "SFTP login key: SHA256:" in run.stdout


# -- item 11: unusable and oversized configuration files ---------------------------------------------------
def _daemon_once(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sonocli", "--root", str(root), "serve-daemon", "--once",
                           "--no-wireless"], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("kind", ["directory", "empty", "comments-only", "cut-short"])
def test_daemon_refuses_an_unusable_chip_ini(tmp_path: Path, kind: str) -> None:
    layout = init_root(tmp_path)
    text = layout.chip_ini.read_text()
    if kind == "directory":
        layout.chip_ini.unlink()
        layout.chip_ini.mkdir()
    elif kind == "empty":
        layout.chip_ini.write_text("")
    elif kind == "comments-only":
        layout.chip_ini.write_text("; nothing here\n\n")
    else:
        layout.chip_ini.write_text(text[: text.index("METER_TIME=") + len("METER_TIME=9")])
    run = _daemon_once(tmp_path)
    assert run.returncode == 2, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("sonocli: error:")]
    assert len(lines) == 1 and str(layout.chip_ini) in lines[0], run.stderr
    assert "reading(s)" not in run.stderr


def test_oversized_config_files_are_refused_quickly(tmp_path: Path) -> None:
    layout = init_root(tmp_path)
    with layout.chip_ini.open("a") as handle:
        handle.write("; " + "x" * 30_000_000 + "\n")
    started = time.monotonic()
    with pytest.raises(ConfigError, match="more than a configuration file can be"):
        ChipIni.load(layout.chip_ini)
    assert time.monotonic() - started < 1
    run = subprocess.run([sys.executable, "-m", "sonocli", "--root", str(tmp_path), "config", "show"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "refused" in run.stderr and len(run.stderr) < 1000
    with layout.device_handle.open("a") as handle:
        handle.write(" " * 70_000_000)
    with pytest.raises(ConfigError, match="more than a configuration file can be"):
        load_meter_list(layout.device_handle)


def test_permission_error_on_a_file_hints_at_ownership_not_dialout() -> None:
    from sonocli.cli.root import _classify_os_error

    code, hint = _classify_os_error(PermissionError(13, "Permission denied", "/var/lib/sonocli/app/chip.ini"))
    assert code == 1 and hint is not None
    assert "owns /var/lib/sonocli/app/chip.ini" in hint and "dialout" not in hint
    _, port_hint = _classify_os_error(PermissionError(13, "Permission denied", "/dev/ttyUSB0"))
    assert port_hint is not None and "dialout" in port_hint


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a command as another user")
def test_unreadable_chip_ini_as_another_user(tmp_path: Path) -> None:
    """A real permission error: chip.ini owned by root 0600, sonocli run as nobody."""
    import shutil

    if shutil.which("setpriv") is None:
        pytest.skip("setpriv not installed")
    tmp_path.chmod(0o755)
    layout = init_root(tmp_path)
    for directory in (tmp_path, layout.app):
        directory.chmod(0o755)
    script = "import sys; sys.argv = ['sonocli', '--root', sys.argv[1], 'config', 'show']; " \
             "from sonocli.cli.root import main; main()"
    checkout = str(Path(__file__).parents[2])
    run = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                          script, str(tmp_path)], capture_output=True, text=True, timeout=30,
                         cwd=checkout, env={**os.environ, "PYTHONPATH": checkout})
    if "Permission denied" not in run.stderr or "sonocli: error" not in run.stderr:
        pytest.skip(f"could not run sonocli as nobody here: {run.stderr[-300:]}")
    assert "dialout" not in run.stderr and "owns" in run.stderr


def test_a_config_file_is_read_whole_into_a_buffer_of_its_size(tmp_path: Path) -> None:
    """read_config reads the file's own size (not a 64 MB buffer per read: the daemon's peak memory), and
    all of it; at the limit it is still read, one byte beyond is refused."""
    import tracemalloc

    from sonocli.fsutil import read_config

    path = tmp_path / "device_handle.cfg"
    path.write_bytes(b"<root/>\n" * 1000)
    tracemalloc.start()
    data = read_config(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert data == b"<root/>\n" * 1000 and peak < 1_000_000
    assert read_config(path, limit=8000) == data
    with pytest.raises(ConfigError, match="more than a configuration file can be"):
        read_config(path, limit=7999)
