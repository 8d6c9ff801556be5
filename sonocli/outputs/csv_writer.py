"""CSV data in the device's protocol versions 0–7 (guide section 5.3.2, Tables 19 and 20).

Which columns exist in which version follows Table 20 exactly::

    meter part   Index (6+)  Timestamp  DeviceId  Link (4+)  User (5+)
    value part   IndexX (6+) ValueX ScaleX UnitX DescriptionX UserX (2+) TimestampX (2+) ObsIdX (1+)

A header row is written from version 2 on. One row per reading; each row has as many value groups as that
reading has values, the header as many as the widest row of the file.

Where the guide contradicts itself, sonocli writes what Figure 22 shows, because Figure 22 is the only
sample of the device's real output (a spreadsheet view of a device file, with the firmware's own spelling),
and head-ends written against real devices parse that:

* header names ``DeviceId`` and ``ObsIdX`` (Figure 22; Table 20 also writes "DeviceId"), not Table 19's
  ``Device-ID``/``ObisidX``. Columns Figure 22 does not show use Table 19's names (Index, Link, User, IndexX).
* OBIS codes as ``6-0-1.0.0*255`` (Figure 22), not ``6-0:1.0.0*255`` (Table 9); ``obis_style="iec"`` gives the
  IEC 62056-61 form for head-ends that want it.

Other choices: semicolons; CRLF line ends (RFC 4180; the device's files open in spreadsheets); UTF-8 (``m³``);
a field holding ``;``, ``"`` or a line break is quoted RFC 4180 style. ``Index`` numbers the meters of one
file in order of first appearance from 0 (values are numbered from 0 too, section 5.3.2); ``IndexX`` is the
value's index in its meter. ``Link`` is the primary address of wired meters and, for wM-Bus meters, the RSSI
of the telegram (the meter's last RSSI when the reading carries none). ``UserX`` and ``ObsIdX`` come from the
meter-list entry of the value's index as it was when the reading was taken.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Final, TextIO

from sonocli.errors import UsageError
from sonocli.model.values import Interface, Meter, MeterValue, Reading
from sonocli.outputs.formatting import (
    csv_scale,
    effective_exponent,
    format_obis,
    format_value,
    unix_seconds,
    value_timestamp,
)

PROTOCOL_VERSIONS: Final = range(0, 8)
DELIMITER: Final = ";"
NEWLINE: Final = "\r\n"
_SPECIAL: Final = frozenset(';"\r\n')


def check_protocol_version(version: int) -> int:
    if version not in PROTOCOL_VERSIONS:
        raise UsageError(f"protocol version {version} is not supported; allowed: 0-7")
    return version


def quote(field: str) -> str:
    if _SPECIAL.isdisjoint(field):
        return field
    return '"' + field.replace('"', '""') + '"'


def reading_link(reading: Reading) -> int:
    meter = reading.meter
    if meter.interface is Interface.WMBUS and reading.rssi is not None:
        return reading.rssi
    return meter.link


class CsvWriter:
    """Writes readings as the device's CSV, streaming: one row per reading, nothing buffered."""

    def __init__(
        self,
        protocol_version: int = 3,
        *,
        scale_values: bool = False,
        value_count: int | None = None,
        obis_style: str = "figure22",
        meter_indices: MutableMapping[str, int] | None = None,
    ) -> None:
        """``value_count`` is the header's number of value groups; when None, :meth:`write` finds the widest
        reading itself, which means holding the readings in memory — pass it for large exports.
        ``meter_indices`` (Device-ID → Index) lets a caller continue the numbering of an existing file."""
        if obis_style not in ("figure22", "iec"):
            raise UsageError(f"obis style {obis_style!r} is not one of figure22, iec")
        self.protocol_version = check_protocol_version(protocol_version)
        self.scale_values = scale_values
        self.value_count = value_count
        self.obis_style = obis_style
        self.meter_indices: MutableMapping[str, int] = {} if meter_indices is None else meter_indices
        self._obis_cache: dict[str | None, str] = {}

    @property
    def has_header(self) -> bool:
        return self.protocol_version >= 2

    def columns(self, value_count: int) -> list[str]:
        """The column names for ``value_count`` value groups (also the file's signature in the CSV log)."""
        v = self.protocol_version
        names = ["Index"] if v >= 6 else []
        names += ["Timestamp", "DeviceId"]
        if v >= 4:
            names.append("Link")
        if v >= 5:
            names.append("User")
        for x in range(value_count):
            if v >= 6:
                names.append(f"Index{x}")
            names += [f"Value{x}", f"Scale{x}", f"Unit{x}", f"Description{x}"]
            if v >= 2:
                names += [f"User{x}", f"Timestamp{x}"]
            if v >= 1:
                names.append(f"ObsId{x}")
        return names

    def header(self, value_count: int) -> str:
        """The header line (with line end) for ``value_count`` value groups; empty before version 2."""
        if not self.has_header:
            return ""
        return DELIMITER.join(self.columns(value_count)) + NEWLINE

    def row(self, reading: Reading) -> str:
        """One reading as one CSV line, line end included."""
        v = self.protocol_version
        meter = reading.meter
        fields: list[str] = []
        if v >= 6:
            fields.append(str(self._meter_index(meter)))
        fields += [str(unix_seconds(reading.taken_at)), meter.device_id]
        if v >= 4:
            fields.append(str(reading_link(reading)))
        if v >= 5:
            fields.append(meter.user or "")
        for value in reading.values:
            fields += self._value_fields(meter, value)
        line = DELIMITER.join(fields)
        # Fast path: no field holds a delimiter (count matches), a quote or a line break.
        if line.count(DELIMITER) != len(fields) - 1 or '"' in line or "\r" in line or "\n" in line:
            line = DELIMITER.join(quote(field) for field in fields)
        return line + NEWLINE

    def _value_fields(self, meter: Meter, value: MeterValue) -> list[str]:
        v = self.protocol_version
        config = meter.values[value.index] if 0 <= value.index < len(meter.values) else None
        fields: list[str] = []
        if v >= 6:
            fields.append(str(value.index))
        fields += [
            format_value(value, scale_values=self.scale_values),
            csv_scale(effective_exponent(value, scale_values=self.scale_values)),
            value.unit,
            value.description,
        ]
        if v >= 2:
            fields += [(config.user if config else None) or "", str(value_timestamp(value))]
        if v >= 1:
            fields.append(self._obis(config.obis if config else None))
        return fields

    def _obis(self, text: str | None) -> str:
        cache = self._obis_cache
        spelled = cache.get(text)
        if spelled is None:
            if len(cache) >= 4096:
                cache.clear()
            spelled = cache[text] = format_obis(text, style=self.obis_style)
        return spelled

    def _meter_index(self, meter: Meter) -> int:
        key = meter.device_id
        index = self.meter_indices.get(key)
        if index is None:
            index = len(self.meter_indices)
            self.meter_indices[key] = index
        return index

    def write(self, readings: Iterable[Reading], out: TextIO, *, header: bool = True) -> int:
        """Write the header (version 2+, when ``header``) and one row per reading; returns rows written."""
        count = self.value_count
        if header and self.has_header and count is None:
            readings = list(readings)
            count = max((len(reading.values) for reading in readings), default=0)
        if header and self.has_header:
            out.write(self.header(count or 0))
        rows = 0
        for reading in readings:
            out.write(self.row(reading))
            rows += 1
        return rows
