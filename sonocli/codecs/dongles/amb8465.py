"""Amber AMB8465 in command mode: FF | CMD | Len | payload | XOR checksum; telegrams as DATA_IND (0x03).

DATA_IND carries the telegram from the C-field on (no L, no CRCs) and, with RSSI enabled (the default we
set up and assume, as wmbusmeters does), a trailing RSSI byte that Len includes.
"""

from __future__ import annotations

from functools import reduce

from sonocli.codecs.dongles import BAD, NEED, DongleDriver, Event, Received, Reply, SetupStep, check_mode

START = 0xFF
CMD_DATA_IND = 0x03
CMD_SET_MODE_REQ = 0x04
CMD_SET_REQ = 0x09
CMD_FWV_REQ = 0x0C
KNOWN_CMDS = frozenset({0x03} | {c | 0x80 for c in (0x00, 0x02, 0x04, 0x05, 0x06, 0x09, 0x0A, 0x0B, 0x0C,
                                                     0x0D, 0x10, 0x11, 0x30, 0x31, 0x50, 0x51, 0x52)})
NVM_RSSI_ENABLE = 0x45
TRANSPARENT_C_FIELDS = frozenset({0x44, 0x46, 0x47, 0x48, 0x08})

# Collector ("other") modes that receive meters of the given mode.
MODE_BYTES = {"S1": 0x03, "T1": 0x08, "C1": 0x0E, "C1T1": 0x09}


def xor_checksum(data: bytes) -> int:
    return reduce(lambda a, b: a ^ b, data, 0)


def encode_command(cmd: int, payload: bytes) -> bytes:
    body = bytes([START, cmd, len(payload)]) + payload
    return body + bytes([xor_checksum(body)])


def rssi_dbm(raw: int) -> int:
    return round((raw - 256) / 2 - 74) if raw >= 128 else round(raw / 2 - 74)


def rssi_raw(dbm: int) -> int:
    value = (dbm + 74) * 2
    return max(-128, min(127, value)) & 0xFF


def encode_indication(telegram: bytes, rssi_dbm_value: int | None = -60) -> bytes:
    payload = telegram[1:] + (b"" if rssi_dbm_value is None else bytes([rssi_raw(rssi_dbm_value)]))
    return encode_command(CMD_DATA_IND, payload)


def answer(command: bytes) -> bytes | None:
    if len(command) < 4 or command[0] != START:
        return None
    cmd = command[1]
    if cmd in (CMD_SET_MODE_REQ, CMD_SET_REQ):
        return encode_command(cmd | 0x80, b"\x00")
    if cmd == CMD_FWV_REQ:
        return encode_command(cmd | 0x80, b"\x01\x05\x00")
    return None


class Amb8465Driver(DongleDriver):
    name = "amb8465"
    baudrate = 9600
    modes = ("S1", "T1", "C1", "C1T1")

    def __init__(self, *, rssi: bool = True, transparent: bool = False) -> None:
        super().__init__()
        self.rssi = rssi
        # Only when asked: a command-mode frame with a broken checksum would otherwise pass as a bare one.
        self.transparent = transparent

    def setup(self, mode: str) -> list[SetupStep]:
        """Firmware query (does it answer?), RSSI on, then the volatile SET_MODE to a collector mode."""
        mode_byte = MODE_BYTES[check_mode(mode, self.modes, self.name)]
        steps = [SetupStep(encode_command(CMD_FWV_REQ, b""), "8c", "firmware version")]
        if self.rssi:
            steps.append(SetupStep(encode_command(CMD_SET_REQ, bytes([NVM_RSSI_ENABLE, 1, 1])), "89:00", "RSSI on"))
        steps.append(SetupStep(encode_command(CMD_SET_MODE_REQ, bytes([mode_byte])), "84:00", f"set mode {mode}"))
        return steps

    def _try(self, buf: bytearray, pos: int) -> tuple[int, Event | None]:
        if buf[pos] != START:
            return self._transparent(buf, pos) if self.transparent else (BAD, None)
        if len(buf) - pos < 3:
            return NEED, None
        cmd = buf[pos + 1]
        if cmd not in KNOWN_CMDS:
            return BAD, None
        length = buf[pos + 2]
        total = 4 + length
        if len(buf) - pos < total:
            return NEED, None
        if xor_checksum(bytes(buf[pos : pos + total])) != 0:
            return BAD, None
        payload = bytes(buf[pos + 3 : pos + 3 + length])
        if cmd == CMD_DATA_IND:
            rssi = None
            if self.rssi and payload:
                rssi = rssi_dbm(payload[-1])
                payload = payload[:-1]
            if len(payload) < 10:
                return BAD, None
            return total, Received(bytes([len(payload)]) + payload, rssi, "none")
        code = f"{cmd:02x}" + (f":{payload[0]:02x}" if payload else "")
        return total, Reply(code, payload)

    def _transparent(self, buf: bytearray, pos: int) -> tuple[int, Event | None]:
        """A stick left in transparent mode (UART_CMD_Out_Enable = 0) sends ``L C M A ... [RSSI]`` bare.

        There is no checksum, so only a plausible C-field and M-field make it a telegram; the binary
        framer never skips a pending command-mode frame for one of these (see ``_strong``).
        """
        if len(buf) - pos < 4:
            return NEED, None
        length, c_field = buf[pos], buf[pos + 1]
        m_field = buf[pos + 2] | buf[pos + 3] << 8
        if length < 11 or c_field not in TRANSPARENT_C_FIELDS or not 0x0421 <= m_field <= 0x6B5A:
            return BAD, None
        total = 1 + length
        if len(buf) - pos < total:
            return NEED, None
        body = bytes(buf[pos + 1 : pos + total])
        rssi = None
        if self.rssi:
            rssi = rssi_dbm(body[-1])
            body = body[:-1]
        return total, Received(bytes([len(body)]) + body, rssi, "none")

    def _strong(self, buf: bytearray, pos: int) -> bool:
        return buf[pos] == START
