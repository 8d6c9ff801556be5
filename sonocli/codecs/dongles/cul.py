"""CUL / culfw (CC1101): text lines. ``b<hex>`` = format A with DLL CRCs, ``bY<hex>`` = format B.

With ``X21`` culfw appends LQI and RSSI bytes after the frame; we find them from the frame length the
L-field implies rather than by position, because some nanoCUL firmwares truncate long telegrams.
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
    Reply,
    SetupStep,
    check_mode,
    crc_checked,
    hex_bytes,
)
from sonocli.codecs.wmbus_link import format_a_length

MODE_COMMANDS = {"T1": ("brt", "TMODE"), "C1": ("brc", "CMODE"), "S1": ("brs", "SMODE")}


def rssi_dbm(raw: int) -> int:
    signed = raw - 256 if raw >= 128 else raw
    return round(signed / 2 - 74)


def rssi_raw(dbm: int) -> int:
    return max(-128, min(127, (dbm + 74) * 2)) & 0xFF


def encode_indication(frame_with_crc: bytes, fmt: str = "A", rssi_dbm_value: int | None = -60) -> bytes:
    """A culfw line for a frame that still has its CRCs (format A or B), with X21's LQI and RSSI."""
    tail = b"" if rssi_dbm_value is None else bytes([0x30, rssi_raw(rssi_dbm_value)])
    prefix = "bY" if fmt == "B" else "b"
    return f"{prefix}{(frame_with_crc + tail).hex().upper()}\r\n".encode()


def answer(command: bytes) -> bytes | None:
    text = command.decode("ascii", "replace").strip()
    if text == "V":
        return b"V 1.67 nanoCUL868\r\n"
    for cmd, reply in MODE_COMMANDS.values():
        if text == cmd:
            return f"{reply}\r\n".encode()
    return None


class CulDriver(LineDriver):
    name = "cul"
    baudrate = 38400
    modes = ("T1", "C1", "S1")

    def setup(self, mode: str) -> list[SetupStep]:
        """Version (is it a CUL?), X21 (report RSSI/LQI), then the wM-Bus mode (brc receives C and T)."""
        cmd, reply = MODE_COMMANDS[check_mode(mode, self.modes, self.name)]
        return [
            SetupStep(b"V\r\n", "V", "version"),
            SetupStep(b"X21\r\n", None, "RSSI reporting"),
            SetupStep(f"{cmd}\r\n".encode(), reply, f"set mode {mode}"),
        ]

    def _line_starts(self, raw: bytes) -> list[int]:
        return [i for i, byte in enumerate(raw) if byte == 0x62 or (byte == 0x56 and raw[i:i + 2] == b"V ")]

    def _quality(self, event: Event | None) -> int:
        if isinstance(event, Received):  # the DLL CRCs are in the line: a record is checked when they pass
            return CHECKED if crc_checked(event.telegram, event.frame_format) else PLAUSIBLE
        # an answer (V ..., TMODE) has no check: noise starting with "V" must not hide a telegram behind it
        return BAD_LINE if isinstance(event, Garbage) else PLAUSIBLE if isinstance(event, Reply) else CHECKED

    def parse_line(self, line: str, raw: bytes) -> Event | None:
        if line.startswith("bY") or (line.startswith("b") and len(line) > 1 and line[1] in "0123456789ABCDEFabcdef"):
            fmt = "B" if line.startswith("bY") else "A"
            data = hex_bytes(line[2:] if fmt == "B" else line[1:])
            if data is None or len(data) < 12:
                return Garbage(raw, "cul: telegram line is not whole hex bytes (truncated by the stick?)")
            size = format_a_length(data[0]) if fmt == "A" else data[0] + 1
            rssi = rssi_dbm(data[size + 1]) if len(data) >= size + 2 else None
            # frame format B exists only in C mode (EN 13757-4): a "bY" line is a C1 telegram; format A may be
            # T1 or C1 (culfw's "b" line does not say which)
            return Received(data[:size] if len(data) >= size else data, rssi, fmt,
                            link_mode="C1" if fmt == "B" else None)
        if line.startswith(("V ", "TMODE", "CMODE", "SMODE")) or line.startswith("V"):
            return Reply(line)
        return Garbage(raw, "cul: line is not a telegram or a known answer")
