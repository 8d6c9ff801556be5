"""Start-up: whole processes to their first output and to their exit, paired with ``python -c "import click"``.

On a Cortex-A7 concentrator every 10 ms here is a few hundred there, and `decode` and `listen` are run from
scripts and cron many times a day. Measured (median of --runs, interleaved so load hits both alike):

* ``python -c "import click"`` — the floor any click program pays;
* ``sonocli --help``, ``sonocli decode HEX`` (a wired long frame), ``sonocli decode HEX --json``;
* ``sonocli listen --port sim://air?count=1 --dongle hex --count 1`` — to its first (and only) telegram.

Goal (issue 15): decode and listen within 1.3x of import click *to their first output* (the first byte on
stdout: the decoded frame, the first telegram's line). The floor is measured the same way: ``python -c
"import click; print(flush=True)"`` to its first byte, so both sides leave out process exit (which alone
costs ~10 ms here: reaping, the pipes). Time to exit is shown too: what a process does after its first
output (closing the store, writing held state) is paid by a script waiting for it, not by an engineer
watching. Byte-code caches are
warmed first (a concentrator runs installed, compiled code), so what is measured is imports and work, not
compilation.

    .venv/bin/python benchmarks/startup.py [--runs 21]

Run it with the python of a regular install too (``python -m venv /tmp/wv && /tmp/wv/bin/pip install .``,
then ``/tmp/wv/bin/python benchmarks/startup.py``): an editable install's import hook costs both sides ~8 ms
in ``site`` (pathlib, re), which flatters the ratios; a concentrator runs a regular install.

Where it stands (2026-12-04, second session, 2 cores, Python 3.11, median of 21): regular install decode
1.26x, decode --json 1.27x, listen 1.95x (58 ms against 30 ms); editable install decode 1.24x, decode --json
1.27x, listen 1.77x. What keeps listen above 1.3x is what its path needs (the time each adds to the first byte
of ``python -c "import click, MODULE"``, paired with plain ``import click``): pathlib for the root (~2.4 ms
with urllib.parse and ipaddress; Path is the type of every file API), pyserial for the port (~1.7 ms; a real
stick needs it too), sqlite3 (~1 ms) and the write of a new meter to the temporary list before its line is
printed (kept: a script that sees the line can run `meters heard`), json for the output (~1.3 ms), chip.ini
with its schema and the meter list (~2.5 ms), the wM-Bus codec stack (~4 ms), and compiling the __init__ of
the ~22 value classes the path uses (~1.5 ms). The cost of a large meter list is measured in
benchmarks/meterlist.py.
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
            "import click": [python, "-c", "import click; print(flush=True)"],
            "sonocli --help": [exe, "--help"],
            "decode HEX": [exe, "decode", FRAME],
            "decode HEX --json": [exe, "decode", FRAME, "--json"],
            "listen (1 telegram)": [exe, "listen", "--port", "sim://air?count=1", "--dongle", "hex", "--count", "1",
                                    "--no-store"],
        }
        for argv in cases.values():  # warm the byte-code caches and the page cache
            subprocess.run(argv, env=env, capture_output=True)
        first: dict[str, list[float]] = {name: [] for name in cases}
        whole: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, argv in cases.items():
                first_s, whole_s = _timed(name, argv, env)
                first[name].append(first_s)
                whole[name].append(whole_s)
    floor = statistics.median(first["import click"])
    print(f"median of {args.runs} runs each, interleaved; ratios to import click ({floor * 1000:.1f} ms)")
    print(f"  {'':22s} {'first output':>20s} {'exit':>20s}")
    for name in cases:
        a, b = statistics.median(first[name]), statistics.median(whole[name])
        print(f"  {name:22s} {a * 1000:8.1f} ms {a / floor:6.2f}x   {b * 1000:8.1f} ms {b / floor:6.2f}x")


def _timed(name: str, argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds to the first byte on stdout and to exit."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    got = proc.stdout.read(1)
    first = time.perf_counter() - start
    _out, err = proc.communicate()
    whole = time.perf_counter() - start
    if proc.returncode not in (0, 141):
        raise SystemExit(f"{name}: exit {proc.returncode}: {err.decode()[:300]}")
    if not got:
        raise SystemExit(f"{name}: printed nothing")
    return first, whole


if __name__ == "__main__":
    main()
