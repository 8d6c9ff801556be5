"""`sonocli simulate` as a slave for OTHER M-Bus software: pyMeterBus (a third-party master) talks to it
from a separate process over a real pty, with its own frame encoder and decoder."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import meterbus  # noqa: F401  (the test extra installs it; CI must not skip this silently)
except ImportError:
    import os

    if os.environ.get("CI"):
        raise
    pytest.skip("pyMeterBus not installed: pip install -e '.[test]'", allow_module_level=True)

# Runs in its own interpreter: nothing of sonocli is imported, only pyserial and pyMeterBus.
FOREIGN_MASTER = r"""
import json, sys, serial, meterbus

port = serial.Serial(sys.argv[1], 2400, parity=serial.PARITY_EVEN, timeout=1.0)
out = {}
meterbus.send_ping_frame(port, 7)
out["ping"] = meterbus.recv_frame(port, 1).hex()
meterbus.send_request_frame(port, 7)
frame = meterbus.load(meterbus.recv_frame(port, 1))
out["primary_id"] = json.loads(frame.to_JSON())["body"]["header"]["identification"]
meterbus.send_select_frame(port, sys.argv[2])
out["select"] = meterbus.recv_frame(port, 1).hex()
meterbus.send_request_frame(port, meterbus.ADDRESS_NETWORK_LAYER)
frame = meterbus.load(meterbus.recv_frame(port, 1))
out["secondary_id"] = json.loads(frame.to_JSON())["body"]["header"]["identification"]
meterbus.send_ping_frame(port, 99)
out["nobody"] = meterbus.recv_frame(port, 1)
print(json.dumps(out))
"""


def _demo_meter(primary: int) -> tuple[str, str]:
    """(ID, pyMeterBus secondary address text) of a demo meter, read from the segment, not hard-coded."""
    from sonocli.sim.wired import load_segment

    meter = next(m for m in load_segment("demo").meters if m.primary == primary)
    head = meter.address_bytes
    ident = head[:4][::-1].hex().upper()
    return ident, ident + head[4:8].hex().upper()  # libmbus' form: manufacturer bytes in wire order


def _digits(shown: str) -> str:
    """pyMeterBus shows the ID as "0x78,0x56,0x34,0x12" (most significant BCD byte first)."""
    return "".join(part.strip()[2:].zfill(2) for part in shown.split(",")).upper()


def test_pymeterbus_reads_the_simulator_over_a_pty(tmp_path: Path) -> None:
    link = tmp_path / "ttyMBUS"
    sim = subprocess.Popen(
        [sys.executable, "-m", "sonocli", "simulate", "--pty", "--link", str(link), "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stdout is not None
        assert sim.stdout.readline().strip().startswith("/dev/pts/")
        ident, _ = _demo_meter(7)
        other_ident, other_secondary = _demo_meter(3)
        master = subprocess.run(
            [sys.executable, "-c", FOREIGN_MASTER, str(link), other_secondary],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert master.returncode == 0, master.stderr
        got = json.loads(master.stdout)
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.communicate(timeout=10)
    assert got["ping"] == "e5"
    assert got["select"] == "e5"
    assert got["nobody"] is None  # no meter at address 99: silence, not garbage
    assert _digits(got["primary_id"]) == ident
    assert _digits(got["secondary_id"]) == other_ident
    assert sim.returncode == 0
