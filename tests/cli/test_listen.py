"""`sonocli listen` against the simulated radio: JSON lines, --save, chip.ini defaults, errors, a real TTY."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sonocli.cli.root import cli
from sonocli.engine.core import Engine
from tests.cli.pty_run import run_on_pty

AIR = ("--port", "sim://air?count=7", "--dongle", "hex", "--count", "7")
PLAIN = ("00010067", "58511882", "23000399")  # the sim://air meters that send unencrypted telegrams




def _listen(root: Path, *args: str) -> tuple[int, list[dict[str, object]], str]:
    result = CliRunner().invoke(cli, ["--root", str(root), "listen", *args])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.exit_code, lines, result.stderr


@pytest.mark.parametrize("dongle", ["im871a", "amb8465", "cul", "rtlwmbus", "hex"])
def test_every_dongle_through_sim_air(tmp_path: Path, dongle: str) -> None:
    code, lines, err = _listen(tmp_path, "--port", "sim://air?count=7", "--dongle", dongle, "--count", "7")
    assert code == 0, err
    assert len(lines) == 7
    ids = {line["header"]["id"] for line in lines}  # type: ignore[index]
    assert {"28335519", "00010067", "55667788"} <= ids
    assert all(line["kind"] == "wmbus" for line in lines)
    assert "heard 7 meters, 7 telegrams" in err


def test_save_then_keys_decrypt(tmp_path: Path) -> None:
    code, _, err = _listen(tmp_path, "--port", "sim://air?count=7", "--dongle", "im871a", "--duration", "5", "--save")
    assert code == 0, err
    meters = Engine(tmp_path).meter_list().meters
    assert len(meters) == 7 and all(m.interface.label == "wM-Bus" for m in meters)
    keys = tmp_path / "keys.csv"
    keys.write_text("28335519,1AC8BD4C1421E45C4D11456AC0467A83\n")
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "keys", "import", str(keys)])
    assert result.exit_code == 0, result.stderr
    code, lines, err = _listen(tmp_path, "--port", "sim://air?count=7", "--dongle", "im871a", "--count", "7")
    sontex = next(line for line in lines if line["header"]["id"] == "28335519")  # type: ignore[index]
    assert sontex["security"]["state"] == "decrypted"  # type: ignore[index]
    assert len(sontex["records"]) == 36  # type: ignore[arg-type]  # 19 records, a 17-element profile
    assert sontex["in_list"] is True


def test_defaults_from_chip_ini(tmp_path: Path) -> None:
    assert CliRunner().invoke(cli, ["--root", str(tmp_path), "init"]).exit_code == 0
    for name, value in (("WMBUS_PORT", "sim://air?count=3"), ("WMBUS_DONGLE", "cul"), ("WMBUS_MODE", "C1_OTHER_REQ")):
        result = CliRunner().invoke(cli, ["--root", str(tmp_path), "config", "set", name, value])
        assert result.exit_code == 0, result.stderr
    code, lines, err = _listen(tmp_path, "--count", "3")
    assert code == 0, err
    assert len(lines) == 3


def test_bad_input_lines_and_keeps_running(tmp_path: Path) -> None:
    code, lines, err = _listen(
        tmp_path, "--port", "sim://air?count=7&garbage=3&badcrc=5", "--dongle", "hex", "--duration", "10"
    )
    assert code == 0
    assert len(lines) == 6  # the 5th telegram has a broken CRC
    warnings = [line for line in err.splitlines() if line.startswith("sonocli: warning:")]
    assert any("CRC mismatch" in line for line in warnings)
    assert any("not a hex telegram" in line for line in warnings)


def test_dongle_that_does_not_answer(tmp_path: Path) -> None:
    code, _, err = _listen(tmp_path, "--port", "sim://air?mute=1", "--dongle", "im871a", "--count", "1")
    assert code == 1
    assert "no answer to the set-up command 'ping'" in err
    assert len(err.strip().splitlines()) == 1


def test_usage_errors(tmp_path: Path) -> None:
    code, _, err = _listen(tmp_path, "--dongle", "im871a")
    assert code == 2 and "no port" in err
    code, _, err = _listen(tmp_path, "--port", "sim://air", "--dongle", "nosuch")
    assert code == 2 and "allowed: amb8465, cul, hex, im871a, rtlwmbus" in err
    code, _, err = _listen(tmp_path, "--port", "sim://air", "--dongle", "cul", "--mode", "C1T1", "--count", "1")
    assert code == 2 and "not supported by the cul dongle" in err
    code, _, err = _listen(tmp_path, "--port", "sim://air?rate=x", "--dongle", "cul", "--count", "1")
    assert code == 2 and "rate" in err


def test_hex_lines_from_stdin(tmp_path: Path) -> None:
    text = "# capture\n2644333015010100021D72150101003330021D880400402F2F0E6E1001000000002F2F2F2F2F2F6E\nzz\n"
    result = CliRunner().invoke(
        cli, ["--root", str(tmp_path), "listen", "--port", "-", "--dongle", "hex"], input=text
    )
    assert result.exit_code == 0, result.stderr
    line = json.loads(result.stdout.splitlines()[0])
    assert line["records"][0]["value"] == 110
    assert "not a hex telegram" in result.stderr


def test_live_table_on_a_real_tty(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "160", "TERM": "xterm"}
    run = run_on_pty(tmp_path, ["listen", "--port", "sim://air?count=7", "--dongle", "im871a", "--count", "7"], env)
    assert run.returncode == 0, run.stderr
    assert "wireless M-Bus meters heard" in run.screen
    assert "28335519" in run.screen and "no key" in run.screen


def test_reader_going_away_ends_listen_quietly(tmp_path: Path) -> None:
    """`sonocli listen | head -1`: the closed pipe ends the loop like --count, no 'Broken pipe' error."""
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sonocli", "--root", str(tmp_path), "listen", "--port", "sim://air?count=400",
         "--dongle", "hex", "--count", "400"],
        stdout=write_end, stderr=subprocess.PIPE,
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        first = reader.readline()
    assert json.loads(first)["kind"] == "wmbus"
    _, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == 0, text
    assert "error" not in text and "Traceback" not in text
    assert "sonocli: heard" in text


def test_only_listed_ignores_meters_not_in_the_list(tmp_path: Path) -> None:
    """--only-listed is the guide's 'wM-Bus listen' off: unlisted meters are neither shown nor saved."""
    code, lines, err = _listen(tmp_path, "--port", "sim://air?count=7", "--dongle", "hex", "--count", "7", "--save")
    assert code == 0, err
    assert CliRunner().invoke(cli, ["--root", str(tmp_path), "meters", "delete", "28335519"]).exit_code == 0
    code, lines, err = _listen(
        tmp_path, "--port", "sim://air?count=7", "--dongle", "hex", "--duration", "5", "--only-listed", "--save"
    )
    assert code == 0, err
    ids = {line["header"]["id"] for line in lines}  # type: ignore[index]
    assert "28335519" not in ids and len(lines) == 6
    assert "1 from meters not in the list ignored" in err
    assert "28335519" not in {m.serial for m in Engine(tmp_path).meter_list().meters}
    assert Engine(tmp_path).heard_meters() == []  # nor in the temporary list


def test_second_interface_from_chip_ini(tmp_path: Path) -> None:
    assert CliRunner().invoke(cli, ["--root", str(tmp_path), "init"]).exit_code == 0
    for name, value in (("WMBUS2_PORT", "sim://air?count=3"), ("WMBUS2_DONGLE", "amb8465")):
        result = CliRunner().invoke(cli, ["--root", str(tmp_path), "config", "set", name, value])
        assert result.exit_code == 0, result.stderr
    code, _, err = _listen(tmp_path, "--count", "3")
    assert code == 2 and err.strip().startswith("sonocli: error: no port: give --port URL (or set WMBUS_PORT")
    code, lines, err = _listen(tmp_path, "--interface", "2", "--count", "3")
    assert code == 0, err
    assert len(lines) == 3


def test_chip_ini_r2_mode_is_named_not_silently_replaced(tmp_path: Path) -> None:
    assert CliRunner().invoke(cli, ["--root", str(tmp_path), "init"]).exit_code == 0
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "config", "set", "WMBUS_MODE", "R2_OTHER_REQ"])
    assert result.exit_code == 0, result.stderr
    code, lines, err = _listen(tmp_path, "--port", "sim://air?count=2", "--dongle", "im871a", "--count", "2")
    assert code == 0 and len(lines) == 2
    warning = "sonocli: warning: WMBUS_MODE=R2_OTHER_REQ: R2 is not supported by the receiver drivers; listening in T1"
    assert warning in err
    code, lines, err = _listen(tmp_path, "--port", "sim://air?count=2", "--dongle", "im871a", "--count", "2",
                               "--mode", "C1")
    assert code == 0 and "R2" not in err


def _sono(root: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--root", str(root), *args])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def _stored(root: Path) -> int:
    engine = Engine(root)
    try:
        return int(engine.store.count())
    finally:
        engine.close()


def test_new_meters_wait_for_the_engineer(tmp_path: Path) -> None:
    """Guide 5.1.2: listen --save adds new meters inactive; they get value entries on the next reception but
    nothing is stored (so nothing reported) until `meters activate`."""
    code, _, err = _listen(tmp_path, *AIR, "--save")
    assert code == 0, err
    assert "7 meters added (inactive: activate with 'sonocli meters activate ID'), 7 in total" in err
    cfg = (tmp_path / "app" / "device_handle.cfg").read_text()
    assert cfg.count("<active>0</active>") == 7 and "<active>1</active>" not in cfg
    assert Engine(tmp_path).heard_meters() == []  # saved meters leave the temporary list

    code, _, err = _listen(tmp_path, *AIR)
    assert code == 0, err
    assert _stored(tmp_path) == 0
    for serial in PLAIN:
        shown = json.loads(_sono(tmp_path, "meters", "show", serial, "--json"))
        assert shown["active"] is False and shown["values"], serial

    _sono(tmp_path, "meters", "activate", "00010067")
    code, _, err = _listen(tmp_path, *AIR)
    assert code == 0, err
    assert "1 readings stored" in err
    assert _stored(tmp_path) == 1
    rows = _sono(tmp_path, "export", "csv").splitlines()
    assert [row.split(";")[1] for row in rows[1:]] == ["LAS-00010067-0B-1E"]


def test_save_adds_to_the_list_as_it_is_at_the_end(tmp_path: Path) -> None:
    """--save must not write back the list loaded at start: value entries learned during the run stay."""
    assert _listen(tmp_path, *AIR, "--save")[0] == 0
    _sono(tmp_path, "meters", "delete", "28335519")
    code, _, err = _listen(tmp_path, *AIR, "--save")
    assert code == 0, err
    assert "1 meters added (inactive: activate with 'sonocli meters activate ID'), 7 in total" in err
    meters = {m.serial: m for m in Engine(tmp_path).meter_list().meters}
    assert len(meters) == 7 and not meters["28335519"].active
    assert all(meters[serial].values for serial in PLAIN)  # learned in this run, not lost by the save


def test_heard_meters_go_to_the_temporary_list(tmp_path: Path) -> None:
    code, _, err = _listen(tmp_path, *AIR)
    assert code == 0, err
    heard = {entry.id for entry in Engine(tmp_path).heard_meters()}
    assert {"28335519", "00010067", "55667788", *PLAIN} <= heard and len(heard) == 7
    assert not Engine(tmp_path).meter_list().meters  # heard, not listed


def test_wmbus_listen_off_ignores_new_meters(tmp_path: Path) -> None:
    """chip.ini WMBUS_LISTEN=0 (the guide's 'wM-Bus listen' off): unknown meters are not listed anywhere."""
    assert CliRunner().invoke(cli, ["--root", str(tmp_path), "init"]).exit_code == 0
    _sono(tmp_path, "config", "set", "WMBUS_LISTEN", "0")
    # --duration, not --count: ignored telegrams are not counted (the simulated air has only 7)
    code, lines, err = _listen(tmp_path, *AIR[:4], "--duration", "5", "--save")
    assert code == 0, err
    assert lines == []
    assert "7 from meters not in the list ignored" in err
    assert "0 meters added" in err
    assert not Engine(tmp_path).meter_list().meters
    assert Engine(tmp_path).heard_meters() == []
    _sono(tmp_path, "config", "set", "WMBUS_LISTEN", "1")
    code, lines, err = _listen(tmp_path, *AIR)
    assert code == 0, err
    assert len(lines) == 7 and len(Engine(tmp_path).heard_meters()) == 7
