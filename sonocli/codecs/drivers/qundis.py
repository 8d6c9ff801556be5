"""Qundis walk-by telegrams: the readings inside the manufacturer record ``0D FF 5F`` (53 bytes).

Source: wmbusmeters' drivers ``qwater`` / ``qheat`` (src/driver_qwater.cc, src/driver_qheat.cc @ 4dedd717,
GPL-3.0-or-later, function ``qdsExtractWalkByField``): counted after the record's length byte, offset 12
holds the total (8 BCD digits), 16 the last billing date (type G), 18 the value at that date, 22 the last
month's date, 24 the value then. Byte 9 names the unit as an EN 13757-3 VIF (13: litres, 05: 0.1 kWh,
06: kWh, 0D: 100 kJ), as wmbusmeters' newer ``qheatv2`` reads it; where it does not, water meters count
litres and heat meters 0.1 kWh (``qheat``). Checked against the
drivers' test telegrams (tests/data/drivers/). Telegrams with standard records need no driver: without
the ``0D FF 5F`` record this driver adds no values. A radio module (DLL device type 37h) names the meter
behind it in its enhanced identification record (``07 79``); the driver gives that as the telegram's meter
in every Qundis telegram that has one, as wmbusmeters' qheat driver does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sonocli.codecs.drivers import DriverOutput, Match, Span, virtual_records
from sonocli.errors import DecodeError

if TYPE_CHECKING:
    from sonocli.codecs.wmbus import WmbusTelegram
    from sonocli.codecs.wmbus_link import Address

_WATER = frozenset({0x06, 0x07, 0x15, 0x16, 0x17, 0x28})
_HEAT = frozenset({0x04, 0x0A, 0x0B, 0x0C, 0x0D})


class QundisWalkByDriver:
    replaces_records = False
    name = "qundis"
    matches = (Match("QDS"),)

    def decode(self, telegram: WmbusTelegram, key: bytes | None = None) -> DriverOutput:
        radio = next((v for v in telegram.records if v.dif_vif == b"\x07\x79" and len(v.data) >= 8), None)
        address = _meter_behind_radio(telegram, radio.data[:8] if radio is not None else None)
        walk = next((v for v in telegram.records if v.dif_vif == b"\x0d\xff\x5f"), None)
        if walk is None:
            return DriverOutput(address=address)
        data = walk.data[1:]  # after the LVAR length byte
        if len(data) != 53:
            raise DecodeError(f"Qundis walk-by record 0DFF5F has {len(data)} bytes, the layout needs 53")
        medium = telegram.meter.device_type
        if radio is not None:  # the meter behind a radio module: its own device type
            medium = radio.data[7]
        announced = data[9]  # the meter names the unit of its values (EN 13757-3 VIF) after "07 C0"/"07 C1"
        if announced <= 0x17 and data[7] == 0x07:
            vif = f"{announced:02X}"
            unit, scale = ("m3", 1.0) if announced >= 0x10 else ("kwh", 1000.0 if announced < 0x08 else 3.6e6)
        elif medium in _WATER:
            vif, unit, scale = "13", "m3", 1.0  # records in m³
        elif medium in _HEAT:
            vif, unit, scale = "05", "kwh", 1000.0  # records in Wh
        else:  # heat cost allocators and others: their walk-by layout is not known here, the record stays
            return DriverOutput()
        records = virtual_records([
            ("0C" + vif, data[12:16]), ("426C", data[16:18]), ("4C" + vif, data[18:22]),
            ("C2086C", data[22:24]), ("CC08" + vif, data[24:28]),
        ])  # fmt: skip
        values = [r.value for r in records]
        total = "total_m3" if unit == "m3" else "total_energy_consumption_kwh"
        fields: dict[str, Any] = {total: _num(values[0], scale)}
        if unit == "m3":
            fields.update(due_date_m3=_num(values[2], scale), due_17_date_m3=_num(values[4], scale))
        else:  # the names of wmbusmeters' qheat and of its newer qheatv2
            fields.update(
                last_year_energy_consumption_kwh=_num(values[2], scale),
                last_month_energy_consumption_kwh=_num(values[4], scale),
                total_kwh=_num(values[0], scale),
                target_year_kwh=_num(values[2], scale),
                target_kwh=_num(values[4], scale),
            )
        spans = (
            Span(12, 4, "total"),
            Span(16, 2, "billing date"),
            Span(18, 4, "value at billing date"),
            Span(22, 2, "last month's date"),
            Span(24, 4, "value at last month's date"),
        )
        return DriverOutput(records, fields, spans, address=address)


def _meter_behind_radio(telegram: WmbusTelegram, identification: bytes | None) -> Address | None:
    """The meter a Qundis radio module (DLL device type 37h, "radio converter, meter side") sends for:
    the ID, manufacturer, version and device type of its enhanced identification record (``07 79``, in
    long-header order), as wmbusmeters' qheat driver takes them. Without a TPL long header this record
    is where the telegram names the meter; the radio module's own address stays the DLL's."""
    from sonocli.codecs.wmbus_link import Address

    if identification is None or telegram.link.address.device_type != 0x37 or telegram.tpl is None:
        return None
    if telegram.tpl.address is not None:
        return None
    try:
        return Address.from_tpl(identification)
    except (ValueError, DecodeError):
        return None


def _num(value: object, scale: float) -> float | None:
    """A record's value in the named field's unit (m³ as is, Wh to kWh); None for an invalid BCD value."""
    return value / scale if isinstance(value, float) else None
