"""IMST iM871A / iM170A: the WMBus HCI framing (A5 | CTRL/EP | MsgID | Len | payload | [TS] [RSSI] [CRC]).

The CRC is CRC-16/X-25 over CTRL..end of the optional fields, sent LSB first (IMST HCI spec as quoted in
wmbusmeters' CC0 header). Telegrams arrive on the radio-link endpoint as message 0x03 without the L-field
and without DLL CRCs; Len is the wM-Bus L value.
"""

from __future__ import annotations

from sonocli.codecs.dongles import BAD, NEED, DongleDriver, Event, Received, Reply, SetupStep, check_mode

START = 0xA5
EP_DEVMGMT = 0x01
EP_RADIOLINK = 0x02
MSG_WMBUS_IND = 0x03
MSG_PING_REQ = 0x01
MSG_PING_RSP = 0x02
MSG_SET_CONFIG_REQ = 0x03
MSG_SET_CONFIG_RSP = 0x04
FLAG_CRC = 0x80
FLAG_RSSI = 0x40
FLAG_TIMESTAMP = 0x20

LINK_MODES = {"S1": 0x00, "T1": 0x03, "C1": 0x06, "C1T1": 0x0A}


def _x25_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_X25 = _x25_table()


def crc16_x25(data: bytes) -> int:
    """CRC-16/X-25 (poly 0x1021 reflected, init 0xFFFF, xorout 0xFFFF); check value 0x906E."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _X25[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFF


def rssi_dbm(raw: int) -> int:
    """IMST's RSSI byte to dBm (the Si1002 curve used by wmbusmeters); >= 230 counts as 0 dBm."""
    if raw >= 230:
        return 0
    return round(-100 + (raw - 45) * 80 / 160)


def rssi_raw(dbm: int) -> int:
    return max(0, min(229, round((dbm + 100) * 160 / 80 + 45)))


def encode_frame(endpoint: int, msg_id: int, payload: bytes, *, rssi: int | None = None,
                 timestamp: int | None = None, crc: bool = True) -> bytes:
    """One HCI frame (used for commands to the stick and, by the simulator, for the stick's answers)."""
    ctrl = endpoint & 0x0F
    tail = b""
    if timestamp is not None:
        ctrl |= FLAG_TIMESTAMP
        tail += (timestamp & 0xFFFFFFFF).to_bytes(4, "little")
    if rssi is not None:
        ctrl |= FLAG_RSSI
        tail += bytes([rssi & 0xFF])
    if crc:
        ctrl |= FLAG_CRC
    body = bytes([ctrl, msg_id, len(payload)]) + payload + tail
    if crc:
        body += crc16_x25(body).to_bytes(2, "little")
    return bytes([START]) + body


def encode_indication(telegram: bytes, rssi_dbm_value: int | None = -60, timestamp: int | None = None) -> bytes:
    """What the stick sends for a received telegram (``telegram`` starts with L, no CRCs)."""
    raw = None if rssi_dbm_value is None else rssi_raw(rssi_dbm_value)
    return encode_frame(EP_RADIOLINK, MSG_WMBUS_IND, telegram[1:], rssi=raw, timestamp=timestamp)


def answer(command: bytes) -> bytes | None:
    """The stick's response to one of the set-up commands, as the real firmware answers (status 0 = ok)."""
    if len(command) < 4 or command[0] != START or command[1] & 0x0F != EP_DEVMGMT:
        return None
    msg = command[2]
    if msg == MSG_PING_REQ:
        return encode_frame(EP_DEVMGMT, MSG_PING_RSP, b"")
    if msg == MSG_SET_CONFIG_REQ:
        return encode_frame(EP_DEVMGMT, MSG_SET_CONFIG_RSP, b"\x00")
    return None


class Im871aDriver(DongleDriver):
    name = "im871a"
    baudrate = 57600
    modes = ("S1", "T1", "C1", "C1T1")
    max_buffer = 8192

    def __init__(self, *, timestamp: bool = False) -> None:
        super().__init__()
        self.timestamp = timestamp

    def setup(self, mode: str) -> list[SetupStep]:
        """Ping, then SET_CONFIG in RAM: link mode, RSSI attached, timestamp as chosen."""
        link_mode = LINK_MODES[check_mode(mode, self.modes, self.name)]
        config = bytes([0x00, 0x02, link_mode, 0x30, 0x01, 0x01 if self.timestamp else 0x00])
        return [
            SetupStep(encode_frame(EP_DEVMGMT, MSG_PING_REQ, b""), "01:02", "ping"),
            SetupStep(encode_frame(EP_DEVMGMT, MSG_SET_CONFIG_REQ, config), "01:04:00", f"set link mode {mode}"),
        ]

    def _try(self, buf: bytearray, pos: int) -> tuple[int, Event | None]:
        if buf[pos] != START:
            return BAD, None
        if len(buf) - pos < 4:
            return NEED, None
        ctrl = buf[pos + 1]
        endpoint = ctrl & 0x0F
        if ctrl & 0x10 or endpoint not in (1, 2, 3, 4):
            return BAD, None
        length = buf[pos + 3]
        extra = (4 if ctrl & FLAG_TIMESTAMP else 0) + (1 if ctrl & FLAG_RSSI else 0)
        total = 4 + length + extra + (2 if ctrl & FLAG_CRC else 0)
        if len(buf) - pos < total:
            return NEED, None
        if ctrl & FLAG_CRC:
            body = bytes(buf[pos + 1 : pos + total - 2])
            if crc16_x25(body) != int.from_bytes(buf[pos + total - 2 : pos + total], "little"):
                return BAD, None
        msg = buf[pos + 2]
        payload = bytes(buf[pos + 4 : pos + 4 + length])
        cur = pos + 4 + length
        stamp = None
        rssi = None
        if ctrl & FLAG_TIMESTAMP:
            stamp = int.from_bytes(buf[cur : cur + 4], "little")
            cur += 4
        if ctrl & FLAG_RSSI:
            rssi = rssi_dbm(buf[cur])
        if endpoint == EP_RADIOLINK and msg == MSG_WMBUS_IND:
            if length < 10:
                return BAD, None
            return total, Received(bytes([length]) + payload, rssi, "none", stamp)
        code = f"{endpoint:02x}:{msg:02x}" + (f":{payload[0]:02x}" if payload else "")
        return total, Reply(code, payload)

    def _strong(self, buf: bytearray, pos: int) -> bool:
        return bool(buf[pos + 1] & FLAG_CRC)

    def _may_be_strong(self, buf: bytearray, pos: int) -> bool:
        return len(buf) - pos < 2 or bool(buf[pos + 1] & FLAG_CRC)
