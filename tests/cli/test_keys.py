"""`sonocli keys import` and `keys check`: CSV import with per-line errors, masking, checks against the raw log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sonocli.cli.root import cli
from sonocli.config.device_handle import load_meter_list

SONTEX_KEY = "1AC8BD4C1421E45C4D11456AC0467A83"


def _run(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_import_creates_and_updates(tmp_path: Path) -> None:
    keys = tmp_path / "keys.csv"
    keys.write_text(f"id,key\n28335519,{SONTEX_KEY}\n# comment\n55667788 , 000102030405060708090A0B0C0D0E0F\n")
    code, out, err = _run(tmp_path, "keys", "import", str(keys), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert [r["action"] for r in result["imported"]] == ["created", "created"]
    assert result["imported"][0]["key"] == "1A" + "*" * 28 + "83"
    meters = {m.serial: m for m in load_meter_list(tmp_path / "app" / "device_handle.cfg").meters}
    assert meters["28335519"].key == bytes.fromhex(SONTEX_KEY)
    keys.write_text("28335519,00000000000000000000000000000001\n")
    code, out, _ = _run(tmp_path, "keys", "import", str(keys), "--json")
    assert json.loads(out)["imported"][0]["action"] == "updated"
    assert len(load_meter_list(tmp_path / "app" / "device_handle.cfg").meters) == 2


def test_import_reports_each_bad_line(tmp_path: Path) -> None:
    keys = tmp_path / "keys.csv"
    keys.write_text(f"28335519,{SONTEX_KEY}\n12345678,0102\nabc,{SONTEX_KEY}\n11111111,{'G' * 32}\n1,2,3\n")
    code, _, err = _run(tmp_path, "keys", "import", str(keys))
    assert code == 3  # partial: one good line imported
    lines = err.strip().splitlines()
    assert len(lines) == 4
    assert "keys.csv:2:" in lines[0] and "32 hex digits" in lines[0]
    assert "keys.csv:3:" in lines[1] and "8 hex/BCD digits" in lines[1]
    assert "not hexadecimal" in lines[2]
    assert "expected 'id,key'" in lines[3]
    keys.write_text("12345678,0102\n")
    code, _, _ = _run(tmp_path, "keys", "import", str(keys))
    assert code == 2


def test_import_missing_file(tmp_path: Path) -> None:
    code, _, err = _run(tmp_path, "keys", "import", str(tmp_path / "nope.csv"))
    assert code == 2 and "cannot read" in err


def test_check_against_raw_log(tmp_path: Path) -> None:
    assert _run(tmp_path, "init")[0] == 0
    assert _run(tmp_path, "config", "set", "WMBUS_RAWLOGENABLE", "1")[0] == 0
    code, _, err = _run(tmp_path, "listen", "--port", "sim://air?count=7", "--dongle", "im871a", "--count", "7",
                        "--save")
    assert code == 0, err
    keys = tmp_path / "keys.csv"
    keys.write_text(f"28335519,{SONTEX_KEY}\n55667788,{'11' * 16}\n99999999,{'22' * 16}\n")
    assert _run(tmp_path, "keys", "import", str(keys))[0] == 0
    code, out, _ = _run(tmp_path, "keys", "check", "--json")
    assert code == 1  # one key fails
    rows = {r["id"]: r for r in json.loads(out)}
    assert rows["28335519"]["status"] == "ok"
    assert rows["55667788"]["status"] == "wrong key" and "2F2F" in rows["55667788"]["detail"]
    assert rows["12345678"]["status"] == "missing" and "mode 7" in rows["12345678"]["detail"]
    assert rows["00010067"]["status"] == "not needed"
    assert rows["99999999"]["status"] == "unchecked"
    assert rows["28335519"]["key"].count("*") == 28
    code, out, _ = _run(tmp_path, "keys", "check", "--json", env={"SHOW_KEYS": "1"})
    assert {r["id"]: r for r in json.loads(out)}["28335519"]["key"] == SONTEX_KEY


def test_import_csv_edge_cases(tmp_path: Path) -> None:
    """BOM, comment before the header, ';' and quotes, spaces inside the key, repeated and conflicting ids."""
    keys = tmp_path / "keys.csv"
    keys.write_bytes(
        b"\xef\xbb\xbf# exported from the head-end\nID;Key\n"
        b' "12345678" ; "0102030405060708090A0B0C0D0E0F11" \n\n'
        b"12345678,000102030405060708090A0B0C0D0E0F\n"
        b"22222222,00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F # tail comment\n"
        b"33333333,000102030405060708090A0B0C0D0E0F\n33333333,000102030405060708090a0b0c0d0e0f\n"
        b"id,key\n"
    )
    code, out, err = _run(tmp_path, "keys", "import", str(keys), "--json")
    assert code == 2  # a meter given two different keys is bad input (issue 14); the good lines are imported
    result = json.loads(out)
    assert [(r["id"], r["action"]) for r in result["imported"]] == [("22222222", "created"), ("33333333", "created")]
    lines = err.strip().splitlines()
    assert lines[0] == (
        f"sonocli: error: {keys}:5: meter 12345678 already has a different key on line 3; neither is imported"
    )
    assert lines[1] == f"sonocli: error: {keys}:9: meter id 'id' must be 8 hex/BCD digits"
    assert len(lines) == 2
    meters = {m.serial: m for m in load_meter_list(tmp_path / "app" / "device_handle.cfg").meters}
    assert set(meters) == {"22222222", "33333333"}
    assert meters["22222222"].key == bytes(range(16))


def test_show_keys_rule_is_the_same_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """meters list/show, config show --meters and keys check mask keys unless SHOW_KEYS=1 (env); chip.ini
    SHOW_KEYS=0 masks them even then; chip.ini's default SHOW_KEYS=1 (written by init) does not unmask."""
    assert _run(tmp_path, "init")[0] == 0
    keys = tmp_path / "keys.csv"
    keys.write_text(f"28335519,{SONTEX_KEY}\n")
    assert _run(tmp_path, "keys", "import", str(keys))[0] == 0

    def shown() -> list[str]:
        out = [json.loads(_run(tmp_path, "meters", "list", "--json")[1])[0]["key"]]
        out.append(json.loads(_run(tmp_path, "meters", "show", "28335519", "--json")[1])["key"])
        text = _run(tmp_path, "meters", "show", "28335519")[1]
        out.append(next(line for line in text.splitlines() if line.startswith("key ")).split(None, 1)[1])
        out.append(json.loads(_run(tmp_path, "config", "show", "--meters", "--json")[1])["meters"][0]["key"])
        out.append(json.loads(_run(tmp_path, "keys", "check", "--json")[1])[0]["key"])
        out.append(json.loads(_run(tmp_path, "keys", "import", str(keys), "--json")[1])["imported"][0]["key"])
        return out

    monkeypatch.delenv("SHOW_KEYS", raising=False)
    masked = shown()
    assert not any(SONTEX_KEY[2:10] in k.replace(" ", "") for k in masked), masked
    monkeypatch.setenv("SHOW_KEYS", "1")
    assert all(k.replace(" ", "") == SONTEX_KEY for k in shown())
    assert _run(tmp_path, "config", "set", "SHOW_KEYS", "0")[0] == 0
    assert not any(SONTEX_KEY[2:10] in k.replace(" ", "") for k in shown())
