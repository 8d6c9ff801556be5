"""``sonocli readings``: stored readings by meter, value and time range; TSV, JSON, a table and a plot on a pty.

The readings are written through the real store (sonocli.store.readings, via the engine) at known times,
as a readout would have stored them; the command reads them back through the engine's query.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from sonocli.cli.root import cli
from sonocli.model.tables import measurement_index
from sonocli.model.values import AddressMode, Interface, Meter, MeterValue, Reading, ValueConfig
from tests.cli.pty_run import run_on_pty
from tests.cli.schema_check import check

NOW = datetime.now(UTC).replace(microsecond=0)
AGES = (timedelta(days=10), timedelta(days=5), timedelta(days=1), timedelta(hours=1))
WATER = Meter(Interface.MBUS, serial="12345678", manufacturer="ABB", version=1, medium=7, primary_address=5,
              address_mode=AddressMode.PRIMARY,
              values=(ValueConfig("Volume", "m³", exponent=-3, user="cold"), ValueConfig("Flow temperature", "°C")))
HEAT = Meter(Interface.MBUS, serial="87654321", manufacturer="KAM", version=8, medium=4,
             values=(ValueConfig("Energy", "Wh"),))


def _values(volume_raw: int, temperature: int) -> tuple[MeterValue, ...]:
    return (MeterValue(0, measurement_index("Volume"), "m³", -3, volume_raw, dif_vif=b"\x04\x13"),
            MeterValue(1, measurement_index("Flow temperature"), "°C", 0, temperature, dif_vif=b"\x02\x5a"),
            MeterValue(-1, measurement_index("Timestamp"), "UTC", 0, NOW, dif_vif=b"\x04\x6d"))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four readings of a water meter (volume 1.500, 2.250, 3.125, 4.000 m³) and two of a heat meter."""
    from sonocli.engine.core import Engine

    root = tmp_path_factory.mktemp("readings")
    assert CliRunner().invoke(cli, ["--root", str(root), "init"]).exit_code == 0
    engine = Engine(root)
    try:
        readings = [Reading(WATER, NOW - age, _values(raw, temp))
                    for age, raw, temp in zip(AGES, (1500, 2250, 3125, 4000), (40, 42, 39, 45), strict=True)]
        readings += [Reading(HEAT, NOW - age, (MeterValue(0, measurement_index("Energy"), "Wh", 3, n),))
                     for age, n in ((AGES[1], 100), (AGES[3], 250))]
        engine.store.add_many(sorted(readings, key=lambda r: r.taken_at))
    finally:
        engine.close()
    return root


def run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), "readings", *args])
    return result.exit_code, result.stdout, result.stderr


def rows(out: str) -> list[list[str]]:
    lines = out.splitlines()
    assert lines[0].split("\t") == ["time", "Device-ID", "#", "Description", "Value", "Unit"]
    return [line.split("\t") for line in lines[1:]]


def test_everything_piped_is_tsv_in_time_order(root: Path) -> None:
    code, out, err = run(root)
    assert code == 0, err
    got = rows(out)
    assert len(got) == 4 * 3 + 2
    times = [datetime.fromisoformat(r[0]) for r in got]
    assert times == sorted(times) and all(t.utcoffset() == timedelta(0) for t in times)
    assert ["ABB-12345678-01-07", "1", "Volume", "1.5", "m³"] == got[0][1:]
    assert got[2][2] == "" and got[2][5] == "UTC"  # a record that is not in the meter list: no number


def test_meter_value_and_time_filters(root: Path) -> None:
    _, by_serial, _ = run(root, "--meter", "12345678")
    _, by_id, _ = run(root, "--meter", "abb-12345678-01-07")
    assert by_serial == by_id and {r[1] for r in rows(by_serial)} == {"ABB-12345678-01-07"}
    for value in ("1", "cold", "VOLUME"):
        code, out, err = run(root, "--meter", "12345678", "--value", value)
        assert code == 0, err
        assert [r[4] for r in rows(out)] == ["1.5", "2.25", "3.125", "4"]
    _, out, _ = run(root, "--meter", "12345678", "--value", "2", "--since", "7d")
    assert [r[4] for r in rows(out)] == ["42", "39", "45"]
    _, out, _ = run(root, "--value", "1", "--since", "36h")  # value 1 of every meter
    assert [(r[1][:3], r[4]) for r in rows(out)] == [("ABB", "3.125"), ("ABB", "4"), ("KAM", "250000")]
    day = (NOW - AGES[1]).date().isoformat()
    _, out, _ = run(root, "--since", day, "--until", day)  # a bare date as --until: the whole day
    assert {r[0][:10] for r in rows(out)} == {day} and len(rows(out)) == 3 + 1
    since = (NOW - timedelta(days=6)).isoformat().replace("+00:00", "Z")
    until = (NOW - timedelta(hours=2)).isoformat()
    _, out, _ = run(root, "--meter", "12345678", "--value", "1", "--since", since, "--until", until)
    assert [r[4] for r in rows(out)] == ["2.25", "3.125"]
    code, out, err = run(root, "--meter", "12345678", "--value", "nothing like it")
    assert (code, out) == (0, "") and "no stored readings match" in err


@pytest.mark.parametrize(("args", "text"), [
    (("--since", "soon"), "--since 'soon' is not a time"),
    (("--since", "1d", "--until", "3d"), "is after --until"),
    (("--meter", "99999999"), "--meter 99999999: no readings of this meter are stored"),
    (("--value", "0"), "value numbers start at 1"),
    (("--plot",), "--plot draws on a terminal"),
])
def test_bad_input_is_one_line_exit_2(root: Path, args: tuple[str, ...], text: str) -> None:
    code, out, err = run(root, *args)
    assert (code, out) == (2, "") and err.startswith("sonocli: error: ") and err.count("\n") == 1
    assert text in err


def test_no_store_is_exit_2_with_a_hint(tmp_path: Path) -> None:
    assert CliRunner().invoke(cli, ["--root", str(tmp_path), "init"]).exit_code == 0
    code, _, err = run(tmp_path, "--since", "7d")
    assert code == 2 and "no readings stored" in err and "sonocli readout" in err


def test_json_is_the_reading_objects_with_the_chosen_records(root: Path) -> None:
    code, out, err = run(root, "--meter", "12345678", "--value", "cold", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert len(doc) == 4
    for item in doc:
        check(item, "reading")
        assert item["meter"]["medium"] == {"code": 7, "text": "Water"}
        assert [(r["index"], r["description"]) for r in item["records"]] == [(0, "Volume")]
    assert [item["records"][0]["value"] for item in doc] == [1.5, 2.25, 3.125, 4]
    from sonocli.engine.decoding import json_text

    assert out == json_text(doc, indent=2) + "\n"  # streamed, yet the text every other --json prints
    assert datetime.fromisoformat(doc[-1]["time"]) == NOW - AGES[-1]
    code, out, _ = run(root, "--meter", "99999999", "--json")
    assert code == 2 and out == ""
    assert json.loads(run(root, "--meter", "12345678", "--value", "nothing", "--json")[1]) == []


def _on_pty(root: Path, *args: str, columns: int = 80, lines: int = 24) -> str:
    """Run ``sonocli readings`` with stdout on a real pseudo-terminal of that size; returns the screen text."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(TERM="xterm", NO_COLOR="1", TZ="UTC")
    run = run_on_pty(root, ["readings", *args], env, size=(lines, columns))
    assert run.returncode == 0, run.stderr
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", run.screen)


def test_one_value_is_plotted_on_a_terminal(root: Path) -> None:
    screen = _on_pty(root, "--meter", "12345678", "--value", "cold")
    lines = screen.replace("\r", "").splitlines()
    assert "ABB-12345678-01-07 value 1: Volume (m³)" in lines[0]
    assert all(len(line) <= 80 for line in lines) and 10 <= len(lines) <= 24
    canvas = "".join(lines[1:-2])
    assert any("\u2800" <= ch <= "\u28ff" or ch in "▖▗▘▙▚▛▜▝▞▟▀▄▌▐█" for ch in canvas)  # the line is drawn
    assert "4.0" in screen and "1.5" in screen  # the y axis spans the values
    assert lines[-1].startswith("4 point(s) from ") and lines[-1].endswith("min 1.5, max 4")
    wide = _on_pty(root, "--meter", "12345678", "--value", "cold", columns=120)
    assert max(len(line) for line in wide.replace("\r", "").splitlines()) > 80


def test_plot_on_request_and_table_otherwise(root: Path) -> None:
    screen = _on_pty(root, "--value", "1", "--plot")  # two meters: two labelled lines
    assert "2 stored values" in screen
    assert "ABB-12345678-01-07 #1 Volume" in screen and "KAM-87654321-08-04 #1 Energy" in screen
    table = _on_pty(root, "--meter", "12345678", "--value", "1", "--no-plot")
    assert "4 stored reading(s)" in table and "Time (local)" in table and "┌" not in table
    assert re.search(r"ABB-12345678-01-07\s+1\s+Volume\s+3\.125\s+m³", table)
