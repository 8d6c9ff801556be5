"""Meaning kept (issue 12, item 5): the combinable VIFEs that change what a record means (EN 13757-3
Table 15) become its ``qualifiers``, shown in ``--json`` and after the description in the table; VIF 0x79
(enhanced identification) decodes to id / manufacturer / version / medium.

Golden decodes of real frames where the repository has them, with their provenance:

* ``tests/data/libmbus/test-frames/EDC.hex`` (libmbus test frame, EDC heat meter): VIFE 0x3B / 0x3C on
  energy in both subunits (forward and backward flow);
* ``tests/data/libmbus/test-frames/landis+gyr_ultraheat_t230.hex`` (libmbus): VIFE 0x6F on maximum
  quantities, the record becomes the date of that quantity's maximum;
* ``tests/data/realworld/wired_issues.json`` ``iobroker-mbus-issue-311:elr_water`` (Elster/ELR water meter
  from an ioBroker issue): backward-flow volume, VIF 0x79 with a whole secondary address;
* ``tests/data/realworld/corpus.json`` ``wmbusmeters:amiplus:MyElectricity1:3`` (wmbusmeters test
  telegram): backward flow energy and power, at phase L1 (VIFE 0x7C 0x01);
* ``tests/data/realworld/corpus.json`` ``wmbusmeters:c5isf:HeatCool:59``: VIFE 0x25 per month;
* ``tests/data/realworld/wmbus_more.json`` ``wmbusmeters-gen:qheatv2:QQ1:1859``: VIF 0x79 (Qundis).

No frame in the repository has "per hour" (VIFE 0x22) or "start date(/time) of" (VIFE 0x39): those two
are hand-built frames below (a KAM long header and the records named in each test), not from a meter.
"""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from sonocli.cli.root import cli
from sonocli.codecs import mbus_link
from sonocli.codecs.mbus_app import decode_wired, enhanced_identification, qualifiers_of
from sonocli.codecs.vif import combinable
from sonocli.codecs.wmbus import decode_telegram
from sonocli.engine.decoding import decode_wired as decode_wired_dict
from sonocli.model.values import Interface, Meter, MeterValue, Reading
from sonocli.outputs.csv_writer import CsvWriter
from sonocli.store.readings import ReadingStore

DATA = Path(__file__).resolve().parents[1] / "data"
FRAMES = DATA / "libmbus" / "test-frames"
HEADER = bytes.fromhex("78563412 2D2C 01 07 01 00 0000")  # KAM-12345678-01-07 (water), access 1


def _frame_hex(name: str) -> str:
    return "".join((FRAMES / f"{name}.hex").read_text().split())


def _case(file: str, name: str) -> dict[str, Any]:
    cases: list[dict[str, Any]] = json.loads((DATA / "realworld" / file).read_text(encoding="utf-8"))
    return next(c for c in cases if c["name"] == name)


def _built(records: str) -> str:
    """A hand-built RSP_UD long frame (CI 0x72) around ``records`` (hex)."""
    frame = mbus_link.LongFrame(0x08, 0x01, 0x72, HEADER + bytes.fromhex(records))
    return mbus_link.encode(frame).hex(" ").upper()


def _records(text: str) -> list[dict[str, Any]]:
    doc = decode_wired_dict(bytes.fromhex(text))
    return list(doc["records"])


def _table(text: str) -> list[list[str]]:
    result = CliRunner().invoke(cli, ["decode", text])
    assert result.exit_code == 0, result.stderr
    return [line.split("\t") for line in result.stdout.splitlines()[2:]]


def _summary(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["description"], r["subunit"], r["value"], r["unit"], r["qualifiers"]) for r in records]


# -- forward / backward flow ---------------------------------------------------------------------------


def test_edc_forward_and_backward_energy_golden() -> None:
    records = _records(_frame_hex("EDC"))
    assert _summary(records[:4]) == [
        ("Energy", 0, 35000, "Wh", ["forward flow"]),
        ("Energy", 0, 465000, "Wh", ["backward flow"]),
        ("Energy", 1, 0, "Wh", ["forward flow"]),
        ("Energy", 1, 0, "Wh", ["backward flow"]),
    ]
    assert all(r["qualifiers"] == [] for r in records[4:17])  # temperatures, flows, powers, timestamp
    rows = _table(_frame_hex("EDC"))
    assert [(row[5], row[6]) for row in rows[:2]] == [
        ("Energy (forward flow)", "35000"),
        ("Energy (backward flow)", "465000"),
    ]


def test_the_backflow_register_is_not_the_total() -> None:
    """The issue's case: a total, a backflow and a forward-only volume of one meter (hand-built: VIF 0x13
    litres, then the same with VIFE 0x3C and 0x3B) are three different records in JSON and the table."""
    text = _built("04 13 10270000 04 93 3C 0A000000 04 93 3B 1A270000")
    assert _summary(_records(text)) == [
        ("Volume", 0, 10, "m³", []),
        ("Volume", 0, 0.01, "m³", ["backward flow"]),
        ("Volume", 0, 10.01, "m³", ["forward flow"]),
    ]
    assert [row[5] for row in _table(text)] == ["Volume", "Volume (backward flow)", "Volume (forward flow)"]


def test_elr_water_backward_volume_golden() -> None:
    case = _case("wired_issues.json", "iobroker-mbus-issue-311:elr_water")
    records = _records(case["hex"])
    by_dif_vif = {r["dif_vif"]: r for r in records}
    assert by_dif_vif["0C 93 3C"]["qualifiers"] == ["backward flow"]
    assert by_dif_vif["0A 93 2A"]["qualifiers"] == ["increment per output pulse on output channel 0"]
    assert by_dif_vif["42 EC 7E"]["qualifiers"] == ["future value"]


def test_amiplus_backward_flow_and_phase_golden() -> None:
    case = _case("corpus.json", "wmbusmeters:amiplus:MyElectricity1:3")
    telegram = decode_telegram(bytes.fromhex(case["hex"]))
    qualified = [(v.described, v.dif_vif.hex(" ").upper()) for v in telegram.records if v.qualifiers]
    assert qualified == [
        (
            "Power (upper limit value, accumulation of absolute value of positive and negative contributions)",
            "0B AB C8 FC 10",
        ),
        ("Energy (backward flow)", "0E 83 3C"),
        ("Power (backward flow)", "0B AB 3C"),
        ("Volts (at phase L1)", "0A FD C9 FC 01"),
    ]


# -- per unit time -------------------------------------------------------------------------------------


def test_per_hour_hand_built() -> None:
    """Hand-built: DIF 02, VIF 0x93 (volume, litres), VIFE 0x22 per hour; and 0x25 per month for contrast."""
    text = _built("02 93 22 2C01 02 93 25 2C01")
    assert _summary(_records(text)) == [
        ("Volume", 0, 0.3, "m³", ["per hour"]),
        ("Volume", 0, 0.3, "m³", ["per month"]),
    ]
    assert [row[5] for row in _table(text)] == ["Volume (per hour)", "Volume (per month)"]


def test_c5isf_per_month_golden() -> None:
    case = _case("corpus.json", "wmbusmeters:c5isf:HeatCool:59")
    telegram = decode_telegram(bytes.fromhex(case["hex"]))
    per_month = [(v.description, v.storage, v.qualifiers) for v in telegram.records if v.qualifiers]
    assert per_month == [("Power", 32, ("per month",)), ("Power", 32, ("per month",))]


# -- dates of ------------------------------------------------------------------------------------------


def test_start_date_of_hand_built() -> None:
    """Hand-built: VIFE 0x39 "start date(/time) of" on a volume (4-byte data: a type F date and time) and
    on a date (VIF 0x6C, storage 1). The volume record becomes a time point that names its quantity."""
    text = _built("04 93 39 0C0B2132 42 EC 39 2132")
    records = _records(text)
    assert _summary(records) == [
        ("Time point", 0, "2025-02-01T11:12:00+00:00", "UTC", ["start date(/time) of Volume"]),
        ("Time point", 0, "2025-02-01T00:00:00+00:00", "UTC", ["start date(/time)"]),
    ]
    assert records[1]["storage"] == 1
    assert [row[5] for row in _table(text)] == [
        "Time point (start date(/time) of Volume)",
        "Time point (start date(/time))",
    ]


def test_date_of_maximum_names_the_quantity_golden() -> None:
    records = _records(_frame_hex("landis+gyr_ultraheat_t230"))
    dated = [(r["function"], r["value"], r["qualifiers"]) for r in records if r["dif_vif"].endswith("6F")]
    assert dated == [
        ("maximum", None, ["date(/time) of end of last of Power"]),
        ("maximum", None, ["date(/time) of end of last of Volume flow"]),
        ("maximum", "2011-08-26T20:50:00+00:00", ["date(/time) of end of last of Flow temperature"]),
        ("maximum", "2011-08-09T11:43:00+00:00", ["date(/time) of end of last of Return temperature"]),
    ]


# -- the VIFE table ------------------------------------------------------------------------------------


def test_scale_and_structure_vifes_are_no_qualifiers() -> None:
    assert combinable(bytes([0x73])).qualifiers == ()  # ×10^-3: folded into the exponent
    assert combinable(bytes([0xFD, 0x00])).qualifiers == ()  # ×10^3, then "no error"
    assert combinable(bytes([0x1F])).qualifiers == ()  # compact profile: the elements say it
    assert combinable(bytes([0x1D])).qualifiers == ()  # standard conform data content
    assert combinable(bytes([0x12])).qualifiers == ("average",)
    assert combinable(bytes([0x15])).qualifiers == ("error: no data available (undefined value)",)
    assert combinable(bytes([0xFC, 0x02])).qualifiers == ("at phase L2",)
    assert combinable(bytes([0xFC, 0x7A])).qualifiers == ("combinable extension 0x7A",)
    assert combinable(bytes([0xC8])).qualifiers == ("upper limit value",)
    assert combinable(bytes([0xFF, 0x01])).qualifiers == ("manufacturer specific VIFE 01",)


def test_manufacturer_vif_keeps_its_vifes_as_qualifier() -> None:
    """VIF 0xFF with VIFEs (IME, ABB): the records differ only in the manufacturer's VIFEs: they stay apart."""
    values = decode_wired(bytes.fromhex(_built("04 FF A0 15 01000000 04 FF A1 15 02000000"))).values
    assert [v.described for v in values] == ["Vendor specific data (VIFE A0 15)", "Vendor specific data (VIFE A1 15)"]


def test_csv_keeps_the_table_17_description() -> None:
    values = decode_wired(bytes.fromhex(_frame_hex("EDC"))).values[:2]
    meter = Meter(Interface.MBUS, serial="11120895", manufacturer="EDC", version=2, medium=4)
    out = io.StringIO()
    CsvWriter(6).write([Reading(meter, datetime(2024, 1, 1, tzinfo=UTC), values)], out)
    text = out.getvalue()
    assert "Energy" in text and "forward" not in text and "backward" not in text


# -- the store -----------------------------------------------------------------------------------------


def test_qualifiers_survive_the_store(tmp_path: Path) -> None:
    values = decode_wired(bytes.fromhex(_frame_hex("EDC"))).values
    meter = Meter(Interface.MBUS, serial="11120895")
    with ReadingStore(tmp_path / "r.db") as store:
        store.add(Reading(meter, datetime(2024, 1, 1, tzinfo=UTC), values))
        (got,) = store.iter_readings()
    assert got.values == values
    assert [v.qualifiers for v in got.values[:2]] == [("forward flow",), ("backward flow",)]


def test_rows_stored_before_migration_3_derive_them_from_dif_vif(tmp_path: Path) -> None:
    values = decode_wired(bytes.fromhex(_frame_hex("EDC"))).values
    meter = Meter(Interface.MBUS, serial="11120895")
    db = tmp_path / "old.db"
    with ReadingStore(db) as store:
        store.add(Reading(meter, datetime(2024, 1, 1, tzinfo=UTC), values))
    conn = sqlite3.connect(db)
    conn.execute("UPDATE reading_values SET qualifiers = NULL")  # what migration 3 leaves in old rows
    conn.commit()
    conn.close()
    with ReadingStore(db) as store:
        (got,) = store.iter_readings()
    assert got.values == values


def test_qualifiers_of_is_the_decoders() -> None:
    for value in decode_wired(bytes.fromhex(_frame_hex("landis+gyr_ultraheat_t230"))).values:
        assert qualifiers_of(value.dif_vif) == value.qualifiers
    assert qualifiers_of(b"") == () and qualifiers_of(b"\x0e") == ()  # manual value, fixed-structure unit byte


# -- VIF 0x79 enhanced identification ------------------------------------------------------------------


def test_enhanced_identification_full_address_golden() -> None:
    case = _case("wired_issues.json", "iobroker-mbus-issue-311:elr_water")
    (record,) = [r for r in _records(case["hex"]) if r["dif_vif"] == "07 79"]
    assert record["value"] == "ELR-29020256-FF-07"
    assert record["identification"] == {"id": "29020256", "manufacturer": "ELR", "version": 255, "medium": "Water"}
    assert record["raw"] == 576202994824118870  # the bytes as sent: CSV/XML keep writing this
    row = next(row for row in _table(case["hex"]) if row[8] == "07 79")
    assert (row[5], row[6]) == ("Identification", "ELR-29020256-FF-07 (Water)")


def test_enhanced_identification_wireless_golden() -> None:
    case = _case("wmbus_more.json", "wmbusmeters-gen:qheatv2:QQ1:1859")
    telegram = decode_telegram(bytes.fromhex(case["hex"]))
    ident = enhanced_identification(telegram.records[0])
    assert ident is not None and ident.text == "QDS-68204641-47-0C"


def test_enhanced_identification_bcd_is_the_id_with_its_zeros() -> None:
    """libmbus's minol_minocal_wr3 frame: 8C 40 79, BCD8 zeros (a sub-meter slot without a meter)."""
    (first, *_rest) = [r for r in _records(_frame_hex("minol_minocal_wr3")) if r["dif_vif"].endswith("79")]
    assert (first["value"], first["identification"]["id"], first["identification"]["manufacturer"]) == (
        "00000000", "00000000", None,
    )


def test_manufacturer_specific_identification_stays_a_number() -> None:
    """Kamstrup's 02 F9 FF 15 is the manufacturer's (a qualifier says so), not an address."""
    value = MeterValue(0, 28, "None", 0, 4353, dif_vif=bytes.fromhex("02F9FF15"), data=b"\x01\x11",
                       encoding="INT16", qualifiers=("manufacturer specific VIFE 15",))
    assert enhanced_identification(value) is None
