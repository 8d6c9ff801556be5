"""Apator meters: the 16x/162 register stream after DIF 0x0F, the 08/172 counters (CI 0xA0), NA-1 and the
E-ITN heat cost allocators.

Source: wmbusmeters' drivers ``apator162`` and ``apator08`` / ``apator172`` (drivers/src/*.xmq @ 4dedd717,
GPL-3.0-or-later): their grammars give, per register tag, how many bytes follow; the layout is re-expressed
here as a length table, checked against those drivers' test telegrams (tests/data/drivers/).

Apator 162: after 0x0F come 7 status bytes, then registers ``tag data``; tag 0x10 holds the total volume
in litres (32 bits). 0xFF bytes pad the stream before a 2-byte checksum. A tag not in the table ends the
walk; what follows is kept as manufacturer data.

Apator 08 / 172: the payload starts with a 32-bit counter of thirds of a litre (08) or of a m³ (172).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from sonocli.codecs.drivers import DriverOutput, Match, Span, le_uint, need, virtual_records
from sonocli.errors import DecodeError

if TYPE_CHECKING:
    from sonocli.codecs.wmbus import WmbusTelegram


def _lengths() -> dict[int, int]:
    table = {0x00: 4, 0x01: 3, 0x10: 4, 0x11: 2, 0x40: 6, 0x41: 2, 0x42: 4, 0x43: 2, 0x44: 3,
             0x8A: 9, 0x8B: 6, 0x8C: 6, 0x8E: 7, 0xA0: 4, 0xA1: 4, 0xA2: 1, 0xA3: 7, 0xA4: 4, 0xA5: 1,
             0xA6: 3, 0xA9: 1, 0xAF: 1, 0xB0: 5, 0xB1: 8, 0xB2: 16, 0xB3: 8, 0xB4: 2, 0xB5: 16, 0xD0: 3,
             0xD3: 3, 0xF0: 4}  # fmt: skip
    table.update({tag: 1 + 4 * (tag - 0x6F) for tag in range(0x71, 0x7D)})  # 0x7n: a byte + n+1 values
    table.update({tag: 10 for tag in (0x80, 0x81, 0x82, 0x83, 0x84, 0x86, 0x87)})
    table.update({tag: 11 for tag in (0x85, 0x88, 0x8F)})
    table.update({tag: 2 for tag in (0xA7, 0xA8, 0xAA, 0xAB, 0xAC, 0xAD)})
    table.update({tag: 3 for tag in (*range(0xB6, 0xC0), *range(0xC0, 0xC8))})
    return table


_LENGTHS = _lengths()


class Apator162Driver:
    replaces_records = False
    name = "apator162"
    matches = (Match("APA", 0x06, 0x05), Match("APA", 0x07, 0x05))

    def decode(self, telegram: WmbusTelegram, key: bytes | None = None) -> DriverOutput:
        data = telegram.manufacturer_data
        if not data:
            raise DecodeError("Apator 162: no manufacturer data (DIF 0F) in the telegram")
        need(data, 8, "Apator 162")
        spans = [Span(0, 7, "status")]
        pos = 7
        total: bytes | None = None
        while pos < len(data) and data[pos] != 0xFF:
            tag = data[pos]
            size = _LENGTHS.get(tag)
            if size is None or pos + 1 + size > len(data):
                break
            chunk = data[pos + 1 : pos + 1 + size]
            if tag == 0x10:
                total = chunk
                spans.append(Span(pos, 1 + size, f"register 10: total {le_uint(chunk)} l"))
            else:
                spans.append(Span(pos, 1 + size, f"register {tag:02X} ({size} bytes, not interpreted)"))
            pos += 1 + size
        if total is None:
            raise DecodeError("Apator 162: no total-volume register (tag 10) in the manufacturer data")
        records = virtual_records([("0413", total)])
        return DriverOutput(records, {"total_m3": le_uint(total) / 1000}, tuple(spans), data)


class Apator08Driver:
    replaces_records = False
    name = "apator08"
    matches = (Match("APT", 0x03, 0x03), Match("APT", 0x0F, 0x0F), Match("APT", 0x11, 0x04))

    def decode(self, telegram: WmbusTelegram, key: bytes | None = None) -> DriverOutput:
        p = telegram.payload
        need(p, 4, "Apator 08")
        cubic = telegram.meter.device_type == 0x11  # Apator 172 counts thirds of a m³
        base = virtual_records([("0416" if cubic else "0413", p[:4])])[0]
        thirds = le_uint(p[:4])
        record = base._replace(raw=thirds / 3)
        total = thirds / 3 if cubic else thirds / 3000
        spans = (Span(0, 4, f"counter {thirds} thirds of {'a m³' if cubic else 'a litre'}"),)
        return DriverOutput((record,), {"total_m3": total}, spans, p[4:])


class ApatorNa1Driver:
    """Apator NA-1 (CI 0xA0/0xA1): byte 0 is the access number, byte 1 the frame status, then 16 bytes
    AES-CBC encrypted with the meter's key and the mode-5 IV (M, A, access number × 8); the plain block
    starts 2F, then a packed 32-bit total: digits (bits 8-31 × 16 + bits 0-3) × 10^(bits 4-5) litres.

    Source: wmbusmeters' driver ``apatorna1`` (drivers/src/apatorna1.xmq @ 4dedd717, GPL-3.0-or-later),
    re-expressed; checked against its test telegrams (published key: 16 zero bytes).
    """

    replaces_records = False
    name = "apatorna1"
    matches = (Match("APA", 0x07, 0x14),)

    def decode(self, telegram: WmbusTelegram, key: bytes | None = None) -> DriverOutput:
        from sonocli.codecs import crypto

        p = telegram.payload
        need(p, 18, "Apator NA-1")
        meter = telegram.meter
        if key is None:
            raise DecodeError(f"Apator NA-1: no key for meter {meter.id}: its readings are AES encrypted")
        plain = crypto.aes_cbc_decrypt(key, crypto.mode5_iv(meter.raw, p[0]), p[2:18])
        if plain[0] != 0x2F:
            raise DecodeError(f"Apator NA-1: wrong key for meter {meter.id} (decrypted block does not start 2F)")
        packed = le_uint(plain[1:5])
        litres = ((packed >> 8) * 16 + (packed & 0x0F)) * 10 ** ((packed >> 4) & 0x03)
        record = virtual_records([("0413", litres.to_bytes(4, "little"))])
        spans = (
            Span(0, 1, "access number"),
            Span(1, 1, "frame status"),
            Span(2, 16, f"AES-CBC block; plain: 2F, packed total {packed:08X} = {litres} l, date, history"),
        )
        return DriverOutput(record, {"total_m3": litres / 1000}, spans, plain[5:] + p[18:])


def _dos_date(raw: int) -> date | None:
    """E-ITN dates: day in bits 0-4, month in bits 5-8, year since 2000 in bits 9-13 (0: no date)."""
    from sonocli.codecs.drivers._dates import safe_date

    if raw == 0:
        return None
    return safe_date(2000 + (raw >> 9) % 32, (raw >> 5) % 16, raw % 32)


class ApatorEitnDriver:
    """Apator E-ITN 30.x heat cost allocators (APA/APT, type 08, version 04; CI 0xA0 or 0xB6).

    CI 0xA0: 15 bytes. CI 0xB6: a count N (0-15), N bytes the layout does not describe, the byte A0, then
    the same 15 bytes. Those are: the low byte of the season start date (its high byte is A0h), two bytes not
    described, the previous period's units (16 bits), the electronic seal break date (0: intact), the
    current period's units, the current date, the previous and the current season's average room
    temperature (16 bits, 1/256 °C). Dates: day bits 0-4, month 5-8, year - 2000 bits 9-13.

    Source: wmbusmeters' driver ``apatoreitn`` (drivers/src/apatoreitn.xmq @ 4dedd717, GPL-3.0-or-later):
    its grammar, re-expressed here as offsets and checked against its three test telegrams
    (tests/data/drivers/). The temperatures become external-temperature records in 0.001 °C (the 1/256 °C
    steps rounded to three decimals; ``--json`` gives them exactly).
    """

    replaces_records = True
    name = "apatoreitn"
    matches = (Match("APA", 0x08, 0x04), Match("APT", 0x08, 0x04))

    def decode(self, telegram: WmbusTelegram, key: bytes | None = None) -> DriverOutput:
        from sonocli.codecs.drivers._dates import type_g

        p = telegram.payload
        spans: list[Span] = []
        start = 0
        if telegram.app_ci == 0xB6:
            need(p, 1, "Apator E-ITN")
            skip = p[0]
            if skip > 0x0F or len(p) <= 1 + skip or p[1 + skip] != 0xA0:
                raise DecodeError(f"Apator E-ITN: CI B6 frame without the A0 byte after its {skip} extra bytes")
            spans += [Span(0, 1, f"{skip} extra bytes follow"), Span(1, skip, "extra bytes (not described)"),
                      Span(1 + skip, 1, "A0")]
            start = 2 + skip
        elif telegram.app_ci != 0xA0:
            raise DecodeError(f"Apator E-ITN: CI {telegram.app_ci or 0:02X}h is not a layout this driver reads")
        body = p[start:]
        need(body, 15, "Apator E-ITN")
        previous, esb_raw, current = le_uint(body[3:5]), le_uint(body[5:7]), le_uint(body[7:9])
        today, season = _dos_date(le_uint(body[9:11])), _dos_date(0xA000 | body[0])
        esb = _dos_date(esb_raw)
        temp_prev, temp_avg = le_uint(body[11:13]) / 256, le_uint(body[13:15]) / 256
        items: list[tuple[str, bytes]] = [("026E", body[7:9]), ("426E", body[3:5])]
        if today is not None:
            items.append(("026C", type_g(today)))
        if season is not None:
            items.append(("426C", type_g(season)))
        items += [("0264", round(temp_avg * 1000).to_bytes(2, "little")),
                  ("4264", round(temp_prev * 1000).to_bytes(2, "little"))]
        fields = {
            "current_hca": current, "previous_hca": previous,
            "current_date": today.isoformat() if today else None,
            "season_start_date": season.isoformat() if season else None,
            "esb_date": esb.isoformat() if esb else None, "status": "SEAL_BROKEN" if esb_raw else "OK",
            "temp_room_avg_c": temp_avg, "temp_room_prev_avg_c": temp_prev,
        }  # fmt: skip
        o = start
        spans += [
            Span(o, 1, f"season start date low byte ({fields['season_start_date']})"),
            Span(o + 1, 2, "not described"),
            Span(o + 3, 2, f"previous period: {previous} units"),
            Span(o + 5, 2, f"seal break date: {fields['esb_date'] or 'none (intact)'}"),
            Span(o + 7, 2, f"current period: {current} units"),
            Span(o + 9, 2, f"current date {fields['current_date']}"),
            Span(o + 11, 2, f"previous season's average room temperature {temp_prev} °C"),
            Span(o + 13, 2, f"average room temperature {temp_avg} °C"),
        ]  # fmt: skip
        return DriverOutput(virtual_records(items), fields, tuple(spans), body[15:])
