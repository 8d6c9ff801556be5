"""serve-daemon under load: 500 simulated meters for a simulated day on a virtual clock.

Wired: a sim:// segment of N meters (the demo's real frames, each copy with its own serial), read by
secondary address every METER_TIME; reports every REPORT_TIME go to a real FTP server (pyftpdlib) on
127.0.0.1. Wireless: the receiver listens to sim://air (the simulator's real OMS telegrams) for the same
simulated day in a second thread. Reported: peak RSS after every readout cycle (goal: <= 60 MB and flat),
CPU seconds per readout cycle, readings stored, reports delivered.

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
from sonocli.model.values import AddressMode, Interface, Meter


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


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
    """The meters of sim://air's telegram set (link-layer address), with their keys."""
    from sonocli.sim.radio import default_telegrams

    out: dict[str, Meter] = {}
    for item in default_telegrams():
        t = item.telegram
        serial = t[4:8][::-1].hex().upper()
        man = manufacturer_text(int.from_bytes(t[2:4], "little"))
        out[serial] = Meter(Interface.WMBUS, serial=serial, manufacturer=man, version=t[8], medium=t[9], key=item.key)
    return list(out.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meters", type=int, default=500)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--meter-time", type=int, default=900)
    ap.add_argument("--no-csvlog", action="store_true", help="MUC_CSVLOG_ENABLE=0 (default: CSV logging on)")
    ap.add_argument("--no-wireless", action="store_true", help="skip the sim://air receiver thread")
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
    def listen() -> None:
        heard["n"] = engine.listen("sim://air?rate=0.05", "im871a", duration=args.hours * 3600,
                                      should_stop=lambda: False)
        engine.release_thread()
    t0, cpu0 = time.monotonic(), time.process_time()
    wl = threading.Thread(target=listen)
    if not args.no_wireless:
        wl.start()
    stats = daemon.run()
    if not args.no_wireless:
        wl.join()
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    delivered = len(list((home).rglob("*.csv")))
    count = engine.store.count()
    engine.close()
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
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
