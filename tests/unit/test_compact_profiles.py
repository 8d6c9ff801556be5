"""Compact profiles (EN 13757-3:2018 Annex F) expanded into one value per element.

The record blocks are wmbusmeters' own Annex F tests (src/testinternals.cc, ``test_dvparser``,
wmbusmeters/wmbusmeters @ 4dedd717d3af8043ffa3e94f69476656ccd17bc2, GPL-3.0-or-later; test data quoted).
Storage numbers, subunits, dates, illegal elements and reserved spacings are checked as wmbusmeters
states them. One deliberate difference: wmbusmeters' generic parser sums increments, decrements and
differences onto the base value; sonocli keeps each element as the consumption of its period, as
wmbusmeters' own drivers report them (see ``mbus_app._expand_profile`` and the Techem case in the
real-world corpus). Every block starts with the base value 1000 (``02 13 E8 03``: volume, 10⁻³ m³).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sonocli.codecs.mbus_app import decode_record_block, decode_records
from sonocli.errors import DecodeError
from sonocli.model import MeterValue


def _profile(block: str) -> list[MeterValue]:
    values = decode_records(bytes.fromhex(block.replace(" ", "")), strict=True)[0]
    assert values[0].raw == 1000 or "0213E803" not in block.replace(" ", "")
    return [v for v in values if "profile" in (v.text or "")]


def _storage_values(block: str) -> list[tuple[int, float | str | None]]:
    return [(v.storage, v.value) for v in _profile(block)]


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        # inverse profile (newest first) of unsigned increments, one month apart: storage 1, 2, ...
        ("0213E803 0D9313 06 72FE05000700", [(1, 0.005), (2, 0.007)]),
        # decrements
        ("0213E803 0D9313 06 B2FE05000700", [(1, 0.005), (2, 0.007)]),
        # signed differences: -5 then +7
        ("0213E803 0D9313 06 F2FEFBFF0700", [(1, -0.005), (2, 0.007)]),
        # half-month spacing (0xFD with the unit days/months)
        ("0213E803 0D9313 04 72FD0500", [(1, 0.005)]),
        # absolute values are signed: FFFB is -5
        ("0213E803 0D9313 04 32FEFBFF", [(1, -0.005)]),
        # an illegal increment (all ones, unsigned) is left out; the next keeps its storage number
        ("0213E803 0D9313 08 72FE0500FFFF0700", [(1, 0.005), (3, 0.007)]),
        # an illegal signed difference (the signed minimum 0x8000) too
        ("0213E803 0D9313 08 F2FE010000800700", [(1, 0.001), (3, 0.007)]),
        # (sonocli's own case) an illegal absolute value (signed minimum) is left out; all ones is -1 there
        ("0213E803 0D9313 08 32FE0080FFFF0700", [(2, -0.001), (3, 0.007)]),
    ],
)
def test_profile_elements_take_the_next_storage_numbers(block: str, expected: list[tuple[int, float]]) -> None:
    assert _storage_values(block) == expected


def test_inverse_profile_dates_go_back_from_the_base_time() -> None:
    # base storage 8 (82 04) with 1000 and 2024-01-10; two days apart, newest first
    values = _profile("820413E803 82046C0A31 8D04931306720205000300")
    assert [(v.storage, v.value, v.timestamp) for v in values] == [
        (9, 0.005, datetime(2024, 1, 8, tzinfo=UTC)),
        (10, 0.003, datetime(2024, 1, 6, tzinfo=UTC)),
    ]


def test_half_month_dates_step_between_the_first_and_the_sixteenth() -> None:
    values = _profile("0213E803 026C1031 0D9313 06 72FD05000300")
    assert [(v.storage, f"{v.timestamp:%Y-%m-%d}") for v in values] == [(1, "2024-01-01"), (2, "2023-12-16")]


def test_register_numbers_count_forward_from_the_base_register() -> None:
    values = _profile("820413E803 82046C1031 8D04931E0632FEE903EA03")
    assert [(v.storage, v.value, f"{v.timestamp:%Y-%m-%d}") for v in values] == [
        (9, 1.001, "2024-02-16"),
        (10, 1.002, "2024-03-16"),
    ]


def test_spacing_zero_is_an_array_whose_unit_names_the_column() -> None:
    (element,) = _profile("0213E803 0D9313 04 12000500")  # unit 01b: column 2, subunit + 1
    assert (element.storage, element.subunit, element.value, element.timestamp) == (1, 1, 0.005, None)
    (element,) = _profile("0213E803 0D9313 04 72000500")  # unit 11b: column 4
    assert (element.storage, element.subunit) == (1, 3)


@pytest.mark.parametrize("block", ["0213E803 0D9313 04 72FB0500", "0213E803 0D9313 04 52FD0500"])
def test_reserved_spacing_values_are_not_expanded(block: str) -> None:
    (kept,) = _profile(block)  # 0xFB is reserved; 0xFD (half month) only with the unit days/months
    assert kept.raw == bytes.fromhex(block.split()[-1]) and "reserved spacing value" in (kept.text or "")


def test_an_unreadable_profile_is_refused_in_strict_mode_and_left_out_otherwise() -> None:
    block = bytes.fromhex("0213E803 0D9313 03 7DFE05".replace(" ", ""))  # element coding 0xD (LVAR)
    with pytest.raises(DecodeError, match="not a fixed-size type"):
        decode_records(block, strict=True)
    tolerant = decode_record_block(block)
    assert [v.raw for v in tolerant.values] == [1000] and "compact profile" in tolerant.warnings[0]


@settings(max_examples=int(os.environ.get("HYP_N", "300")), deadline=None)
@given(
    st.sampled_from([0x13, 0x1E, 0x1F]), st.integers(0, 255), st.integers(0, 255), st.binary(max_size=80),
    st.binary(max_size=12),
)  # fmt: skip
def test_any_profile_decodes_or_raises_only_decode_errors(
    vife: int, control: int, spacing: int, elements: bytes, prefix: bytes
) -> None:
    body = bytes([control, spacing]) + elements
    base = bytes.fromhex("82046C0A31820413E803")  # base time and base value at storage 8
    data = prefix + base + bytes([0x8D, 0x04, 0x93, vife, len(body)]) + body
    try:
        values = decode_records(data, strict=True)[0]
    except DecodeError:
        return
    for value in values:
        _ = value.value
    assert [v.index for v in values] == list(range(len(values)))
