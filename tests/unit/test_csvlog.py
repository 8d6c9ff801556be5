"""CSV log: day files, new file on column change, size and partition limits, crash safety under SIGKILL."""

from __future__ import annotations

import csv
import io
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sonocli.model.values import Interface, Meter, MeterValue, Reading, ValueConfig
from sonocli.outputs.csv_writer import CsvWriter
from sonocli.store.csvlog import CsvLog, log_files

BIG = 10**9
METER = Meter(Interface.MBUS, serial="12345678", manufacturer="ABB", version=1, medium=2, user="house",
              values=(ValueConfig(user="kWh", obis="1-0:1.8.0*255"),))
OTHER = Meter(Interface.WMBUS, serial="87654321", manufacturer="KAM", version=0x1B, medium=7, rssi=-60)


def reading(at: datetime, n_values: int = 1, raw: int = 1, meter: Meter = METER) -> Reading:
    values = tuple(MeterValue(index=i, measurement=9, unit="Wh", exponent=3, raw=raw + i) for i in range(n_values))
    return Reading(meter, at, values)


def rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8"), newline=""), delimiter=";"))


DAY1 = datetime(2024, 2, 29, 23, 50, tzinfo=UTC)
DAY2 = datetime(2024, 3, 1, 0, 5, tzinfo=UTC)


def test_rows_go_to_the_utc_day_file(tmp_path: Path) -> None:
    log = CsvLog(tmp_path, 3, size_limit=BIG, partition_limit=BIG)
    log.append([reading(DAY1, raw=10), reading(DAY2, raw=20)])
    log.append([reading(DAY1 + timedelta(minutes=5), raw=11)])
    f1 = tmp_path / "2024" / "02" / "Meter_20240229.csv"
    f2 = tmp_path / "2024" / "03" / "Meter_20240301.csv"
    assert log_files(tmp_path) == [f1, f2] == log.files()
    r1 = rows(f1)
    assert r1[0] == CsvWriter(3).columns(1)
    assert [r[2] for r in r1[1:]] == ["10", "11"]  # appended, header written once
    assert [r[2] for r in rows(f2)[1:]] == ["20"]
    assert f1.read_bytes().endswith(b"\r\n")
    # a non-UTC timestamp still lands in its UTC day
    cet = datetime(2024, 3, 1, 0, 30, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    log.append([reading(cet, raw=30)])
    assert [r[2] for r in rows(f2)[1:]] == ["20", "30"]


def test_more_values_start_a_new_file_and_keep_the_old(tmp_path: Path) -> None:
    log = CsvLog(tmp_path, 3, size_limit=BIG, partition_limit=BIG)
    log.append([reading(DAY2, 1, raw=1)])
    first = tmp_path / "2024/03/Meter_20240301.csv"
    before = first.read_bytes()
    log.append([reading(DAY2 + timedelta(minutes=15), 3, raw=2)])
    second = tmp_path / "2024/03/Meter_20240301_1.csv"
    assert first.read_bytes() == before
    assert rows(second)[0] == CsvWriter(3).columns(3)
    # fewer values fit the wider file: no third file
    log.append([reading(DAY2 + timedelta(minutes=30), 1, raw=3)])
    assert [p.name for p in log.files()] == ["Meter_20240301.csv", "Meter_20240301_1.csv"]
    assert [r[2] for r in rows(second)[1:]] == ["2", "3"]


def test_protocol_change_starts_a_new_file_even_without_header(tmp_path: Path) -> None:
    CsvLog(tmp_path, 0, size_limit=BIG, partition_limit=BIG).append([reading(DAY2)])
    CsvLog(tmp_path, 0, size_limit=BIG, partition_limit=BIG).append([reading(DAY2, 4)])  # v0: no header, same file
    CsvLog(tmp_path, 1, size_limit=BIG, partition_limit=BIG).append([reading(DAY2)])
    CsvLog(tmp_path, 2, size_limit=BIG, partition_limit=BIG).append([reading(DAY2)])
    CsvLog(tmp_path, 3, size_limit=BIG, partition_limit=BIG).append([reading(DAY2)])  # same columns as v2
    names = [p.name for p in log_files(tmp_path)]
    assert names == ["Meter_20240301.csv", "Meter_20240301_1.csv", "Meter_20240301_2.csv"]
    assert [len(r) for r in rows(tmp_path / "2024/03" / names[0])] == [2 + 4, 2 + 4 * 4]  # v0: four fields per value
    assert len(rows(tmp_path / "2024/03" / names[2])) == 3  # header + v2 row + v3 row


def test_size_limit_bounds_each_file(tmp_path: Path) -> None:
    limit = 400
    log = CsvLog(tmp_path, 3, size_limit=limit, partition_limit=BIG)
    batch = [reading(DAY2 + timedelta(minutes=i), raw=i) for i in range(30)]
    log.append(batch[:10])
    log.append(batch[10:])
    files = log.files()
    assert len(files) > 3
    assert all(p.stat().st_size <= limit for p in files)
    values = [r[2] for p in files for r in rows(p)[1:]]
    assert values == [str(i) for i in range(30)]
    assert all(rows(p)[0][0] == "Timestamp" for p in files)


def test_oversized_row_gets_its_own_file(tmp_path: Path) -> None:
    log = CsvLog(tmp_path, 3, size_limit=10, partition_limit=BIG)
    log.append([reading(DAY2, raw=1), reading(DAY2, raw=2)])
    assert [[r[2] for r in rows(p)[1:]] for p in log.files()] == [["1"], ["2"]]


def test_partition_limit_deletes_oldest_first(tmp_path: Path) -> None:
    log = CsvLog(tmp_path, 3, size_limit=BIG, partition_limit=BIG)
    start = datetime(2023, 12, 30, 12, tzinfo=UTC)
    for day in range(5):
        log.append([reading(start + timedelta(days=day), raw=day)])
    sizes = [p.stat().st_size for p in log.files()]
    assert len(sizes) == 5
    small = CsvLog(tmp_path, 3, size_limit=BIG, partition_limit=sum(sizes[-2:]) + sizes[-1])
    small.append([reading(start + timedelta(days=4, minutes=1), raw=99)])
    names = [p.name for p in small.files()]
    assert names == ["Meter_20240102.csv", "Meter_20240103.csv"]
    assert not (tmp_path / "2023").exists()  # emptied year and month directories go too
    # the newest file is kept even when it alone is over the limit
    CsvLog(tmp_path, 3, size_limit=BIG, partition_limit=1).append([reading(start + timedelta(days=4, minutes=2))])
    assert [p.name for p in log_files(tmp_path)] == ["Meter_20240103.csv"]


def test_meter_index_survives_restarts(tmp_path: Path) -> None:
    CsvLog(tmp_path, 7, size_limit=BIG, partition_limit=BIG).append([reading(DAY2, meter=OTHER), reading(DAY2)])
    CsvLog(tmp_path, 7, size_limit=BIG, partition_limit=BIG).append([reading(DAY2), reading(DAY2, meter=OTHER)])
    body = rows(tmp_path / "2024/03/Meter_20240301.csv")[1:]
    assert [(r[0], r[2]) for r in body] == [
        ("0", OTHER.device_id), ("1", METER.device_id), ("1", METER.device_id), ("0", OTHER.device_id)
    ]


def test_scale_change_keeps_file_rows_self_describing(tmp_path: Path) -> None:
    CsvLog(tmp_path, 3, size_limit=BIG, partition_limit=BIG).append([reading(DAY2, raw=5)])
    CsvLog(tmp_path, 3, size_limit=BIG, partition_limit=BIG, scale_values=True).append([reading(DAY2, raw=5)])
    body = rows(tmp_path / "2024/03/Meter_20240301.csv")[1:]
    assert [(r[2], r[3]) for r in body] == [("5", "1.00E+03"), ("5000", "1.00E+00")]


WRITER = textwrap.dedent(
    """
    import sys
    import time
    from datetime import UTC, datetime, timedelta
    from sonocli.model.values import Interface, Meter, MeterValue, Reading
    from sonocli.store.csvlog import CsvLog

    log_dir, batch_size = sys.argv[1], int(sys.argv[2])
    meter = Meter(Interface.MBUS, serial="12345678", manufacturer="ABB", version=1, medium=2)
    log = CsvLog(log_dir, 3, size_limit=10**9, partition_limit=10**12)
    start = datetime(2024, 3, 1, tzinfo=UTC)
    batch = int(sys.argv[3])
    print("ready", flush=True)
    # appends are cheap now: bound the file (the killer's random delay may come after the last batch)
    for _ in range(12):
        at = start + timedelta(seconds=batch)
        # long text values: writing the bytes, not building rows, is where the time goes
        pad = "x" * 4000
        values = (MeterValue(index=0, measurement=9, unit="Wh", raw=batch),) + tuple(
            MeterValue(index=i, measurement=31, unit="", raw=pad) for i in range(1, 8))
        log.append([Reading(meter, at, values)] * batch_size)
        batch += 1
    time.sleep(60)
    """
)


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size


def test_sigkill_never_leaves_half_rows(tmp_path: Path) -> None:
    """Kill a writer at random moments (also mid-write): once the next writer has opened the file, every row
    in it is complete and nothing is lost but the killed batch's unwritten tail."""
    batch_size = 20
    rng = random.Random(5)
    next_batch = 0
    interrupted: set[int] = set()
    torn = 0  # how many kills left a torn line (informative: the repair test below forces one)
    for cycle in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(batch_size), str(next_batch)],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        path = tmp_path / "2024/03/Meter_20240301.csv"
        if cycle % 2:
            time.sleep(rng.uniform(0.02, 0.3))
        else:  # kill the moment the file changes: a writer that grows the file in place is caught mid-write
            before = _signature(path)
            deadline = time.monotonic() + 5
            while _signature(path) == before and time.monotonic() < deadline:
                pass
            assert time.monotonic() < deadline, "the writer stopped appending to the day's file"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not path.exists():
            continue
        if CsvLog(tmp_path, 3, size_limit=10**9, partition_limit=10**12).repair():
            torn += 1
        data = path.read_bytes()
        if not data:  # killed between creating the file and writing its first batch: legal, the next writer fills it
            continue
        assert data.endswith(b"\r\n")
        parsed = rows(path)
        assert parsed[0] == CsvWriter(3).columns(8)
        counts: dict[str, int] = {}
        for row in parsed[1:]:
            assert len(row) == 2 + 8 * 7
            counts[row[2]] = counts.get(row[2], 0) + 1
        last = max((int(k) for k in counts), default=-1)
        # every batch but those the kills interrupted is whole; batches are numbered without gaps
        interrupted.add(last)
        assert all(n == batch_size for k, n in counts.items() if int(k) not in interrupted)
        assert all(0 < n <= batch_size for n in counts.values())
        assert sorted(int(k) for k in counts) == list(range(len(counts)))
        next_batch = last + 1
    # a kill between recording a new file and creating it must not make later writers start new files
    assert [p.name for p in log_files(tmp_path)] == ["Meter_20240301.csv"]
    # the next writer start cleans temp files left behind by the kill
    CsvLog(tmp_path, 3, size_limit=10**9, partition_limit=10**12).append([reading(DAY2, 8)])
    assert not list((tmp_path / "2024/03").glob(".*.tmp"))
    assert next_batch > 0


def test_torn_last_line_is_cut_before_the_next_append(tmp_path: Path) -> None:
    """A crash mid-append leaves a torn row; the next writer cuts it off and appends after the last whole row."""
    CsvLog(tmp_path, 7, size_limit=BIG, partition_limit=BIG).append([reading(DAY2, raw=1, meter=OTHER)])
    path = tmp_path / "2024/03/Meter_20240301.csv"
    good = path.read_bytes()
    # the torn row starts a quoted field holding a line break: that line break must not count as a row end
    with open(path, "ab") as handle:
        handle.write(b'1;1709251500;' + METER.device_id.encode() + b';0;"house\r\n2;x')
    log = CsvLog(tmp_path, 7, size_limit=BIG, partition_limit=BIG)
    assert log.repair() == [path]
    assert path.read_bytes() == good
    assert log.repair() == []  # nothing more to cut
    with open(path, "ab") as handle:  # torn again, then the same instance appends: it notices the change
        handle.write(b"1;17092")
    log.append([reading(DAY2, raw=2), reading(DAY2, raw=3, meter=OTHER)])
    data = path.read_bytes()
    assert data.startswith(good) and data.endswith(b"\r\n")
    body = rows(path)[1:]
    # meter indices continue the file's numbering (OTHER was 0; the torn row's METER never made it)
    assert [(r[0], r[2], r[6]) for r in body] == [
        ("0", OTHER.device_id, "1"), ("1", METER.device_id, "2"), ("0", OTHER.device_id, "3")
    ]
    assert all(len(r) == len(body[0]) for r in body)


def test_torn_header_is_rewritten(tmp_path: Path) -> None:
    log = CsvLog(tmp_path, 3, size_limit=BIG, partition_limit=BIG)
    log.append([reading(DAY2, raw=1)])
    path = tmp_path / "2024/03/Meter_20240301.csv"
    path.write_bytes(path.read_bytes()[:20])  # the crash hit the file's first write
    CsvLog(tmp_path, 3, size_limit=BIG, partition_limit=BIG).append([reading(DAY2, raw=2)])
    assert rows(path) == [CsvWriter(3).columns(1), rows(path)[1]]
    assert rows(path)[1][2] == "2"


def test_appends_do_not_rewrite_the_file(tmp_path: Path) -> None:
    """Appends go in place (same inode, old bytes untouched) and the state file is only written on changes."""
    log = CsvLog(tmp_path, 6, size_limit=BIG, partition_limit=BIG)
    log.append([reading(DAY2, raw=0)])
    path = tmp_path / "2024/03/Meter_20240301.csv"
    state = tmp_path / ".csvlog-state.json"
    inode, state_inode = path.stat().st_ino, state.stat().st_ino
    for i in range(1, 20):
        before = path.read_bytes()
        log.append([reading(DAY2 + timedelta(minutes=i), raw=i, meter=OTHER if i % 2 else METER)])
        assert path.read_bytes().startswith(before)
    assert path.stat().st_ino == inode
    assert state.stat().st_ino == state_inode  # never replaced: nothing in it changed
    assert [(r[0], r[6]) for r in rows(path)[1:4]] == [("0", "0"), ("1", "1"), ("0", "2")]


def test_first_append_repairs_other_days_files(tmp_path: Path) -> None:
    """A crash while writing yesterday's rows is repaired by the next writer even if it only writes today's."""
    CsvLog(tmp_path, 3, size_limit=BIG, partition_limit=BIG).append([reading(DAY1, raw=1)])
    yesterday = tmp_path / "2024/02/Meter_20240229.csv"
    good = yesterday.read_bytes()
    with open(yesterday, "ab") as handle:
        handle.write(b"1709250600;ABB-123")
    CsvLog(tmp_path, 3, size_limit=BIG, partition_limit=BIG).append([reading(DAY2, raw=2)])
    assert yesterday.read_bytes() == good
    assert [r[2] for r in rows(tmp_path / "2024/03/Meter_20240301.csv")[1:]] == ["2"]
