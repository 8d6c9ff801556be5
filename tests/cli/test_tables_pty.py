"""Tables that fit: sonocli processes on a real pseudo-terminal, 80 and 120 columns wide.

Every row is one line (no cell folds onto a continuation line, no line is wider than the terminal), ids,
numbers, timestamps and hex are whole, the units are the terminal's (``h``, ``d``, ``°C``, blank for none,
``bin`` for flags, exact ``kWh``), and piped output is still the TSV with the guide's units and exact values.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from sonocli.codecs import mbus_link
from tests.cli.pty_run import run_on_pty

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def _frame() -> str:
    """A Kamstrup-style RSP_UD with a 12-digit register and every unit the terminal renames."""
    head = bytes.fromhex("17586806 2D2C 08 04 11 00 0000")  # KAM-06685817-08-04, access 0x11, status 0
    records = bytes.fromhex(
        "0E 03 12 90 78 56 34 12"  # 12-digit BCD, Wh: 123456789012 Wh (no exact kWh: stays Wh, whole)
        " 04 06 E7 91 00 00"  # 37351 × 10^3 Wh = 37351000 Wh -> 37351 kWh
        " 02 59 B9 27"  # flow temperature 101.69 °C
        " 04 22 D9 03 00 00"  # on-time 985 h
        " 02 27 FA 01"  # operating time 506 d
        " 01 FD 17 04"  # error flags (Bin)
        " 0C 78 17 58 85 06"  # fabrication number, unit None
        " 44 06 51 82 00 00"  # storage 1: the S/T/U column appears
        " 04 6D 1A 0F C5 1C"  # a timestamp
    )
    return mbus_link.encode(mbus_link.LongFrame(0x08, 1, 0x72, head + records)).hex().upper()


def _on_pty(args: list[str], columns: int, root: Path) -> tuple[int, str]:
    """Run ``sonocli ARGS`` with stdout on a pty of ``columns`` columns; its stdout as text, ANSI removed."""
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "50", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    run = run_on_pty(root, args, env, size=(50, columns), stdin_on_pty=False, capture_stderr=False)
    return run.returncode, ANSI.sub("", run.screen).replace("\r\n", "\n")


def _piped(args: list[str], root: Path) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "sonocli", "--root", str(root), *args], capture_output=True,
                          text=True, timeout=60, check=False)
    return proc.returncode, proc.stdout


def _width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


def _assert_fits(text: str, columns: int, messages: tuple[str, ...] = ()) -> list[str]:
    """The lines of ``text`` (a carriage return starts a line too: listen's live table redraws), each at most
    ``columns`` wide; lines starting with one of ``messages`` are plain status lines, not table rows."""
    lines = [line for line in re.split(r"[\r\n]", text) if line.strip()]
    assert lines, "no output"
    too_wide = [line for line in lines if _width(line.rstrip()) > columns and not line.startswith(messages)]
    assert not too_wide, too_wide
    return lines


def _record_rows(lines: list[str]) -> list[str]:
    return [line for line in lines if re.match(r"-?\d+\s+(inst|max|min|err)\s", line)]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with the simulator's twelve meters in the list (scan --save) and heard wM-Bus meters (listen)."""
    path = tmp_path_factory.mktemp("root")
    code, _out = _piped(["scan", "--port", "sim://demo", "--save"], path)
    assert code == 0
    code, _out = _piped(["listen", "--port", "sim://air", "--dongle", "im871a", "--count", "6"], path)
    assert code == 0
    return path


@pytest.mark.parametrize("columns", [80, 120])
def test_decode_table_fits_with_terminal_units(root: Path, columns: int) -> None:
    frame = _frame()
    code, text = _on_pty(["decode", frame], columns, root)
    assert code == 0, text
    lines = _assert_fits(text, columns)
    records = json.loads(_piped(["decode", "--json", frame], root)[1])["records"]
    rows = _record_rows(lines)
    assert len(rows) == len(records)  # one line per record: nothing folded onto a second line
    by_vif = {r["dif_vif"]: row for r, row in zip(records, rows, strict=True)}
    for record, row in zip(records, rows, strict=True):
        assert record["dif_vif"] in row  # hex whole
    cells = {vif: row.split() for vif, row in by_vif.items()}
    assert "123456789012" in cells["0E 03"] and "Wh" in cells["0E 03"]  # the 12-digit register in full
    assert "37351" in cells["04 06"] and "kWh" in cells["04 06"]  # exact: 37351000 Wh
    assert "101.69" in cells["02 59"] and "°C" in cells["02 59"]
    assert "985" in cells["04 22"] and "h" in cells["04 22"]
    assert "506" in cells["02 27"] and "d" in cells["02 27"]
    assert "bin" in cells["01 FD 17"]
    assert "06855817" in by_vif["0C 78"] or "6855817" in cells["0C 78"]
    timestamp = next(r for r in records if r["dif_vif"] == "04 6D")["value"]
    assert timestamp[:10] in by_vif["04 6D"] and timestamp[11:19] in by_vif["04 6D"]  # date and time whole
    assert "1/0/0" in cells["44 06"]  # storage 1: the merged S/T/U column
    for guide_unit in ("None", "degree C", "37351000"):
        assert guide_unit not in text
    head = next(line for line in lines if line.lstrip().startswith("#"))
    assert "fn" in head.split() and "S/T/U" in head.split()


def test_piped_decode_keeps_the_tsv_and_the_guide_units(root: Path) -> None:
    code, out = _piped(["decode", _frame()], root)
    assert code == 0
    lines = out.splitlines()
    assert lines[1] == "#\tfunction\tstorage\ttariff\tsubunit\tdescription\tvalue\tunit\tDIF/VIF"
    rows = {line.split("\t")[-1]: line.split("\t") for line in lines[2:]}
    assert rows["04 06"][6:8] == ["37351000", "Wh"]
    assert rows["02 59"][7] == "degree C" and rows["04 22"][7] == "H" and rows["02 27"][7] == "D"
    assert rows["0C 78"][7] == "None" and rows["01 FD 17"][7] == "Bin"
    assert rows["0E 03"][6] == "123456789012"


def test_storage_column_only_when_not_all_zero(root: Path) -> None:
    frame = mbus_link.encode(mbus_link.LongFrame(
        0x08, 1, 0x72, bytes.fromhex("17586806 2D2C 08 04 11 00 0000 04 06 E7 91 00 00 02 59 B9 27"))).hex()
    code, text = _on_pty(["decode", frame], 80, root)
    assert code == 0
    head = next(line for line in text.split("\n") if line.lstrip().startswith("#"))
    assert "S/T/U" not in head and "storage" not in head


@pytest.mark.parametrize("columns", [80, 120])
def test_readout_of_every_demo_meter_fits(root: Path, columns: int) -> None:
    args = ["readout", "--all", "--port", "sim://demo", "--no-store"]
    code, text = _on_pty(args, columns, root)
    assert code == 0, text
    lines = _assert_fits(text, columns)
    meters = json.loads(_piped([*args, "--json"], root)[1])
    records = [r for meter in meters for r in meter["records"]]
    rows = _record_rows(lines)
    assert len(rows) == len(records)
    for record, row in zip(records, rows, strict=True):
        hexes = record["dif_vif"]
        # hex stays whole; only a plain-text VIF's text bytes (also in the description) may end in "…"
        assert hexes in row or (hexes[:8] in row and row.rstrip().endswith("…") and "7C" in hexes), row
    for meter in meters:
        assert any(line.startswith(meter["meter"]["device_id"]) for line in lines)  # ids whole, titles too
    assert "degree C" not in text and " None " not in text


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize(
    "args",
    [
        ["meters", "list"],
        ["meters", "heard"],
        ["config", "show"],
        ["outbox", "list"],
        ["scan", "--port", "sim://demo", "--mode", "primary", "--last", "6"],
        ["listen", "--port", "sim://air", "--dongle", "im871a", "--count", "6", "--no-store"],
    ],
    ids=["meters-list", "meters-heard", "config-show", "outbox", "scan", "listen"],
)
def test_every_table_fits(root: Path, args: list[str], columns: int) -> None:
    code, text = _on_pty(args, columns, root)
    assert code == 0, text
    lines = _assert_fits(text, columns, messages=("outbox: ",))
    if args[:2] == ["meters", "list"]:
        listed = json.loads(_piped(["meters", "list", "--json"], root)[1])
        rows = [line for line in lines if re.match(r"\d+\s+M-Bus\s", line)]
        assert len(rows) == len(listed) == 12
        for meter, row in zip(listed, rows, strict=True):
            assert meter["serial"] in row.split()  # the serial whole, on the meter's one line
    if args[:2] == ["meters", "heard"]:
        heard = json.loads(_piped(["meters", "heard", "--json"], root)[1])
        rows = [line for line in lines if re.match(r"\d{8}\s+[A-Z]{3}\s", line)]
        assert len(rows) == len(heard) >= 6
        for row in rows:  # the last-seen timestamp whole, date and time
            assert re.search(r"\s\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s", row), row
    if args[0] == "scan":
        rows = [line for line in lines if re.match(r"[A-Z]{3}-\d{8}-[0-9A-F]{2}-[0-9A-F]{2}\s", line)]
        assert len(rows) == 6
    if args[0] == "listen":
        rows = [line for line in lines if re.match(r"\d{8}\s+[A-Z]{3}\s", line)]
        assert {row.split()[0] for row in rows} and all(len(row.split()[0]) == 8 for row in rows)


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (37351000, "Wh", ("37351", "kWh")),
        (37351500, "Wh", ("37351500", "Wh")),  # 37351.5 kWh would be exact too, but no digits are moved in
        (0, "Wh", ("0", "Wh")),
        (18511.912, "W", ("18511.912", "W")),
        (10**30, "Wh", ("1000000000000000000", "TWh")),  # integer arithmetic: no 28-digit Decimal context
        (3000, "m³", ("3000", "m³")),  # volumes keep their unit
        (985, "H", ("985", "h")),
        (4, "Bin", ("4", "bin")),
        ("0A1B", "Bin", ("0A1B", "hex")),
        (7, "None", ("7", "")),
    ],
)
def test_terminal_values_are_exact(value: object, unit: str, shown: tuple[str, str]) -> None:
    from sonocli.cli.output import display_value

    assert display_value(value, unit) == shown
