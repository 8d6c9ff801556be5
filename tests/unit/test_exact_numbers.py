"""Exact numbers (issue 12, item 6): no reading is ever rounded. The table and TSV print the exact decimal
of raw × 10^exponent; ``--json`` ``value`` is an exact JSON number (integers as integers, scaled values as
their exact decimal, never a binary-float artefact); CSV/XML stay byte-identical.

The frames are hand-built (a KAM long header around the records each test names), not from a meter.
"""

from __future__ import annotations

import io
import json
import struct
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from sonocli.cli.output import format_record_value
from sonocli.cli.root import cli
from sonocli.codecs import mbus_link
from sonocli.engine.decoding import json_text
from sonocli.model.values import (
    ExactNumber,
    Interface,
    Meter,
    MeterValue,
    Reading,
    json_number,
    plain_decimal,
    plain_float,
    shortest_decimal,
)
from sonocli.outputs.csv_writer import CsvWriter
from sonocli.outputs.formatting import format_value

HEADER = bytes.fromhex("78563412 2D2C 01 02 01 00 0000")  # KAM-12345678-01-02 (electricity), access 1


def _built(records: str) -> str:
    frame = mbus_link.LongFrame(0x08, 0x01, 0x72, HEADER + bytes.fromhex(records))
    return mbus_link.encode(frame).hex(" ").upper()


def _decode(*args: str) -> str:
    result = CliRunner().invoke(cli, ["decode", *args])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def _json_values(text: str) -> list[Any]:
    """The ``value`` of every record, parsed exactly (numbers with a fraction as Decimal)."""
    doc = json.loads(_decode("--json", text), parse_float=Decimal)
    return [r["value"] for r in doc["records"]]


def _table_values(text: str) -> list[str]:
    return [line.split("\t")[6] for line in _decode(text).splitlines()[2:]]


def test_the_issues_registers_print_exactly() -> None:
    """123456789012 Wh (BCD12, VIF 0x03: Wh) and 99999999999900 Wh (BCD12 999999999999, VIF 0x05: 10^2 Wh)."""
    text = _built("0E 03 129078563412 0E 05 999999999999")
    assert _table_values(text) == ["123456789012", "99999999999900"]
    values = _json_values(text)
    assert values == [123456789012, 99999999999900] and all(type(v) is int for v in values)
    assert '"value": 99999999999900,' in _decode("--json", text)


def test_beyond_two_to_the_53_in_json() -> None:
    """INT64 2^60 + 1 Wh and, scaled by 10^-3 (VIF 0x13, litres to m³), a 19-digit decimal."""
    big = (1 << 60) + 1
    raw = big.to_bytes(8, "little").hex()
    text = _built(f"07 03 {raw} 07 13 {raw}")
    assert _json_values(text) == [big, Decimal(big).scaleb(-3)]
    assert _table_values(text) == [str(big), "1152921504606846.977"]
    assert '"value": 1152921504606846.977,' in _decode("--json", text)


def test_never_a_binary_float_artefact() -> None:
    """0.3 m³ (3 × 10^-1: VIF 0x15), 0.1 m³ + 0.2 m³ style values, 12.345 and a whole 12 from 12000 l."""
    text = _built("01 15 03 01 14 0A 04 13 39300000 04 13 E02E0000")
    assert _table_values(text) == ["0.3", "0.1", "12.345", "12"]
    out = _decode("--json", text)
    assert "0.30000000000000004" not in out and "12.345000000000001" not in out
    assert _json_values(text) == [Decimal("0.3"), Decimal("0.1"), Decimal("12.345"), 12]


def test_real32_is_the_float_the_meter_sent() -> None:
    """DIF 05 (REAL32) 0.1 °C: 0x3DCCCCCD as a 32-bit float, not 0.10000000149011612."""
    raw = struct.pack("<f", 0.1).hex()
    text = _built(f"05 5B {raw}")
    assert _table_values(text) == ["0.1"]
    assert _json_values(text) == [Decimal("0.1")]
    assert shortest_decimal(struct.unpack("<f", struct.pack("<f", 21.536703))[0]) == "21.536703"
    assert shortest_decimal(0.1) == "0.1" and shortest_decimal(1e300) == "1e+300"


def test_small_scales_print_positionally() -> None:
    """VIF 0x10: 10^-6 m³, raw 7: 0.000007, not 7e-06."""
    text = _built("01 10 07")
    assert _table_values(text) == ["0.000007"]


@given(raw=st.integers(-(10**20), 10**20), exponent=st.integers(-12, 12))
def test_json_and_table_are_exact_for_any_integer_and_scale(raw: int, exponent: int) -> None:
    value = MeterValue(0, 0, "Wh", exponent, raw)
    want = Decimal(raw).scaleb(exponent)
    number = json_number(value)
    parsed = json.loads(json_text({"v": number}), parse_float=Decimal)["v"]
    assert Decimal(parsed) == want
    if want == want.to_integral_value():
        assert type(parsed) is int
    assert Decimal(format_record_value(number)) == want
    assert Decimal(value.exact) == want  # type: ignore[arg-type]


@given(st.floats(allow_nan=False, allow_infinity=False) | st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_plain_float_is_the_decimal_of_the_repr(value: float) -> None:
    # the table's float cells are written without the decimal module: the same text Decimal(repr) gives
    assert plain_float(value) == plain_decimal(Decimal(repr(value)))


def test_plain_float_edges() -> None:
    assert [plain_float(v) for v in (1e-05, 1.5e16, -0.0, 0.0, 100.0, 5e-324, -12.5)] == [
        "0.00001", "15000000000000000", "0", "0", "100", "0." + "0" * 323 + "5", "-12.5"]


def test_exact_numbers_still_dump_with_plain_json() -> None:
    """json.dumps elsewhere (MQTT messages) does not fail on an ExactNumber: it writes the nearest float."""
    number = ExactNumber(Decimal("1234567890123456.789"))
    assert json.dumps([number]) == "[1234567890123456.8]"
    assert json_text([number]) == "[1234567890123456.789]"


def test_a_string_that_looks_like_a_marker_stays_a_string() -> None:
    doc = {"a": ExactNumber(Decimal("1.0000000000000001")), "b": "1.5", "c": "\u00011.5\u0001"}
    want = {"a": Decimal("1.0000000000000001"), "b": "1.5", "c": "\u00011.5\u0001"}
    assert json.loads(json_text(doc), parse_float=Decimal) == want


def test_csv_is_byte_identical() -> None:
    """format_value (CSV, XML) never rounded: raw values as integers, floats by their repr."""
    meter = Meter(Interface.MBUS, serial="12345678", manufacturer="KAM", version=1, medium=2)
    values = (
        MeterValue(0, 0, "Wh", 0, 99999999999900, encoding="BCD12"),
        MeterValue(1, 0, "m³", -3, 12345, encoding="INT32"),
    )
    out = io.StringIO()
    CsvWriter(6).write([Reading(meter, datetime(2024, 1, 1, tzinfo=UTC), values)], out)
    assert "99999999999900" in out.getvalue() and "12345" in out.getvalue()
    assert format_value(values[1], scale_values=True) == "12.345"
    assert format_value(values[0], scale_values=False) == "99999999999900"
