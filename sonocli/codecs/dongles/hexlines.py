"""Raw hex lines: one telegram per line (with or without DLL CRCs), from stdin, a file or a socket.

Blank lines and ``#`` comments are skipped. The link layer decides about CRCs (format "auto").
An optional ``;rssi`` suffix carries a level in dBm, so recorded captures keep their RSSI.
"""

from __future__ import annotations

from sonocli.codecs.dongles import (
    BAD_LINE,
    CHECKED,
    PLAUSIBLE,
    Event,
    Garbage,
    LineDriver,
    Received,
    crc_checked,
    hex_bytes,
)

_HEX = frozenset(b"0123456789ABCDEFabcdef")


def encode_indication(telegram: bytes, rssi_dbm_value: int | None = None) -> bytes:
    suffix = "" if rssi_dbm_value is None else f";{rssi_dbm_value}"
    return f"{telegram.hex().upper()}{suffix}\n".encode()


class HexLinesDriver(LineDriver):
    name = "hex"
    baudrate = 0

    def _line_starts(self, raw: bytes) -> list[int]:
        return [i for i, byte in enumerate(raw) if byte in _HEX or byte == 0x23]

    def _quality(self, event: Event | None) -> int:
        """CHECKED: DLL CRCs pass; PLAUSIBLE: any other telegram (CRC-less, maybe with RSSI bytes after it).

        Only a checked record is taken from inside a line that parses as a whole: a suffix of a CRC-less
        telegram whose first byte happens to fit its length would otherwise replace the real telegram."""
        if isinstance(event, Received):
            return CHECKED if crc_checked(event.telegram, "auto") else PLAUSIBLE
        # a comment (None) could be noise that began with "#": a checked record later in the line wins
        return BAD_LINE if isinstance(event, Garbage) else PLAUSIBLE

    def parse_line(self, line: str, raw: bytes) -> Event | None:
        if line.startswith("#"):
            return None
        text, _, rssi_text = line.partition(";")
        data = hex_bytes("".join(text.split()))
        if data is None or len(data) < 11:
            return Garbage(raw, "hex: line is not a hex telegram of at least 11 bytes")
        try:
            rssi = int(rssi_text) if rssi_text.strip() else None
        except ValueError:
            rssi = None
        return Received(data, rssi, "auto")
