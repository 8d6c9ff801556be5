"""serve-daemon as a real process: PID file, a second daemon refused, SIGHUP reload, SIGTERM clean exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sonocli.config.chipini import ChipIni
from tests.integration.push.conftest import make_root

pytest_plugins = ["tests.integration.push.conftest"]


def wait_for(predicate, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_pid_file_hup_and_term(tmp_path: Path, demo_meter_list: Path) -> None:
    root = make_root(tmp_path / "root", demo_meter_list, MUC_LOG="ALL")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    log = tmp_path / "daemon.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "sonocli", "serve-daemon", "--root", str(root), "--no-wireless"],
                                env=env, stdout=subprocess.DEVNULL, stderr=err)
    pid_file = root / "ext" / "sonocli-daemon.pid"
    try:
        assert wait_for(lambda: "readout: 12 of 12" in log.read_text()), log.read_text()
        assert pid_file.read_text().strip() == str(proc.pid)
        second = subprocess.run([sys.executable, "-m", "sonocli", "serve-daemon", "--root", str(root), "--once"],
                                env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "another serve-daemon" in second.stderr and str(proc.pid) in second.stderr
        chip = ChipIni.load(root / "app" / "chip.ini")
        chip.set("METER_TIME", "60")
        chip.save(root / "app" / "chip.ini")
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "reloaded" in log.read_text()), log.read_text()
        proc.send_signal(signal.SIGUSR1)  # the Scan button: WATCHDOG_SCAN, additive
        assert wait_for(lambda: "scan: 12 meter(s) found, 0 added" in log.read_text()), log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "signal SIGTERM: finishing the current step" in text and "daemon stopped" in text
    assert "signal SIGHUP: reloading" in text and "signal SIGUSR1: M-Bus scan" in text
    assert "Traceback" not in text
    assert not pid_file.exists()


def test_once_exit_codes(tmp_path: Path, demo_meter_list: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    root = make_root(tmp_path / "ok", demo_meter_list)
    ok = subprocess.run([sys.executable, "-m", "sonocli", "--root", str(root), "serve-daemon", "--once"],
                        env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "12 reading(s)" in ok.stderr
    root = make_root(tmp_path / "silent", demo_meter_list, MBUS_PORT="sim://demo?silent=1")
    partial = subprocess.run([sys.executable, "-m", "sonocli", "serve-daemon", "--root", str(root), "--once"],
                             env=env, capture_output=True, text=True, timeout=120)
    assert partial.returncode == 3, partial.stderr
    assert "11 reading(s)" in partial.stderr and "readout of" in partial.stderr


def test_once_writes_the_csv_log(tmp_path: Path, demo_meter_list: Path) -> None:
    root = make_root(tmp_path / "root", demo_meter_list, MUC_CSVLOG_ENABLE=1)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    for _ in range(2):
        out = subprocess.run([sys.executable, "-m", "sonocli", "serve-daemon", "--root", str(root), "--once"],
                             env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    files = sorted((root / "ext" / "log").rglob("Meter_*.csv"))
    assert files
    rows = [line for f in files for line in f.read_text().splitlines()[1:] if line]
    assert len(rows) == 24
