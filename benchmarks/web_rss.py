"""serve-daemon's memory with and without its web interface (issue 17: within a 128 MB device's budget).

Two real ``sonocli serve-daemon`` processes on the same root (the demo meters on sim://demo, read every
METER_TIME), one with WEB_ENABLE=0 and one with WEB_ENABLE=1 on 127.0.0.1, each run for --seconds while
the web one serves requests (the Meter tab, /api/meters, /api/status, a login); the peak resident set
(VmHWM of /proc/PID/status) of each is printed side by side.

    .venv/bin/python benchmarks/web_rss.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def sono(root: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "sonocli", "--root", str(root), *args], check=True,
                   capture_output=True, text=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    auth = base64.b64encode(b"admin:admin").decode()
    conn.request("GET", path, headers={"Authorization": f"Basic {auth}"})
    status = conn.getresponse()
    status.read()
    conn.close()
    return status.status


def run(root: Path, seconds: float, web: bool) -> tuple[int, int]:
    port = free_port()
    sono(root, "config", "set", "WEB_ENABLE", "1" if web else "0")
    sono(root, "config", "set", "WEB_PORT", str(port))
    proc = subprocess.Popen([sys.executable, "-m", "sonocli", "--root", str(root), "serve-daemon", "--no-wireless"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    requests = 0
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if web:
                for path in ("/api/meters", "/api/status", "/login"):
                    try:
                        get(port, path)
                        requests += 1
                    except OSError:
                        pass  # still starting
            time.sleep(0.2)
        return peak_rss_kb(proc.pid), requests
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        sono(root, "init")
        sono(root, "config", "set", "MBUS_PORT", "sim://demo")
        sono(root, "config", "set", "METER_TIME", "60")
        sono(root, "scan", "--save")
        os.environ.pop("SONOCLI_ROOT", None)
        plain, _ = run(root, args.seconds, web=False)
        with_web, requests = run(root, args.seconds, web=True)
    print(f"serve-daemon peak RSS, {args.seconds:g} s on sim://demo (12 meters):")
    print(f"  WEB_ENABLE=0: {plain / 1024:6.1f} MB")
    print(f"  WEB_ENABLE=1: {with_web / 1024:6.1f} MB ({requests} requests served), "
          f"+{(with_web - plain) / 1024:.1f} MB for the web interface")


if __name__ == "__main__":
    main()
