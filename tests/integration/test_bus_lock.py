"""One master per wired bus: a second master on the same root waits for the first and says who holds it.

The bus is a real pty served by the simulator; the "other master" is a second process holding the port's
lock (as serve-daemon's readout does while its link is open), so the lock is checked across processes,
the way the daemon, its web interface and an SSH command meet on a concentrator.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sonocli.errors import TransportError
from sonocli.sim.pty_server import PtyServer
from sonocli.sim.wired import WiredSegment, load_segment
from sonocli.transports.buslock import BusBusyError, BusLock, lock_path


@pytest.fixture
def pty_bus() -> Iterator[PtyServer]:
    demo = load_segment("demo")
    with PtyServer(WiredSegment([m for m in demo.meters if m.primary == 10]), 2400) as server:
        yield server


def _holder(root: Path, port: str, seconds: float) -> subprocess.Popen[str]:
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from sonocli.transports.buslock import BusLock
        lock = BusLock.acquire(Path({str(root / 'ext')!r}), {port!r}, purpose="serve-daemon", wait=0)
        print("held", flush=True)
        time.sleep({seconds})
        lock.release()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_readout_waits_for_the_master_holding_the_bus(tmp_path: Path, pty_bus: PtyServer) -> None:
    root = tmp_path / "root"
    subprocess.run([sys.executable, "-m", "sonocli", "--root", str(root), "init"], check=True, capture_output=True)
    holder = _holder(root, pty_bus.path, 2.0)
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "sonocli", "--root", str(root), "readout", "--port", pty_bus.path,
                          "--address", "10", "--baud", "2400"], capture_output=True, text=True, timeout=120)
    waited = time.monotonic() - started
    holder.wait(10)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"port {pty_bus.path} is in use by pid {holder.pid} (serve-daemon)" in run.stderr
    assert waited >= 1.0  # it did wait for the holder instead of talking over it
    assert "EMH" in run.stdout
    # the lock is free again and names nobody once released
    assert BusLock.holder(lock_path(root / "ext", pty_bus.path)) == "another process"


def test_the_wait_ends_with_one_line_naming_the_holder(tmp_path: Path) -> None:
    ext = tmp_path / "ext"
    first = BusLock.acquire(ext, "/dev/ttyUSB7", purpose="serve-daemon", wait=0)
    try:
        assert first.held and oct(os.stat(lock_path(ext, "/dev/ttyUSB7")).st_mode & 0o777) == "0o600"
        with pytest.raises(BusBusyError) as caught:
            BusLock.acquire(ext, "/dev/ttyUSB7", wait=0.3, sleep=lambda s: time.sleep(0.05))
        assert str(caught.value.message) == f"port /dev/ttyUSB7 is in use by pid {os.getpid()} (serve-daemon)"
        other = BusLock.acquire(ext, "/dev/ttyUSB8", wait=0)  # another port is another bus
        other.release()
    finally:
        first.release()
    again = BusLock.acquire(ext, "/dev/ttyUSB7", wait=0)
    assert again.held
    again.release()


def test_a_lock_held_by_a_killed_process_is_free(tmp_path: Path) -> None:
    holder = _holder(tmp_path, "/dev/ttyUSB0", 60)
    holder.kill()
    holder.wait(10)
    lock = BusLock.acquire(tmp_path / "ext", "/dev/ttyUSB0", wait=1)
    assert lock.held
    lock.release()


def test_simulated_buses_are_not_locked_and_a_bad_lock_directory_is_one_line(tmp_path: Path) -> None:
    assert not BusLock.acquire(tmp_path / "ext", "sim://demo", wait=0).held
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(TransportError) as caught:
        BusLock.acquire(blocked / "ext", "/dev/ttyUSB0", wait=0)
    assert "cannot create the bus lock" in caught.value.message and "\n" not in caught.value.message
