"""``sonocli readout``: by address, by secondary address, --all from the list; partial and dead meters."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sonocli.cli.root import cli


def run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), *args])
    return result.exit_code, result.stdout, result.stderr


def test_the_readme_job_scan_save_then_readout_all(tmp_path: Path) -> None:
    root = tmp_path / "new"
    root.mkdir()  # a root must exist (only init creates one); an empty directory is a fresh root
    assert run(root, "scan", "--port", "sim://demo", "--save")[0] == 0
    code, out, err = run(root, "readout", "--port", "sim://demo", "--all", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert len(doc) == 12
    by_man = {item["meter"]["manufacturer"]: item for item in doc}
    kam = by_man["KAM"]
    assert kam["header"]["manufacturer"] == "KAM"
    energy = next(r for r in kam["records"] if r["description"] == "Energy")
    assert energy["value"] == 37351000.0 and energy["unit"] == "Wh"
    assert by_man["SON"]["telegrams"] == 2


def test_readout_by_address_and_by_id_prints_records_like_decode(tmp_path: Path) -> None:
    code, out, err = run(tmp_path, "readout", "--port", "sim://demo", "--address", "10")
    assert code == 0, err
    assert "EMH-00623702-00-02 (primary address 10)" in out
    assert "Energy\t4090\tWh\t8C 10 04" in out
    code, out, err = run(tmp_path, "readout", "--port", "sim://demo", "--id", "EMH-00623702-00-02", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["meter"]["address_mode"] == "secondary"


def test_partial_readout_goes_on_past_a_dead_meter(tmp_path: Path) -> None:
    assert run(tmp_path, "scan", "--port", "sim://demo", "--mode", "primary", "--last", "4", "--save")[0] == 0
    code, out, err = run(tmp_path, "readout", "--port", "sim://demo?silent=2", "--all", "--retries", "0", "--json")
    assert code == 3
    doc = json.loads(out)
    assert [("error" in item) for item in doc] == [False, True, False, False]
    assert "primary address 2: REQ_UD2 (telegram 1): no answer after 1 tries" in err or "no answer" in err
    assert "1 of 4 meters failed" in err


def test_dead_meter_exit_1_and_debug_prints_the_last_frames(tmp_path: Path) -> None:
    code, _out, err = run(tmp_path, "--debug", "readout", "--port", "sim://demo?stop_after=3:20", "--address", "3")
    assert code == 1
    assert "stopped after 20 bytes" in err
    assert "frame[-1]: RX 68" in err and "TX 10 7B 03 7E 16" in err


def test_bad_input(tmp_path: Path) -> None:
    code, _, err = run(tmp_path, "readout", "--port", "sim://demo")
    assert code == 2 and "exactly one of --address N, --id SECONDARY or --all" in err
    code, _, err = run(tmp_path, "readout", "--port", "sim://demo", "--id", "XYZ")
    assert code == 2 and "is not a secondary address" in err
    code, _, err = run(tmp_path, "readout", "--port", "sim://demo", "--all")
    assert code == 2 and "run 'sonocli scan --port URL --save' first" in err
