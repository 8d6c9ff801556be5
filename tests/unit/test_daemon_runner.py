"""The daemon's scheduler on a virtual clock with the sim://demo segment: cycles, per-meter cycles, watchdog."""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from sonocli.daemon.runner import Daemon, WatchdogTripped
from sonocli.daemon.schedule import FastClock
from sonocli.engine.core import Engine
from tests.integration.push.conftest import make_root

pytest_plugins = ["tests.integration.push.conftest"]

START = 1_750_000_000.0  # not on a 900 s boundary (1_750_000_000 % 900 == 400)


def test_readout_cycles_and_own_cycle(tmp_path: Path, demo_meter_list: Path) -> None:
    root = make_root(tmp_path, demo_meter_list, METER_TIME=900, METER_DELAY=30)
    engine = Engine(root)
    fast = engine.wired_meters()[0]
    engine._meters = tuple(replace(m, readout_cycle=300) if m == fast else m for m in engine.meters)
    clock = FastClock(START)
    times: list[tuple[float, int]] = []
    daemon = Daemon(engine, clock=clock, wireless=False, until=START + 3600, rng=random.Random(3))
    original = engine.read_wired

    def spy(meters, **kw):  # type: ignore[no-untyped-def]
        times.append((clock.now(), len(meters)))
        return original(meters, **kw)

    engine.read_wired = spy  # type: ignore[method-assign]
    try:
        stats = daemon.run()
    finally:
        engine.close()
    general = [t for t, n in times if n > 1]
    # the start readout, then every METER_TIME at aligned times + METER_DELAY
    assert general[0] == START
    assert [t % 900 for t in general[1:]] == [30.0] * len(general[1:])
    assert len(general) == 1 + 4
    own = [t for t, n in times if n == 1]
    assert len(own) >= 8  # the 300 s meter is read in between
    assert stats.readings == sum(n for _, n in times)


def test_watchdog_aborts_a_stuck_step(tmp_path: Path, demo_meter_list: Path) -> None:
    root = make_root(tmp_path, demo_meter_list)
    engine = Engine(root)
    daemon = Daemon(engine, clock=FastClock(START), wireless=False)
    released = threading.Event()
    aborted: list[bool] = []
    daemon._abortable(lambda: (aborted.append(True), released.set()))
    assert daemon.guarded("upload", 0.2, lambda cancel: released.wait(30) and "done") == "done"
    assert aborted == [True] and daemon.stats.watchdog_trips == 1
    # a step that ignores every abort: the daemon gives up and exits for the service manager to restart it
    stuck = threading.Event()
    import sonocli.daemon.runner as runner

    old = runner.ABORT_GRACE
    runner.ABORT_GRACE = 0.2
    try:
        with pytest.raises(WatchdogTripped):
            daemon.guarded("readout", 0.2, lambda cancel: stuck.wait(30))
    finally:
        runner.ABORT_GRACE = old
        stuck.set()
        engine.close()
