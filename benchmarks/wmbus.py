"""Wireless receive throughput: dongle framing -> CRC -> decrypt -> decode -> meter list, one core.

    .venv/bin/python benchmarks/wmbus.py [--telegrams N] [--repeat R]

A stream of iM871A HCI frames (with CRC and RSSI) carries telegrams of 10 or 500 meters, half of them
encrypted (security mode 5, a key per meter, all keys in the meter list), each telegram with its own access
number and values so none is a repeat. The receiver turns them into readings for the meter list. The goal
is >= 5000 telegrams/s, the same with 500 meters as with 10 (keys are looked up by ID in a dict).

pymbusparser (m-bus-parser's Rust core) parses the same CRC-less telegrams, with the key passed per telegram;
it has no dongle framing, no meter list and no duplicate cache, so it does less work per telegram.
"""

from __future__ import annotations

import argparse
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

MANUFACTURER = (0x1596).to_bytes(2, "little")  # "ELS"-like code; any valid letters will do


def _bcd(value: int, digits: int) -> bytes:
    text = f"{value:0{digits}d}"[-digits:]
    return bytes.fromhex(text)[::-1]


def make_telegram(meter_id: int, acc: int, volume: int, key: bytes | None) -> bytes:
    """A T1 water-meter telegram (short TPL header), mode 5 when ``key`` is given, CRC-less."""
    address = MANUFACTURER + _bcd(meter_id, 8) + bytes([0x33, 0x07])
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
    keys: dict[int, bytes] = {}
    for n in range(meter_count):
        meter_id = 10_000_000 + n
        key = bytes([(n + i) & 0xFF for i in range(16)])
        keys[meter_id] = key
        meters.append(Meter(Interface.WMBUS, serial=f"{meter_id:08d}", key=key))
    stream = bytearray()
    plain_list: list[tuple[bytes, bytes | None]] = []
    for i in range(telegrams):
        meter_id = 10_000_000 + i % meter_count
        key = keys[meter_id] if i % 2 else None
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--telegrams", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {args.telegrams} telegrams per run, best of {args.repeat}")
    print(f"{'meters':>7} {'sonocli tel/s':>14} {'pymbusparser tel/s':>19}")
    for meter_count in (10, 500):
        meters, stream, items = build(meter_count, args.telegrams)
        ours = [run_sonocli(meters, stream, args.telegrams) for _ in range(args.repeat)]
        theirs = [t for t in (run_pymbusparser(items) for _ in range(args.repeat)) if t is not None]
        rate = args.telegrams / min(ours)
        other = f"{args.telegrams / min(theirs):>19.0f}" if theirs else f"{'not installed':>19}"
        median = args.telegrams / statistics.median(ours)
        print(f"{meter_count:>7} {rate:>14.0f} {other}   (sonocli median {median:.0f})")


if __name__ == "__main__":
    main()
