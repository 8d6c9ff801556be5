"""Two processes editing the meter list at once lose no change (the lock spans load to save)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sonocli.config.device_handle import load_meter_list

pytestmark = pytest.mark.skipif(os.name != "posix", reason="flock")

CHILD = r"""
import sys
from sonocli.cli.root import cli
root, tag = sys.argv[1], sys.argv[2]
for i in range(15):
    try:
        cli.main(["--root", root, "meters", "add", "--interface", "DLDE", "--serial", f"{tag}{i:07d}"],
                 standalone_mode=False)
    except SystemExit as exc:
        assert not exc.code, exc.code
"""


def test_concurrent_cli_adds_lose_nothing(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "chip.ini").write_text("[CONFIG]\nMETER_MAXDEVICECOUNT=0\n")
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), tag], stdout=subprocess.DEVNULL)
        for tag in ("1", "2")
    ]
    assert [child.wait() for child in children] == [0, 0]
    serials = sorted(m.serial for m in load_meter_list(tmp_path / "app" / "device_handle.cfg").meters)
    assert serials == sorted(f"{tag}{i:07d}" for tag in ("1", "2") for i in range(15))


def test_init_creates_the_meter_list_under_the_writers_lock(tmp_path: Path) -> None:
    """`init_root` (run by every first write on a fresh root) checks and creates device_handle.cfg under the
    lock: unlocked, another process's first `meters add` between its check and its write was overwritten by
    the empty default, and the concurrent test above lost a meter in about one run of four."""
    import threading

    from sonocli.config.device_handle import MeterList, save_meter_list
    from sonocli.config.layout import init_root
    from sonocli.config.locking import locked
    from sonocli.model.values import Interface, Meter

    path = tmp_path / "app" / "device_handle.cfg"
    done = threading.Event()
    with locked(path):  # another writer is between its load and its save
        worker = threading.Thread(target=lambda: (init_root(tmp_path), done.set()))
        worker.start()
        assert not done.wait(0.3), "init_root wrote the meter list without waiting for the lock"
        save_meter_list(path, MeterList(meters=(Meter(Interface.DLDE, serial="12345678"),)))
    worker.join(10)
    assert done.is_set()
    assert [m.serial for m in load_meter_list(path).meters] == ["12345678"]
