"""Raw hex lines: one telegram per line (with or without DLL CRCs), from stdin, a file or a socket.

Blank lines and ``#`` comments are skipped. The link layer decides about CRCs (format "auto").
An optional ``;rssi`` suffix carries a level in dBm, so recorded captures keep their RSSI.
"""

from __future__ import annotations

from sonocli.codecs.dongles import Event, Garbage, LineDriver, Received, hex_bytes


def encode_indication(telegram: bytes, rssi_dbm_value: int | None = None) -> bytes:
    suffix = "" if rssi_dbm_value is None else f";{rssi_dbm_value}"
    return f"{telegram.hex().upper()}{suffix}\n".encode()


class HexLinesDriver(LineDriver):
    name = "hex"
    baudrate = 0

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
