"""The CSV log catches up on the database after any crash: none lost, none twice (issue 13, Build 4).

A crash is simulated where it can hit: after the intent was written but before the append, in the middle
of the append (a torn last row), and after the append (the intent still on disk). Each time a fresh CsvLog
(a restarted process) must end with exactly one row per reading.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sonocli.model.values import Interface, Meter, MeterValue, Reading
from sonocli.store.csvlog import CsvLog, log_files

BIG = 10**9
DAY = datetime(2026, 3, 1, 23, 50, tzinfo=UTC)  # ten-minute steps cross midnight: two day files


def reading(n: int) -> Reading:
    meter = Meter(Interface.MBUS, serial=f"{n % 3 + 1:08d}", manufacturer="ABC", version=1, medium=7)
    value = MeterValue(index=0, measurement=0, unit="m³", exponent=-3, raw=1000 + n, dif_vif=b"\x04\x13",
                       data=(1000 + n).to_bytes(4, "little"), encoding="INT32")
    return Reading(meter=meter, taken_at=DAY + timedelta(minutes=10 * n), values=(value,))


class Db:
    """The database side: ids 1..n, as sonocli.engine.recording hands them to CsvLog.catch_up."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []

    def add(self, count: int) -> None:
        base = len(self.readings)
        self.readings.extend([reading(base + i) for i in range(count)])

    def stored(self, after: int, upto: int) -> Iterator[tuple[int, Reading | None]]:
        for reading_id in range(after + 1, upto + 1):
            yield reading_id, self.readings[reading_id - 1]

    @property
    def latest(self) -> int:
        return len(self.readings)


def logged_values(log_dir: Path) -> list[int]:
    """The raw values of every data row of every log file (each reading has a distinct one)."""
    out: list[int] = []
    for path in log_files(log_dir):
        for line in path.read_text("utf-8").splitlines()[1:]:
            out.append(int(line.split(";")[2]))
    return sorted(out)


def new_log(log_dir: Path) -> CsvLog:
    return CsvLog(log_dir, 3, size_limit=BIG, partition_limit=BIG)


def test_catch_up_appends_once_and_starts_where_told(tmp_path: Path) -> None:
    db = Db()
    db.add(3)
    assert new_log(tmp_path).catch_up(db.stored, db.latest, start=1) == 2  # a fresh log starts after id 1
    db.add(4)
    assert new_log(tmp_path).catch_up(db.stored, db.latest) == 4
    assert new_log(tmp_path).catch_up(db.stored, db.latest) == 0  # the intent on disk resolves: all there
    assert logged_values(tmp_path) == [1000 + n for n in range(1, 7)]


def test_crash_after_the_intent_before_the_append(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = Db()
    db.add(2)
    new_log(tmp_path).catch_up(db.stored, db.latest, start=0)
    db.add(5)

    class Killed(BaseException):
        pass

    def killed(*args: object) -> None:
        raise Killed

    monkeypatch.setattr(CsvLog, "_append_day", killed)
    with pytest.raises(Killed):
        new_log(tmp_path).catch_up(db.stored, db.latest)
    monkeypatch.undo()
    assert logged_values(tmp_path) == [1000, 1001]
    assert new_log(tmp_path).catch_up(db.stored, db.latest) == 5
    assert logged_values(tmp_path) == [1000 + n for n in range(7)]


def test_crash_in_the_middle_of_the_append(tmp_path: Path) -> None:
    """A torn append: the last rows partly on disk. The torn row is cut, the missing ones follow once."""
    db = Db()
    db.add(8)
    new_log(tmp_path).catch_up(db.stored, db.latest, start=0)
    newest = log_files(tmp_path)[-1]
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) - len(data.splitlines(keepends=True)[-1]) - 7])  # a row and a half gone
    assert new_log(tmp_path).catch_up(db.stored, db.latest) == 2
    assert logged_values(tmp_path) == [1000 + n for n in range(8)]
    # a second torn append, right after a recovery
    db.add(3)
    new_log(tmp_path).catch_up(db.stored, db.latest)
    newest = log_files(tmp_path)[-1]
    newest.write_bytes(newest.read_bytes()[:-5])
    assert new_log(tmp_path).catch_up(db.stored, db.latest) == 1
    assert logged_values(tmp_path) == [1000 + n for n in range(11)]


def test_inactive_readings_advance_the_log_without_rows(tmp_path: Path) -> None:
    db = Db()
    db.add(4)

    def stored(after: int, upto: int) -> Iterator[tuple[int, Reading | None]]:
        for reading_id, item in db.stored(after, upto):
            yield reading_id, None if reading_id % 2 else item

    assert new_log(tmp_path).catch_up(stored, db.latest, start=0) == 2
    assert new_log(tmp_path).catch_up(stored, db.latest) == 0
    assert logged_values(tmp_path) == [1001, 1003]


def test_the_partition_limit_warns_with_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = Db()
    db.add(12)  # two days
    log = CsvLog(tmp_path, 3, size_limit=BIG, partition_limit=1)
    log.catch_up(db.stored, db.latest, start=0)
    assert log.dropped_files == 1 and log.dropped_bytes > 0
    assert "deleted the 1 oldest file(s)" in caplog.text
    assert log.use()[0] == 1
