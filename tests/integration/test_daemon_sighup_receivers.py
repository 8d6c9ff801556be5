"""SIGHUP reopens the wireless receivers: a real serve-daemon process listening on sim://air ports.

Two telegram files tell the ports apart: port A carries only meter X, port B carries meter Y and an unlisted
meter Z. After WMBUS_PORT moves from A to B and SIGHUP, Y's readings arrive and X's stop; Z goes to the
temporary list (guide 5.1.2), never into the meter list; once Z is activated, the next SIGHUP reopens the
receiver with the new meter list and Z's readings are stored; WMBUS_ENABLE=0 closes the receiver.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sonocli.config.chipini import ChipIni
from sonocli.config.device_handle import MeterList, load_meter_list, save_meter_list
from sonocli.engine.core import Engine
from sonocli.engine.master import manufacturer_text
from sonocli.model.values import Interface, Meter
from tests.integration.push.conftest import make_root

pytest_plugins = ["tests.integration.push.conftest"]

LANSEN = "26443330670001000B1E7A070003002F2F02FD1B000002FD971D000002FD3AFF038240FD3AFF03"  # X: 00010067
LSE = "2C446532821851582C067AE1000000046D1906D9180C1334120000426CBF1C4C1300000000326CFFFF01FD7300"  # Y: 58511882
ELV = ("6044961599030023021B7A2B0000202F2F0265A5FA426566FA8201655FFA22650DFA1265C9FA6265FBF95265F2FA02FB1A"
       "CC0242FB1A0B038201FB1A040322FB1A850212FB1A270362FB1A810252FB1A380302FD1B30830DFD0F05312E302E310F")  # Z
X, Y, Z = "00010067", "58511882", "23000399"


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def as_meter(telegram: str) -> Meter:
    t = bytes.fromhex(telegram)
    return Meter(Interface.WMBUS, serial=t[4:8][::-1].hex().upper(),
                 manufacturer=manufacturer_text(int.from_bytes(t[2:4], "little")), version=t[8], medium=t[9])


def stored(root: Path, serial: str) -> int:
    engine = Engine(root)
    try:
        return int(engine.store.count(meter=serial)) if engine.store.meter_known(serial) else 0
    finally:
        engine.close()


def set_chip(root: Path, **values: str) -> None:
    path = root / "app" / "chip.ini"
    chip = ChipIni.load(path)
    for key, value in values.items():
        chip.set(key, value)
    chip.save(path)


def test_sighup_reopens_the_receiver_on_the_new_port(tmp_path: Path, demo_meter_list: Path) -> None:
    (tmp_path / "a.txt").write_text(f"{LANSEN}\n")
    (tmp_path / "b.txt").write_text(f"{LSE}\n{ELV}\n")
    port_a = f"sim://air?file={tmp_path / 'a.txt'}&rate=10"
    port_b = f"sim://air?file={tmp_path / 'b.txt'}&rate=10"
    root = make_root(tmp_path / "root", demo_meter_list, MUC_LOG="ALL", MBUS_ENABLE=0, WMBUS_ENABLE=1,
                     WMBUS_PORT=port_a, WMBUS_DONGLE="im871a", FASTRESCAN_TIME=1)
    handle = root / "app" / "device_handle.cfg"
    save_meter_list(handle, MeterList(meters=(*load_meter_list(handle).meters, as_meter(LANSEN), as_meter(LSE))))
    assert {X, Y} <= {m.serial for m in load_meter_list(handle).meters}

    log = tmp_path / "daemon.log"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "sonocli", "serve-daemon", "--root", str(root)],
                                env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        assert wait_for(lambda: stored(root, X) >= 3), log.read_text()
        assert stored(root, Y) == 0  # port A does not carry Y

        set_chip(root, WMBUS_PORT=port_b)
        proc.send_signal(signal.SIGHUP)
        line = f"SIGHUP: wireless receiver 1 reopened (port {port_a} -> {port_b})"
        assert wait_for(lambda: line in log.read_text()), log.read_text()
        assert wait_for(lambda: stored(root, Y) >= 3), log.read_text()
        # the old port is closed: X is heard no more while Y keeps coming
        x_after, y_after = stored(root, X), stored(root, Y)
        assert wait_for(lambda: stored(root, Y) >= y_after + 5), log.read_text()
        assert stored(root, X) == x_after

        # Z, heard on port B but not listed, is in the temporary list only: the daemon adds no meter
        def heard_z() -> bool:
            engine = Engine(root)
            try:
                return Z in {h.id for h in engine.heard_meters()}
            finally:
                engine.close()

        assert wait_for(heard_z), log.read_text()
        assert Z not in {m.serial for m in load_meter_list(handle).meters}
        assert stored(root, Z) == 0

        # the engineer activates Z (moved into the list, active); SIGHUP reopens the receiver with it
        engine = Engine(root)
        try:
            engine.activate([Z])
        finally:
            engine.close()
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "its settings or wM-Bus meters changed" in log.read_text()), log.read_text()
        assert wait_for(lambda: stored(root, Z) >= 2), log.read_text()

        # WMBUS_ENABLE=0 closes every receiver
        set_chip(root, WMBUS_ENABLE="0")
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: f"SIGHUP: wireless receiver 1 closed (port {port_b})" in log.read_text()), \
            log.read_text()
        y_closed = stored(root, Y)
        time.sleep(1.0)  # 10 telegrams a second would be on the air by now
        assert stored(root, Y) == y_closed

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "Traceback" not in text and "daemon stopped" in text
    assert "wireless receiver 1: im871a on " + port_a in text
