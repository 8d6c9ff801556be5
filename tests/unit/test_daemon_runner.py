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


def test_watchdog_names_the_state_that_lasted_too_long() -> None:
    from sonocli.daemon.runner import Watchdog

    now = [100.0]
    hung: list[tuple[str, float, float]] = []
    dog = Watchdog(lambda *a: hung.append(a), monotonic=lambda: now[0])
    dog.enter("idle", 120)
    now[0] += 119
    assert dog.overdue() is None
    dog.enter("readout", 900)  # a kick resets the time
    now[0] += 899
    assert dog.overdue() is None
    now[0] += 2
    assert dog.overdue() == ("readout", 901.0, 900.0)
    assert hung == []


def _run_in_thread(daemon: Daemon) -> threading.Thread:
    t = threading.Thread(target=daemon.run, daemon=True)
    t.start()
    return t


def test_idle_watchdog_is_kicked_while_waiting_and_trips_a_hung_main_loop(tmp_path: Path,
                                                                         demo_meter_list: Path) -> None:
    """WATCHDOG_IDLE: a waiting daemon kicks it; WATCHDOG_PROCESS: a main loop stuck in its own work trips it."""
    # WATCHDOG_IDLE 2: kicked every 1 s, so a busy CI machine has a whole second of slack
    root = make_root(tmp_path, demo_meter_list, MBUS_ENABLE=0, WATCHDOG_IDLE=2, WATCHDOG_PROCESS=1,
                     METER_TIME=86400, REPORT_TIME=1440)
    engine = Engine(root)
    hung: list[tuple[str, float, float]] = []
    tripped = threading.Event()
    daemon = Daemon(engine, wireless=False, on_hang=lambda *a: (hung.append(a), tripped.set()))
    release = threading.Event()
    t = _run_in_thread(daemon)
    try:
        # idle for several WATCHDOG_IDLE periods: the wait is cut into beats, so nothing trips
        assert not tripped.wait(3.0), hung
        # a reload that never returns (a hung file system): the main loop is "busy" past WATCHDOG_PROCESS
        engine.reload = lambda: release.wait(30)  # type: ignore[method-assign]
        daemon._on_hup(1, None)
        assert tripped.wait(10)
        state, elapsed, limit = hung[0]
        assert state == "busy" and limit == 1.0 and elapsed > 1.0
    finally:
        release.set()
        daemon.stop()
        t.join(10)
        engine.close()
    assert not t.is_alive()


def test_scan_step_adds_meters_and_reloads(tmp_path: Path) -> None:
    from sonocli.config.chipini import ChipIni
    from sonocli.config.layout import init_root

    layout = init_root(tmp_path)
    chip = ChipIni.load(layout.chip_ini)
    chip.set("MBUS_PORT", "sim://demo")
    chip.set("WMBUS_ENABLE", "0")
    chip.save(layout.chip_ini)
    engine = Engine(tmp_path)
    try:
        assert engine.wired_meters() == []
        daemon = Daemon(engine, clock=FastClock(START), wireless=False)
        daemon.step_scan()
        assert len(engine.wired_meters()) == 12  # reloaded: the next readout reads them
        daemon.step_scan()  # additive: a second scan adds nothing twice
        assert len(engine.wired_meters()) == 12
    finally:
        engine.close()


def test_scan_that_outlives_watchdog_scan_is_aborted(tmp_path: Path, demo_meter_list: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    import os

    master_fd, slave_fd = os.openpty()  # a bus where nobody ever answers: the scan waits out every timeout
    try:
        root = make_root(tmp_path, demo_meter_list, MBUS_PORT=os.ttyname(slave_fd), WATCHDOG_SCAN=1,
                         MBUS_SCANMODE="PRIMARYSCAN")
        engine = Engine(root)
        daemon = Daemon(engine, clock=FastClock(START), wireless=False)
        before = len(engine.wired_meters())
        with caplog.at_level("INFO", logger="sonocli.daemon"):
            daemon.step_scan()
        engine.close()
    finally:
        os.close(master_fd)
        os.close(slave_fd)
    assert daemon.stats.watchdog_trips == 1
    assert "watchdog: scan still running after 1 s; aborting it" in caplog.text
    assert len(Engine(root).wired_meters()) == before


def test_signal_handlers_never_take_the_events_lock(tmp_path: Path, demo_meter_list: Path) -> None:
    """A SIGTERM that interrupts the main thread inside ``wake``'s own lock must not deadlock the daemon.

    ``Event.set()`` from the handler would block forever on that lock (held by the interrupted main thread);
    the handlers only set flags and poke a pipe, and a relay thread sets the events.
    """
    import os
    import signal

    root = make_root(tmp_path, demo_meter_list)
    engine = Engine(root)
    daemon = Daemon(engine, clock=FastClock(START), wireless=False)
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)}
    try:
        daemon.install_signals()
        with daemon.wake._cond:  # type: ignore[attr-defined]  # what the main thread holds inside wake.wait()
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGHUP)
            import time

            time.sleep(0.2)  # the handlers run here, in this thread, while the lock is held
            assert daemon.stop_requested and daemon.reload_requested
            assert not daemon.wake.is_set()
        assert daemon.stop_event.wait(5) and daemon.wake.wait(5)
        assert daemon.stopping
        daemon.log_signals()
        assert daemon._signals == []
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        engine.close()


def test_each_readout_cycle_records_the_manual_meters(tmp_path: Path, demo_meter_list: Path) -> None:
    """An active S0 meter's set values reach the store and the CSV log on every general cycle (Figure 21);
    an inactive one and the readouts of a meter with its own cycle add nothing."""
    from sonocli.config.device_handle import MeterList, load_meter_list, save_meter_list
    from sonocli.model.values import Interface, Meter, ValueConfig

    root = make_root(tmp_path, demo_meter_list, METER_TIME=900, METER_DELAY=30, MUC_CSVLOG_ENABLE=1)
    handle = root / "app" / "device_handle.cfg"
    energy = (ValueConfig(description="Energy", unit="Wh", exponent=-1, value=1234.0),)
    manual = Meter(Interface.S0, serial="00000771", values=energy)
    idle = Meter(Interface.S0, serial="00000772", values=energy, active=False)
    wired = load_meter_list(handle).meters
    fast = replace(wired[0], readout_cycle=300)
    save_meter_list(handle, MeterList(meters=(fast, *wired[1:], manual, idle)))
    engine = Engine(root)
    daemon = Daemon(engine, clock=FastClock(START), wireless=False, until=START + 1800, rng=random.Random(3))
    try:
        stats = daemon.run()
        count = engine.store.count(meter="00000771")
        assert not engine.store.meter_known("00000772")
    finally:
        engine.close()
    # the start readout and the two aligned cycles in the half hour; never with the 300 s meter's readouts
    assert count == stats.manual == 3
    rows = [line for f in (root / "ext" / "log").rglob("Meter_*.csv") for line in f.read_text().splitlines()
            if "00000771" in line]
    assert len(rows) == 3 and all(";1234;1.00E-01;Wh;Energy;" in row for row in rows)


def test_scan_step_learns_the_value_entries_of_the_added_meters(tmp_path: Path) -> None:
    from sonocli.config.layout import init_root

    empty = init_root(tmp_path / "empty").device_handle
    root = make_root(tmp_path / "root", empty)
    engine = Engine(root)
    try:
        daemon = Daemon(engine, clock=FastClock(START), wireless=False)
        daemon.step_scan()
        assert len(engine.wired_meters()) == 12
        # the added meters are read once for their value entries; that commissioning look is not stored
        assert engine.store.count() == 0
        assert all(m.values for m in engine.meter_list().meters)
    finally:
        engine.close()


def test_reload_pairs_receivers_by_interface(tmp_path: Path, demo_meter_list: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    """SIGHUP with real sim://air ports: a second receiver is opened without touching the first; removing
    the first closes only it; the second keeps its thread; WMBUS_ENABLE=0 closes the rest."""
    from sonocli.config.chipini import ChipIni

    root = make_root(tmp_path, demo_meter_list, WMBUS_ENABLE=1, WMBUS_PORT="sim://air?seed=1",
                     WMBUS_DONGLE="im871a")
    chip_ini = root / "app" / "chip.ini"

    def configure(**values: str) -> None:
        chip = ChipIni.load(chip_ini)
        for key, value in values.items():
            chip.set(key, value)
        chip.save(chip_ini)

    engine = Engine(root)
    daemon = Daemon(engine, clock=FastClock(START))
    try:
        with caplog.at_level("INFO", logger="sonocli.daemon"):
            daemon.start_background()
            first = daemon._receivers[1].thread
            configure(WMBUS2_PORT="sim://air?seed=2", WMBUS2_DONGLE="amb8465")
            daemon._reload()
            assert set(daemon._receivers) == {1, 2} and daemon._receivers[1].thread is first
            assert "SIGHUP: wireless receiver 2 opened (port sim://air?seed=2, amb8465" in caplog.text
            second = daemon._receivers[2].thread
            daemon._reload()  # nothing changed: nothing reopened
            assert daemon._receivers[1].thread is first and daemon._receivers[2].thread is second
            configure(WMBUS_PORT="")
            daemon._reload()
            assert set(daemon._receivers) == {2} and daemon._receivers[2].thread is second
            assert "SIGHUP: wireless receiver 1 closed (port sim://air?seed=1)" in caplog.text
            assert not first.is_alive()
            configure(WMBUS2_MODE="C1_OTHER_REQ")
            daemon._reload()
            assert "SIGHUP: wireless receiver 2 reopened (port sim://air?seed=2, mode T2_OTHER_REQ -> " \
                   "C1_OTHER_REQ)" in caplog.text
            assert daemon._receivers[2].thread is not second and not second.is_alive()
            configure(WMBUS_ENABLE="0")
            daemon._reload()
            assert daemon._receivers == {}
    finally:
        daemon.shutdown()
        engine.close()
    assert "Traceback" not in caplog.text and "wireless receiver sim://" not in caplog.text  # no open error
