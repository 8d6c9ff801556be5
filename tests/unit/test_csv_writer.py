"""CSV writer: Figure 22 (transcribed from the guide) and one golden file per protocol version 0-7."""

from __future__ import annotations

import csv
import importlib.util
import io
import math
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sonocli.errors import UsageError
from sonocli.model.values import Interface, Meter, MeterValue, Reading, ValueConfig
from sonocli.outputs.csv_writer import CsvWriter
from sonocli.outputs.formatting import csv_scale, format_obis, format_value, xml_scale

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"


def _samples() -> ModuleType:
    spec = importlib.util.spec_from_file_location("golden_samples", GOLDEN / "samples.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


samples = _samples()


def test_figure22_reproduced() -> None:
    """Figure 22 shows columns A-N only (the file goes on with Timestamp1 and ObsId1): compare those."""
    out = io.StringIO(newline="")
    rows = CsvWriter(3).write(samples.figure22_readings(), out)
    assert rows == 14
    produced = [line.split(";")[:14] for line in out.getvalue().split("\r\n") if line]
    golden = [line.split(";") for line in (GOLDEN / "figure22_v3.csv").read_text("utf-8").splitlines()]
    assert len(golden) == 15 and all(len(row) == 14 for row in golden)
    assert produced == golden
    # the columns the figure cuts off are there too
    header = out.getvalue().split("\r\n")[0].split(";")
    assert header[14:] == ["Timestamp1", "ObsId1"]


@pytest.mark.parametrize("scaled", [False, True], ids=["raw", "scaled"])
@pytest.mark.parametrize("version", range(8))
def test_golden_per_version(version: int, scaled: bool) -> None:
    expected = (GOLDEN / samples.golden_name("csv", version, scaled)).read_bytes().decode("utf-8")
    assert samples.csv_text(version, scale_values=scaled) == expected


TABLE20 = {  # column -> first version that has it (Table 20)
    "Index": 6, "Timestamp": 0, "DeviceId": 0, "Link": 4, "User": 5,
    "IndexX": 6, "ValueX": 0, "ScaleX": 0, "UnitX": 0, "DescriptionX": 0, "UserX": 2, "TimestampX": 2, "ObsIdX": 1,
}  # fmt: skip


@pytest.mark.parametrize("version", range(8))
def test_columns_follow_table20(version: int) -> None:
    writer = CsvWriter(version)
    names = writer.columns(2)
    meter_part = [n for n in TABLE20 if not n.endswith("X") and TABLE20[n] <= version]
    value_part = [n[:-1] for n in TABLE20 if n.endswith("X") and TABLE20[n] <= version]
    assert names == meter_part + [f"{n}{x}" for x in range(2) for n in value_part]
    assert writer.has_header == (version >= 2)
    # every data row parses with a standard CSV reader into meter part + n value groups
    text = samples.csv_text(version)
    parsed = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    body = parsed[1:] if version >= 2 else parsed
    for row in body:
        assert (len(row) - len(meter_part)) % len(value_part) == 0
    if version >= 2:
        assert parsed[0] == writer.columns(3)


def test_index_numbering_continues_across_writers() -> None:
    indices: dict[str, int] = {}
    meters = [Meter(Interface.MBUS, serial=f"0000000{n}", manufacturer="ABB", version=1, medium=2) for n in range(3)]
    from datetime import UTC, datetime

    def reading(meter: Meter) -> Reading:
        return Reading(meter, datetime(2024, 1, 1, tzinfo=UTC), ())

    out = io.StringIO()
    CsvWriter(6, meter_indices=indices, value_count=0).write([reading(meters[1]), reading(meters[0])], out)
    CsvWriter(6, meter_indices=indices, value_count=0).write([reading(meters[0]), reading(meters[2])], out,
                                                              header=False)
    firsts = [line.split(";")[0] for line in out.getvalue().splitlines()[1:]]
    assert firsts == ["0", "1", "1", "2"]


def test_scale_and_value_spelling() -> None:
    assert csv_scale(3) == "1.00E+03" and csv_scale(-2) == "1.00E-02" and csv_scale(0) == "1.00E+00"
    assert xml_scale(-3) == "1e-03" and xml_scale(0) == "1e+00"

    def v(raw: object, exponent: int = 0) -> MeterValue:
        return MeterValue(index=0, measurement=9, unit="Wh", exponent=exponent, raw=raw)  # type: ignore[arg-type]

    assert format_value(v(286, -2), scale_values=True) == "2.86"
    assert format_value(v(129, 3), scale_values=True) == "129000"
    assert format_value(v(129, 3), scale_values=False) == "129"
    assert format_value(v(0.1, 1), scale_values=True) == "1"
    assert format_value(v(2.5e-7), scale_values=False) == "0.00000025"
    assert format_value(v(b"\x01\xab"), scale_values=True) == "01AB"
    assert format_value(v(None), scale_values=False) == ""
    assert format_value(v(True), scale_values=False) == "1"


def test_obis_spellings() -> None:
    assert format_obis("6-0:1.0.0*255", style="figure22") == "6-0-1.0.0*255"
    assert format_obis("6-0-1.0.0*255", style="iec") == "6-0:1.0.0*255"
    assert format_obis("0x01 0x00 0x01 0x08 0x00 0xFF", style="iec") == "1-0:1.8.0*255"
    assert format_obis("1-0:1.8.0", style="iec") == "1-0:1.8.0*255"
    assert format_obis("not obis", style="iec") == "not obis"
    assert format_obis(None, style="iec") == ""
    out = io.StringIO()
    meter = Meter(Interface.MBUS, values=(ValueConfig(obis="1-0:1.8.0*255"),))
    from datetime import UTC, datetime

    reading = Reading(meter, datetime(2024, 1, 1, tzinfo=UTC), (MeterValue(0, 9, "Wh", raw=1),))
    CsvWriter(1, obis_style="iec").write([reading], out)
    assert out.getvalue().rstrip().endswith(";1-0:1.8.0*255")


def test_bad_arguments() -> None:
    with pytest.raises(UsageError, match="0-7"):
        CsvWriter(8)
    with pytest.raises(UsageError, match="obis style"):
        CsvWriter(3, obis_style="x")


def _store_strategies() -> ModuleType:
    spec = importlib.util.spec_from_file_location("store_strategies", Path(__file__).parent / "test_store_readings.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_strategies = _store_strategies()


@settings(max_examples=50, deadline=None)
@given(batch=st.lists(_strategies.readings, max_size=5), version=st.integers(0, 7), scaled=st.booleans())
def test_any_reading_gives_parseable_rows(batch: list[Reading], version: int, scaled: bool) -> None:
    """Whatever the labels and text values hold (;, quotes, line breaks), every reading is one CSV record
    with the meter part and one group per value; numbers survive as the physical value."""
    writer = CsvWriter(version, scale_values=scaled)
    out = io.StringIO(newline="")
    assert writer.write(batch, out) == len(batch)
    parsed = list(csv.reader(io.StringIO(out.getvalue(), newline=""), delimiter=";"))
    body = parsed[1:] if version >= 2 else parsed
    assert len(body) == len(batch)
    meter_width = len(writer.columns(0))
    group = len(writer.columns(1)) - meter_width
    for row, reading in zip(body, batch, strict=True):
        assert len(row) == meter_width + group * len(reading.values)
        assert row[meter_width - (3 if version >= 5 else 2 if version >= 4 else 1)] == reading.meter.device_id
        for x, value in enumerate(reading.values):
            cells = row[meter_width + group * x : meter_width + group * (x + 1)]
            if version >= 6:
                assert cells[0] == str(value.index)
                cells = cells[1:]
            if value.is_numeric and math.isfinite(float(value.raw)):  # type: ignore[arg-type]
                physical = Decimal(cells[0]) * Decimal(cells[1])
                expected = Decimal(repr(value.raw) if isinstance(value.raw, float) else value.raw).scaleb(
                    value.exponent
                )
                assert physical == expected
