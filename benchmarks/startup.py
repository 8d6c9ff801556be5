"""Start-up: whole processes to their first output, paired with ``python -c "import click"`` in one run.

On a Cortex-A7 concentrator every 10 ms here is a few hundred there, and `decode` and `listen` are run from
scripts and cron many times a day. Measured (median of --runs, interleaved so load hits both alike):

* ``python -c "import click"`` — the floor any click program pays;
* ``sonocli --help``, ``sonocli decode HEX`` (a wired long frame), ``sonocli decode HEX --json``;
* ``sonocli listen --port sim://air?count=1 --dongle hex --count 1`` — to its first (and only) telegram.

Goal (issue 15): decode and listen within 1.3x of import click. Byte-code caches are warmed first (a
concentrator runs installed, compiled code), so what is measured is imports and work, not compilation.

    .venv/bin/python benchmarks/startup.py [--runs 21]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FRAME = (  # a libmbus test frame (ACW cold water meter)
    "683C3C680808727803491177040E160A0000000C7878034911041331D40000426C0000441300000000046D0B0BCD13022700"
    "0009FD0E0209FD0F060F00017513D316"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args()
    python = sys.executable
    exe = str(Path(python).with_name("sonocli"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as tmp:
        env["SONOCLI_ROOT"] = tmp
        subprocess.run([exe, "init"], env=env, check=True, capture_output=True)
        cases = {
            "import click": [python, "-c", "import click"],
            "sonocli --help": [exe, "--help"],
            "decode HEX": [exe, "decode", FRAME],
            "decode HEX --json": [exe, "decode", FRAME, "--json"],
            "listen (1 telegram)": [exe, "listen", "--port", "sim://air?count=1", "--dongle", "hex", "--count", "1",
                                    "--no-store"],
        }
        for argv in cases.values():  # warm the byte-code caches and the page cache
            subprocess.run(argv, env=env, capture_output=True)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, argv in cases.items():
                start = time.perf_counter()
                done = subprocess.run(argv, env=env, capture_output=True)
                times[name].append(time.perf_counter() - start)
                if done.returncode not in (0, 141):
                    raise SystemExit(f"{name}: exit {done.returncode}: {done.stderr.decode()[:300]}")
    floor = statistics.median(times["import click"])
    print(f"median of {args.runs} runs each, interleaved")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:22s} {median * 1000:7.1f} ms  {median / floor:5.2f}x import click")


if __name__ == "__main__":
    main()
