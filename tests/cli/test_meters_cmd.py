"""``sonocli meters``: the tab Meter on the command line; refused changes leave device_handle.cfg untouched."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sonocli.cli.root import cli
from sonocli.config.device_handle import load_meter_list

DATA = Path(__file__).parent.parent / "data" / "config"
KEY = "0x82 0xB0 0x55 0x11 0x91 0xF5 0x1D 0x66 0xEF 0xCD 0xAB 0x89 0x67 0x45 0x23 0x01"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    shutil.copy(DATA / "device_handle.cfg", tmp_path / "app" / "device_handle.cfg")
    (tmp_path / "app" / "chip.ini").write_text("[CONFIG]\nMUC_METERDESCRIPTIONENABLEFLAGS=3\n")
    return tmp_path


def run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), "meters", *args])
    return result.exit_code, result.stdout, result.stderr


def cfg(root: Path) -> Path:
    return root / "app" / "device_handle.cfg"


def test_list_and_json(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOW_KEYS", "1")  # keys are masked unless SHOW_KEYS=1 (issue 4)
    code, out, _ = run(root, "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "# 4 meter(s)"
    assert lines[2].split("\t")[:8] == ["1", "M-Bus", "30101198", "DFS", "Heat (outlet)", "1", "3", "3"]
    assert lines[3].split("\t")[6] == "123"  # wM-Bus shows RSSI
    assert lines[1].split("\t")[10:] == ["Active", "State", "User label"]
    data = json.loads(run(root, "list", "--json")[1])
    assert data[1]["key"] == "82 B0 55 11 91 F5 1D 66 EF CD AB 89 67 45 23 01"
    assert data[0]["values"][1]["obis"] == "8-0:1.0.0*255"
    assert [(m["limited"], m["note"]) for m in data] == [(False, None)] * 4  # always present
    assert not (root / "ext").exists()  # showing the list creates no database


def test_limited_and_note_from_the_engine(root: Path) -> None:
    """The "*" state and the layout note the last readout left (engine.meter_statuses) in list and show."""
    from datetime import UTC, datetime

    from sonocli.engine.core import Engine

    engine = Engine(root)
    note = "DFS-30101198-01-04: record layout changed; values matched by DIF/VIF"
    engine.meter_state.set_status("DFS-30101198-01-04", limited=True, note=note, when=datetime.now(UTC))
    engine.close()
    code, out, _ = run(root, "list")
    assert code == 0
    rows = [line.split("\t") for line in out.splitlines()[2:]]
    assert [row[11] for row in rows] == ["*", "", "", ""]
    data = json.loads(run(root, "list", "--json")[1])
    assert (data[0]["limited"], data[0]["note"]) == (True, note) and data[1]["limited"] is False
    out = run(root, "show", "1")[1]
    assert "\nstate            * (value list limited" in out and f"\nnote             {note}\n" in out
    shown = json.loads(run(root, "show", "30101198", "--json")[1])
    assert (shown["limited"], shown["note"]) == (True, note)
    assert "state  " not in run(root, "show", "2")[1]


def test_keys_hidden_when_show_keys_is_0(root: Path) -> None:
    (root / "app" / "chip.ini").write_text("[CONFIG]\nSHOW_KEYS=0\n")
    assert json.loads(run(root, "list", "--json")[1])[1]["key"] == "********"


def test_show_uses_the_description_mode(root: Path) -> None:
    code, out, _ = run(root, "show", "DFS-30101198-01-04")
    assert code == 0
    assert "device id        DFS-30101198-01-04" in out
    assert "\n2\tVolume [2] <3>\t\t1e-3\tm³\t8-0:1.0.0*255\tno\tOG-1-Re\n" in out
    assert "\n3\tNone {max}\t" in out
    (root / "app" / "chip.ini").write_text("[CONFIG]\nMUC_METERDESCRIPTIONENABLEFLAGS=0\n")
    assert "\n2\t\t\t1e-3\t" in run(root, "show", "1")[1]


def test_add_meters_and_values_then_file_reads_back(root: Path) -> None:
    code, out, _ = run(
        root,
        "add",
        "--interface",
        "wM-Bus",
        "--serial",
        "11111111",
        "--manufacturer",
        "kam",
        "--medium",
        "Water",
        "--version",
        "0x1B",
        "--key",
        KEY,
        "--count",
        "2",
    )
    assert code == 0, out
    assert out == "added meter 5: KAM-11111111-1B-07 (wM-Bus)\nadded meter 6: KAM-11111112-1B-07 (wM-Bus)\n"
    code, out, err = run(
        root,
        "add",
        "--to",
        "3",
        "--value",
        "12.5",
        "--scale",
        "1e-3",
        "--unit",
        "kWh",
        "--obis",
        "1-0:2.8.0*255",
        "--user",
        "Hall 2",
        "--description",
        "Energy",
    )
    assert code == 0, err
    meters = load_meter_list(cfg(root)).meters
    assert len(meters) == 6 and meters[5].key == bytes.fromhex(KEY.replace("0x", "").replace(" ", ""))
    added = meters[2].values[1]
    assert (added.value, added.exponent, added.unit, added.obis, added.user) == (
        12.5,
        -3,
        "kWh",
        "1-0:2.8.0*255",
        "Hall 2",
    )
    # everything that was there before is unchanged, comments and unknown elements included
    assert '<vendorflag mode="x">7</vendorflag>' in cfg(root).read_text()
    assert "<!-- added by hand on site -->" in cfg(root).read_text()


def test_add_json(root: Path) -> None:
    code, out, _ = run(root, "add", "--interface", "DLDE", "--serial", "5", "--json")
    assert code == 0 and json.loads(out)[0]["device_id"] == "----00000005-00-00"


def test_edit_activate_deactivate_delete(root: Path) -> None:
    assert run(root, "edit", "1", "--user", "Keller", "--cycle", "60")[0] == 0
    assert run(root, "edit", "3/1", "--value", "300.5", "--obis", "1-0:1.8.1")[0] == 0
    assert run(root, "deactivate", "1")[0] == 0
    meters = load_meter_list(cfg(root)).meters
    assert (meters[0].user, meters[0].readout_cycle, meters[0].active) == ("Keller", 60, False)
    assert not any(v.active for v in meters[0].values)
    assert (meters[2].values[0].value, meters[2].values[0].obis) == (300.5, "1-0:1.8.1*255")
    assert run(root, "activate", "1/2")[0] == 0
    meters = load_meter_list(cfg(root)).meters
    assert meters[0].active and [v.active for v in meters[0].values] == [False, True, False]
    code, out, _ = run(root, "delete", "3/1", "4")
    assert code == 0 and out == "deleted SLV-00000001-00-02/1\ndeleted ----87654321-00-00\n"
    meters = load_meter_list(cfg(root)).meters
    assert len(meters) == 3 and meters[2].values == ()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "9"), "meter 9 does not exist; the list has 4 meter(s) (1..4)"),
        (("show", "DFS-99999999-01-04"), "meter 'DFS-99999999-01-04' does not exist"),
        (("delete", "1/1"), "deleting single values of an M-Bus meter is not allowed"),
        (("delete", "2", "7"), "meter 7 does not exist"),
        (("activate", "1/9"), "value '1/9' does not exist; meter 1 has 3 value(s)"),
        (("edit", "1", "--user", 'say "hi"'), "user label 'say \"hi\"': character '\"' is not allowed"),
        (("edit", "3/1", "--obis", "1-0:1.8.0*256"), "OBIS code '1-0:1.8.0*256': 256 is outside 0..255"),
        (("edit", "1", "--serial", "1"), "serial cannot be changed"),
        (("edit", "1/1", "--unit", "kWh"), "unit cannot be changed"),
        (("edit", "1"), "nothing to change"),
        (("add", "--to", "1", "--value", "1"), "values are added only to S0 and DLDE meters"),
        (("add", "--to", "3", "--count", "2"), "S0 values are added one at a time"),
        (("add", "--interface", "S0", "--count", "2"), "S0 impulse meters are added one at a time"),
        # one key parser for every --key: says what a key looks like (never Python's fromhex() message)
        (("add", "--interface", "M-Bus", "--key", "0x01 0x02"), "--key must be 32 hex digits (AES-128), got 4"),
        (("add", "--interface", "M-Bus", "--key", "0xZZ"), "--key '0xZZ' is not hexadecimal ('Z')"),
        (("edit", "1", "--key", "12345"), "--key must be 32 hex digits (AES-128), got 5 (hint: a key is 16 bytes"),
        (("add", "--interface", "M-Bus", "--medium", "Lava"), "--medium: medium 'Lava' is not a text of Table 16"),
        (("add", "--serial", "1"), "--interface is required"),
        (("add", "--to", "3", "--scale", "2e3"), "--scale: the scale must be a power of ten"),
        (("add", "--interface", "DLDE", "--user", "x<y"), "character '<' is not allowed"),
    ],
)
def test_bad_input_exit_2_file_untouched(root: Path, args: tuple[str, ...], message: str) -> None:
    before = cfg(root).read_bytes()
    code, _, err = run(root, *args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sonocli: error: ") and message in lines[0], err
    assert cfg(root).read_bytes() == before


def test_device_count_limit_from_chip_ini(root: Path) -> None:
    (root / "app" / "chip.ini").write_text("[CONFIG]\nMETER_MAXDEVICECOUNT=5\n")
    before = cfg(root).read_bytes()
    code, _, err = run(root, "add", "--interface", "DLDE", "--count", "2")
    assert code == 2 and "METER_MAXDEVICECOUNT allows 5" in err
    assert cfg(root).read_bytes() == before


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<root>\n<meter>\n<user>\xff</user></meter></root>", ":3: not UTF-8"),
        (b"<root>\n<meter>\n</root>", ":3: not well-formed XML"),
        (b'<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY a "aaaa">]><root>&a;</root>', ":2: DOCTYPE/ENTITY"),
    ],
)
def test_broken_file_is_one_line_with_file_and_line(root: Path, data: bytes, message: str) -> None:
    cfg(root).write_bytes(data)
    code, _, err = run(root, "add", "--interface", "DLDE")
    assert code == 2
    assert err.strip().splitlines() == [err.strip()] and f"{cfg(root)}{message}" in err
    assert cfg(root).read_bytes() == data


def test_real_process(root: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sonocli", "--root", str(root), "meters", "show", "42"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr == "sonocli: error: meter 42 does not exist; the list has 4 meter(s) (1..4)\n"


@pytest.mark.parametrize(
    ("flags", "mode"), [(0, 0), (1, 1), (2, 2), (3, 2), (4, 5), (5, 3), (7, 3), (8, 6), (9, 4), (16, 0)]
)
def test_description_flags_map_to_table_10_modes(flags: int, mode: int) -> None:
    from sonocli.cli.common import description_mode

    assert description_mode(flags) == mode


def test_show_with_dif_vif_flag_has_no_dangling_marker(root: Path) -> None:
    (root / "app" / "chip.ini").write_text("[CONFIG]\nMUC_METERDESCRIPTIONENABLEFLAGS=7\n")
    out = run(root, "show", "1")[1]
    assert "\n2\tVolume [2] <3>\t" in out and "\n1\tEnergy\t" in out


def test_value_edits_on_a_scanned_m_bus_meter(tmp_path: Path) -> None:
    """`scan --save` reads the meters, so M-Bus values are in the list and can be labelled and deactivated."""
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "scan", "--port", "sim://demo", "--save"])
    assert result.exit_code == 0, result.stderr
    meter = json.loads(run(tmp_path, "show", "1", "--json")[1])
    assert meter["interface"] == "M-Bus" and len(meter["values"]) >= 3
    code, out, err = run(tmp_path, "edit", "1/2", "--obis", "1-0:1.8.0", "--user", "Heat")
    assert code == 0, err
    assert out == "changed 1/2: obis, user\n"
    code, out, err = run(tmp_path, "edit", "1/1", "--description", "Volume")
    assert code == 0, err
    assert run(tmp_path, "deactivate", "1/3") == (0, "deactivated 1/3\n", "")
    values = json.loads(run(tmp_path, "show", "1", "--json")[1])["values"]
    assert (values[1]["obis"], values[1]["user"], values[1]["active"]) == ("1-0:1.8.0*255", "Heat", True)
    assert values[0]["description"] == "Volume"
    assert [v["active"] for v in values[:3]] == [True, True, False]
    assert json.loads(run(tmp_path, "show", "1", "--json")[1])["active"] is True  # the meter stays active
    assert run(tmp_path, "activate", "1/3") == (0, "activated 1/3\n", "")
    # the list shows the "*" state of the meters whose records exceeded METER_MAXVALUECOUNT at the scan
    listed = json.loads(run(tmp_path, "list", "--json")[1])
    limited = [m["device_id"] for m in listed if m["limited"]]
    assert limited and all(len(m["values"]) == 25 for m in listed if m["limited"])
    before = cfg(tmp_path).read_bytes()
    for args, message in (
        (("delete", "1/2"), "deleting single values of an M-Bus meter is not allowed"),
        (("edit", "1/2", "--unit", "kWh"), "unit cannot be changed"),
        (("edit", "1/99", "--user", "x"), "value '1/99' does not exist; meter 1 has"),
        (("edit", "1/2", "--user", "a;b"), "character ';' is not allowed"),
        (("deactivate", "1/0"), "value '1/0' does not exist"),
        (("edit", "99/1", "--obis", "1-0:1.8.0"), "meter 99 does not exist"),
    ):
        code, _, err = run(tmp_path, *args)
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and message in err, (args, err)
    assert cfg(tmp_path).read_bytes() == before


def test_show_gives_the_newest_values_known(tmp_path: Path) -> None:
    """After scan --save (a look, nothing stored) the values seen are shown; after a readout, the stored ones."""

    def sonocli(root: Path, *args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli, ["--root", str(root), *args])
        return result.exit_code, result.stdout, result.stderr

    assert sonocli(tmp_path, "scan", "--port", "sim://demo", "--mode", "primary", "--last", "4", "--save")[0] == 0
    code, out, err = sonocli(tmp_path, "meters", "show", "1", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["values_of"] is not None
    assert [v["latest"] for v in data["values"]] and all(v["latest"] is not None for v in data["values"])
    looked = data["values_of"]
    assert sonocli(tmp_path, "readout", "--port", "sim://demo", "--all")[0] == 0
    data = json.loads(sonocli(tmp_path, "meters", "show", "1", "--json")[1])
    assert data["values_of"] > looked
    code, text, _err = sonocli(tmp_path, "meters", "show", "1")
    assert "values of" in text
