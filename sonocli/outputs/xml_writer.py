"""XML data in the device's protocol versions 0–7 (guide section 5.3.3, Tables 21 and 22).

Which attributes exist in which version follows Table 22 exactly: ``MUC_ID`` decimal in versions 0–1 and
hexadecimal from 2, ``VERSION`` ``1f1``…``1f8``, meter and data ``USER`` from 5, data ``MAN``/``VER``/``MED``
in 7. Each ``<entry>`` carries ``T`` (the meter's time of the value, the concentrator's when the meter sent
none), ``T_MUC`` (the concentrator's time of the readout) and ``VAL``.

Where the guide contradicts itself sonocli writes what the section 5.3.3 example shows, because the example
is the device's actual output and head-ends written against real devices parse that:

* ``MESSAGE_TYPE="2"`` (the example) rather than Table 21's "1"; ``message_type=1`` restores the table's.
* ``DESCRIPTION`` and ``MEDIUM`` are the Table 17/16 texts in capitals (``VOLUME``, ``WATER``), ``UNIT`` the
  Table 18 symbol in ASCII (``m^3`` for ``m³``), ``INTERFACE`` two digits (``05``), ``SCALE`` as C's ``%.0e``
  (``1e-03``), ``OBIS_ID`` as ``A-B:C.D.E*F`` (``8-0:1.0.0*255``).
* Attribute order as in the example (``METER_ID`` before ``INTERFACE``; ``DESCRIPTION UNIT SCALE MEDIUM
  OBIS_ID``), the attributes the example does not show after them in Table 22's order.
* Version 7's ``VER`` and ``MED`` are two hex digits, as in the Device-ID (``DFS-00127550-02-04``).

Grouping: consecutive readings of one meter form one ``<meter>``; in it, one ``<data>`` per meter value
holding that value's ``<entry>`` per reading, as Table 21 and the example have it. A meter value is its
``index`` (its place in the meter-list entry, which ``meter.values[index]`` configures) together with its
attributes: values equal in every attribute are still kept apart by index, because the attributes say
nothing of function, storage number, tariff or subunit (a meter's instantaneous, maximum and stored
maximum power are all ``POWER``/``W``), and merging them would put three different quantities into one
``<data>`` as if they were one value's readings over time. To keep memory
flat on long exports a ``<meter>`` holds at most ``group_limit`` readings; a longer run goes on in another
``<meter>`` element for the same meter (feed readings ordered by meter, then time, for the fewest elements).
Readings without values are left out: Table 21 requires at least one data item per meter.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, BinaryIO, Final, Protocol

from sonocli.model.tables import medium_text
from sonocli.model.values import Meter, MeterValue, Reading
from sonocli.outputs.csv_writer import check_protocol_version
from sonocli.outputs.formatting import (
    effective_exponent,
    format_obis,
    format_value,
    unix_seconds,
    xml_safe,
    xml_scale,
)

DECLARATION: Final = b'<?xml version="1.0" encoding="utf-8"?>\n'
_ASCII_UNITS: Final = str.maketrans({"³": "^3", "²": "^2"})

_DataAttrs = tuple[tuple[str, str], ...]
# (value index, data attributes): the index keeps apart values whose attributes happen to be equal
_DataKey = tuple[int, _DataAttrs]
_Entry = tuple[str, str, str]


class _Sink(Protocol):
    """The part of ``lxml.etree.xmlfile``'s writer used here (lxml-stubs does not describe it)."""

    def write(self, *args: Any) -> None: ...

    def element(self, tag: str, attrib: dict[str, str] | None = None) -> AbstractContextManager[Any]: ...


def version_tag(protocol_version: int) -> str:
    return f"1f{protocol_version + 1}"


class XmlWriter:
    """Writes readings as one ``<interface>`` packet, streaming through ``lxml.etree.xmlfile``."""

    def __init__(
        self,
        protocol_version: int = 3,
        *,
        muc_id: int,
        scale_values: bool = False,
        message_type: int = 2,
        group_limit: int = 1000,
        obis_style: str = "iec",
    ) -> None:
        self.protocol_version = check_protocol_version(protocol_version)
        self.muc_id = muc_id
        self.scale_values = scale_values
        self.message_type = message_type
        self.group_limit = max(1, group_limit)
        self.obis_style = obis_style

    def muc_attributes(self, timestamp: datetime) -> dict[str, str]:
        muc = str(self.muc_id) if self.protocol_version <= 1 else f"{self.muc_id:x}"
        return {"MUC_ID": muc, "VERSION": version_tag(self.protocol_version), "TIMESTAMP": str(unix_seconds(timestamp))}

    def meter_attributes(self, meter: Meter) -> dict[str, str]:
        attrs = {"METER_ID": meter.serial, "INTERFACE": f"{int(meter.interface):02d}"}
        if self.protocol_version >= 5:
            attrs["USER"] = meter.user or ""
        return {name: xml_safe(text) for name, text in attrs.items()}

    def data_attributes(self, meter: Meter, value: MeterValue) -> dict[str, str]:
        config = meter.values[value.index] if 0 <= value.index < len(meter.values) else None
        attrs = {
            "DESCRIPTION": value.description.upper(),
            "UNIT": value.unit.translate(_ASCII_UNITS),
            "SCALE": xml_scale(effective_exponent(value, scale_values=self.scale_values)),
            "MEDIUM": "" if meter.medium is None else medium_text(meter.medium).upper(),
            "OBIS_ID": format_obis(config.obis if config else None, style=self.obis_style),
        }
        if self.protocol_version >= 7:
            attrs["MAN"] = meter.manufacturer or ""
            attrs["VER"] = "" if meter.version is None else f"{meter.version:02X}"
            attrs["MED"] = "" if meter.medium is None else f"{meter.medium:02X}"
        if self.protocol_version >= 5:
            attrs["USER"] = (config.user if config else None) or ""
        return {name: xml_safe(text) for name, text in attrs.items()}

    def write(self, readings: Iterable[Reading], out: BinaryIO, *, timestamp: datetime) -> int:
        """Write one packet with TIMESTAMP ``timestamp`` (the transmission time); returns readings written."""
        from lxml import etree

        out.write(DECLARATION)
        interface = {"MESSAGE_TYPE": str(self.message_type)}
        with etree.xmlfile(out, encoding="utf-8") as xf, xf.element("interface", interface):
            xf.write("\n  ")
            with xf.element("muc", self.muc_attributes(timestamp)):
                written = self._write_meters(xf, readings)
                xf.write("\n  ")
            xf.write("\n")
        out.write(b"\n")
        return written

    def _write_meters(self, xf: _Sink, readings: Iterable[Reading]) -> int:
        written = 0
        meter_key: tuple[str, ...] | None = None
        meter_attrs: dict[str, str] = {}
        groups: dict[_DataKey, list[_Entry]] = {}
        # data attributes depend only on these fields; computing them once per distinct key saves most time
        memo: dict[tuple[object, ...], _DataAttrs] = {}
        count = 0
        for reading in readings:
            attrs = self.meter_attributes(reading.meter)
            key = (reading.meter.device_id, *attrs.values())
            if key != meter_key or count >= self.group_limit:
                self._flush(xf, meter_attrs, groups)
                meter_key, meter_attrs, groups, count = key, attrs, {}, 0
            if not reading.values:
                continue
            t_muc = str(unix_seconds(reading.taken_at))
            meter = reading.meter
            for value in reading.values:
                config = meter.values[value.index] if 0 <= value.index < len(meter.values) else None
                memo_key = (
                    value.index, value.measurement, value.text, value.unit, value.exponent, meter.medium,
                    meter.manufacturer, meter.version, config.obis if config else None, config.user if config else None,
                )  # fmt: skip
                data_attrs = memo.get(memo_key)
                if data_attrs is None:
                    if len(memo) >= 4096:
                        memo.clear()
                    data_attrs = memo[memo_key] = tuple(self.data_attributes(meter, value).items())
                t = t_muc if value.timestamp is None else str(unix_seconds(value.timestamp))
                entry = (t, t_muc, xml_safe(format_value(value, scale_values=self.scale_values)))
                # keyed by index too: equal attributes alone do not make two values one (see module docstring)
                groups.setdefault((value.index, data_attrs), []).append(entry)
            count += 1
            written += 1
        self._flush(xf, meter_attrs, groups)
        return written

    @staticmethod
    def _flush(xf: _Sink, meter_attrs: dict[str, str], groups: dict[_DataKey, list[_Entry]]) -> None:
        if not groups:
            return
        write = xf.write
        element = xf.element
        write("\n    ")
        with element("meter", meter_attrs):
            for (_index, data_attrs), entries in groups.items():
                write("\n      ")
                with element("data", dict(data_attrs)):
                    for t, t_muc, val in entries:
                        write("\n        ")
                        with element("entry"):
                            write("\n          ")
                            with element("parameter", {"NAME": "T"}):
                                write(t)
                            write("\n          ")
                            with element("parameter", {"NAME": "T_MUC"}):
                                write(t_muc)
                            write("\n          ")
                            with element("parameter", {"NAME": "VAL"}):
                                write(val)
                            write("\n        ")
                    write("\n      ")
            write("\n    ")
