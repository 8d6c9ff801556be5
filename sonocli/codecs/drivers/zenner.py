"""Zenner water meters of version 0x0B: status, billing and current volume after DIF 0x0F.

Source: wmbusmeters' driver ``zenner0b`` (drivers/src/zenner0b.xmq @ 4dedd717, GPL-3.0-or-later): after
0x0F come three 32-bit little-endian words, status, volume at the billing date and total volume, the
volumes in 1/256 litre. Checked against the driver's test telegrams (tests/data/drivers/).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sonocli.codecs.drivers import DriverOutput, Match, Span, le_uint, need, virtual_records

if TYPE_CHECKING:
    from sonocli.codecs.wmbus import WmbusTelegram


class Zenner0BDriver:
    replaces_records = False
    name = "zenner0b"
    matches = (Match("ZRI", 0x16, 0x0B),)

    def decode(self, telegram: WmbusTelegram, key: bytes | None = None) -> DriverOutput:
        data = telegram.manufacturer_data
        need(data, 12, "Zenner 0B")
        status, target, total = le_uint(data[0:4]), le_uint(data[4:8]), le_uint(data[8:12])
        base = virtual_records([("4413", data[4:8]), ("0413", data[8:12]), ("04FD17", data[0:4])])
        records = (base[0]._replace(raw=target / 256), base[1]._replace(raw=total / 256), base[2])
        fields = {
            "status": "OK" if status == 0 else f"STATUS_{status:X}",
            "target_m3": target / 256000, "total_m3": total / 256000,
        }  # fmt: skip
        spans = (
            Span(0, 4, f"status {status:08X}"),
            Span(4, 4, "volume at billing date (1/256 l)"),
            Span(8, 4, "total volume (1/256 l)"),
        )
        return DriverOutput(records, fields, spans, data[12:])
