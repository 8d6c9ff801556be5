"""The decoder builds MeterValue, Header and AppData with ``tuple.__new__`` from rows of fields; what it
builds must be what the classes' own constructors give, field for field, and just as immutable."""

from __future__ import annotations

from pathlib import Path

import pytest

from sonocli.codecs.mbus_app import AppData, Header, decode_wired
from sonocli.model import MeterValue, ValueType

FRAMES = sorted((Path(__file__).resolve().parents[1] / "data" / "libmbus" / "test-frames").glob("*.hex"))


def test_decoded_objects_equal_keyword_constructed_ones() -> None:
    stamped = 0
    for path in FRAMES:
        app = decode_wired(bytes.fromhex(path.read_text()))
        assert type(app) is AppData
        assert app == AppData(**app._asdict())
        if app.header is not None:
            assert type(app.header) is Header and app.header == Header(**app.header._asdict())
        for value in app.values:
            assert type(value) is MeterValue
            # a row one field short (a field added to MeterValue but not to the decoder's rows) fails here
            rebuilt = MeterValue(**value._asdict())
            assert rebuilt == value and hash(rebuilt) == hash(value)
            assert len(value) == len(MeterValue._fields)  # the last field (qualifiers) is in every row
            assert type(value.qualifiers) is tuple and all(type(q) is str for q in value.qualifiers)
            stamped += value.timestamp is not None
    assert stamped > 50  # the timestamp pass wrote into rows, and the values still compare equal


def test_values_are_immutable_and_defaults_apply() -> None:
    value = MeterValue(3, 9, "Wh")
    assert value.function is ValueType.INSTANTANEOUS and value.dif_vif == b"" and value.timestamp is None
    with pytest.raises(AttributeError):
        value.raw = 5  # type: ignore[misc]
    assert value._replace(raw=5).raw == 5 and value.raw is None
