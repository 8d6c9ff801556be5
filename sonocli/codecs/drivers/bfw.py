"""BFW 240 radio heat cost allocators: HCA units of the last and the current period, 18 months of
history and the date, packed in the payload after the TPL header (not EN 13757-3 records).

Source: wmbusmeters' driver ``bfw240radio`` (drivers/src/bfw240radio.xmq @ 4dedd717, GPL-3.0-or-later),
re-expressed: after 4 bytes (2F 2F and two status bytes) the previous and current HCA values (16 bits,
big-endian), and at the end the date as BCD day, month, year. Checked against its test telegrams.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sonocli.codecs.drivers import DriverOutput, Match, Span, need, virtual_records
from sonocli.codecs.drivers._dates import safe_date, type_g

if TYPE_CHECKING:
    from sonocli.codecs.wmbus import WmbusTelegram


def _bcd(byte: int) -> int:
    return (byte >> 4) * 10 + (byte & 0x0F)


class Bfw240RadioDriver:
    replaces_records = True
    name = "bfw240radio"
    matches = (Match("BFW", 0x08, 0x02),)

    def decode(self, telegram: WmbusTelegram, key: bytes | None = None) -> DriverOutput:
        p = telegram.payload
        need(p, 8 + 2 + 27 + 3, "BFW 240 radio")
        prev, current = p[4:6], p[6:8]
        day, month, year = _bcd(p[-3]), _bcd(p[-2]), _bcd(p[-1])
        when = safe_date(2000 + year, month, day)
        items = [("426E", prev[::-1]), ("026E", current[::-1])]
        if when is not None:
            items.append(("026C", type_g(when)))
        fields: dict[str, Any] = {
            "current_hca": int.from_bytes(current, "big"), "prev_hca": int.from_bytes(prev, "big"),
            "device_date": when.isoformat() if when else None,
        }  # fmt: skip
        spans = (
            Span(0, 4, "2F 2F, status"),
            Span(4, 2, "HCA previous period (big-endian)"),
            Span(6, 2, "HCA current period (big-endian)"),
            Span(8, len(p) - 11, "history (18 months)"),
            Span(len(p) - 3, 3, f"date {when}"),
        )
        return DriverOutput(virtual_records(items), fields, spans, p[8:-3])
