"""``sonocli scan``: every mode on the simulator, --save into a fresh root, bad input as one line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from sonocli.cli.root import cli
from sonocli.config.device_handle import load_meter_list
from sonocli.config.layout import RootLayout
from tests.cli.pty_run import run_on_pty


def run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("mode", ["primary", "secondary", "secondary-reverse"])
def test_every_mode_finds_the_twelve_demo_meters(tmp_path: Path, mode: str) -> None:
    code, out, err = run(tmp_path, "scan", "--port", "sim://demo", "--mode", mode, "--last", "15", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert len(doc["meters"]) == 12 and doc["probes"] > 0 and doc["wire_seconds"] > 0
    assert {m["address_mode"] for m in doc["meters"]} == {"primary" if mode == "primary" else "secondary"}


def test_save_into_a_fresh_root_is_additive_and_keeps_the_first_addressing_mode(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()  # a root must exist (only init creates one); an empty directory is a fresh root
    code, out, err = run(
        root, "scan", "--port", "sim://demo", "--mode", "primary", "--first", "1", "--last", "3", "--save"
    )
    assert code == 0, err
    assert "added" in out
    code, out, err = run(root, "scan", "--port", "sim://demo", "--mode", "secondary", "--save", "--json")
    assert code == 0, err
    assert len(json.loads(out)["added"]) == 9
    meters = load_meter_list(RootLayout(root).device_handle).meters
    assert len(meters) == 12
    modes = {m.serial: (m.address_mode.name, m.primary_address) for m in meters}
    assert sorted(v for v in modes.values() if v[0] == "PRIMARY") == [("PRIMARY", 1), ("PRIMARY", 2), ("PRIMARY", 3)]


def test_alloc_mode_and_port_from_chip_ini(tmp_path: Path) -> None:
    run(tmp_path, "init")
    assert run(tmp_path, "config", "set", "MBUS_PORT", "sim://demo")[0] == 0
    code, out, err = run(tmp_path, "scan", "--mode", "secondary-alloc", "--json")
    assert code == 0, err
    assert sorted(m["primary_address"] for m in json.loads(out)["meters"]) == list(range(1, 13))


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--port", "/dev/ttyNOSUCH"], 1, "does not exist (hint: check the port name"),
        (["--port", "sim://demo", "--baud", "1234"], 2, "1234"),
        (["--port", "sim://demo", "--mask", "12G4"], 2, "MBUS_SECMASKSERIAL='12G4': not a mask; allowed: at most 8"),
        (["--port", "sim://demo", "--mask", "123456789"], 2, "MBUS_SECMASKSERIAL='123456789': more than 8 characters"),
        (["--port", "sim:///no/such/segment.toml"], 2, "cannot read segment file"),
        ([], 2, "no port given"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], code: int, text: str) -> None:
    got, _out, err = run(tmp_path, "scan", *args)
    assert got == code
    assert text in err
    assert "Traceback" not in err


def test_alloc_after_a_primary_scan_keeps_the_listed_addresses(tmp_path: Path) -> None:
    run(tmp_path, "scan", "--port", "sim://demo", "--mode", "primary", "--first", "1", "--last", "3", "--save")
    listed = {m.serial: m.primary_address for m in load_meter_list(RootLayout(tmp_path).device_handle).meters}
    code, out, err = run(tmp_path, "scan", "--port", "sim://demo", "--mode", "secondary-alloc", "--save", "--json")
    assert code == 0, err
    doc = json.loads(out)
    got = {m["serial"]: m["primary_address"] for m in doc["meters"]}
    assert {serial: got[serial] for serial in listed} == listed
    others = [a for serial, a in got.items() if serial not in listed]
    assert len(others) == 9 and len(set(others)) == 9 and not set(others) & set(listed.values())
    assert len(doc["added"]) == 9


def _scan_process(root: Path, stderr: int) -> subprocess.Popen[bytes]:
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "sonocli", "--root", str(root), "scan", "--port", "sim://demo", "--mode", "secondary"],
        stdout=subprocess.PIPE,
        stderr=stderr,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )


def test_progress_bar_on_a_tty_only(tmp_path: Path) -> None:
    run = run_on_pty(tmp_path, ["scan", "--port", "sim://demo", "--mode", "secondary"],
                     {**os.environ, "COLUMNS": "120", "TERM": "xterm"}, stdin_on_pty=False, stderr_on_pty=True)
    tty_err = run.screen
    assert run.returncode == 0
    assert "secondary scan" in tty_err and "found" in tty_err
    piped = _scan_process(tmp_path, subprocess.PIPE)
    out, err = piped.communicate(timeout=60)
    assert piped.returncode == 0
    assert err == b""  # nothing but the table, and that on stdout
    assert b"12 meters" in out


def test_a_full_meter_list_stops_the_scan_and_says_so(tmp_path: Path) -> None:
    run(tmp_path, "init")
    assert run(tmp_path, "config", "set", "METER_MAXDEVICECOUNT", "5")[0] == 0
    code, out, err = run(tmp_path, "scan", "--port", "sim://demo", "--save", "--json")
    assert code == 0, err
    assert len(json.loads(out)["added"]) == 5 and json.loads(out)["limit_reached"]
    code, out, err = run(tmp_path, "scan", "--port", "sim://demo", "--mode", "primary", "--last", "15", "--save")
    assert code == 0, err
    assert "not added (list full: METER_MAXDEVICECOUNT)" in out
    assert "stopped at METER_MAXDEVICECOUNT" in err
    assert len(load_meter_list(RootLayout(tmp_path).device_handle).meters) == 5


def test_a_wrong_baud_rate_finds_nothing_and_says_what_to_check(tmp_path: Path) -> None:
    code, out, err = run(tmp_path, "scan", "--port", "sim://demo?baud=9600", "--mode", "primary", "--last", "3")
    assert code == 0
    assert "0 meters" in out
    assert "no meter answered at 2400 baud; check the wiring and the baud rate (--baud" in err
    code, out, err = run(tmp_path, "scan", "--port", "sim://demo?baud=9600", "--baud", "9600", "--last", "3")
    assert code == 0 and "no meter answered" not in err


def test_scan_save_records_the_value_entries_and_readout_is_indexed_to_them(tmp_path: Path) -> None:
    """One engine path: scan --save adds the meters and reads each once (value entries with description
    and unit, guide Table 26); a second scan adds nothing and keeps them; readout --all stores readings whose
    records carry the list positions of those entries."""
    from sonocli.store.readings import ReadingStore

    root = tmp_path / "fresh"
    root.mkdir()  # a root must exist (only init creates one); an empty directory is a fresh root
    code, out, err = run(root, "scan", "--port", "sim://demo", "--save", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert len(doc["added"]) == 12
    assert set(doc["values"]) == set(doc["added"]) and all(n > 0 for n in doc["values"].values())
    code, out, err = run(root, "meters", "show", "1", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["values"] and doc["values"][first["device_id"]] == len(first["values"])
    assert all(v["description"] and v["unit"] for v in first["values"])

    code, out, err = run(root, "scan", "--port", "sim://demo", "--save", "--json")
    assert code == 0, err
    assert json.loads(out)["added"] == [] and json.loads(out)["values"] == {}
    code, out, err = run(root, "meters", "show", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["values"] == first["values"]

    entries = {m.device_id: m.values for m in load_meter_list(RootLayout(root).device_handle).meters}
    db = RootLayout(root).database
    store = ReadingStore(db)
    try:
        before = len(list(store.iter_readings()))
    finally:
        store.close()
    code, out, err = run(root, "readout", "--port", "sim://demo", "--all", "--json")
    assert code == 0, err
    printed = {item["meter"]["device_id"]: item for item in json.loads(out)}
    assert "value list limited by maxvaluecount/METER_MAXVALUECOUNT for 2 meter(s)" in err
    assert {d for d, item in printed.items() if item["limited"]} == {"KAM-06855817-08-04", "LUG-66660205-07-04"}
    store = ReadingStore(db)
    try:
        readings = list(store.iter_readings())[before:]
    finally:
        store.close()
    assert len(readings) == 12
    for reading in readings:
        configs = entries[reading.meter.device_id]
        listed = [v for v in reading.values if v.index >= 0]
        assert listed and len(listed) <= len(configs)
        for value in listed:  # each record sits at the position of the entry it matches
            config = configs[value.index]
            assert (config.description, config.storagenum, config.tariff) == (
                value.description, value.storage, value.tariff)
        shown = [r["index"] for r in printed[reading.meter.device_id]["records"]]
        assert shown == [v.index for v in reading.values]  # what is printed is what was recorded


def _segment_file(tmp_path: Path, meters: list[dict[str, object]]) -> str:
    from sonocli.codecs import mbus_link as L

    head = bytes.fromhex("00000000") + bytes.fromhex("2D2C0804") + bytes((0x11, 0, 0, 0))
    frame = L.encode(L.LongFrame(0x08, 1, 0x72, head + bytes.fromhex("041301000000"))).hex()
    lines = []
    for entry in meters:
        lines.append("[[meter]]")
        lines.append(f'frame = "{frame}"')
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in entry.items())
    path = tmp_path / "segment.toml"
    path.write_text("\n".join(lines) + "\n")
    return f"sim://{path}"


def test_an_unresolved_collision_exits_3_and_says_where(tmp_path: Path) -> None:
    port = _segment_file(tmp_path, [
        {"primary": 1, "id": "22222222", "delay_bits": 20}, {"primary": 2, "id": "22222222", "delay_bits": 90},
        {"primary": 3, "id": "1234ABCD"},
    ])  # fmt: skip
    code, out, err = run(tmp_path, "scan", "--port", port, "--mode", "secondary")
    assert code == 3
    assert "unresolved collision at 222222222C2D0804" in err and "1 meters" in out
    code, out, _err = run(tmp_path, "scan", "--port", port, "--mode", "secondary", "--json")
    assert code == 3
    doc = json.loads(out)
    assert doc["unresolved"] == ["222222222C2D0804"] and [m["serial"] for m in doc["meters"]] == ["1234ABCD"]


def test_a_hex_id_found_by_scan_is_selectable_by_readout_id(tmp_path: Path) -> None:
    port = _segment_file(tmp_path, [{"primary": 1, "id": "1234ABCD"}, {"primary": 2, "id": "1234ABCE"}])
    code, out, err = run(tmp_path, "scan", "--port", port, "--json")
    assert code == 0, err
    assert {m["serial"] for m in json.loads(out)["meters"]} == {"1234ABCD", "1234ABCE"}
    code, out, err = run(tmp_path, "readout", "--port", port, "--id", "1234ABCE", "--json")
    assert code == 0, err
    assert "1234ABCE" in out and "1234ABCD" not in out


def test_two_meters_in_step_on_one_primary_address_are_reported_not_listed(tmp_path: Path) -> None:
    port = _segment_file(tmp_path, [
        {"primary": 5, "id": "87654321", "delay_bits": 30}, {"primary": 5, "id": "87654322", "delay_bits": 30},
    ])  # fmt: skip
    code, out, err = run(tmp_path, "scan", "--port", port, "--mode", "primary", "--first", "4", "--last", "6")
    assert code == 3
    assert "address 5 answers for more than one meter" in err and "87654320" not in out
    code, out, err = run(tmp_path, "scan", "--port", port, "--mode", "secondary", "--json")
    assert code == 0, err
    assert sorted(m["serial"] for m in json.loads(out)["meters"]) == ["87654321", "87654322"]


def test_a_meter_answering_every_address_gets_a_hint(tmp_path: Path) -> None:
    port = _segment_file(tmp_path, [{"primary": 1, "id": "10000001", "answers_all": True, "delay_bits": 40},
                                    {"primary": 9, "id": "90000009", "delay_bits": 200}])
    code, _out, err = run(tmp_path, "scan", "--port", port, "--mode", "primary", "--last", "20")
    assert code == 3
    assert "sonocli: warning: " in err and "a meter answering every address" in err and "--baud" in err


def test_a_short_mask_is_padded(tmp_path: Path) -> None:
    port = _segment_file(tmp_path, [{"primary": 1, "id": "00000841"}, {"primary": 2, "id": "10000842"}])
    code, out, err = run(tmp_path, "scan", "--port", port, "--mask", "84F", "--json")
    assert code == 0, err
    assert [m["serial"] for m in json.loads(out)["meters"]] == ["00000841"]
