"""``sonocli scan`` as inventory (issue 12, build 4 and its bad input): --save and --against report missing,
new and changed meters; --resume continues a scan interrupted by Ctrl-C or a kill; the summary is in --json
and in one INFO log line. Simulated segments (sim://, real clock where a scan must be interrupted)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from sonocli.cli.root import cli
from sonocli.config.device_handle import load_meter_list
from sonocli.config.layout import RootLayout
from tests.cli.test_scan_cli import _segment_file


def run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), *args])
    return result.exit_code, result.stdout, result.stderr


def run_process(root: Path, *args: str) -> tuple[int, str, str]:
    """A real sonocli process: its logging is configured by its own -v (in-process runs share one root
    logger, set up by whichever ran first)."""
    proc = subprocess.run([sys.executable, "-m", "sonocli", "--root", str(root), *args], capture_output=True,
                          text=True, timeout=120, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    assert run(root, "init")[0] == 0
    return root


def test_save_reports_listed_meters_missing_new_ones_and_changed_ones(tmp_path: Path) -> None:
    root = _root(tmp_path)
    code, _out, err = run(root, "scan", "--port", "sim://demo", "--mode", "primary", "--first", "1", "--last", "4",
                          "--save")
    assert code == 0, err
    listed = [m.device_id for m in load_meter_list(RootLayout(root).device_handle).meters]
    assert len(listed) == 4
    # the same installation a year later: meter 1 as it was, meter 2 swapped for a version 9, meters 3 and
    # 4 gone, one meter new
    port = _segment_file(tmp_path, [
        {"primary": 1, "id": "06855817"},
        {"primary": 2, "id": "66660205", "manufacturer": "LUG", "version": 9, "medium": 4},
        {"primary": 7, "id": "12345678", "manufacturer": "EMH"},
    ])  # fmt: skip
    code, out, err = run(root, "scan", "--port", port, "--mode", "secondary", "--save", "--json")
    assert code == 3, err  # expected meters did not answer
    doc = json.loads(out)
    assert doc["reference"] == "meter list"
    assert sorted(e["source"] for e in doc["missing"]) == sorted(listed[2:])
    assert doc["new"] == ["EMH-12345678-08-04"] and doc["added"] == ["EMH-12345678-08-04", "LUG-66660205-09-04"]
    assert doc["changed"] == [{"device_id": "LUG-66660205-09-04", "source": listed[1], "changes": ["version 07 -> 09"]}]
    assert doc["summary"] == {"found": 3, "missing": 2, "new": 1, "changed": 1, "unresolved": 0, "unreadable": 0,
                              "probes": doc["probes"], "resumed_probes": 0, "wire_seconds": doc["wire_seconds"]}
    assert "2 expected meter(s) did not answer" in err
    # the next scan compares with the list as --save left it: the new meter and the swapped one (a meter
    # of its own: another secondary address) are listed, the entry of the old version is missing now
    code, out, err = run(root, "scan", "--port", port, "--mode", "secondary", "--save")
    assert code == 3
    assert "against the meter list: 3 missing, 0 new, 0 changed" in out
    assert any(line.startswith("missing\t") and line.endswith(f"\t{listed[1]}\texpected, did not answer")
               for line in out.splitlines())
    assert any(line.startswith("missing\t") and listed[2] in line for line in out.splitlines())


def test_a_primary_scan_expects_only_the_listed_meters_of_its_range(tmp_path: Path) -> None:
    root = _root(tmp_path)
    run(root, "scan", "--port", "sim://demo", "--mode", "primary", "--first", "1", "--last", "6", "--save")
    code, out, err = run(root, "scan", "--port", "sim://demo", "--mode", "primary", "--first", "1", "--last", "3",
                         "--save", "--json")
    assert code == 0, err
    assert json.loads(out)["missing"] == [] and json.loads(out)["summary"]["missing"] == 0


def test_against_an_installation_list(tmp_path: Path) -> None:
    plant = tmp_path / "plant.csv"
    plant.write_text(
        "# staircase 2\n"
        "id,manufacturer,version,medium\n"
        "06855817,KAM,08,04   # flat 1\n"
        "66660205;LUG;09\n"  # expects version 9: the meter answers with 7
        "\n"
        "99999999,KAM\n"  # never installed
    )
    code, out, err = run(tmp_path, "scan", "--port", "sim://demo", "--mode", "primary", "--first", "1", "--last", "3",
                         "--against", str(plant), "--json")
    assert code == 3, err
    doc = json.loads(out)
    assert doc["reference"] == str(plant)
    assert doc["missing"] == [{"id": "99999999", "manufacturer": "KAM", "version": None, "medium": None,
                               "source": f"{plant}:6"}]
    assert doc["new"] == ["LSE-08021382-99-06"]
    assert doc["changed"] == [{"device_id": "LUG-66660205-07-04", "source": f"{plant}:4",
                               "changes": ["version 09 -> 07"]}]
    plant.write_text("06855817\n66660205\n08021382,LSE\n")
    code, out, err = run(tmp_path, "scan", "--port", "sim://demo", "--mode", "primary", "--first", "1", "--last", "3",
                         "--against", str(plant), "--json")
    assert code == 0, err
    assert json.loads(out)["summary"]["missing"] == 0 and json.loads(out)["new"] == []
    # a secondary scan with a mask expects only the listed meters inside it
    code, out, err = run(tmp_path, "scan", "--port", "sim://demo", "--mask", "0685FFFF", "--against", str(plant),
                         "--json")
    assert code == 0, err
    assert [m["serial"] for m in json.loads(out)["meters"]] == ["06855817"] and json.loads(out)["missing"] == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("06855817\n0685581Z\n", "plant.csv:2: id '0685581Z' is not a secondary ID (8 digits 0-9 or A-F)"),
        ("id,manufacturer\n06855817,Kamstrup\n", "plant.csv:2: manufacturer 'Kamstrup' is not three letters A-Z"),
        ("06855817,KAM,08,04,extra\n", "plant.csv:1: 5 fields, but the list has 4 columns"),
        ("06855817\n06855817\n", "plant.csv:2: meter 06855817 is listed twice (first on line 1)"),
        ("# only comments\n", "names no meter"),
    ],
)
def test_a_bad_installation_list_is_one_line_and_exit_2_before_any_probe(tmp_path: Path, text: str,
                                                                         message: str) -> None:
    plant = tmp_path / "plant.csv"
    plant.write_text(text)
    code, out, err = run(tmp_path, "scan", "--port", "sim://demo", "--against", str(plant))
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert out == ""


def test_resume_with_no_saved_scan_is_exit_2(tmp_path: Path) -> None:
    root = _root(tmp_path)
    code, _out, err = run(root, "scan", "--port", "sim://demo", "--resume")
    assert code == 2
    assert "no interrupted scan to resume" in err and err.count("\n") == 1
    # a scan that completes leaves nothing to resume either
    assert run(root, "scan", "--port", "sim://demo", "--mode", "primary", "--last", "3")[0] == 0
    assert run(root, "scan", "--port", "sim://demo", "--mode", "primary", "--last", "3", "--resume")[0] == 2


def _slow_segment(tmp_path: Path) -> str:
    """Three meters on a real-time segment at 9600 baud: a secondary scan of 16 probes, about 2.5 s."""
    path = _segment_file(tmp_path, [{"primary": 1, "id": "11111111"}, {"primary": 2, "id": "22222222"},
                                    {"primary": 3, "id": "3333ABCD"}])
    return f"{path}?clock=real&baud=9600"


def _start(root: Path, port: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sonocli", "--root", str(root), "scan", "--port", port, "--baud", "9600",
         "--retries", "0", "--mode", "secondary"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _wait_for_steps(state: Path, proc: subprocess.Popen[bytes], steps: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            got = len(json.loads(state.read_text())["steps"])
        except (OSError, ValueError):  # not written yet (it is replaced whole, never half-written)
            got = 0
        if got >= steps:
            return got
        time.sleep(0.02)
    raise AssertionError(f"the scan saved no {steps} steps in {state}")


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_scan_resumes_where_it_stopped(tmp_path: Path, how: signal.Signals) -> None:
    root = _root(tmp_path)
    port = _slow_segment(tmp_path)
    state = RootLayout(root).ext / "scan_state.json"
    proc = _start(root, port)
    _wait_for_steps(state, proc, 4)
    proc.send_signal(how)
    _out, err = proc.communicate(timeout=30)
    saved = len(json.loads(state.read_text())["steps"])
    assert saved >= 4
    if how is signal.SIGINT:
        assert proc.returncode == 130
        assert b"scan interrupted; its progress is saved in" in err and b"--resume" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    # another mode or another port is another scan: refused, and the state stays for the right one
    code, _out, err2 = run(root, "scan", "--port", port, "--baud", "9600", "--retries", "0", "--mode", "primary",
                           "--resume")
    assert code == 2 and "the saved scan is SECONDARYSCAN on " in err2 and "not PRIMARYSCAN" in err2
    code, _out, err2 = run(root, "scan", "--port", "sim://demo", "--mode", "secondary", "--resume")
    assert code == 2 and "cannot be resumed" in err2 and state.exists()
    code, out, err2 = run_process(root, "-v", "scan", "--port", port, "--baud", "9600", "--retries", "0", "--mode",
                                  "secondary", "--resume", "--json")
    assert code == 0, err2
    doc = json.loads(out)
    assert sorted(m["serial"] for m in doc["meters"]) == ["11111111", "22222222", "3333ABCD"]
    assert doc["resumed_probes"] == saved and doc["probes"] == 16 and doc["unresolved"] == []
    assert f"{saved} of them from the saved state" in err2
    assert not state.exists()  # done: nothing left to resume


def test_the_summary_is_one_info_log_line(tmp_path: Path) -> None:
    code, out, err = run_process(tmp_path, "-v", "scan", "--port", "sim://demo", "--mode", "secondary", "--json")
    assert code == 0, err
    lines = [line for line in err.splitlines() if "sonocli.engine.inventory" in line]
    doc = json.loads(out)
    assert lines == [
        f"sonocli: INFO: sonocli.engine.inventory: scan SECONDARYSCAN on sim://demo: 12 found, 0 missing, 0 new, "
        f"0 changed, 0 unresolved, 0 unreadable, {doc['probes']} probes, {doc['wire_seconds']:.1f} s on the wire"
    ]
    assert doc["summary"]["found"] == 12 and doc["summary"]["probes"] == doc["probes"]


def test_a_meter_that_answers_its_select_but_not_its_readout_is_exit_3_and_named(tmp_path: Path) -> None:
    # its first telegram says more follow; the second one breaks off in a record: the scan finds the meter,
    # its first readout fails
    port = _segment_file(tmp_path, [
        {"primary": 1, "id": "06855817"},
        {"primary": 2, "id": "11111111",
         "telegrams": ["72" + "11111111" + "2D2C0804110000000413010000001F",  # ID: set by "id"
                       "72" + "11111111" + "2D2C0804120000000C1312"]},
    ])  # fmt: skip
    root = _root(tmp_path)
    code, out, err = run(root, "scan", "--port", port, "--save", "--json")
    assert code == 3
    doc = json.loads(out)
    assert len(doc["meters"]) == 2 and len(doc["added"]) == 2
    assert [u["device_id"] for u in doc["unreadable"]] == ["KAM-11111111-08-04"]
    assert "sonocli: warning: KAM-11111111-08-04 answered its selection but not its readout: " in err
    # a meter that acknowledges its selection but breaks off every answer: named by its mask
    port = _segment_file(tmp_path, [{"primary": 1, "id": "06855817"}, {"primary": 2, "id": "11111111",
                                                                       "stop_after": 20}])
    code, out, err = run(root, "scan", "--port", port)
    assert code == 3
    assert "sonocli: warning: mask 1FFFFFFFFFFFFFFF: a meter acknowledged the selection but sent no address" in err


def test_scan_json_keeps_its_keys(tmp_path: Path) -> None:
    code, out, err = run(tmp_path, "scan", "--port", "sim://demo", "--mode", "primary", "--last", "2", "--json")
    assert code == 0, err
    doc = json.loads(out)
    old = {"mode", "port", "probes", "wire_seconds", "meters", "unresolved", "added", "limit_reached", "diagnosis",
           "values"}
    assert old <= set(doc) and {"summary", "missing", "new", "changed", "unreadable", "reference"} <= set(doc)
    assert doc["reference"] is None and doc["missing"] == [] and doc["new"] == []

