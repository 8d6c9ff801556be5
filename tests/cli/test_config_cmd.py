"""``sonocli config``: show, get, set, check — and bad input leaves the file untouched."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sonocli.cli.root import cli
from sonocli.config.chipini_schema import PARAMETERS

DATA = Path(__file__).parent.parent / "data" / "config"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    shutil.copy(DATA / "chip.ini", tmp_path / "app" / "chip.ini")
    return tmp_path


def run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), "config", *args])
    return result.exit_code, result.stdout, result.stderr


def test_show_lists_every_parameter_by_tab(root: Path) -> None:
    code, out, err = run(root, "show")
    assert code == 0
    for param in PARAMETERS:
        assert f"\n{param.name}\t" in out
    assert "# Tab General" in out and "# Tab Server" in out and "# Unknown keys (kept)" in out
    assert "NAME\tKeller-Nord\t*\t" in out
    assert "FTP_PASS\t********" in out  # secrets masked unless --secrets
    assert "unknown parameter RTOS_EXTRA_KEY='keep me' kept" in err


def test_show_tab_json(root: Path) -> None:
    code, out, _ = run(root, "show", "--tab", "server", "--json")
    assert code == 0
    data = json.loads(out)
    names = {p["name"] for p in data["parameters"]}
    assert names == {p.name for p in PARAMETERS if p.tab == "server"}
    ftp = next(p for p in data["parameters"] if p["name"] == "FTP_ENABLE")
    assert ftp["value"] is True and ftp["line"] == 23 and ftp["allowed"] == "0 or 1"
    assert next(p for p in data["parameters"] if p["name"] == "FTP_PASS")["value"] == "********"
    assert {u["name"] for u in data["unknown"]} == {"STDIN", "STDOUT", "RTOS_EXTRA_KEY"}


def test_get_and_set(root: Path) -> None:
    assert run(root, "get", "REPORT_TIME")[1] == "60\n"
    assert run(root, "get", "METER_DELAY")[1] == "0\n"  # default
    code, out, _ = run(root, "set", "report_time", "15")
    assert (code, out) == (0, "REPORT_TIME=15 (was 60)\n")
    assert json.loads(run(root, "get", "REPORT_TIME", "--json")[1])["value"] == 15
    text = (root / "app" / "chip.ini").read_text()
    assert "# readout every 15 minutes, report hourly\nREPORT_TIME=15\n" in text
    assert "RTOS_EXTRA_KEY=keep me" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set", "METER_TIME", "5"), "METER_TIME='5': out of range; allowed: 10..4294967295"),
        (("set", "MBUS_BAUDRATE", "2401"), "MBUS_BAUDRATE='2401': not one of the choices"),
        (("set", "METER_TIMEX", "60"), "unknown parameter 'METER_TIMEX' (did you mean METER_TIME?)"),
        (("get", "NOPE"), "unknown parameter 'NOPE'"),
    ],
)
def test_bad_input_exit_2_file_untouched(root: Path, args: tuple[str, ...], message: str) -> None:
    before = (root / "app" / "chip.ini").read_bytes()
    code, _, err = run(root, *args)
    assert code == 2
    errors = [line for line in err.splitlines() if "warning" not in line]
    assert len(errors) == 1 and errors[0].startswith(f"sonocli: error: {message}")
    assert (root / "app" / "chip.ini").read_bytes() == before


def test_typo_in_file_refuses_set_with_file_and_line(root: Path) -> None:
    path = root / "app" / "chip.ini"
    path.write_text(path.read_text().replace("MBUS_BAUDRATE=2400", "MBUS_BAUDRATE=24OO"))
    before = path.read_bytes()
    code, _, err = run(root, "set", "METER_TIME", "60")
    assert code == 2
    assert f"sonocli: error: {path}:20: MBUS_BAUDRATE='24OO': not one of the choices" in err
    assert path.read_bytes() == before


def test_check_reports_all_errors_with_lines(root: Path, tmp_path: Path) -> None:
    bad = tmp_path / "other.ini"
    bad.write_text("[CONFIG]\nMETER_TIME=1\nDHCP=3\nMETER_TIMEE=2\n")
    code, _, err = run(root, "check", str(bad))
    assert code == 2
    assert f"{bad}:2: METER_TIME='1': out of range; allowed: 10..4294967295" in err
    assert f"{bad}:3: DHCP='3'" in err
    assert f"{bad}:4: warning: unknown parameter METER_TIMEE='2' kept (did you mean METER_TIME?)" in err
    code, out, _ = run(root, "check", str(bad), "--json")
    data = json.loads(out)
    assert code == 2 and data["ok"] is False and [e["line"] for e in data["errors"]] == [2, 3]
    code, out, err = run(root, "check")
    # 3 unknown keys, and 3 parameters set away from their default that have no effect in sonocli
    assert code == 0 and out.endswith(": ok (6 warning(s))\n")
    assert ":9: warning: NAME=Keller-Nord has no effect in sonocli: the device's name for CHIPtool" in err
    assert ":3: warning: ADDRESS=192.168.10.20 has no effect in sonocli: a network setting of the device" in err


def test_check_missing_file_is_exit_2(root: Path) -> None:
    assert run(root, "check", str(root / "nope.ini"))[0] == 2


def test_real_process_error_is_one_line(root: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sonocli", "--root", str(root), "config", "set", "DHCP", "yes"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        line for line in done.stderr.strip().splitlines() if "warning" in line
    ] + ["sonocli: error: DHCP='yes': not a whole number; allowed: 0 or 1"]


def test_print_page_with_meters(root: Path) -> None:
    shutil.copy(DATA / "device_handle.cfg", root / "app" / "device_handle.cfg")
    code, out, _ = run(root, "show", "--meters")
    assert code == 0 and "# Meter list: 4 meter(s)\n" in out
    assert "\n1\tM-Bus\t30101198\tDFS\tHeat (outlet)\t" in out
    data = json.loads(run(root, "show", "--meters", "--json")[1])
    assert [m["device_id"] for m in data["meters"]][:2] == ["DFS-30101198-01-04", "KAM-12345678-1B-07"]
    assert json.loads(run(root, "show", "--json")[1])["meters"] is None


def test_check_a_meter_list(root: Path, tmp_path: Path) -> None:
    code, out, _ = run(root, "check", str(DATA / "device_handle.cfg"))
    assert code == 0 and out.endswith("device_handle.cfg: ok (0 warning(s))\n")
    bad = tmp_path / "device_handle.cfg"
    bad.write_bytes(b"<root>\n<meter>\n<interface>M-Bus</interface>\n<medium>Lava</medium></meter></root>")
    code, _, err = run(root, "check", str(bad))
    assert code == 2 and f"{bad}:4: <medium>Lava</medium>: medium 'Lava' is not a text of Table 16" in err


def test_parallel_sets_all_land(root: Path) -> None:
    """`config set` is a locked read-modify-write of the file as it is now: 8 at once lose nothing."""
    wanted = {"METER_TIME": "120", "REPORT_TIME": "30", "METER_DELAY": "5", "REPORT_DELAY": "7",
              "MBUS_MAXRETRY": "2", "NAME": "Parallel", "MBUS_BAUDRATE": "9600", "REPORT_SIZELIMIT": "100000"}
    procs = [subprocess.Popen([sys.executable, "-m", "sonocli", "--root", str(root), "config", "set", k, v],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k, v in wanted.items()]
    for proc in procs:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    values = {p["name"]: p["value"] for p in json.loads(run(root, "show", "--json")[1])["parameters"]}
    assert {k: str(values[k]) for k in wanted} == wanted
    assert "RTOS_EXTRA_KEY=keep me" in (root / "app" / "chip.ini").read_text()


def test_parameters_without_effect_are_marked_by_show_set_and_check(tmp_path: Path) -> None:
    """Table 25 parameters sonocli keeps but does not act on: show says why, set warns, check warns when the
    file sets one away from its default; the chip.ini of ``sonocli init`` checks without such warnings."""
    assert CliRunner().invoke(cli, ["--root", str(tmp_path), "init"]).exit_code == 0
    code, out, _ = run(tmp_path, "check")
    assert code == 0 and "no effect" not in out
    marked = [p for p in PARAMETERS if not p.works]
    assert marked and all(p.no_effect for p in marked)

    code, out, _ = run(tmp_path, "show")
    rows = {line.split("\t")[0]: line for line in out.splitlines() if "\t" in line}
    for p in PARAMETERS:
        assert ("[no effect in sonocli: " in rows[p.name]) is (not p.works), p.name
    assert rows["SNTP_IP"].endswith("[no effect in sonocli: the device's time service; the operating system keeps "
                                    "this computer's clock (NTP)]")
    data = json.loads(run(tmp_path, "show", "--json")[1])
    by_name = {p["name"]: p for p in data["parameters"]}
    assert by_name["DHCP"]["no_effect"].startswith("a network setting of the device")
    assert by_name["MBUS_RAWLOGENABLE"]["no_effect"] is None

    code, out, err = run(tmp_path, "set", "DHCP", "1")
    assert (code, out) == (0, "DHCP=1 (was 0)\n")
    assert err.splitlines() == [
        "sonocli: warning: DHCP has no effect in sonocli: a network setting of the device; the operating system "
        "configures this computer's network"
    ]
    assert run(tmp_path, "set", "MBUS_RAWLOGENABLE", "1")[2] == ""  # a parameter that works: no warning
    code, out, err = run(tmp_path, "check")
    assert code == 0 and out.endswith(": ok (1 warning(s))\n")
    assert "warning: DHCP=1 has no effect in sonocli" in err
    data = json.loads(run(tmp_path, "check", "--json")[1])
    assert data["ok"] is True and [w["message"].split(" has")[0] for w in data["warnings"]] == ["DHCP=1"]
