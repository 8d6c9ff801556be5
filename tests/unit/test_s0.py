"""S0 pulse meters: edges from a fake edge source counted into the store, the value ``set value + pulses``,
a restart that loses no pulse, MUC_SETDEVICES, the line from the meter list or S0_LINES, GPIO errors
(no GPIO chip on this machine: the real libgpiod call), and the daemon's counter thread."""

from __future__ import annotations

import errno
import importlib.util
import queue
import random
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sonocli.engine import s0
from sonocli.engine.core import Engine
from sonocli.errors import SonoError, UsageError
from sonocli.model.values import Interface, Meter, ValueConfig


class FakeEdges:
    """An edge source fed by the test: ``pulse(line, n)`` queues n edges; ``wait`` hands them out."""

    def __init__(self) -> None:
        self.edges: queue.Queue[str] = queue.Queue()
        self.closed = False

    def pulse(self, line: str, n: int = 1) -> None:
        for _ in range(n):
            self.edges.put(line)

    def wait(self, timeout: float) -> list[str]:
        out: list[str] = []
        try:
            out.append(self.edges.get(timeout=timeout))
        except queue.Empty:
            return out
        while True:
            try:
                out.append(self.edges.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        self.closed = True


def s0_meter(channel: int = 1, value: float = 280.09, gpio: str | None = None, serial: str = "12345678") -> Meter:
    extra = (("gpio", f"<gpio>{gpio}</gpio>"),) if gpio is not None else ()
    entry = ValueConfig(description="Energy", unit="Wh", exponent=-1, obis="1-0:1.8.0*255", user="Basement",
                        value=value)
    return Meter(Interface.S0, serial=serial, manufacturer="SLV", version=12, medium=2, primary_address=channel,
                 values=(entry,), extra=extra)


def make_root(tmp_path: Path, meters: list[Meter], **settings: str) -> Path:
    from sonocli.config.chipini import ChipIni
    from sonocli.config.layout import init_root

    root = tmp_path / "root"
    layout = init_root(root)
    chip = ChipIni.load(layout.chip_ini)
    for key, value in {"S0_LINES": "1=17,2=GPIO27", **settings}.items():
        chip.set(key, value)
    chip.save(layout.chip_ini)
    engine = Engine(root)
    try:
        engine.update_meters(lambda ml: (replace(ml, meters=tuple(meters)), None))
    finally:
        engine.close()
    return root


def reading_value(engine: Engine, serial: str) -> str:
    recorded = engine.read_manual()
    found = [r for r in recorded.readings if r.meter.serial == serial]
    assert found, recorded
    return str(found[0].values[0].exact)


def test_lines_from_s0_lines_and_the_meter_list(tmp_path: Path) -> None:
    root = make_root(tmp_path, [s0_meter(1), s0_meter(2, serial="12345679"),
                                s0_meter(3, gpio="PIN_5", serial="12345680"), s0_meter(4, serial="12345681")])
    engine = Engine(root)
    try:
        assert {line: m.serial for line, m in s0.counted_meters(engine).items()} == {
            "17": "12345678", "GPIO27": "12345679", "PIN_5": "12345680"}  # channel 4 has no line: manual
    finally:
        engine.close()


def test_pulses_are_counted_into_the_value_and_survive_a_restart(tmp_path: Path) -> None:
    root = make_root(tmp_path, [s0_meter(1), s0_meter(2, value=0, serial="12345679")])
    edges = FakeEdges()
    engine = Engine(root)
    try:
        counter = s0.PulseCounter(engine, edges)
        assert reading_value(engine, "12345678") == "28.009"  # set value 280.09 at scale 1e-1 Wh, no pulse yet
        edges.pulse("17", 5)
        edges.pulse("GPIO27", 2)
        edges.pulse("99")  # a line no meter has: ignored
        assert counter.step(0.1) == 7 and counter.ignored == 1
        edges.pulse("17", 3)
        assert counter.step(0.1) == 3
        assert reading_value(engine, "12345678") == "28.809"  # (280.09 + 8) x 0.1 Wh
        assert reading_value(engine, "12345679") == "0.2"
    finally:
        engine.close()
    # a restart: a new engine (new process) on the same root, counting on from the stored count
    engine = Engine(root)
    try:
        assert engine.pulses.get("SLV-12345678-0C-02").pulses == 8
        counter = s0.PulseCounter(engine, edges)
        edges.pulse("17")
        counter.step(0.1)
        assert reading_value(engine, "12345678") == "28.909"
        stored = [r for r in engine.store.latest_readings() if r.meter.serial == "12345678"]
        assert str(stored[0].values[0].exact) == "28.909" and stored[0].meter.values[0].obis == "1-0:1.8.0*255"
    finally:
        engine.close()


def test_muc_setdevices_governs_writing_the_value(tmp_path: Path) -> None:
    root = make_root(tmp_path, [s0_meter(1)], MUC_SETDEVICES="S0")
    edges = FakeEdges()
    engine = Engine(root)
    try:
        counter = s0.PulseCounter(engine, edges)
        edges.pulse("17", 4)
        counter.step(0.1)
        meter = s0.set_value(engine, "SLV-12345678-0C-02", 1000).meter
        assert meter.values[0].value == 1000.0
        assert engine.meter_list().meters[0].values[0].value == 1000.0
        assert engine.pulses.get(meter.device_id).pulses == 0  # counting starts from the new value
        edges.pulse("17", 2)
        counter.step(0.1)
        assert reading_value(engine, "12345678") == "100.2"
    finally:
        engine.close()
    engine = Engine(root)
    try:
        engine.chip.set("MUC_SETDEVICES", "NONE")
        with pytest.raises(UsageError, match="MUC_SETDEVICES=NONE"):
            s0.set_value(engine, "SLV-12345678-0C-02", 5)
        # the list edited by hand: with NONE the new set value is not written, counting goes on
        engine.update_meters(lambda ml: (replace(ml, meters=(s0_meter(1, value=7),)), None))
        s0.ensure_counters(engine, s0.counted_meters(engine).values())
        assert engine.pulses.get("SLV-12345678-0C-02").base == "1000"
        engine.chip.set("MUC_SETDEVICES", "ALL")
        s0.ensure_counters(engine, s0.counted_meters(engine).values())
        count = engine.pulses.get("SLV-12345678-0C-02")
        assert (count.base, count.pulses) == ("7", 0)
    finally:
        engine.close()


def test_gpio_chip_missing_is_one_clear_line(tmp_path: Path) -> None:
    pytest.importorskip("gpiod")
    root = make_root(tmp_path, [s0_meter(1)], S0_GPIOCHIP=str(tmp_path / "gpiochip9"))
    engine = Engine(root)
    try:
        with pytest.raises(UsageError) as info:
            s0.open_edges(engine, ["17"])
        assert "does not exist" in str(info.value) and "gpiochip9" in str(info.value)
        assert info.value.exit_code == 2 and "\n" not in str(info.value)
    finally:
        engine.close()


def test_gpio_error_mapping() -> None:
    busy = s0.gpio_error(OSError(errno.EBUSY, "Device or resource busy"), "/dev/gpiochip0", "17")
    assert busy.exit_code == 1 and "busy" in str(busy) and "line 17" in str(busy)
    missing = s0.gpio_error(ValueError("line 'X' not found"), "/dev/gpiochip0", "X")
    assert isinstance(missing, UsageError) and "does not exist" in str(missing)
    denied = s0.gpio_error(OSError(errno.EACCES, "denied"), "/dev/gpiochip0", "3")
    assert "permission" in str(denied)


def test_bad_s0_lines_and_a_line_given_twice(tmp_path: Path) -> None:
    root = make_root(tmp_path, [s0_meter(1), s0_meter(2, gpio="17", serial="12345679")])
    engine = Engine(root)
    try:
        with pytest.raises(UsageError, match="two meters"):
            s0.counted_meters(engine)
        engine.chip.set("S0_LINES", "one=17")
        with pytest.raises(UsageError, match="CHANNEL=LINE"):
            s0.counted_meters(engine)
    finally:
        engine.close()


def test_daemon_counts_in_a_thread_and_a_gpio_failure_does_not_stop_it(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    from sonocli.daemon.runner import Daemon
    from sonocli.daemon.schedule import FastClock

    root = make_root(tmp_path, [s0_meter(1)], MBUS_ENABLE="0", WMBUS_ENABLE="0")
    edges = FakeEdges()
    edges.pulse("17", 6)
    engine = Engine(root)
    try:
        daemon = Daemon(engine, clock=FastClock(1_750_000_000.0), wireless=False, rng=random.Random(1))
        daemon.s0_source = edges
        daemon.start_background()
        deadline = threading.Event()
        for _ in range(600):  # a loaded machine may take a while to schedule the thread
            count = engine.pulses.get("SLV-12345678-0C-02")
            if count is not None and count.pulses == 6:
                break
            deadline.wait(0.05)
        daemon.shutdown()
        count = engine.pulses.get("SLV-12345678-0C-02")
        assert count is not None and count.pulses == 6 and edges.closed, (count, caplog.text)
    finally:
        engine.close()
    # no GPIO chip here: the counter thread logs one error line and the daemon reads the other meters
    engine = Engine(root)
    try:
        engine.chip.set("S0_GPIOCHIP", str(tmp_path / "nochip"))
        daemon = Daemon(engine, clock=FastClock(1_750_000_000.0), wireless=False, rng=random.Random(1),
                        until=1_750_000_000.0 + 60)
        with caplog.at_level("ERROR"):
            stats = daemon.run()
        assert stats.manual >= 1  # the S0 meter's value still recorded (from the stored count)
        if importlib.util.find_spec("gpiod") is not None:
            errors = [r.getMessage() for r in caplog.records if "S0:" in r.getMessage()]
            assert len(errors) == 1 and "nochip does not exist" in errors[0], errors
    except SonoError as exc:  # pragma: no cover - must not happen
        pytest.fail(str(exc))
    finally:
        engine.close()


def _wait(predicate: Callable[[], bool], seconds: float = 30.0) -> bool:
    pause = threading.Event()
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return True
        pause.wait(0.05)
    return predicate()


def test_sighup_reopens_the_counter_on_the_new_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A line moved in S0_LINES, and an S0 meter added to the list, count after SIGHUP's reload (the daemon's
    reload step, as the signal relay runs it); pulses counted before stay counted."""
    from sonocli.config.chipini import ChipIni
    from sonocli.daemon.runner import Daemon
    from sonocli.daemon.schedule import FastClock

    root = make_root(tmp_path, [], MBUS_ENABLE="0", WMBUS_ENABLE="0")
    edges = FakeEdges()
    engine = Engine(root)
    first, second = "SLV-12345678-0C-02", "SLV-12345679-0C-02"

    def pulses(device: str) -> int:
        count = engine.pulses.get(device)
        return count.pulses if count is not None else -1

    try:
        daemon = Daemon(engine, clock=FastClock(1_750_000_000.0), wireless=False, rng=random.Random(1))
        daemon.s0_source = edges
        daemon.start_background()
        # no S0 meter yet: the engineer adds one and sends SIGHUP
        engine.update_meters(lambda ml: (replace(ml, meters=(s0_meter(1),)), None))
        with caplog.at_level("INFO"):
            daemon._reload()
        assert "SIGHUP: S0 counter reopened (lines 17=" + first + ")" in caplog.text
        edges.pulse("17", 3)
        assert _wait(lambda: pulses(first) == 3), caplog.text
        # the meter's channel moves to another line and a second meter comes on line 17
        chip = ChipIni.load(root / "app" / "chip.ini")
        chip.set("S0_LINES", "1=22,2=17")
        chip.save(root / "app" / "chip.ini")
        engine.update_meters(lambda ml: (replace(ml, meters=(s0_meter(1), s0_meter(2, value=0,
                                                                                    serial="12345679"))), None))
        caplog.clear()
        with caplog.at_level("INFO"):
            daemon._reload()
        assert f"SIGHUP: S0 counter reopened (lines 17={second}, 22={first})" in caplog.text
        edges.pulse("22", 2)
        edges.pulse("17", 4)
        assert _wait(lambda: pulses(first) == 5 and pulses(second) == 4), (pulses(first), pulses(second))
        caplog.clear()
        with caplog.at_level("INFO"):
            daemon._reload()  # nothing changed: the counter keeps running, no reopen
        assert "S0 counter" not in caplog.text
        daemon.shutdown()
        assert edges.closed
    finally:
        engine.close()


def test_meters_set_value_command(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from sonocli.cli.root import cli

    root = make_root(tmp_path, [s0_meter(1), Meter(Interface.MBUS, serial="11111111", manufacturer="KAM",
                                                   version=1, medium=7, primary_address=5)])
    engine = Engine(root)
    try:
        counter = s0.PulseCounter(engine, FakeEdges())
        counter.source.pulse("17", 12)  # type: ignore[attr-defined]
        counter.step(0.1)
    finally:
        engine.close()
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, ["--root", str(root), "meters", "set-value", *args])

    result = run("1", "1000,5")  # the device's dialog writes a decimal comma
    assert result.exit_code == 0, result.output
    assert result.output.strip() == ("S0 meter SLV-12345678-0C-02: set value 1000.5 Wh written "
                                     "(before: 12 pulse(s) counted from 280.09)")
    result = run("12345678", "2000", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["meter"]["device_id"] == "SLV-12345678-0C-02" and out["set_value"] == "2000"
    assert out["previous"] == {"set_value": "1000.5", "pulses": 0} and out["scale"] == "1e-1"
    engine = Engine(root)
    try:
        assert reading_value(engine, "12345678") == "200"  # 2000 x 0.1 Wh, no pulse since
        assert engine.meter_list().meters[0].values[0].value == 2000.0
    finally:
        engine.close()
    for args, message in (
        (("2", "5"), "meter KAM-11111111-01-07 is a MBUS meter: only S0 meters take a set value"),
        (("9", "5"), "meter 9 does not exist"),
        (("1", "--", "-3"), "must be a finite number of 0 or more"),
        (("1", "12a"), "is not a number"),
    ):
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("sonocli: error: ") and message in lines[0], lines
    runner.invoke(cli, ["--root", str(root), "config", "set", "MUC_SETDEVICES", "NONE"])
    result = run("1", "5")
    assert result.exit_code == 2 and "MUC_SETDEVICES=NONE" in result.output


def test_a_daemon_with_an_older_list_does_not_undo_a_set_value(tmp_path: Path) -> None:
    """``meters set-value`` while the daemon runs: the daemon's cached list still has the old set value, but
    the list on disk has the new one the counter has too, so its readout keeps the new value."""
    root = make_root(tmp_path, [s0_meter(1)], MUC_SETDEVICES="S0")
    daemon_engine = Engine(root)
    other = Engine(root)
    try:
        assert reading_value(daemon_engine, "12345678") == "28.009"  # the daemon's list is loaded and cached
        other.set_s0_value("1", "500")
        assert reading_value(daemon_engine, "12345678") == "50"  # not 28.009 written back
        assert daemon_engine.pulses.get("SLV-12345678-0C-02").base == "500"
        # the list edited by hand later (a new set value on disk, not yet in the counter): written
        other.update_meters(lambda ml: (replace(ml, meters=(s0_meter(1, value=600),)), None))
        daemon_engine.reload()
        assert reading_value(daemon_engine, "12345678") == "60"
    finally:
        daemon_engine.close()
        other.close()
