"""The decoder's fast constructors build objects equal to, and as immutable as, the regular constructors'.

MeterValue, Header and AppData are NamedTuples the decoder builds with ``tuple.__new__``; LongFrame is a
slotted dataclass built by ``fastinit.slot_constructor``. Both shortcuts must give what the class's own
constructor gives, field for field.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sonocli.codecs.fastinit import slot_constructor
from sonocli.codecs.mbus_app import AppData, Header, decode_wired
from sonocli.codecs.mbus_link import LongFrame, decode_frame
from sonocli.model import MeterValue, ValueType

FRAMES = sorted((Path(__file__).resolve().parents[1] / "data" / "libmbus" / "test-frames").glob("*.hex"))


def test_decoded_values_equal_keyword_constructed_ones() -> None:
    stamped = 0
    for path in FRAMES:
        app = decode_wired(bytes.fromhex(path.read_text()))
        assert type(app) is AppData
        assert app == AppData(**app._asdict())
        if app.header is not None:
            assert type(app.header) is Header and app.header == Header(**app.header._asdict())
        for value in app.values:
            assert type(value) is MeterValue
            rebuilt = MeterValue(**value._asdict())
            assert rebuilt == value and hash(rebuilt) == hash(value)
            stamped += value.timestamp is not None
    assert stamped > 50  # the timestamp pass rebuilt values, and they still compare equal


def test_values_are_immutable_and_defaults_apply() -> None:
    value = MeterValue(3, 9, "Wh")
    assert value.function is ValueType.INSTANTANEOUS and value.dif_vif == b"" and value.timestamp is None
    with pytest.raises(AttributeError):
        value.raw = 5  # type: ignore[misc]
    assert value._replace(raw=5).raw == 5 and value.raw is None


def test_slot_constructor_matches_the_dataclass() -> None:
    frame = bytes.fromhex(FRAMES[0].read_text())
    decoded, _ = decode_frame(frame)
    assert isinstance(decoded, LongFrame)
    make = slot_constructor(LongFrame)
    built = make(decoded.control, decoded.address, decoded.ci, decoded.data)
    assert built == decoded == LongFrame(decoded.control, decoded.address, decoded.ci, decoded.data)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.ci = 5  # type: ignore[misc]


def test_classes_with_post_init_use_the_regular_constructor() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError("negative")

    assert slot_constructor(Checked) is Checked
