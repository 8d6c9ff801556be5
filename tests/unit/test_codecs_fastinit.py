"""The fast positional constructors build objects equal to, and as frozen as, the regular constructor's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sonocli.codecs.fastinit import slot_constructor
from sonocli.codecs.mbus_app import decode_wired
from sonocli.model import MeterValue, ValueType

FRAMES = sorted((Path(__file__).resolve().parents[1] / "data" / "libmbus" / "test-frames").glob("*.hex"))


def test_decoded_values_equal_regularly_constructed_ones() -> None:
    for path in FRAMES:
        for value in decode_wired(bytes.fromhex(path.read_text())).values:
            fields = [getattr(value, f.name) for f in dataclasses.fields(MeterValue)]
            assert MeterValue(*fields) == value
            assert hash(MeterValue(*fields)) == hash(value)


def test_objects_stay_frozen_and_defaults_apply() -> None:
    make = slot_constructor(MeterValue)
    value = make(3, 9, "Wh")
    assert value == MeterValue(3, 9, "Wh")
    assert value.function is ValueType.INSTANTANEOUS and value.dif_vif == b""
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.raw = 5  # type: ignore[misc]


def test_classes_with_post_init_use_the_regular_constructor() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError("negative")

    assert slot_constructor(Checked) is Checked
