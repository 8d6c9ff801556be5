"""Raw hex lines: one telegram per line (with or without DLL CRCs), from stdin, a file or a socket.

Blank lines and ``#`` comments are skipped. The link layer decides about CRCs (format "auto").
An optional ``;rssi`` suffix carries a level in dBm, so recorded captures keep their RSSI.
"""

from __future__ import annotations

import functools

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

_HEX_DIGITS = b"0123456789ABCDEFabcdef"
_HEX = frozenset(_HEX_DIGITS)


def encode_indication(telegram: bytes, rssi_dbm_value: int | None = None) -> bytes:
    suffix = "" if rssi_dbm_value is None else f";{rssi_dbm_value}"
    return f"{telegram.hex().upper()}{suffix}\n".encode()


@functools.cache
def _fitting_sizes() -> dict[bytes, frozenset[int]]:
    """L-field as two hex digits (any case) -> the byte counts a frame with it has with its DLL CRCs, in
    format A or B, plus zero to two bytes of RSSI/LQI (at least 12 bytes: the shortest checked frame)."""
    from sonocli.codecs.wmbus_link import format_a_length

    out: dict[bytes, frozenset[int]] = {}
    for length in range(256):
        sizes = frozenset(size + extra for size in (format_a_length(length), length + 1) for extra in range(3)
                          if size + extra >= 12)
        for text in {f"{length:02X}", f"{length:02x}", f"{length:02X}"[0] + f"{length:02x}"[1],
                     f"{length:02x}"[0] + f"{length:02X}"[1]}:
            out[text.encode("ascii")] = sizes
    return out


class HexLinesDriver(LineDriver):
    name = "hex"
    baudrate = 0

    def _line_starts(self, raw: bytes) -> list[int]:
        return [i for i, byte in enumerate(raw) if byte in _HEX or byte == 0x23]

    def _checked_starts(self, raw: bytes, candidates: list[int]) -> list[int]:
        """The starts whose hex digits (up to the next ``;RSSI``) are as many bytes as the L-field there announces
        with the DLL CRCs of frame format A or B (plus at most two bytes of RSSI/LQI): only such a suffix can
        be a checked record. Without this look a CRC-less telegram line (the usual case) was parsed again at
        each of its ~90 hex digits, which made reading a file of such lines cost 0.6 ms a line."""
        head, _sep, tail = raw.partition(b";")
        if len(tail) < 24 and not head.translate(None, _HEX_DIGITS):  # the usual line: hex, maybe ";RSSI"
            # (a tail this short holds no frame: one needs 24 hex digits at least)
            end = len(head)
            fits = _fitting_sizes()
            return [start for start in candidates
                    if not (end - start) % 2 and (end - start) // 2 in fits.get(head[start : start + 2], ())]
        n = len(raw)
        before = [0] * (n + 1)  # hex digits in raw[:i] (whitespace and the rest not counted)
        for i, byte in enumerate(raw):
            before[i + 1] = before[i] + (byte in _HEX)
        stop = [n] * (n + 1)  # where the telegram starting at i ends: the next ";" (RSSI) or the line's end
        for i in range(n - 1, -1, -1):
            stop[i] = i if raw[i] == 0x3B else stop[i + 1]
        out: list[int] = []
        for start in candidates:
            if start >= n - 1 or raw[start] not in _HEX or raw[start + 1] not in _HEX:
                continue
            if self._fits(before[stop[start]] - before[start], raw[start : start + 2]):
                out.append(start)
        return out

    @staticmethod
    def _fits(digits: int, l_field: bytes) -> bool:
        """Whether ``digits`` hex digits starting with the L-field ``l_field`` (two hex digits) are a frame
        of format A or B with its CRCs, plus at most two bytes of RSSI/LQI."""
        return not digits % 2 and digits // 2 in _fitting_sizes().get(l_field, ())

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
