"""Techem radio meters: MK Radio 3 / 3a / 4 water meters and FHKV data III heat cost allocators.

Source: the payload layouts of wmbusmeters' drivers ``mkradio3``, ``mkradio3a``, ``mkradio4`` and
``fhkvdataiii`` (drivers/src/*.xmq @ 4dedd717, GPL-3.0-or-later), read and re-expressed here, checked
against the telegrams and values of those drivers' tests (tests/data/drivers/). The payload follows a
manufacturer CI (0xA0-0xA2); Techem packs dates in 16 bits: the previous billing date as
day | month << 5 | (year - 2000) << 9, the current date as day << 4 | month << 9 with the year implied
by the billing date (the current period started at it).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from sonocli.codecs.drivers import DriverOutput, Match, Span, le_uint, need, virtual_records
from sonocli.codecs.drivers._dates import safe_date, type_g
from sonocli.errors import DecodeError

if TYPE_CHECKING:
    from sonocli.codecs.wmbus import WmbusTelegram
    from sonocli.model import MeterValue


def _prev_date(raw: int) -> date | None:
    return safe_date(2000 + (raw >> 9), (raw >> 5) & 0x0F, raw & 0x1F)


def _curr_date(raw: int, prev: date | None, *, roll: bool = False) -> date | None:
    day = (raw >> 4) & 0x1F
    month = (raw >> 9) & 0x0F
    if roll:  # FHKV: day 0 / month 0 mean the first day / December
        day = day or 1
        month = month or 12
    if prev is None:
        return None
    later = month > prev.month or (month == prev.month and day > prev.day)
    return safe_date(prev.year + (0 if later else 1), month, day)


def _meter_total(tenths: int) -> MeterValue:
    """The meter's total (what its display shows): volume at the billing date plus this period's, as a
    volume record of storage 0 in 0.1 m³; its text says it is that sum."""
    total = virtual_records([("0415", tenths.to_bytes(4, "little"))])[0]
    return total._replace(text="total: billing-date volume + this period")


def _dates(prev: date | None, curr: date | None) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    if curr is not None:
        out.append(("026C", type_g(curr)))
    if prev is not None:
        out.append(("426C", type_g(prev)))
    return out


class MkRadio3Driver:
    """MK Radio 3 (version 0x74): consumption of the current period (0.1 m³) and at the last billing date."""

    replaces_records = False
    name = "mkradio3"
    matches = (Match("TCH", 0x62, 0x74), Match("TCH", 0x72, 0x74))

    def decode(self, telegram: WmbusTelegram, key: bytes | None = None) -> DriverOutput:
        p = telegram.payload
        if telegram.link.address.version == 0x50:
            return _mkradio3a(p)
        need(p, 9, "Techem MK Radio 3")
        prev_d = _prev_date(le_uint(p[1:3]))
        curr_d = _curr_date(le_uint(p[5:7]), prev_d)
        target, current = le_uint(p[3:5]), le_uint(p[7:9])
        records = (*virtual_records([("4215", p[3:5]), ("0215", p[7:9]), *_dates(prev_d, curr_d)]),
                   _meter_total(target + current))
        fields: dict[str, Any] = {
            "total_m3": (target + current) / 10, "target_m3": target / 10,
            "current_date": curr_d.isoformat() if curr_d else None, "prev_date": prev_d.isoformat() if prev_d else None,
        }  # fmt: skip
        spans = (
            Span(0, 1, "status"), Span(1, 2, f"billing date {prev_d}"),
            Span(3, 2, f"volume at billing date {target / 10} m³"),
            Span(5, 2, f"current date {curr_d}"), Span(7, 2, f"volume this period {current / 10} m³"),
        )  # fmt: skip
        return DriverOutput(records, fields, spans, p[9:])


def _mkradio3a(p: bytes) -> DriverOutput:
    """MK Radio 3a (version 0x50): the meter total in 0.1 m³ (24 bits) after the current date."""
    need(p, 7, "Techem MK Radio 3a")
    total = le_uint(p[4:7])
    records = virtual_records([("0315", p[4:7])])
    spans = (Span(0, 2, "status"), Span(2, 2, "current date"), Span(4, 3, f"total {total / 10} m³"))
    return DriverOutput(records, {"total_m3": total / 10}, spans, p[7:])


class MkRadio4Driver:
    """MK Radio 4: volume at the billing date and of the current period, in 0.1 m³."""

    replaces_records = False
    name = "mkradio4"
    matches = (Match("TCH", 0x62, 0x95), Match("TCH", 0x72, 0x95), Match("TCH", 0x62, 0x70), Match("TCH", 0x72, 0x70))

    def decode(self, telegram: WmbusTelegram, key: bytes | None = None) -> DriverOutput:
        p = telegram.payload
        need(p, 9, "Techem MK Radio 4")
        target, current = le_uint(p[3:5]), le_uint(p[7:9])
        records = (*virtual_records([("4215", p[3:5]), ("0215", p[7:9])]), _meter_total(target + current))
        spans = (
            Span(0, 3, "status and dates"),
            Span(3, 2, f"volume at billing date {target / 10} m³"),
            Span(5, 2, "current date"),
            Span(7, 2, f"volume this period {current / 10} m³"),
        )
        fields = {"total_m3": (target + current) / 10, "target_m3": target / 10}
        return DriverOutput(records, fields, spans, p[9:])


class FhkvDataIIIDriver:
    """FHKV data III heat cost allocators: HCA units of the billing and the current period, room and
    radiator temperatures (0.01 °C). Layout by the first payload byte: 0x01 / 0x11, or 0x0F (one more
    byte before the temperatures)."""

    replaces_records = False
    name = "fhkvdataiii"
    matches = (Match("TCH", 0x80, 0x69), Match("TCH", 0x80, 0x94))

    def decode(self, telegram: WmbusTelegram, key: bytes | None = None) -> DriverOutput:
        p = telegram.payload
        need(p, 1, "Techem FHKV data III")
        if p[0] in (0x01, 0x11):
            temps = 9
        elif p[0] == 0x0F:
            temps = 10
        else:
            raise DecodeError(f"Techem FHKV data III: unknown payload layout {p[0]:02X} (known: 01, 11, 0F)")
        need(p, temps + 4, "Techem FHKV data III")
        prev_d = _prev_date(le_uint(p[1:3]))
        curr_d = _curr_date(le_uint(p[5:7]), prev_d, roll=True)
        room, radiator = p[temps : temps + 2], p[temps + 2 : temps + 4]
        records = virtual_records([
            ("426E", p[3:5]), ("026E", p[7:9]), ("0265", room), ("025D", radiator), *_dates(prev_d, curr_d),
        ])  # fmt: skip
        fields: dict[str, Any] = {
            "current_hca": le_uint(p[7:9]), "current_date": curr_d.isoformat() if curr_d else None,
            "previous_hca": le_uint(p[3:5]), "previous_date": prev_d.isoformat() if prev_d else None,
            "temp_room_c": le_uint(room) / 100, "temp_radiator_c": le_uint(radiator) / 100,
        }  # fmt: skip
        spans = (
            Span(0, 1, f"layout {p[0]:02X}"), Span(1, 2, f"billing date {prev_d}"), Span(3, 2, "HCA at billing date"),
            Span(5, 2, f"current date {curr_d}"), Span(7, 2, "HCA this period"),
            Span(temps, 2, "room temperature"), Span(temps + 2, 2, "radiator temperature"),
        )  # fmt: skip
        return DriverOutput(records, fields, spans, p[temps + 4 :])
