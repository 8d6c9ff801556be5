"""MBUS_RAWLOGENABLE and MBUS_DEBUGOUT: the tee link, the raw log it writes, and what a full disk does.

Everything runs on real parts: the ``sim://demo`` segment behind a real link, the real master and the real
``sonocli readout`` (CliRunner in-process, a subprocess where the log output itself is checked).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from sonocli.cli.root import cli
from sonocli.codecs import mbus_link as link
from sonocli.engine.master import Master, MasterSettings
from sonocli.model import AddressMode, Interface, Meter
from sonocli.sim.wired import load_segment
from sonocli.transports import open_link
from sonocli.transports.rawlog import RX, TX, LogSink, RawLog, TeeLink, format_line, format_time, parse_raw_log


def run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), *args])
    return result.exit_code, result.stdout, result.stderr


def _primary(address: int) -> Meter:
    return Meter(Interface.MBUS, primary_address=address, address_mode=AddressMode.PRIMARY)


def _demo_telegrams(address: int) -> list[tuple[int, bytes]]:
    meter = next(m for m in load_segment("demo").meters if m.primary == address)
    return [(ci, bytes(data)) for ci, data in meter.telegrams]


def test_a_readout_with_rawlogenable_logs_every_frame_both_ways(tmp_path: Path) -> None:
    assert run(tmp_path, "config", "set", "MBUS_RAWLOGENABLE", "1")[0] == 0
    before = datetime.now(UTC) - timedelta(seconds=1)
    code, out, err = run(tmp_path, "readout", "--port", "sim://demo", "--address", "10")
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert code == 0, err
    raw = tmp_path / "ext" / "log" / "mbus_raw.log"
    text = raw.read_text(encoding="ascii")
    lines = parse_raw_log(text)
    assert len(lines) == len(text.splitlines()) >= 4  # every line parses
    assert [d for _, d, _ in lines] == [TX, RX] * (len(lines) // 2)  # request, answer, request, answer
    assert all(before <= when <= after and when.tzinfo is not None for when, _, _ in lines)
    for line in text.splitlines():  # UTC ISO 8601 with milliseconds, upper-case hex
        stamp, direction, hexdata = line.split(";")
        assert stamp.endswith("Z") and len(stamp) == len("2024-05-01T12:00:00.123Z")
        assert hexdata == hexdata.upper() and direction in (TX, RX)
    frames = []
    for _, direction, data in lines:
        frame, used = link.decode_frame(data)
        assert used == len(data), "one raw-log line is one frame"
        frames.append((direction, frame))
    requests = [f for d, f in frames if d == TX]
    assert all(isinstance(f, link.ShortFrame) and f.address == 10 for f in requests)
    assert requests[0].control == link.C_SND_NKE  # MBUS_RESETMODE 0: SND_NKE, then REQ_UD2
    assert requests[-1].control & ~link.FCB == link.C_REQ_UD2
    answers = [f for d, f in frames if d == RX]
    assert isinstance(answers[0], link.Ack)
    long_answer = answers[-1]
    assert isinstance(long_answer, link.LongFrame)
    assert (long_answer.ci, long_answer.data) in _demo_telegrams(10)  # exactly what the meter sent
    assert "EMH-00623702-00-02" in out

    # a second readout appends
    assert run(tmp_path, "readout", "--port", "sim://demo", "--address", "10")[0] == 0
    assert len(parse_raw_log(raw.read_text(encoding="ascii"))) == 2 * len(lines)


def test_without_rawlogenable_there_is_no_raw_log(tmp_path: Path) -> None:
    assert run(tmp_path, "readout", "--port", "sim://demo", "--address", "10")[0] == 0
    assert not (tmp_path / "ext" / "log" / "mbus_raw.log").exists()


def test_a_multi_telegram_readout_logs_one_line_per_frame(tmp_path: Path) -> None:
    log_file = tmp_path / "raw.log"
    with TeeLink(open_link("sim://demo"), [RawLog(log_file)]) as tee:
        reading = Master(tee, MasterSettings(max_retry=0)).readout(_primary(6))
    assert len(reading.raw_frames) == 2
    lines = parse_raw_log(log_file.read_text(encoding="ascii"))
    received = [data for _, direction, data in lines if direction == RX]
    # the two RSP_UD telegrams are logged byte for byte as the master got them
    assert [bytes(f) for f in reading.raw_frames] == [d for d in received if d[:1] == b"\x68"]


def test_a_full_disk_stops_raw_logging_once_and_the_readout_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    sink = RawLog(Path("/dev/full"))  # every write fails with ENOSPC, like a full ext/ partition
    caplog.set_level(logging.WARNING, logger="sonocli.transports")
    with TeeLink(open_link("sim://demo"), [sink]) as tee:
        master = Master(tee, MasterSettings(max_retry=0))
        first = master.readout(_primary(10))
        second = master.readout(_primary(11))
    assert first.meter.serial == "00623702" and second.values
    stopped = [r for r in caplog.records if "raw logging stopped" in r.getMessage()]
    assert len(stopped) == 1 and "/dev/full" in stopped[0].getMessage()
    assert sink.stopped


def test_an_unwritable_log_dir_does_not_stop_the_cli_readout(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert run(tmp_path, "config", "set", "MBUS_RAWLOGENABLE", "1")[0] == 0
    (tmp_path / "ext").mkdir()
    (tmp_path / "ext" / "log").write_text("a file where the log directory should be")
    caplog.set_level(logging.WARNING, logger="sonocli.transports")
    code, out, err = run(tmp_path, "readout", "--port", "sim://demo", "--address", "10")
    assert code == 0, err
    assert "Energy\t4090\tWh" in out
    assert sum("raw logging stopped" in r.getMessage() for r in caplog.records) == 1


def test_the_debug_sink_logs_each_chunk_in_hex(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("sonocli.engine.wire.test")
    caplog.set_level(logging.DEBUG, logger=logger.name)
    with TeeLink(open_link("sim://demo"), [LogSink(logger)]) as tee:
        Master(tee, MasterSettings(max_retry=0)).readout(_primary(10))
    messages = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert messages[:2] == ["TX 10 40 0A 4A 16", "RX E5"]
    assert messages[3].startswith("RX 68 21 21 68 08 0A 72 02 37 62 00")


def test_a_failing_sink_is_dropped_and_the_link_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    def broken(direction: str, data: bytes, when: datetime) -> None:
        raise RuntimeError("boom")

    with TeeLink(open_link("sim://demo"), [broken]) as tee:
        reading = Master(tee, MasterSettings(max_retry=0)).readout(_primary(10))
        assert tee.sinks == []
    assert reading.values
    assert sum("switched off" in r.getMessage() for r in caplog.records) == 1


def _sonocli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sonocli", "--root", str(root), *args], capture_output=True,
                          text=True, timeout=60)


def test_mbus_debugout_logs_the_wired_frames_on_stderr(tmp_path: Path) -> None:
    """MBUS_DEBUGOUT=1 shows each frame without -v; off again, the frames are gone (until -vv)."""
    assert _sonocli(tmp_path, "config", "set", "MBUS_DEBUGOUT", "1").returncode == 0
    on = _sonocli(tmp_path, "readout", "--port", "sim://demo", "--address", "10")
    assert on.returncode == 0, on.stderr
    assert "sonocli.engine.wire: TX 10 40 0A 4A 16" in on.stderr
    assert "sonocli.engine.wire: RX 68 21 21 68 08 0A 72" in on.stderr
    assert "Energy\t4090\tWh" in on.stdout  # stdout stays data only
    assert "TX " not in on.stdout
    assert _sonocli(tmp_path, "config", "set", "MBUS_DEBUGOUT", "0").returncode == 0
    off = _sonocli(tmp_path, "readout", "--port", "sim://demo", "--address", "10")
    assert off.returncode == 0 and "sonocli.engine.wire" not in off.stderr
    verbose = _sonocli(tmp_path, "-vv", "readout", "--port", "sim://demo", "--address", "10")
    assert "sonocli.engine.wire: TX 10 40 0A 4A 16" in verbose.stderr


def test_raw_log_lines_parse_back_and_bad_lines_are_skipped() -> None:
    when = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert format_time(when) == "2024-05-01T12:00:00.123Z"
    line = format_line(TX, b"\x10\x5b\xfe\x59\x16", when)
    assert line == "2024-05-01T12:00:00.123Z;TX;105BFE5916"
    text = "\n".join([line, "garbage", "2024-05-01T12:00:01.000Z;XX;E5", "2024-05-01T12:00:01.000Z;RX;E", "",
                      "2024-05-01T12:00:01.000Z;RX;E5"])
    parsed = parse_raw_log(text)
    assert [(d, data) for _, d, data in parsed] == [(TX, b"\x10\x5b\xfe\x59\x16"), (RX, b"\xe5")]
    assert parsed[0][0] == when.replace(microsecond=123000)
