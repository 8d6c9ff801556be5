"""A full disk and a read-only root are operating conditions, not crashes (issue 13, Build 1, 3 and 4).

Real mounts (../shared/TESTING.md): a 3 MB tmpfs filled to the last byte, and the same tmpfs remounted
read-only. Every command that touches the store runs as a real process on it: none may end in "internal
error" or a traceback; those that only read still work, those that write say why they cannot, with a hint.
The daemon rides out a full disk (one log line per change of condition, readings held and stored when
space returns) and its CSV log agrees with the database after every kill -9.
Mounting needs root: skipped with the reason otherwise, failed under CI=true.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from sonocli.engine.core import Engine
from tests.integration.push.conftest import demo_meter_list, free_port, make_root, read_demo_meters

__all__ = ["demo_meter_list"]  # the session fixture, used here too

SONOCLI = [sys.executable, "-m", "sonocli"]


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def tmpfs() -> Iterator[Path]:
    """A fresh 3 MB tmpfs (``mount -t tmpfs -o size=3m``), unmounted afterwards."""
    where = Path(tempfile.mkdtemp(prefix="sonocli-disk-"))
    done = _mount("-t", "tmpfs", "-o", "size=3m", "tmpfs", str(where))
    if done.returncode != 0:
        where.rmdir()
        reason = f"mount -t tmpfs not permitted here ({done.stderr.strip() or done.returncode}); needs root"
        pytest.fail(reason, pytrace=False) if os.environ.get("CI") else pytest.skip(reason)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        with contextlib.suppress(OSError):
            where.rmdir()


def fill(disk: Path) -> Path:
    """Write zeros until the file system refuses one more byte (ENOSPC)."""
    path = disk / "filler"
    block = b"\0" * 4096
    with open(path, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        with contextlib.suppress(OSError):  # the last partial block
            while True:
                handle.write(b"\0")
    assert os.statvfs(disk).f_bavail == 0
    return path


def prepared(disk: Path, demo_meter_list: Path) -> Path:
    """A root on ``disk`` with readings, a CSV log and one report pending (its FTP server is down)."""
    root = make_root(disk / "root", demo_meter_list, MUC_CSVLOG_ENABLE=1, FTP_ENABLE=1, FTP_IP="127.0.0.1",
                     FTP_PORT=free_port())
    assert read_demo_meters(root) == 12
    push = subprocess.run([*SONOCLI, "--root", str(root), "push", "--once"], capture_output=True, text=True)
    assert push.returncode == 1 and "outbox" in push.stderr
    return root


# (command, what it may do on an unwritable root): "reads" must work, "writes" must fail with the condition
COMMANDS: list[tuple[tuple[str, ...], str]] = [
    (("outbox", "list"), "reads"),
    (("outbox", "list", "--all", "--json"), "reads"),
    (("export", "csv"), "reads"),
    (("export", "xml"), "reads"),
    (("meters", "list"), "reads"),
    (("meters", "show", "1"), "reads"),
    (("meters", "heard"), "reads"),
    (("status",), "any"),
    (("readout", "--all"), "writes"),
    (("push", "--once"), "writes"),
    (("outbox", "retry", "--all"), "writes"),
    (("outbox", "drop", "--all"), "writes"),
    (("serve-daemon", "--once"), "writes"),
]


def run_all(root: Path, condition: str) -> None:
    failures: list[str] = []
    for command, kind in COMMANDS:
        done = subprocess.run([*SONOCLI, "--root", str(root), *command], capture_output=True, text=True,
                              timeout=120)
        both = done.stdout + done.stderr
        shown = f"{' '.join(command)} -> {done.returncode}: {done.stderr.strip()[-400:]}"
        if "internal error" in both or "Traceback" in both or done.returncode not in (0, 1, 3):
            failures.append("crashed: " + shown)
        elif kind == "reads" and done.returncode != 0:
            failures.append("could not read: " + shown)
        elif kind == "writes" and (done.returncode == 0 or condition not in done.stderr
                                   or ("hint" not in both and "free on" not in both)):
            failures.append(f"did not say {condition!r}: " + shown)
    assert not failures, "\n".join(failures)


def test_every_store_command_on_a_full_disk(tmpfs: Path, demo_meter_list: Path) -> None:
    root = prepared(tmpfs, demo_meter_list)
    fill(tmpfs)
    run_all(root, "disk full")
    # the data is intact: space back, the pending report is still there and every reading is kept
    (tmpfs / "filler").unlink()
    engine = Engine(root)
    try:
        assert engine.store.count() == 12 and len(engine.outbox.items()) == 1
    finally:
        engine.close()


def test_every_store_command_on_a_read_only_root(tmpfs: Path, demo_meter_list: Path) -> None:
    root = prepared(tmpfs, demo_meter_list)
    assert _mount("-o", "remount,ro", str(tmpfs)).returncode == 0
    try:
        run_all(root, "read-only")
    finally:
        _mount("-o", "remount,rw", str(tmpfs))


def test_the_daemon_rides_out_a_full_disk(tmpfs: Path, demo_meter_list: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """Cycles on a full disk: readings are read and held, the condition is logged once (with the free
    space); when space returns they are stored by themselves, the CSV log catches up, and it says so."""
    import random as _random

    from sonocli.daemon.runner import Daemon
    from sonocli.daemon.schedule import FastClock

    root = make_root(tmpfs / "root", demo_meter_list, MUC_CSVLOG_ENABLE=1, METER_TIME=900, METER_DELAY=0)
    engine = Engine(root)
    start = 1_750_000_000.0
    daemon = Daemon(engine, clock=FastClock(start), wireless=False, until=start + 4 * 900 + 60,
                    rng=_random.Random(1))
    original = daemon.step_readout
    calls = {"n": 0}
    filler = fill(tmpfs)

    def readout(**kw: object) -> None:
        original(**kw)  # type: ignore[arg-type]
        calls["n"] += 1
        if calls["n"] == 3:
            filler.unlink()  # the administrator frees space after three cycles

    daemon.step_readout = readout  # type: ignore[method-assign]
    caplog.set_level(logging.INFO)
    try:
        daemon.run()
        stored = engine.store.count()
    finally:
        engine.close()
    assert calls["n"] >= 4 and daemon.stats.readings == 12 * calls["n"]
    errors = [r.getMessage() for r in caplog.records if "held in memory" in r.getMessage()]
    assert len(errors) == 1 and "disk full" in errors[0] and "free on" in errors[0]
    assert sum("storing works again" in r.getMessage() for r in caplog.records) == 1
    assert stored == 12 * calls["n"]  # nothing read on the full disk was lost
    assert csv_keys(root) == db_keys(root)


def csv_keys(root: Path) -> Counter[tuple[int, str]]:
    """(time, Device-ID) of every row of the CSV log."""
    keys: Counter[tuple[int, str]] = Counter()
    for path in (root / "ext" / "log").rglob("Meter_*.csv"):
        for line in path.read_text("utf-8").splitlines():
            match = re.match(r"^(\d+);([A-Z@]{3}-[0-9A-F]{8}-[0-9A-F]{2}-[0-9A-F]{2});", line)
            if match:
                keys[(int(match.group(1)), match.group(2))] += 1
    return keys


def db_keys(root: Path) -> Counter[tuple[int, str]]:
    """(time, Device-ID) of every stored reading the CSV log carries (active meters)."""
    from sonocli.engine.values import deliverable

    engine = Engine(root)
    try:
        return Counter((int(r.taken_at.timestamp()), r.meter.device_id)
                       for _id, stored in engine.store.iter_stored(after_id=0)
                       for r in [deliverable(stored)] if r is not None)
    finally:
        engine.close()


def test_kill_9_loop_database_and_csv_log_agree(tmp_path: Path, demo_meter_list: Path) -> None:
    """serve-daemon --once killed with SIGKILL at random moments, 25 times: after each restart's catch-up
    (what the daemon does first) the CSV log holds exactly the stored readings, none missing, none twice."""
    from sonocli.engine.recording import catch_up_csv

    root = make_root(tmp_path / "root", demo_meter_list, MUC_CSVLOG_ENABLE=1)
    argv = [*SONOCLI, "--root", str(root), "serve-daemon", "--once", "--no-wireless"]
    start = time.monotonic()  # one whole run first: the kills fall within a run however fast this machine is
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=True)
    whole = time.monotonic() - start
    rng = random.Random(13)
    killed = 0
    for _round in range(25):
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.1, 0.9) * whole)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait(30)
        engine = Engine(root)
        try:
            catch_up_csv(engine)  # the restart's first step
        finally:
            engine.close()
        assert csv_keys(root) == db_keys(root)
    assert killed >= 5, "the kills should hit running daemons"
    assert sum(db_keys(root).values()) >= 12
