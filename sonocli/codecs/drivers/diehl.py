"""Diehl IZAR water meters (PRIOS frames, CI 0xA0-0xA7 and 0xB1-0xB3; also sold as Hydrometer, Sappel).

Source: the public behaviour of wmbusmeters' ``izar`` driver and ``decodeDiehlLfsr``
(src/driver_izar.cc, src/manufacturer_specificities.cc @ 4dedd717, GPL-3.0-or-later), read and
re-expressed: the payload after byte 15 of the frame is XORed with a 32-bit LFSR (taps at bits 1, 2, 11
and 31, eight steps per byte) seeded with Diehl's published default PRIOS keys XORed with the frame's
M-field/address (bytes 2-9) and bytes 10-13. A right key gives 0x4B as the first plain byte. Plain bytes
1-4: total volume in litres, 5-8: volume at the last billing date, 9-10: that date (type G). Header bytes
11-13 (in clear) carry the transmit period, the battery life in half years and the alarm bits. Checked
against the driver's test telegrams (tests/data/drivers/).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sonocli.codecs.drivers import DriverOutput, Match, Span, le_uint, virtual_records
from sonocli.errors import DecodeError

if TYPE_CHECKING:
    from sonocli.codecs.wmbus import WmbusTelegram

# Diehl's default PRIOS keys (8 bytes each, folded to 32 bits), as published for IZAR / Sharky meters.
DEFAULT_KEYS = ("39BC8A10E66D83F8", "51728910E66D83F8")
_CIS = frozenset(range(0xA0, 0xA8)) | frozenset({0xB1, 0xB2, 0xB3})


def fold_key(key: bytes) -> int:
    """An 8-byte (or 16-byte) key as the 32-bit LFSR seed: the XOR of its first two big-endian words."""
    return int.from_bytes(key[0:4], "big") ^ int.from_bytes(key[4:8], "big")


def lfsr_decode(frame: bytes, seed: int) -> bytes:
    """The plain payload (bytes 15 onwards) for one 32-bit seed; the caller checks it."""
    key = seed
    for start in (2, 6, 10):
        key ^= int.from_bytes(frame[start : start + 4], "big")
    out = bytearray()
    for byte in frame[15:]:
        for _ in range(8):
            bit = ((key >> 1) ^ (key >> 2) ^ (key >> 11) ^ (key >> 31)) & 1
            key = ((key << 1) | bit) & 0xFFFFFFFF
        out.append(byte ^ (key & 0xFF))
    return bytes(out)


def _alarms(frame: bytes) -> tuple[str, str]:
    b11, b12, b13 = frame[11], frame[12], frame[13]
    now = [name for name, on in (
        ("leakage", b12 & 0x80), ("meter_blocked", b12 & 0x20), ("back_flow", b13 & 0x80),
        ("underflow", b13 & 0x40), ("overflow", b13 & 0x20), ("submarine", b13 & 0x10),
        ("sensor_fraud", b13 & 0x08), ("mechanical_fraud", b13 & 0x02),
    ) if on]  # fmt: skip
    before = [name for name, on in (
        ("leakage", b12 & 0x40), ("sensor_fraud", b13 & 0x04), ("mechanical_fraud", b13 & 0x01),
    ) if on]  # fmt: skip
    current = ("general_alarm" if b11 & 0x80 else ",".join(now)) if now else "no_alarm"
    return current, ",".join(before) or "no_alarm"


class IzarDriver:
    replaces_records = False
    name = "izar"
    matches = tuple(Match(m, None, None, _CIS) for m in ("HYD", "SAP", "DME", "EWT", "SPL"))

    def __init__(self, keys: tuple[bytes, ...] = ()) -> None:
        self.seeds = tuple(fold_key(k) for k in keys) or tuple(fold_key(bytes.fromhex(k)) for k in DEFAULT_KEYS)

    def decode(self, telegram: WmbusTelegram, key: bytes | None = None) -> DriverOutput:
        frame = telegram.raw
        if len(frame) < 20:
            raise DecodeError(f"Diehl PRIOS: frame has {len(frame)} bytes, needs at least 20 (a total after byte 15)")
        plain = b""
        for seed in self.seeds:
            plain = lfsr_decode(frame, seed)
            if plain[:1] == b"\x4b":
                break
        else:
            raise DecodeError("Diehl PRIOS: payload does not decode with the default keys (check byte is not 4B)")
        items = [("0413", plain[1:5])]
        spans = [Span(15, 1, "check byte 4B (after LFSR)"), Span(16, 4, f"total {le_uint(plain[1:5])} l")]
        fields: dict[str, Any] = {"total_m3": le_uint(plain[1:5]) / 1000}
        if len(plain) > 8:
            items.append(("4413", plain[5:9]))
            fields["last_month_total_m3"] = le_uint(plain[5:9]) / 1000
            spans.append(Span(20, 4, "volume at the last billing date (l)"))
        if len(plain) > 10:
            items.append(("426C", plain[9:11]))
            spans.append(Span(24, 2, "last billing date (type G)"))
        records = virtual_records(items)
        stamp = records[-1].raw if len(plain) > 10 else None
        if isinstance(stamp, datetime):
            fields["last_month_measure_date"] = f"{stamp:%Y-%m-%d}"
        current, previous = _alarms(frame)
        fields.update(
            remaining_battery_life_y=(frame[12] & 0x1F) / 2,
            current_alarms=current,
            previous_alarms=previous,
            transmit_period_s=1 << ((frame[11] & 0x0F) + 2),
        )
        spans[:0] = [
            Span(11, 1, "transmit period, general alarm"),
            Span(12, 1, "battery life, leakage"),
            Span(13, 1, "alarm bits"),
        ]
        return DriverOutput(records, fields, tuple(spans), plain[11:])
