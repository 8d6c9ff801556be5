"""``sonocli export``: from the store to CSV/XML, defaults from chip.ini, filters, atomic -o, bad input."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner
from lxml import etree

from sonocli.cli.root import cli
from sonocli.store.readings import ReadingStore

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"


def _samples() -> ModuleType:
    spec = importlib.util.spec_from_file_location("golden_samples", GOLDEN / "samples.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


samples = _samples()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    with ReadingStore(tmp_path / "ext" / "sonocli.db") as store:
        store.add_many(samples.figure22_readings())
        store.add_many(samples.guide_xml_readings())
    return tmp_path


def run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), "export", *args])
    # stdout_bytes: result.stdout would turn the CSV's CRLF into LF
    return result.exit_code, result.stdout_bytes.decode("utf-8"), result.stderr


def test_csv_figure22_from_the_store(root: Path) -> None:
    code, out, err = run(root, "csv", "--meter", "DFS-00127550-02-04")
    assert code == 0, err
    code2, out2, _ = run(root, "csv", "--meter", "00185550")
    assert code2 == 0
    lines = out.split("\r\n")[1:-1] + out2.split("\r\n")[1:-1]
    lines.sort(key=lambda line: line.split(";")[0])
    golden = (GOLDEN / "figure22_v3.csv").read_text("utf-8").splitlines()
    assert [line.split(";")[:14] for line in lines] == [g.split(";") for g in golden[1:]]
    assert out.split("\r\n")[0].split(";")[:14] == golden[0].split(";")


def test_csv_whole_store_in_time_order_with_time_filters(root: Path) -> None:
    code, out, _ = run(root, "csv", "--protocol-version", "0")
    rows = out.split("\r\n")[:-1]
    assert code == 0 and len(rows) == 16 and not rows[0].startswith("Timestamp")  # v0: no header
    stamps = [int(r.split(";")[0]) for r in rows]
    assert stamps == sorted(stamps)
    code, out, _ = run(root, "csv", "--from", "1449879311", "--to", "2015-12-12T00:30:11Z")
    stamps = [int(r.split(";")[0]) for r in out.split("\r\n")[1:-1]]
    assert code == 0 and stamps == [1449879311, 1449879315, 1449880211]
    # a bare date for --to means the whole day
    code, out, _ = run(root, "csv", "--from", "2009-09-15", "--to", "2009-09-15")
    assert code == 0 and [r.split(";")[1] for r in out.split("\r\n")[1:-1]] == ["KAM-92752244-1B-07"] * 2


def test_defaults_from_chip_ini(root: Path) -> None:
    (root / "app").mkdir()
    (root / "app" / "chip.ini").write_text("[CONFIG]\nMUC_PROTOCOL_VER=5\nMUC_SCALEVALUES=1\n")
    code, out, _ = run(root, "csv", "--meter", "00127550")
    header, first = out.split("\r\n")[:2]
    assert code == 0 and header.startswith("Timestamp;DeviceId;Link;User;Value0;")
    assert first.split(";")[4:6] == ["129000", "1.00E+00"]
    code, out, _ = run(root, "csv", "--meter", "00127550", "--protocol-version", "3", "--raw-values")
    assert out.split("\r\n")[1].split(";")[2:4] == ["129", "1.00E+03"]


def test_xml_guide_example_from_the_store(root: Path) -> None:
    code, out, err = run(root, "xml", "--meter", "92752244", "--muc-id", "13fd0")
    assert code == 0, err
    golden = (GOLDEN / "guide_5_3_3_v3.xml").read_text("utf-8")
    # everything but the transmission time (now) is the guide's example
    stamp = etree.fromstring(out.encode()).find("muc").get("TIMESTAMP")  # type: ignore[union-attr]
    assert out == golden.replace('TIMESTAMP="1252004322"', f'TIMESTAMP="{stamp}"')


def test_xml_groups_each_meter_once(root: Path) -> None:
    code, out, _ = run(root, "xml", "--protocol-version", "7", "--muc-id", "1")
    doc = etree.fromstring(out.encode())
    assert code == 0 and doc.find("muc").get("VERSION") == "1f8"  # type: ignore[union-attr]
    assert sorted(m.get("METER_ID") for m in doc.iter("meter")) == ["00127550", "00185550", "92752244"]
    assert len(list(doc.iter("entry"))) == 14 * 2 + 2


def test_output_file_is_atomic_and_json_summary(root: Path) -> None:
    target = root / "out.csv"
    target.write_text("old")
    code, out, _ = run(root, "csv", "-o", str(target), "--json")
    assert code == 0
    assert json.loads(out) == {"format": "csv", "protocol_version": 3, "readings": 16, "file": str(target)}
    assert target.read_bytes().startswith(b"Timestamp;DeviceId;")
    assert [p.name for p in root.iterdir() if p.name.startswith(".out.csv")] == []
    code, _, err = run(root, "csv", "-o", str(target))
    assert code == 0 and err.strip() == f"sonocli: exported 16 readings to {target}"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["csv", "--from", "yesterday"], "--from 'yesterday' is not a time"),
        (["csv", "--to", "2024-13-01"], "--to '2024-13-01' is not a time"),
        (["csv", "--protocol-version", "8"], "--protocol-version '8' is not allowed; allowed: 0-7"),
        (["csv", "--protocol-version", "x"], "--protocol-version 'x'"),
        (["json"], "unknown export format 'json'; allowed: csv, xml"),
        (["csv", "--meter", "00000000"], "--meter 00000000"),
        (["csv", "--from", "2024-02-01", "--to", "2024-01-01"], "is after --to"),
        (["xml", "--muc-id", "xyz"], "--muc-id 'xyz'"),
        (["csv", "--json"], "--json needs -o"),
    ],
)
def test_bad_input_is_one_line_exit_2(root: Path, args: list[str], needle: str) -> None:
    code, out, err = run(root, *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err


def test_missing_database(tmp_path: Path) -> None:
    code, _, err = run(tmp_path, "csv")
    assert code == 2 and "no readings stored" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ext" / "sonocli.db").exists()


def test_real_process_writes_xml_file(root: Path) -> None:
    target = root / "x.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "sonocli", "--root", str(root), "export", "xml", "--muc-id", "13fd0", "-o", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    doc = etree.parse(str(target)).getroot()
    assert doc.find("muc").get("MUC_ID") == "13fd0"  # type: ignore[union-attr]
    assert len(list(doc.iter("entry"))) == 30


def test_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    """`sonocli export csv | head -1`: no traceback when the reader goes away."""
    import dataclasses
    from datetime import timedelta

    rows = samples.figure22_readings()
    with ReadingStore(tmp_path / "ext" / "sonocli.db") as store:
        store.add_many(dataclasses.replace(r, taken_at=r.taken_at + timedelta(days=d))
                       for d in range(400) for r in rows)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sonocli", "--root", str(tmp_path), "export", "csv"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"Timestamp;DeviceId;")
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 1
    assert err == b""


@pytest.fixture
def configured_root(tmp_path: Path) -> Path:
    """The golden readings, stored as a commissioned list configures them: meter 00185550 deactivated and
    the Volume value of meter 00127550 switched off."""
    import dataclasses

    def configure(reading: Any) -> Any:
        meter = reading.meter
        if meter.serial == "00185550":
            meter = dataclasses.replace(meter, active=False)
        elif meter.serial == "00127550":
            meter = dataclasses.replace(meter, values=(meter.values[0], dataclasses.replace(meter.values[1],
                                                                                           active=False)))
        return dataclasses.replace(reading, meter=meter)

    with ReadingStore(tmp_path / "ext" / "sonocli.db") as store:
        store.add_many(configure(r) for r in samples.figure22_readings())
        store.add_many(samples.guide_xml_readings())
    return tmp_path


def test_csv_exports_only_configured_readings_and_sizes_the_header_by_them(configured_root: Path) -> None:
    code, out, err = run(configured_root, "csv", "-o", str(configured_root / "c.csv"), "--json")
    assert code == 0, err
    assert json.loads(out)["readings"] == 9  # 7 of meter 00127550 and 2 of the KAM meter; none of 00185550
    header, *rows = (configured_root / "c.csv").read_bytes().decode("utf-8").split("\r\n")[:-1]
    # the widest configured reading has one value: no empty Value1 group for the switched-off Volume
    assert header.split(";")[2:] == ["Value0", "Scale0", "Unit0", "Description0", "User0", "Timestamp0", "ObsId0"]
    assert {row.split(";")[1] for row in rows} == {"DFS-00127550-02-04", "KAM-92752244-1B-07"}
    assert all(len(row.split(";")) == 9 and "Volume" not in row for row in rows if "DFS-" in row)
    # stdout carries the same export
    code, stdout, _ = run(configured_root, "csv")
    assert code == 0 and stdout.split("\r\n")[:-1] == [header, *rows]


def test_xml_exports_only_configured_readings(configured_root: Path) -> None:
    code, out, err = run(configured_root, "xml", "--muc-id", "1")
    assert code == 0, err
    doc = etree.fromstring(out.encode("utf-8"))
    meters = {m.get("METER_ID"): m for m in doc.iter("meter")}
    assert "00185550" not in meters and {"00127550", "92752244"} <= set(meters)
    assert [d.get("DESCRIPTION") for d in meters["00127550"].findall("data")] == ["ENERGY"]


def test_an_inactive_meter_asked_for_by_name_exports_nothing(configured_root: Path) -> None:
    code, out, err = run(configured_root, "csv", "--meter", "00185550", "--protocol-version", "0")
    assert (code, out) == (0, "") and err == ""
