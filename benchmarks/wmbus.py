"""Wireless receive throughput: dongle framing -> CRC -> decrypt -> decode -> meter list, one core.

    .venv/bin/python benchmarks/wmbus.py [--telegrams N] [--repeat R] [--wmbusmeters PATH]

A stream of iM871A HCI frames (with CRC and RSSI) carries telegrams of 10 or 500 meters, half of them
encrypted (security mode 5: the meters with an odd number have a key, in the meter list, and always encrypt),
each telegram with its own access number and values so none is a repeat. The telegrams are those of a
Sontex Supercom 587 water meter (SON, version 3Ch, standard OMS records), a meter wmbusmeters has a driver
for, so both tools run their drivers. The receiver turns them into readings for the meter list. The goal is
>= 5000 telegrams/s, the same with 500 meters as with 10 (keys are looked up by ID in a dict).

In-process: pymbusparser (m-bus-parser's Rust core) parses the same CRC-less telegrams, with the key passed
per telegram; it has no dongle framing, no meter list and no duplicate cache, so it does less work.

Whole processes, paired in the same run (``--wmbusmeters``): ``sonocli listen --port file:T --dongle hex
--no-store --json`` against ``wmbusmeters --format=json simulation_T.txt`` with the same meters (500
meters: 500 name/driver/id/key quadruples on its command line, all with driver ``auto``), both reading the
same telegrams from a file and writing one JSON line per telegram to /dev/null; the time includes start-up.
The last table pairs sonocli's receiver in-process (the first table's median) with wmbusmeters' whole
process: the measure the figures of issue 14 fit (0.81x at 10 meters and about 20x at 500 before; goal:
faster at 10, keep 500). The whole-process table is the stricter one: it adds sonocli's start-up and its
JSON line per telegram (about 0.25 ms a telegram in `listen`, against wmbusmeters' 0.08 ms).
wmbusmeters is built from its source, never vendored (the build needs librtlsdr-dev and libusb-1.0-0-dev)::

    git clone https://github.com/wmbusmeters/wmbusmeters && cd wmbusmeters && ./configure && make
    .venv/bin/python benchmarks/wmbus.py --wmbusmeters wmbusmeters/build/wmbusmeters
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sonocli.codecs import crypto
from sonocli.codecs.dongles import im871a
from sonocli.codecs.dongles.im871a import Im871aDriver
from sonocli.engine.receiver import Receiver, ReceiverSettings
from sonocli.model import Interface, Meter

MANUFACTURER = (0x4DEE).to_bytes(2, "little")  # SON (Sontex): a Supercom 587 (version 3Ch, water)
VERSION, MEDIUM = 0x3C, 0x07


def _bcd(value: int, digits: int) -> bytes:
    text = f"{value:0{digits}d}"[-digits:]
    return bytes.fromhex(text)[::-1]


def make_telegram(meter_id: int, acc: int, volume: int, key: bytes | None) -> bytes:
    """A T1 water-meter telegram (short TPL header), mode 5 when ``key`` is given, CRC-less."""
    address = MANUFACTURER + _bcd(meter_id, 8) + bytes([VERSION, MEDIUM])
    records = (
        b"\x0c\x13" + _bcd(volume, 8)  # volume, 10^-3 m3, BCD8
        + b"\x04\x6d" + bytes.fromhex("32371F15")  # date/time type F
        + b"\x02\xfd\x17\x00\x00"  # error flags
        + b"\x4c\x13" + _bcd(volume // 2, 8)  # volume, storage 1
        + b"\x42\x6c" + bytes.fromhex("FE04")  # date, storage 1
    )
    if key is None:
        tpl = bytes([0x7A, acc, 0x00]) + (0x0000).to_bytes(2, "little")
        body = records
    else:
        plain = b"\x2f\x2f" + records
        plain += b"\x2f" * (-len(plain) % 16)
        blocks = len(plain) // 16
        cfg = 0x0500 | (blocks << 4)
        tpl = bytes([0x7A, acc, 0x00]) + cfg.to_bytes(2, "little")
        body = crypto.aes_cbc_encrypt(key, crypto.mode5_iv(address, acc), plain)
    payload = bytes([0x44]) + address + tpl + body
    return bytes([len(payload)]) + payload


def build(meter_count: int, telegrams: int) -> tuple[list[Meter], bytes, list[tuple[bytes, bytes | None]]]:
    meters = []
    keys: dict[int, bytes | None] = {}
    for n in range(meter_count):
        meter_id = 10_000_000 + n
        key = bytes([(n + i) & 0xFF for i in range(16)]) if n % 2 else None  # odd meters encrypt
        keys[meter_id] = key
        meters.append(Meter(Interface.WMBUS, serial=f"{meter_id:08d}", manufacturer="SON", version=VERSION,
                            medium=MEDIUM, key=key, active=True))
    stream = bytearray()
    plain_list: list[tuple[bytes, bytes | None]] = []
    for i in range(telegrams):
        meter_id = 10_000_000 + i % meter_count
        key = keys[meter_id]
        telegram = make_telegram(meter_id, i & 0xFF, 100_000 + i, key)
        stream += im871a.encode_indication(telegram, -70)
        plain_list.append((telegram, key))
    return meters, bytes(stream), plain_list


def run_sonocli(meters: list[Meter], stream: bytes, expected: int) -> float:
    receiver = Receiver(Im871aDriver(), ReceiverSettings(cache_size=500), meters=meters)
    readings = 0
    start = time.perf_counter()
    for offset in range(0, len(stream), 4096):
        for heard in receiver.feed(stream[offset : offset + 4096]):
            if heard.reading is not None:
                readings += 1
    elapsed = time.perf_counter() - start
    if readings != expected:
        raise SystemExit(f"expected {expected} readings, got {readings} (stats {receiver.stats})")
    return elapsed


def run_pymbusparser(items: list[tuple[bytes, bytes | None]]) -> float | None:
    try:
        import pymbusparser
    except ImportError:
        return None
    start = time.perf_counter()
    for telegram, key in items:
        if key is None:
            pymbusparser.parse(telegram)
        else:
            pymbusparser.parse(telegram, key=key)
    return time.perf_counter() - start


def run_processes(meters: list[Meter], items: list[tuple[bytes, bytes | None]], wmbusmeters: str,
                  tmp: Path) -> tuple[float, float, int, int]:
    """(sonocli seconds, wmbusmeters seconds, sonocli lines, wmbusmeters lines) for one whole-process run."""
    import os
    import subprocess

    from sonocli.engine.core import Engine

    root = tmp / f"root{len(meters)}"
    if not root.exists():
        subprocess.run([str(Path(sys.executable).with_name("sonocli")), "--root", str(root), "init"], check=True,
                       capture_output=True)
        engine = Engine(root)
        try:
            engine.update_meters(lambda ml: (dataclasses.replace(ml, meters=tuple(meters)), None))
        finally:
            engine.close()
    hexfile = tmp / f"telegrams{len(meters)}.hex"
    hexfile.write_text("".join(t.hex().upper() + "\n" for t, _ in items))
    simulation = tmp / f"simulation_{len(meters)}.txt"
    simulation.write_text("".join(f"telegram=|{t.hex().upper()}|\n" for t, _ in items))
    quads: list[str] = []
    for meter in meters:
        key = meter.key.hex().upper() if meter.key else "NOKEY"
        quads += [f"m{meter.serial}", "auto", meter.serial, key]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    ours_argv = [str(Path(sys.executable).with_name("sonocli")), "--root", str(root), "-q", "listen", "--port",
                 f"file:{hexfile}", "--dongle", "hex", "--no-store", "--json"]
    theirs_argv = [wmbusmeters, "--format=json", "--silent", str(simulation), *quads]
    start = time.perf_counter()
    ours = subprocess.run(ours_argv, env=env, capture_output=True, text=True)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    theirs = subprocess.run(theirs_argv, env=env, capture_output=True, text=True)
    theirs_s = time.perf_counter() - start
    if ours.returncode not in (0, 3):
        raise SystemExit(f"sonocli exit {ours.returncode}: {ours.stderr[-500:]}")
    ours_lines = sum(1 for line in ours.stdout.splitlines() if '"total_m3"' in line or '"records": [{' in line)
    theirs_lines = sum(1 for line in theirs.stdout.splitlines() if '"total_m3"' in line)
    return ours_s, theirs_s, ours_lines, theirs_lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--telegrams", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--wmbusmeters", metavar="PATH", help="a wmbusmeters binary: pair whole processes with it")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {args.telegrams} telegrams per run, best of {args.repeat}")
    print(f"{'meters':>7} {'sonocli tel/s':>14} {'pymbusparser tel/s':>19}")
    built = {}
    in_process: dict[int, float] = {}
    for meter_count in (10, 500):
        meters, stream, items = build(meter_count, args.telegrams)
        built[meter_count] = (meters, items)
        ours = [run_sonocli(meters, stream, args.telegrams) for _ in range(args.repeat)]
        theirs = [t for t in (run_pymbusparser(items) for _ in range(args.repeat)) if t is not None]
        rate = args.telegrams / min(ours)
        in_process[meter_count] = args.telegrams / statistics.median(ours)
        other = f"{args.telegrams / min(theirs):>19.0f}" if theirs else f"{'not installed':>19}"
        median = args.telegrams / statistics.median(ours)
        print(f"{meter_count:>7} {rate:>14.0f} {other}   (sonocli median {median:.0f})")
    if not args.wmbusmeters:
        return
    import tempfile

    print(f"\nwhole processes, {args.telegrams} telegrams from a file, median of {args.repeat} (start-up included)")
    print(f"{'meters':>7} {'sonocli s':>10} {'wmbusmeters s':>14} {'sonocli/wmbusmeters':>20} "
          f"{'decoded (ours/theirs)':>22}")
    theirs_rate: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for meter_count, (meters, items) in built.items():
            runs = [run_processes(meters, items, args.wmbusmeters, Path(tmp)) for _ in range(args.repeat)]
            ours_s = statistics.median(r[0] for r in runs)
            theirs_s = statistics.median(r[1] for r in runs)
            print(f"{meter_count:>7} {ours_s:>10.2f} {theirs_s:>14.2f} {theirs_s / ours_s:>19.2f}x "
                  f"{runs[-1][2]:>11}/{runs[-1][3]}")
            theirs_rate[meter_count] = args.telegrams / theirs_s
    print("(sonocli/wmbusmeters > 1: sonocli is faster by that factor)")
    print("\nreceiver throughput: sonocli's receiver in-process (median, no process")
    print("start, no output) against wmbusmeters' whole process on the same telegrams")
    for meter_count, rate in in_process.items():
        theirs = theirs_rate[meter_count]
        print(f"{meter_count:>7} meters: sonocli {rate:>8.0f} tel/s, wmbusmeters {theirs:>8.0f} tel/s, "
              f"{rate / theirs:.2f}x")


if __name__ == "__main__":
    main()
