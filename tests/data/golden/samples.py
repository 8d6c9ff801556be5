"""Readings used by the CSV/XML golden tests, and a regenerator for the per-version golden files.

`python tests/data/golden/samples.py` rewrites csv_v*.csv / xml_v*.xml from the current writers; it is run
once when a format changes, and the result is checked by eye against Tables 19-22 before committing.
The Figure 22 and section 5.3.3 files (figure22_v3.csv, guide_5_3_3_v3.xml) are transcribed from the guide
and never regenerated.
"""

from __future__ import annotations

import io
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from sonocli.model.values import Interface, Meter, MeterValue, Reading, ValueConfig  # noqa: E402


def ts(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def figure22_readings() -> list[Reading]:
    """The readings behind Figure 22 (protocol version 3): two heat meters, energy and volume each."""
    heat_a = Meter(
        Interface.MBUS, serial="00127550", manufacturer="DFS", version=2, medium=0x04, primary_address=1,
        values=(ValueConfig(user="Label 2", obis="6-0:1.0.0*255"), ValueConfig()),
    )  # fmt: skip
    heat_b = Meter(
        Interface.MBUS, serial="00185550", manufacturer="DFS", version=2, medium=0x12, primary_address=2,
        values=(ValueConfig(obis="6-0:1.0.0*255"), ValueConfig()),
    )  # fmt: skip
    # (T_MUC, meter, meter time, energy raw, volume raw), rows 2..15 of Figure 22
    rows = [
        (1449878417, heat_a, 1449878340, 129, 286),
        (1449878421, heat_b, 1449878340, 111, 244),
        (1449879311, heat_a, 1449879240, 129, 268),
        (1449879315, heat_b, 1449879240, 112, 245),
        (1449880211, heat_a, 1449880140, 130, 290),
        (1449880215, heat_b, 1449880140, 112, 247),
        (1449881111, heat_a, 1449881040, 131, 292),
        (1449881115, heat_b, 1449881040, 113, 249),
        (1449882012, heat_a, 1449881940, 132, 294),
        (1449882015, heat_b, 1449881940, 114, 251),
        (1449882911, heat_a, 1449882840, 133, 296),
        (1449882915, heat_b, 1449882840, 115, 253),
        (1449883811, heat_a, 1449883740, 134, 299),
        (1449883815, heat_b, 1449883740, 116, 255),
    ]
    return [
        Reading(
            meter,
            ts(taken),
            (
                MeterValue(index=0, measurement=9, unit="Wh", exponent=3, raw=energy, timestamp=ts(meter_time)),
                MeterValue(index=1, measurement=10, unit="m³", exponent=-2, raw=volume, timestamp=ts(meter_time)),
            ),
        )
        for taken, meter, meter_time, energy, volume in rows
    ]


def guide_xml_readings() -> list[Reading]:
    """The readings behind the section 5.3.3 example: one water meter, one volume value, two readouts."""
    water = Meter(
        Interface.WMBUS, serial="92752244", manufacturer="KAM", version=0x1B, medium=0x07,
        values=(ValueConfig(obis="8-0:1.0.0*255"),),
    )  # fmt: skip
    return [
        Reading(water, ts(t), (MeterValue(index=0, measurement=10, unit="m³", exponent=-3, raw=raw, timestamp=ts(t)),))
        for t, raw in ((1253000282, 2850427), (1253000482, 2850428))
    ]


def mixed_readings() -> list[Reading]:
    """A wired and a wireless meter with labels, OBIS codes, a text value, a value without meter time,
    a value needing CSV quoting, a configuration change and a reading with no values."""
    wired = Meter(
        Interface.MBUS, serial="12345678", manufacturer="ABB", version=0x20, medium=0x02, primary_address=17,
        user="Main; house",
        values=(
            ValueConfig(user="Total import", obis="1-0:1.8.0*255"),
            ValueConfig(user="Power", obis="1-0:1.7.0*255"),
            ValueConfig(user=None, obis=None),
        ),
    )  # fmt: skip
    wireless = Meter(
        Interface.WMBUS, serial="92752244", manufacturer="KAM", version=0x1B, medium=0x07, rssi=-80,
        user="Flat 3",
        values=(ValueConfig(user="Volume", obis="8-0:1.0.0*255"),),
    )  # fmt: skip
    relabelled = Meter(
        Interface.WMBUS, serial="92752244", manufacturer="KAM", version=0x1B, medium=0x07, rssi=-80,
        user="Flat 3 (new)",
        values=(ValueConfig(user='Cold "water"', obis="8-0:1.0.0*255"),),
    )  # fmt: skip
    t0 = 1704067200  # 2024-01-01T00:00:00Z
    return [
        Reading(wired, ts(t0 + 5), (
            MeterValue(index=0, measurement=9, unit="Wh", exponent=2, raw=1234567, timestamp=ts(t0)),
            MeterValue(index=1, measurement=14, unit="W", exponent=-1, raw=-153, timestamp=None),
            MeterValue(index=2, measurement=31, unit="", exponent=0, raw="FW 1.2", text="Firmware"),
        )),
        Reading(wireless, ts(t0 + 7), (
            MeterValue(index=0, measurement=10, unit="m³", exponent=-3, raw=2850427, timestamp=ts(t0 + 1)),
        ), rssi=-71),
        Reading(wired, ts(t0 + 905), (
            MeterValue(index=0, measurement=9, unit="Wh", exponent=2, raw=1234599, timestamp=ts(t0 + 900)),
            MeterValue(index=1, measurement=14, unit="W", exponent=-1, raw=-150, timestamp=None),
            MeterValue(index=2, measurement=31, unit="", exponent=0, raw="FW 1.2", text="Firmware"),
        )),
        Reading(wireless, ts(t0 + 907), (
            MeterValue(index=0, measurement=10, unit="m³", exponent=-3, raw=2850433, timestamp=ts(t0 + 901)),
        ), rssi=-75),
        Reading(relabelled, ts(t0 + 1807), (
            MeterValue(index=0, measurement=10, unit="m³", exponent=-3, raw=2850440, timestamp=ts(t0 + 1801)),
        ), rssi=-77),
        Reading(wired, ts(t0 + 1805), ()),
    ]  # fmt: skip


MUC_ID = 0x13FD0
XML_TIMESTAMP = ts(1704070000)


def csv_text(version: int, *, scale_values: bool = False) -> str:
    from sonocli.outputs.csv_writer import CsvWriter

    out = io.StringIO(newline="")
    CsvWriter(version, scale_values=scale_values).write(mixed_readings(), out)
    return out.getvalue()


def xml_bytes(version: int, *, scale_values: bool = False) -> bytes:
    from sonocli.outputs.xml_writer import XmlWriter

    out = io.BytesIO()
    XmlWriter(version, muc_id=MUC_ID, scale_values=scale_values).write(mixed_readings(), out, timestamp=XML_TIMESTAMP)
    return out.getvalue()


def golden_name(kind: str, version: int, scale_values: bool) -> str:
    suffix = "_scaled" if scale_values else ""
    return f"{kind}_v{version}{suffix}.{kind}"


def regenerate(kinds: tuple[str, ...]) -> None:
    for version in range(8):
        for scale in (False, True):
            if "csv" in kinds:
                (HERE / golden_name("csv", version, scale)).write_bytes(csv_text(version, scale_values=scale).encode())
            if "xml" in kinds:
                (HERE / golden_name("xml", version, scale)).write_bytes(xml_bytes(version, scale_values=scale))


if __name__ == "__main__":
    regenerate(tuple(sys.argv[1:]) or ("csv", "xml"))
