"""systemd without systemd: sd_notify over a real unix datagram socket (a path and an abstract name), the
journald line format, and the summary of repeated log events (sonocli.daemon.systemd)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sonocli.daemon.systemd import (
    JournalFormatter,
    Notifier,
    RepeatSummary,
    event_kind,
    journal_stream,
    notify_address,
    priority,
)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound where systemd's would be (NOTIFY_SOCKET=path)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(2)
    yield sock, path
    sock.close()


def received(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.split("\n"))


def test_ready_status_stopping_arrive_as_datagrams(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("next readout soon")
    assert received(sock) == {"READY": "1", "MAINPID": str(os.getpid()), "STATUS": "next readout soon"}
    assert notifier.status("busy")
    assert received(sock) == {"STATUS": "busy"}
    assert notifier.stopping()
    assert received(sock)["STOPPING"] == "1"
    assert not notifier.stopping()  # once
    notifier.close()


def test_abstract_socket_name_with_at_sign() -> None:
    name = f"sonocli-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2)
    try:
        assert notify_address({"NOTIFY_SOCKET": "@" + name}) == b"\0" + name.encode()
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert received(sock)["READY"] == "1"
    finally:
        sock.close()


def test_watchdog_kicks_at_half_of_watchdog_usec(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    clock = [100.0]
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000"}, monotonic=lambda: clock[0])
    assert notifier.interval == 1.5
    assert notifier.kick()
    assert received(sock) == {"WATCHDOG": "1"}
    clock[0] += 1.4
    assert not notifier.kick()  # not yet due: nothing sent
    clock[0] += 0.2
    assert notifier.kick()
    assert received(sock) == {"WATCHDOG": "1"}


def test_watchdog_for_another_pid_and_no_socket_do_nothing(listener: tuple[socket.socket, str]) -> None:
    _sock, path = listener
    other = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"})
    assert other.interval is None and not other.kick()
    silent = Notifier({})
    assert not silent.enabled and not silent.ready() and not silent.kick()
    gone = Notifier({"NOTIFY_SOCKET": path + "-missing"})
    assert not gone.ready()  # systemd gone: no exception, just False


def test_journal_stream_is_compared_with_the_descriptor(tmp_path: Path) -> None:
    with (tmp_path / "err").open("w") as err, (tmp_path / "other").open("w") as other:
        st = os.fstat(err.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert journal_stream(env, err.fileno())
        assert not journal_stream(env, other.fileno())  # inherited variable, stderr elsewhere
        assert not journal_stream({"JOURNAL_STREAM": "garbage"}, err.fileno())
        assert not journal_stream({}, err.fileno())


def test_journal_format_has_priorities_and_no_time_or_pid() -> None:
    formatter = JournalFormatter()

    def line(level: int, msg: str) -> str:
        return formatter.format(logging.LogRecord("sonocli.daemon", level, __file__, 1, msg, None, None))

    assert line(logging.ERROR, "upload failed") == "<3>sonocli.daemon: upload failed"
    assert line(logging.WARNING, "w") == "<4>sonocli.daemon: w"
    assert line(logging.INFO, "i") == "<6>sonocli.daemon: i"
    assert line(logging.DEBUG, "d") == "<7>sonocli.daemon: d"
    assert line(logging.CRITICAL, "c").startswith("<2>")
    assert line(logging.ERROR, "two\nlines") == "<3>sonocli.daemon: two\n<3>lines"  # journald reads per line
    assert [priority(level) for level in (5, 15, 25, 35, 45, 55)] == [7, 7, 6, 4, 3, 2]


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()}")


def test_repeated_events_are_summarised_per_interval_with_counts() -> None:
    clock = [0.0]
    handler = Collect()
    summary = RepeatSummary(handler, interval=60.0, monotonic=lambda: clock[0])
    handler.addFilter(summary)
    log = logging.getLogger("sonocli.receiver.test-summary")
    other = logging.getLogger("sonocli.daemon.test-summary")
    for logger in (log, other):
        logger.handlers, logger.propagate, logger.level = [handler], False, logging.DEBUG
    for n in range(500):
        log.info("meter %08d: no key for meter %08d", n % 7, n % 7)
        log.info("bad telegram (crc): CRC error: %s", f"{n:08X}AB")
        clock[0] += 0.1
    other.info("daemon lines are never summarised")
    other.info("daemon lines are never summarised")
    assert handler.lines[:2] == ["sonocli.receiver.test-summary meter 00000000: no key for meter 00000000",
                                 "sonocli.receiver.test-summary bad telegram (crc): CRC error: 00000000AB"]
    summaries = [line for line in handler.lines if "more like this" in line]
    # 50 s of events: nothing summarised before the interval ends
    assert summaries == [] and len(handler.lines) == 4
    clock[0] += 10.0
    log.info("meter %08d: no key for meter %08d", 3, 3)  # the interval is over: summaries, then this one
    summaries = [line for line in handler.lines if "more like this" in line]
    assert len(summaries) == 2
    assert "499 more like this in the last 60 s, the last: meter 00000002" in summaries[0]
    assert "499 more like this in the last 60 s, the last: bad telegram (crc): CRC error: 000001F3AB" in summaries[1]
    assert handler.lines[-1].endswith("meter 00000003: no key for meter 00000003")
    summary.close()
    assert len(handler.lines) == 7  # nothing left over to summarise


def test_event_kinds_blank_ids_numbers_and_byte_dumps() -> None:
    def kind(msg: str, *args: object) -> tuple[str, int, str]:
        return event_kind(logging.LogRecord("sonocli.receiver", logging.INFO, __file__, 1, msg, args, None))

    garbage = "im871a: bytes outside a valid frame skipped (%d bytes: %s)"
    assert kind(garbage, 91, "73 A5 C2 03 53 08") == kind(garbage, 5, "20 82 3C FD E6")
    assert kind("meter %s: %s", "12345678", "no key") == kind("meter %s: %s", "87654321", "no key")
    assert kind("meter %s: %s", "12345678", "no key") != kind("meter %s: %s", "12345678", "wrong key")
    crc = "bad telegram (decode): format A data block CRC mismatch (at byte %d): %s"
    assert kind(crc, 28, "2C446532821851582C06") == kind(crc, 12, "304493444433221155378C")
