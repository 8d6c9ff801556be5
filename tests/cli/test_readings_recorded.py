"""`readout` and `listen` keep what they read in the readings store (ext/sonocli.db), unless --no-store."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sonocli.cli.root import cli
from sonocli.config.device_handle import load_meter_list
from sonocli.config.layout import RootLayout
from sonocli.store.readings import ReadingStore


def run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), *args])
    return result.exit_code, result.stdout, result.stderr


def stored(root: Path) -> list[object]:
    store = ReadingStore(root / "ext" / "sonocli.db")
    try:
        return list(store.iter_readings())
    finally:
        store.close()


def test_readout_stores_every_meter_read_and_export_sees_them(tmp_path: Path) -> None:
    assert run(tmp_path, "scan", "--port", "sim://demo", "--save")[0] == 0
    first = stored(tmp_path)
    # scan --save reads each meter it adds once to learn its value entries; that look is not stored
    assert first == []
    code, out, err = run(tmp_path, "readout", "--port", "sim://demo", "--all", "--json")
    assert code == 0, err
    printed = json.loads(out)
    readings = stored(tmp_path)[len(first):]
    assert len(readings) == len(printed) == 12
    kam = next(r for r in readings if r.meter.manufacturer == "KAM")  # type: ignore[attr-defined]
    energy = next(v for v in kam.values if v.description == "Energy")
    assert energy.value == 37351000.0 and energy.unit == "Wh"
    code, csv_text, err = run(tmp_path, "export", "csv", "--protocol-version", "3", "--meter", "KAM-06855817-08-04")
    assert code == 0, err
    assert csv_text.count("KAM-06855817-08-04") == 1  # the readout (the scan's look is not stored)


def test_readout_no_store_leaves_the_store_empty(tmp_path: Path) -> None:
    code, _out, err = run(tmp_path, "readout", "--port", "sim://demo", "--address", "10", "--no-store")
    assert code == 0, err
    assert not (tmp_path / "ext" / "sonocli.db").exists()
    code, _out, err = run(tmp_path, "readout", "--port", "sim://demo", "--address", "10")
    assert code == 0, err
    assert len(stored(tmp_path)) == 1


def test_listen_stores_readings_of_active_listed_meters_only(tmp_path: Path) -> None:
    code, _out, err = run(tmp_path, "listen", "--port", "sim://air?count=7", "--dongle", "hex", "--count", "7")
    assert code == 0, err
    assert stored(tmp_path) == []  # nobody in the meter list yet: heard, not recorded (guide 4.2)
    code, _out, err = run(
        tmp_path, "listen", "--port", "sim://air?count=7", "--dongle", "hex", "--count", "7", "--save", "--no-store"
    )
    assert code == 0, err
    assert stored(tmp_path) == []
    saved = load_meter_list(RootLayout(tmp_path).device_handle).meters
    assert saved and not any(m.active for m in saved)  # listen --save adds them inactive (guide 5.1.2)
    code, _out, err = run(tmp_path, "listen", "--port", "sim://air?count=7", "--dongle", "hex", "--count", "7")
    assert code == 0, err
    assert stored(tmp_path) == [], "inactive listed meters are not recorded"
    assert run(tmp_path, "meters", "activate", *(str(i + 1) for i in range(len(saved))))[0] == 0
    code, _out, err = run(tmp_path, "listen", "--port", "sim://air?count=7", "--dongle", "hex", "--count", "7")
    assert code == 0, err
    readings = stored(tmp_path)
    assert readings, "meters saved to the list are recorded when heard again"
    assert {r.meter.serial for r in readings} <= {  # type: ignore[attr-defined]
        m["header"]["id"] for m in map(json.loads, _out.splitlines())
    }
