"""The guide's description modes (Table 10), checked against the guide's own examples."""

from __future__ import annotations

import pytest

from sonocli.codecs.mbus_app import decode_records
from sonocli.model.description import MODES, describe, mode_index

# The guide's example: DIF 8C DIFE 11 VIF 04 = energy, storage 2, tariff 1, BCD8 00064796
_DATA = bytes.fromhex("8C 11 04 96 47 06 00 9C 11 04 96 47 06 00 04 06 01000000")
VALUES, _MORE, _MFR = decode_records(_DATA, strict=True)
ENERGY, ENERGY_MAX, PLAIN = VALUES


@pytest.mark.parametrize(
    ("mode", "text"),
    [
        (0, ""),
        (1, "Energy"),
        (2, "Energy [2] <1>"),
        (3, "Energy [2] <1> # 8C 11 04"),
        (4, "Energy [2] <1> # 8C 11 04 96 47 06 00"),
        (5, "8C 11 04"),
        (6, "8C 11 04 96 47 06 00"),
    ],
)
def test_guide_examples(mode: int, text: str) -> None:
    assert describe(ENERGY, mode) == text
    assert describe(ENERGY, MODES[mode]) == text


def test_value_type_and_defaults_left_out() -> None:
    assert describe(ENERGY_MAX, "extended") == "Energy [2] <1> {max}"
    assert describe(PLAIN, "Extended") == "Energy"
    assert describe(PLAIN, "extended with DIF/VIF") == "Energy # 04 06"


def test_mode_names_and_errors() -> None:
    assert mode_index("Extended with raw data") == 4 == mode_index("extended_with_raw_data") == mode_index("4")
    assert mode_index("DIF/VIF") == 5 and mode_index("raw data") == 6
    with pytest.raises(ValueError, match="not one of"):
        mode_index("fancy")
    with pytest.raises(ValueError, match="outside"):
        mode_index(7)
