"""Typed data with no I/O. Imports nothing else from sonocli (DESIGN.md dependency rule)."""

from sonocli.model.tables import (
    measurement_index,
    measurement_text,
    medium_index,
    medium_text,
    unit_description,
    unit_index,
    unit_text,
)
from sonocli.model.values import (
    AddressMode,
    Interface,
    Meter,
    MeterIdentity,
    MeterValue,
    Reading,
    ValueConfig,
    ValueType,
)

__all__ = [
    "AddressMode",
    "Interface",
    "Meter",
    "MeterIdentity",
    "MeterValue",
    "Reading",
    "ValueConfig",
    "ValueType",
    "measurement_index",
    "measurement_text",
    "medium_index",
    "medium_text",
    "unit_description",
    "unit_index",
    "unit_text",
]
