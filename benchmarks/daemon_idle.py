"""A demo daemon's idle cost: serve-daemon listening to ``sim://air`` (and reading sim://demo), CPU and log.

Starts a real ``serve-daemon -v`` process on a fresh root, lets it settle, then measures its CPU share
(utime + stime of /proc/<pid>/stat over wall time) and the bytes it logs, for the plain ``sim://air`` (paced
in real time, 20 telegrams/s) and for ``sim://air?clock=virtual`` (the old default: as fast as decoded).
Goal (issue 16): the plain one idles - a few per cent CPU at most, and log lines summarised per minute.

    .venv/bin/python benchmarks/daemon_idle.py [--seconds 15]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SONOCLI = [sys.executable, "-m", "sonocli"]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(port: str, seconds: float) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        subprocess.run([*SONOCLI, "--root", str(root), "init"], check=True, capture_output=True)
        for name, value in (("WMBUS_ENABLE", "1"), ("WMBUS_PORT", port), ("WMBUS_DONGLE", "im871a"),
                            ("MBUS_PORT", "sim://demo")):
            subprocess.run([*SONOCLI, "--root", str(root), "config", "set", name, value], check=True,
                           capture_output=True)
        subprocess.run([*SONOCLI, "--root", str(root), "scan", "--save"], check=True, capture_output=True)
        log = Path(tmp) / "daemon.log"
        with log.open("wb") as err:
            proc = subprocess.Popen([*SONOCLI, "--root", str(root), "-v", "serve-daemon"], stdout=subprocess.DEVNULL,
                                    stderr=err)
        try:
            time.sleep(3.0)  # start-up and the first readout
            cpu0, wall0, log0 = cpu_seconds(proc.pid), time.monotonic(), log.stat().st_size
            time.sleep(seconds)
            cpu1, wall1, log1 = cpu_seconds(proc.pid), time.monotonic(), log.stat().st_size
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        return 100.0 * (cpu1 - cpu0) / (wall1 - wall0), log1 - log0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    for port in ("sim://air", "sim://air?clock=virtual"):
        cpu, logged = measure(port, args.seconds)
        print(f"{port:<26} cpu {cpu:5.1f} %   log {logged / args.seconds:8.0f} bytes/s")


if __name__ == "__main__":
    main()
