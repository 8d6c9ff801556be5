"""rtl-wmbus text output: ``MODE;CRC_OK;3OUTOF6OK;TIMESTAMP;PACKET_RSSI;CURRENT_RSSI;ID;0x<hex>``.

The hex is the telegram without CRCs (rtl-wmbus has checked them; CRC_OK says the result). PACKET_RSSI is
rtl-wmbus's own relative level (a positive figure from the demodulator, not calibrated to dBm): it is passed
on as ``rssi_rel``, never as ``rssi`` (dBm for every other dongle). MODE (T1, C1, S1) is the link mode the
telegram was demodulated in: rtl-wmbus decodes T and C mode at once, so it is reported per telegram.
"""

from __future__ import annotations

from sonocli.codecs.dongles import (
    BAD_LINE,
    CHECKED,
    MODES,
    PLAUSIBLE,
    Event,
    Garbage,
    LineDriver,
    Received,
    hex_bytes,
)


def encode_indication(
    telegram: bytes, mode: str = "T1", rssi: int = 90, when: str = "2026-01-01 00:00:00.000"
) -> bytes:
    return f"{mode};1;1;{when};{rssi};{rssi};00000000;0x{telegram.hex()}\n".encode()


class RtlWmbusDriver(LineDriver):
    name = "rtlwmbus"
    baudrate = 0

    def _line_starts(self, raw: bytes) -> list[int]:
        # a record starts with its mode (T1, C1, S1, ...) or is a # comment
        return [i for i, byte in enumerate(raw) if byte in b"TCS#" and (i == 0 or raw[i - 1] not in b"TCS")]

    def _quality(self, event: Event | None) -> int:
        # a "#" comment could be noise that began with "#": a whole record later in the line wins
        return BAD_LINE if isinstance(event, Garbage) else CHECKED if isinstance(event, Received) else PLAUSIBLE

    def parse_line(self, line: str, raw: bytes) -> Event | None:
        if line.startswith("#"):
            return None  # rtl-wmbus / wmbusmeters captures interleave "#timestamp" comment lines
        fields = line.split(";")
        if len(fields) < 8:
            return Garbage(raw, "rtlwmbus: expected 8 ';'-separated fields")
        if fields[1].strip() != "1":
            return Garbage(raw, "rtlwmbus: telegram with CRC_OK=0 (CRC failed in rtl-wmbus)")
        if fields[0].strip().upper().startswith("T") and fields[2].strip() == "0":
            return Garbage(raw, "rtlwmbus: T-mode telegram with 3OUTOF6OK=0 (chip decoding failed)")
        hex_field = next((f for f in fields[7:] if f.strip().lower().startswith("0x")), fields[7])
        data = hex_bytes(hex_field)
        if data is None or len(data) < 11:
            return Garbage(raw, "rtlwmbus: telegram field is not hex")
        try:
            level: int | None = int(fields[4])
        except ValueError:
            level = None
        mode = fields[0].strip().upper()
        return Received(data, None, "none", rssi_rel=level, link_mode=mode if mode in MODES else None)
