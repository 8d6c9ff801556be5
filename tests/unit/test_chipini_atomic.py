"""A writer killed mid-save leaves the old file or the new one on disk, never a mix.

A child process saves two different versions of chip.ini and device_handle.cfg in a tight loop; the test
SIGKILLs it at varying moments and checks what is on disk each time.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")

WRITER = r"""
import sys
from pathlib import Path
from sonocli.config.chipini import ChipIni
from sonocli.config.device_handle import MeterList, save_meter_list
from sonocli.model.values import Interface, Meter, ValueConfig

kind, target = sys.argv[1], Path(sys.argv[2])
if kind == "ini":
    versions = []
    for name in ("alpha", "beta"):
        ini = ChipIni.load(target)
        ini.set("NAME", name)
        ini.set("FTP_PATH", name * 8)
        versions.append(ini)
    save = lambda v: v.save(target)
else:
    def meter_list(user):
        values = tuple(ValueConfig(description="Energy", user=user, tariff=i % 7) for i in range(20))
        return MeterList(meters=tuple(Meter(Interface.MBUS, serial=f"{i:08d}", user=user, values=values)
                                      for i in range(60)))
    versions = [meter_list("alpha"), meter_list("beta")]
    save = lambda v: save_meter_list(target, v)
print("ready", flush=True)
i = 0
while True:
    save(versions[i % 2])
    i += 1
"""


def _expected(kind: str, tmp: Path, target: Path) -> set[bytes]:
    """The two versions the writer alternates between, made by the library in this process."""
    from sonocli.config.chipini import ChipIni
    from sonocli.config.device_handle import MeterList, render_meter_list
    from sonocli.model.values import Interface, Meter, ValueConfig

    out: set[bytes] = set()
    for name in ("alpha", "beta"):
        if kind == "ini":
            ini = ChipIni.load(target)
            ini.set("NAME", name)
            ini.set("FTP_PATH", name * 8)
            out.add(ini.text().encode())
        else:
            values = tuple(ValueConfig(description="Energy", user=name, tariff=i % 7) for i in range(20))
            meters = tuple(Meter(Interface.MBUS, serial=f"{i:08d}", user=name, values=values) for i in range(60))
            out.add(render_meter_list(MeterList(meters=meters)))
    return out


@pytest.mark.parametrize("kind", ["ini", "cfg"])
def test_sigkill_mid_save_leaves_old_or_new(tmp_path: Path, kind: str) -> None:
    from sonocli.config.chipini import default_text

    target = tmp_path / ("chip.ini" if kind == "ini" else "device_handle.cfg")
    if kind == "ini":
        target.write_text(default_text())
    else:
        from sonocli.config.device_handle import MeterList, save_meter_list

        save_meter_list(target, MeterList())
    allowed = _expected(kind, tmp_path, target) | {target.read_bytes()}
    rng = random.Random(1234)
    seen: set[bytes] = set()
    for _ in range(12):
        child = subprocess.Popen([sys.executable, "-c", WRITER, kind, str(target)], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.03))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        data = target.read_bytes()
        assert data in allowed, f"mixed or torn file after SIGKILL ({len(data)} bytes)"
        seen.add(data)
    assert seen  # the loop really ran and the file was there each time
