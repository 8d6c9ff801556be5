"""The daemon against real servers: outages, restarts, kill -9, a hanging server and the watchdog."""

from __future__ import annotations

import csv
import io
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sonocli.daemon.runner import Daemon
from sonocli.daemon.schedule import FastClock
from sonocli.engine.core import Engine
from sonocli.store.outbox import DONE
from tests.integration.push.conftest import FtpPeer, free_port, make_root, world_dir

START = 1_750_000_000.0  # a virtual UNIX time (a Sunday in June 2025)


def csv_rows(directory: Path) -> list[list[str]]:
    rows: list[list[str]] = []
    for path in sorted(directory.glob("*.csv")):
        lines = list(csv.reader(io.StringIO(path.read_text()), delimiter=";"))
        assert lines[0][0] == "Timestamp"  # every file complete, with its header
        rows.extend(lines[1:])
    return rows


def stored_count(root: Path) -> int:
    engine = Engine(root)
    try:
        return int(engine.store.count())
    finally:
        engine.close()


def ftp_settings(port: int, path: str = "/in") -> dict[str, Any]:
    return {"FTP_ENABLE": 1, "FTP_IP": "127.0.0.1", "FTP_PORT": port, "FTP_USER": "u", "FTP_PASS": "p",
            "FTP_PATH": path, "FTP_PASSIVE": 1}


def run_daemon(root: Path, clock: FastClock, until: float) -> Daemon:
    engine = Engine(root)
    daemon = Daemon(engine, clock=clock, wireless=False, until=until, rng=random.Random(1))
    try:
        daemon.run()
    finally:
        engine.close()
    return daemon


def test_outage_of_several_cycles_then_everything_arrives_in_order(tmp_path: Path, demo_meter_list: Path) -> None:
    port = free_port()
    root = make_root(tmp_path / "root", demo_meter_list, **ftp_settings(port))
    clock = FastClock(START)
    # the server is down for four report cycles (one hour); reports pile up in the outbox
    run_daemon(root, clock, START + 3600)
    engine = Engine(root)
    pending = engine.outbox.items()
    engine.close()
    assert len(pending) >= 4
    assert all(item.attempts >= 1 and "connect" in (item.last_error or "") for item in pending[:1])
    # the server comes back; the daemon restarts (a new process would see the same database)
    home = world_dir("sonocli-outage-")
    peer = FtpPeer(home, None, port=port)
    try:
        run_daemon(root, clock, START + 3 * 3600)
    finally:
        peer.stop()
    engine = Engine(root)
    done = engine.outbox.items(states=(DONE,))
    assert engine.outbox.items() == []
    engine.close()
    names = [item.name for item in done]
    assert len(names) == len(set(names))
    files = sorted(p.name for p in (home / "in").glob("*.csv"))
    assert files == sorted(names)  # every report arrived, under its name, none twice
    # in order: the outbox sent them oldest first
    sent_order = [item.id for item in sorted(done, key=lambda i: (i.sent_at, i.id))]
    assert sent_order == sorted(sent_order)
    assert len(csv_rows(home / "in")) == stored_count(root)


def test_sigkill_20_times_loses_no_reading(tmp_path: Path, demo_meter_list: Path) -> None:
    """serve-daemon on a virtual clock, SIGKILLed at random points of readout and upload, 20 times."""
    home = world_dir("sonocli-kill-")
    peer = FtpPeer(home, None)
    root = make_root(tmp_path / "root", demo_meter_list, **ftp_settings(peer.port), METER_TIME=60, REPORT_TIME=1)
    rng = random.Random(20)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    start = START
    try:
        for _ in range(20):
            proc = subprocess.Popen(
                [sys.executable, "-m", "sonocli", "serve-daemon", "--root", str(root), "--no-wireless",
                 "--virtual-clock", str(start), "--until", str(start + 86400)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.4 + rng.random() * 0.8)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            start += 3600  # the next life starts later on the virtual clock: new readouts, new reports
        # a clean last run delivers what is left
        out = subprocess.run([sys.executable, "-m", "sonocli", "serve-daemon", "--root", str(root), "--once",
                              "--no-wireless"], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
    finally:
        peer.stop()
    engine = Engine(root)
    assert engine.outbox.items() == []
    engine.close()
    # (the last run's real clock pruned the delivered items of the virtual past: compare with the store)
    assert not list((home / "in").glob(".*.part"))  # every interrupted upload was finished under its name
    assert len(csv_rows(home / "in")) == stored_count(root) > 12 * 20  # no reading lost, none twice


def test_hanging_server_trips_the_watchdog_and_readouts_go_on(tmp_path: Path, demo_meter_list: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.sendall(b"220 hello\r\n")  # then never another word: a server hung mid-session
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    root = make_root(tmp_path / "root", demo_meter_list, **ftp_settings(port), FTP_TIMEOUTSCALE=20,
                     WATCHDOG_PROCESS=1, WATCHDOG_READOUT=60)
    engine = Engine(root)
    daemon = Daemon(engine, clock=FastClock(START), wireless=False, until=START + 1800, rng=random.Random(2))
    try:
        stats = daemon.run()
    finally:
        engine.close()
        listener.close()
        for conn in held:
            conn.close()
    assert stats.watchdog_trips >= 1
    assert stats.readouts >= 2 and stats.readings >= 24  # the meters were read before and after the trip
    engine = Engine(root)
    pending = engine.outbox.items()
    engine.close()
    assert pending and all(item.state == "pending" for item in pending)


def test_configuration_save_keeps_pending_reports_and_their_names(
    tmp_path: Path, demo_meter_list: Path, ftp_server: Any
) -> None:
    from sonocli.config.chipini import ChipIni
    from tests.integration.push.conftest import read_demo_meters

    down = free_port()
    root = make_root(tmp_path / "root", demo_meter_list, **ftp_settings(down, "/cfg"))
    read_demo_meters(root)
    engine = Engine(root, now=lambda: 1_700_000_123.0)
    engine.build_reports()
    assert engine.deliver()["ftp"].failed == 1
    engine.close()
    # the engineer fixes the port and renames the base name: the queued report keeps the name it got
    chip = ChipIni.load(root / "app" / "chip.ini")
    chip.set("FTP_PORT", str(ftp_server.port))
    chip.set("FTP_FILEBASENAME", "Renamed")
    chip.save(root / "app" / "chip.ini")
    engine = Engine(root)
    try:
        assert engine.deliver(force=True)["ftp"].sent == 1
    finally:
        engine.close()
    assert [p.name for p in (ftp_server.home / "cfg").glob("*.csv")] == ["SonoCollect_111_1700000123.csv"]


def test_once_with_wireless_meters(tmp_path: Path, demo_meter_list: Path, ftp_server: Any) -> None:
    """serve-daemon --once: wired readout on MBUS_PORT plus reception on WMBUS_PORT (sim://air), one report."""
    from sonocli.config.device_handle import MeterList, load_meter_list, save_meter_list
    from sonocli.engine.master import manufacturer_text
    from sonocli.model.values import Interface, Meter
    from sonocli.sim.radio import default_telegrams

    root = make_root(tmp_path / "root", demo_meter_list, **ftp_settings(ftp_server.port, "/wl"),
                     WMBUS_ENABLE=1, WMBUS_PORT="sim://air?rate=20", WMBUS_DONGLE="im871a")
    radio = {}
    for item in default_telegrams():
        t = item.telegram
        serial = t[4:8][::-1].hex().upper()
        man = manufacturer_text(int.from_bytes(t[2:4], "little"))
        radio[serial] = Meter(Interface.WMBUS, serial=serial, manufacturer=man, version=t[8], medium=t[9], key=item.key)
    path = root / "app" / "device_handle.cfg"
    save_meter_list(path, MeterList(meters=load_meter_list(path).meters + tuple(radio.values())))
    out = subprocess.run([sys.executable, "-m", "sonocli", "serve-daemon", "--root", str(root), "--once"],
                         env={**os.environ, "PYTHONPATH": os.getcwd()}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    engine = Engine(root)
    try:
        done = engine.outbox.items(states=(DONE,))
        wireless = [r for r in engine.store.iter_readings() if r.meter.interface is Interface.WMBUS]
    finally:
        engine.close()
    assert wireless and {r.meter.serial for r in wireless} <= set(radio)
    rows = csv_rows(ftp_server.home / "wl")
    assert len(rows) == sum(i.readings for i in done) == 12 + len(wireless)
