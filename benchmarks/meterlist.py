"""Reading a large meter list: device_handle.cfg with 500 meters of 15 values each (~1.5 MB).

Every command that loads the meter list pays this (`listen` before its first telegram, `meters list`, each
read-modify-write of the daemon), and its peak memory is the daemon's peak (benchmarks/daemon.py). Measured
in one run, paired with a peer: lxml (libxml2, C) building its tree of the same bytes. Reported: the median
time of sonocli's whole read (well-formedness, the hardening checks, Table 26's values into Meter objects),
of its XML parse alone, of lxml's parse, and sonocli's peak of Python memory during the read (tracemalloc;
lxml's C allocations are not traced, so it has no figure there) as a multiple of the file's size.

    .venv/bin/python benchmarks/meterlist.py [--meters 500] [--values 15] [--runs 9]

Where it stands (2026-12-04, Python 3.11, 2 cores): 500 x 15 values, 1.4 MB: whole read about 100 ms
(97-110 ms over runs; 274 ms before the read was streamed meter by meter), the XML parse alone as one tree
115-132 ms (187 ms before the leaner nodes), lxml 9 ms (11-12x faster: C, no checks, no Meter objects);
peak 4.8x the file's size (20x before).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sonocli.config.device_handle import MeterList, parse_meter_list, render_meter_list
from sonocli.config.xmlsafe import parse_document
from sonocli.model.values import AddressMode, Interface, Meter, ValueConfig

UNITS = ("Wh", "m³", "H", "degree C", "K", "W", "m³/h", "None")


def build(meters: int, values: int) -> bytes:
    items = []
    for i in range(meters):
        entries = tuple(
            ValueConfig(description=f"Value {n}", unit=UNITS[n % len(UNITS)], encodetype="INT32", exponent=n % 4 - 2,
                        difvif=f"04{n + 3:02X}", storagenum=n // 8)
            for n in range(values)
        )
        items.append(Meter(Interface.MBUS, serial=f"{90000000 + i:08d}", manufacturer="KAM", version=8, medium=4,
                           address_mode=AddressMode.SECONDARY, values=entries))
    return render_meter_list(MeterList(meters=tuple(items)))


def timed(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meters", type=int, default=500)
    ap.add_argument("--values", type=int, default=15)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    data = build(args.meters, args.values)
    parsed = parse_meter_list(data)
    assert len(parsed.meters) == args.meters and render_meter_list(parsed) == data
    from lxml import etree

    whole = timed(lambda: parse_meter_list(data), args.runs)
    alone = timed(lambda: parse_document(data, None), args.runs)
    peer = timed(lambda: etree.fromstring(data), args.runs)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    parse_meter_list(data)
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    print(f"meter list: {args.meters} meters x {args.values} values, {len(data) / 1e6:.2f} MB; median of {args.runs}")
    print(f"  sonocli read (parse + checks + Meter objects) {whole * 1e3:7.1f} ms")
    print(f"  sonocli XML parse alone                       {alone * 1e3:7.1f} ms")
    print(f"  lxml etree.fromstring (peer, C)               {peer * 1e3:7.1f} ms   ({whole / peer:.1f}x)")
    print(f"  peak Python memory during the read            {peak / 1e6:7.1f} MB   ({peak / len(data):.1f}x the file)")


if __name__ == "__main__":
    main()
