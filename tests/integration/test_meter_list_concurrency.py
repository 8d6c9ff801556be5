"""Every writer of device_handle.cfg goes through the engine's one locked read-modify-write path.

Issue 11 measured the race: 8 parallel `keys import` runs of 8 meters kept 1 of the 8 keys, and beside 8
`meters edit` runs none. Here 8 `keys import` and 8 `meters edit --user` subprocesses start at the same time
while a thread of this process stands in for the daemon saving heard meters (``Engine.save_heard``) and
changing the list (``Engine.update_meters``); afterwards every change is in the file.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from sonocli.config.device_handle import load_meter_list
from sonocli.engine.core import Engine
from sonocli.engine.meterlist import edit_meter
from sonocli.model.values import Interface, Meter

SERIALS = [f"3000000{i}" for i in range(1, 9)]
HEARD = [f"4000000{i}" for i in range(1, 9)]


def _sonocli(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "sonocli", "--root", str(root), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _daemon_like(root: Path, errors: list[BaseException], start: threading.Event) -> None:
    """Save heard meters one by one and change each, spread over the second the subprocesses write in."""
    engine = Engine(root)
    start.wait()
    try:
        for serial in HEARD:
            time.sleep(0.1)
            engine.save_heard([Meter(Interface.WMBUS, serial=serial, manufacturer="KAM", version=1, medium=7,
                                     active=False)])
            engine.update_meters(lambda ml, serial=serial: (edit_meter(ml, serial, {"register": 7}), None))
    except BaseException as exc:
        errors.append(exc)
    finally:
        engine.release_thread()


def test_parallel_key_imports_edits_and_engine_writes_all_land(tmp_path: Path) -> None:
    root = tmp_path / "root"
    subprocess.run([sys.executable, "-m", "sonocli", "--root", str(root), "init"], check=True, capture_output=True)
    setup = subprocess.run(
        [sys.executable, "-m", "sonocli", "--root", str(root), "meters", "add", "--interface", "wM-Bus",
         "--serial", SERIALS[0], "--manufacturer", "DME", "--medium", "Water", "--count", "8"],
        capture_output=True, text=True,
    )
    assert setup.returncode == 0, setup.stderr
    assert [m.serial for m in load_meter_list(root / "app" / "device_handle.cfg").meters] == SERIALS
    keys = {serial: bytes([i + 1] * 16) for i, serial in enumerate(SERIALS)}
    files = []
    for serial, key in keys.items():
        path = tmp_path / f"keys-{serial}.csv"
        path.write_text(f"id,key\n{serial},{key.hex()}\n")
        files.append(path)

    errors: list[BaseException] = []
    start = threading.Event()
    thread = threading.Thread(target=_daemon_like, args=(root, errors, start))
    thread.start()
    procs = [_sonocli(root, "keys", "import", str(path)) for path in files]
    procs += [_sonocli(root, "meters", "edit", str(n), "--user", f"LABEL{n}") for n in range(1, 9)]
    start.set()
    results = [(p.args, *p.communicate(timeout=120), p.returncode) for p in procs]
    thread.join(timeout=120)

    assert not errors, errors
    for args, _out, err, code in results:
        assert code == 0, (args, err)
        assert err == "", (args, err)
    meters = load_meter_list(root / "app" / "device_handle.cfg").meters
    by_serial = {m.serial: m for m in meters}
    assert len(meters) == 16 and [m.serial for m in meters[:8]] == SERIALS  # nothing created twice
    for n, serial in enumerate(SERIALS, 1):
        assert by_serial[serial].key == keys[serial], serial
        assert by_serial[serial].user == f"LABEL{n}", serial
        assert by_serial[serial].active
    for serial in HEARD:
        assert by_serial[serial].active is False
        assert by_serial[serial].register == 7
