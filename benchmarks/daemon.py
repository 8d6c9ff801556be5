"""serve-daemon under load: 500 simulated meters for a simulated day on a virtual clock.

Wired: a sim:// segment of N meters (the demo's real frames, each copy with its own serial), read by
secondary address every METER_TIME; reports every REPORT_TIME go to a real FTP server (pyftpdlib) on
127.0.0.1. Wireless: the receiver listens to sim://air (the simulator's real OMS telegrams) for the same
simulated day in a second thread. Reported: peak RSS after every readout cycle (goal: <= 60 MB and flat),
CPU seconds per readout cycle, readings stored, reports delivered, and the bytes written to disk per stored
reading (the kernel's ``write_bytes`` of /proc/self/io: what reached the block layer, i.e. flash wear) beside
the bytes that reading needs (its CSV log row, its database row, its share of the delivered reports).
Goal: written <= 2x that payload and <= 4 KB per reading.

    .venv/bin/python benchmarks/daemon.py [--meters 500] [--hours 24] [--meter-time 900]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
import tomllib
from importlib import resources
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sonocli.config.chipini import ChipIni
from sonocli.config.device_handle import MeterList, save_meter_list
from sonocli.config.layout import init_root
from sonocli.daemon.runner import Daemon
from sonocli.daemon.schedule import FastClock
from sonocli.engine.core import Engine
from sonocli.engine.master import manufacturer_text
from sonocli.engine.recording import batched, flush_due
from sonocli.model.values import AddressMode, Interface, Meter


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_bytes() -> int:
    """Bytes this process caused to be written to the storage layer (counted when a page is dirtied)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def db_row_bytes(database: Path) -> int:
    """What the stored readings' rows hold: dbstat's payload of the two tables (else every column's bytes,
    integers as 8), without B-tree overhead or indexes."""
    import sqlite3

    def size(column: str) -> str:
        return f"coalesce(CASE typeof({column}) WHEN 'integer' THEN 8 WHEN 'real' THEN 8 " \
               f"ELSE length(CAST({column} AS BLOB)) END, 0)"

    conn = sqlite3.connect(database)
    try:
        try:  # SQLite's own count of the rows' bytes (record headers included, B-tree free space not)
            row = conn.execute("SELECT sum(payload) FROM dbstat WHERE name IN ('readings', 'reading_values')"
                               ).fetchone()
            return int(row[0] or 0)
        except sqlite3.Error:
            pass
        readings = conn.execute("SELECT sum(" + " + ".join(size(c) for c in (
            "id", "meter_id", "config_id", "taken_at", "rssi", "meter_rssi", "n_values", "frames")) + ") FROM readings"
        ).fetchone()[0] or 0
        values = conn.execute("SELECT sum(" + " + ".join(size(c) for c in (
            "reading_id", "position", "idx", "measurement", "unit", "exponent", "raw_type", "raw", "function",
            "storage", "tariff", "subunit", "ts", "flags", "dif_vif", "data", "encoding", "text", "qualifiers")) +
            ") FROM reading_values").fetchone()[0] or 0
    finally:
        conn.close()
    return int(readings) + int(values)


def build_segment(count: int, path: Path) -> list[Meter]:
    demo = tomllib.loads(resources.files("sonocli.sim").joinpath("data/demo.toml").read_text(encoding="utf-8"))
    templates = [m for m in demo["meter"] if m["telegrams"][0][:2].upper() == "72"]
    entries, meters = [], []
    for i in range(count):
        base = dict(templates[i % len(templates)])
        serial = f"{90000000 + i:08d}"
        head = bytes.fromhex(base["telegrams"][0][2:18])
        base.update(id=serial, primary=1 + i % 250)
        entries.append(base)
        man = manufacturer_text(int.from_bytes(head[4:6], "little"))
        meters.append(Meter(Interface.MBUS, serial=serial, manufacturer=man, version=head[6], medium=head[7],
                            address_mode=AddressMode.SECONDARY))
    path.write_text(json.dumps({"meter": entries}))
    return meters


def wireless_meters() -> list[Meter]:
    """The meters of sim://air's telegram set, with their keys, listed by the identity sonocli reads.

    That is the meter's own address, not the link layer's: two of the telegrams come through a radio
    converter (address 11223344) for meters 55667788 and 12345678. Listed by the link address, as before,
    those two were never decrypted, and the benchmark decrypted two of seven telegrams instead of four.
    """
    from sonocli.codecs.wmbus import decode_telegram
    from sonocli.sim.radio import default_telegrams

    out: dict[str, Meter] = {}
    for item in default_telegrams():
        who = decode_telegram(item.telegram).meter  # the header only: no key is needed for the identity
        out[who.id] = Meter(Interface.WMBUS, serial=who.id, manufacturer=manufacturer_text(who.manufacturer),
                            version=who.version, medium=who.device_type, key=item.key)
    return list(out.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meters", type=int, default=500)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--meter-time", type=int, default=900)
    ap.add_argument("--no-csvlog", action="store_true", help="MUC_CSVLOG_ENABLE=0 (default: CSV logging on)")
    ap.add_argument("--no-wireless", action="store_true", help="skip the sim://air receiver thread")
    ap.add_argument("--commit-interval", type=int, default=30,
                    help="STORE_COMMITINTERVAL: seconds a reading waits at most for its transaction")
    args = ap.parse_args()

    import socket
    import subprocess

    tmp = Path(tempfile.mkdtemp(prefix="sonocli-bench-"))
    home = tmp / "ftp"
    home.mkdir()
    with socket.socket() as s:  # the FTP server runs in its own process: RSS is the daemon's alone
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "pyftpdlib", "-i", "127.0.0.1", "-p", str(port), "-w",
                               "-d", str(home), "-u", "u", "-P", "p"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    layout = init_root(tmp / "root")
    wired = build_segment(args.meters, tmp / "segment.json")
    radio = wireless_meters()
    save_meter_list(layout.device_handle, MeterList(meters=tuple(wired) + tuple(radio)))
    chip = ChipIni.load(layout.chip_ini)
    for key, value in {"MBUS_PORT": f"sim://{tmp}/segment.json", "WMBUS_ENABLE": "0",
                       "METER_TIME": str(args.meter_time), "REPORT_TIME": "60",
                       "MUC_CSVLOG_ENABLE": "0" if args.no_csvlog else "1",
                       "STORE_COMMITINTERVAL": str(args.commit_interval),
                       "FTP_ENABLE": "1", "FTP_IP": "127.0.0.1", "FTP_PORT": str(port), "FTP_USER": "u",
                       "FTP_PASS": "p", "WATCHDOG_READOUT": "100000", "WATCHDOG_PROCESS": "100000"}.items():
        chip.set(key, value)
    chip.save(layout.chip_ini)

    start = 1_750_000_000.0
    engine = Engine(layout.root)
    clock = FastClock(start)
    daemon = Daemon(engine, clock=clock, wireless=False, until=start + args.hours * 3600, rng=random.Random(1))
    rss: list[float] = []
    rss0 = rss_mb()
    original = daemon.step_readout

    def sampled(**kw: object) -> None:
        original(**kw)  # type: ignore[arg-type]
        rss.append(rss_mb())

    daemon.step_readout = sampled  # type: ignore[method-assign]

    # wireless: a second thread of the same Engine (as the daemon's receiver thread) hears sim://air for the
    # same simulated day on the simulator's own virtual clock
    heard = {"n": 0}
    def listen() -> None:  # as the daemon's receiver thread does: telegrams stored in batches
        def polled() -> bool:
            flush_due(engine)
            return False

        with batched(engine):
            heard["n"] = engine.listen("sim://air?rate=0.05", "im871a", duration=args.hours * 3600,
                                       should_stop=polled)
        engine.release_thread()
    written0 = write_bytes()
    t0, cpu0 = time.monotonic(), time.process_time()
    wl = threading.Thread(target=listen)
    if not args.no_wireless:
        wl.start()
    stats = daemon.run()
    if not args.no_wireless:
        wl.join()
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    engine.close()  # closing checkpoints the WAL: its writes are part of the run
    written = write_bytes() - written0
    reports = [p for p in home.rglob("*") if p.is_file()]
    delivered = len(reports)
    report_bytes = sum(p.stat().st_size for p in reports)
    log_bytes = sum(p.stat().st_size for p in layout.log_dir.rglob("Meter_*.csv")) if layout.log_dir.is_dir() else 0
    check = Engine(layout.root)
    count = check.store.count()
    check.close()
    row_bytes = db_row_bytes(layout.database)
    database_bytes = sum(p.stat().st_size for p in layout.database.parent.glob(layout.database.name + "*"))
    server.terminate()
    server.wait(5)
    cycles = stats.cycle_cpu[1:] or stats.cycle_cpu
    print(f"meters: {args.meters} wired (secondary addressing) + {len(radio)} wireless (sim://air), "
          f"simulated {args.hours:g} h, METER_TIME {args.meter_time} s")
    print(f"readout cycles: {stats.readouts}, readings stored: {count} (wired {stats.readings}), "
          f"wireless telegrams stored: {heard['n']}")
    print(f"reports delivered over FTP: {delivered}, watchdog trips: {stats.watchdog_trips}")
    print(f"CPU per readout cycle: median {sorted(cycles)[len(cycles) // 2]:.2f} s, max {max(cycles):.2f} s")
    third = max(1, len(rss) // 3)
    print(f"peak RSS: {max(rss):.1f} MB (after a third of the run {rss[third - 1]:.1f} MB, "
          f"at the end {rss[-1]:.1f} MB; start {rss0:.1f} MB)")
    print(f"total: {wall:.1f} s wall, {cpu:.1f} s CPU")
    per = max(1, count)
    payload = (log_bytes + row_bytes + report_bytes) / per
    print(f"written to disk (kernel write_bytes): {written / 1e6:.1f} MB, {written / per:.0f} B per stored "
          f"reading; payload {payload:.0f} B per reading (CSV log row {log_bytes / per:.0f} + database row "
          f"{row_bytes / per:.0f} + report share {report_bytes / per:.0f}): {written / per / payload:.2f}x "
          f"(goal <= 2x, <= 4096 B); database file {database_bytes / 1e6:.1f} MB")
    day = written / per * args.meters * 86400 / args.meter_time
    print(f"a day at {args.meters} meters (METER_TIME {args.meter_time} s) writes about {day / 1e6:.0f} MB")
    if not __import__("os").environ.get("BENCH_KEEP"):
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("kept", tmp)


if __name__ == "__main__":
    main()
