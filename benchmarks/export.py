"""Export benchmark: a simulated year of readings (500 meters x 96 readings/day x 10 values) to CSV and XML.

    .venv/bin/python benchmarks/export.py                       # the full year (long: hours, ~20 GB of DB)
    .venv/bin/python benchmarks/export.py --days 7              # a week
    .venv/bin/python benchmarks/export.py --days 30 --keep /tmp/bench   # keep the root for another run
    .venv/bin/python benchmarks/export.py --root /tmp/bench --skip-populate   # export an existing root again

Each export runs as a real ``sonocli export`` process; its peak RSS comes from ``wait4`` (the kernel's
ru_maxrss of that child alone), its speed from the wall clock. The goal is flat memory (the same peak for a
week and a year) below 100 MB. Output goes to files in the root (they are part of the cost: the CSV is
written through an atomic temp file + fsync + rename like any ``-o`` export).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sonocli.model.values import Interface, Meter, MeterValue, Reading, ValueConfig  # noqa: E402
from sonocli.store.readings import ReadingStore  # noqa: E402

# (measurement index, unit, exponent, OBIS) of the ten values of every simulated meter
VALUES = [
    (9, "Wh", 3, "1-0:1.8.0*255"),
    (9, "Wh", 3, "1-0:2.8.0*255"),
    (14, "W", 0, "1-0:1.7.0*255"),
    (10, "m³", -2, "8-0:1.0.0*255"),
    (15, "m³/h", -3, "8-0:2.0.0*255"),
    (19, "degree C", -1, None),
    (18, "degree C", -1, None),
    (20, "K", -2, None),
    (12, "D", 0, None),
    (6, "V", -1, "1-0:32.7.0*255"),
]


def make_meters(count: int) -> list[Meter]:
    meters = []
    for n in range(count):
        wireless = n % 2 == 1
        meters.append(
            Meter(
                Interface.WMBUS if wireless else Interface.MBUS,
                serial=f"{10000000 + n:08d}",
                manufacturer="KAM" if wireless else "DFS",
                version=0x1B if wireless else 0x02,
                medium=0x07 if wireless else 0x04,
                primary_address=0 if wireless else n % 250 + 1,
                rssi=-70 if wireless else 0,
                user=f"Flat {n}",
                values=tuple(ValueConfig(user=f"v{i}", obis=obis) for i, (_m, _u, _e, obis) in enumerate(VALUES)),
            )
        )
    return meters


def readings_for_day(meters: list[Meter], day: datetime, per_day: int, n_values: int) -> Iterator[Reading]:
    step = timedelta(seconds=86400 // per_day)
    day_number = (day - datetime(2024, 1, 1, tzinfo=UTC)).days
    for slot in range(per_day):
        at = day + slot * step
        counter = day_number * per_day + slot
        for n, meter in enumerate(meters):
            values = tuple(
                MeterValue(
                    index=i,
                    measurement=measurement,
                    unit=unit,
                    exponent=exponent,
                    raw=counter * (i + 1) + n,
                    timestamp=at - timedelta(seconds=60),
                )
                for i, (measurement, unit, exponent, _obis) in enumerate(VALUES[:n_values])
            )
            yield Reading(meter, at + timedelta(seconds=n % 60), values, rssi=-70 - n % 20 if n % 2 else None)


def populate(db: Path, meters: int, days: int, per_day: int, n_values: int) -> int:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    meter_list = make_meters(meters)
    total = 0
    began = time.perf_counter()
    with ReadingStore(db) as store:
        for day in range(days):
            total += len(store.add_many(readings_for_day(meter_list, start + timedelta(days=day), per_day, n_values)))
            elapsed = time.perf_counter() - began
            print(f"  populate: day {day + 1}/{days}, {total} readings, {total / elapsed:,.0f} readings/s", flush=True)
    return total


def run_export(root: Path, fmt: str, out: Path) -> tuple[float, int]:
    """(seconds, peak RSS in kB) of one ``sonocli export`` process."""
    args = [sys.executable, "-m", "sonocli", "--root", str(root), "export", fmt, "--muc-id", "13fd0", "-o", str(out)]
    began = time.perf_counter()
    proc = subprocess.Popen(args, cwd=REPO)
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"export {fmt} failed with exit code {proc.returncode}")
    return elapsed, int(usage.ru_maxrss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meters", type=int, default=500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=96)
    parser.add_argument("--values", type=int, default=10, choices=range(1, len(VALUES) + 1))
    parser.add_argument("--formats", default="csv,xml")
    parser.add_argument("--root", type=Path, help="use (and keep) this root directory")
    parser.add_argument("--keep", type=Path, help="like --root; named for clarity when populating")
    parser.add_argument("--skip-populate", action="store_true", help="export what the root already holds")
    args = parser.parse_args()

    given = args.root or args.keep
    root = given or Path(tempfile.mkdtemp(prefix="sonocli-bench-"))
    db = root / "ext" / "sonocli.db"
    try:
        if args.skip_populate:
            with ReadingStore(db) as store:
                readings = store.count()
        else:
            size = f"{args.meters} meters x {args.days} days x {args.per_day}/day x {args.values} values"
            print(f"populating {db}: {size}")
            began = time.perf_counter()
            readings = populate(db, args.meters, args.days, args.per_day, args.values)
            took = time.perf_counter() - began
            print(f"populated {readings} readings in {took:.1f} s ({readings / took:,.0f} readings/s); "
                  f"DB {db.stat().st_size / 1e6:,.0f} MB")  # fmt: skip
        for fmt in args.formats.split(","):
            out = root / f"export.{fmt}"
            seconds, peak_kb = run_export(root, fmt, out)
            print(
                f"export {fmt}: {readings} readings ({readings * args.values} values) in {seconds:.1f} s = "
                f"{readings / seconds:,.0f} rows/s, {readings * args.values / seconds:,.0f} values/s; "
                f"peak RSS {peak_kb / 1024:.1f} MB; file {out.stat().st_size / 1e6:,.1f} MB",
                flush=True,
            )
            out.unlink()
    finally:
        if given is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
