"""EN 13757-2 wired M-Bus link layer: the four frame kinds, their checks, a stream decoder, master encoders.

Frames on the wire::

    single character   E5
    short frame        10 C A CS 16
    control frame      68 03 03 68 C A CI CS 16
    long frame         68 L L 68 C A CI data… CS 16      (L = 3 + len(data), CS = sum(C..data) & 0xFF)

The decoders are pure (bytes in, frames out). "Need more" is a normal answer (``NeedMoreData`` from
``decode_frame``, ``(None, n)`` from ``find_frame``) so the engine owns timing and retries, as pymodbus'
framers do.
"""

from __future__ import annotations

from sonocli.errors import DecodeError, NeedMoreData, UsageError
from sonocli.model.valueclass import valueclass

ACK = 0xE5
SHORT_START = 0x10
LONG_START = 0x68
STOP = 0x16

# C-field values sent by a master (FCV = 0x10 marks a valid FCB = 0x20).
C_SND_NKE = 0x40
C_SND_UD = 0x53
C_REQ_UD1 = 0x5A
C_REQ_UD2 = 0x5B
FCB = 0x20

# C-field values sent by a slave.
C_RSP_UD = 0x08

CI_APPLICATION_RESET = 0x50
CI_DATA_SEND = 0x51
CI_SELECT = 0x52

ADDRESS_NETWORK = 0xFD  # the selected slave (secondary addressing)
ADDRESS_BROADCAST_REPLY = 0xFE
ADDRESS_BROADCAST = 0xFF

_START_BYTES = frozenset((ACK, SHORT_START, LONG_START))


@valueclass(frozen=True, slots=True)
class Ack:
    """The single character E5 (a slave's acknowledgement)."""


@valueclass(frozen=True, slots=True)
class ShortFrame:
    control: int
    address: int


@valueclass(frozen=True, slots=True)
class ControlFrame:
    control: int
    address: int
    ci: int


@valueclass(frozen=True, slots=True)
class LongFrame:
    control: int
    address: int
    ci: int
    data: bytes


Frame = Ack | ShortFrame | ControlFrame | LongFrame

_ACK = Ack()


def _byte(name: str, value: int) -> int:
    if not 0 <= value <= 0xFF:
        raise UsageError(f"{name} {value} is outside 0..255")
    return value


def encode(frame: Frame) -> bytes:
    """The wire bytes of a frame; a LongFrame with no data is sent as a control frame (L = 3)."""
    if isinstance(frame, Ack):
        return b"\xe5"
    if isinstance(frame, ShortFrame):
        c, a = _byte("control", frame.control), _byte("address", frame.address)
        return bytes((SHORT_START, c, a, (c + a) & 0xFF, STOP))
    data = frame.data if isinstance(frame, LongFrame) else b""
    if len(data) > 252:
        raise UsageError(f"long frame data of {len(data)} bytes is too long (at most 252)")
    body = bytes((_byte("control", frame.control), _byte("address", frame.address), _byte("ci", frame.ci))) + data
    length = len(body)
    return bytes((LONG_START, length, length, LONG_START)) + body + bytes((sum(body) & 0xFF, STOP))


def frame_length(buf: bytes) -> int | None:
    """Total length of the frame starting at ``buf[0]``, or None while the first bytes are missing.

    Raises DecodeError (offset 0/1) when ``buf[0]`` cannot start a frame or L is below 3.
    """
    if not buf:
        return None
    first = buf[0]
    if first == ACK:
        return 1
    if first == SHORT_START:
        return 5
    if first == LONG_START:
        if len(buf) < 2:
            return None
        if buf[1] < 3:
            raise DecodeError(f"L-field {buf[1]} is below 3", offset=1)
        return buf[1] + 6
    raise DecodeError(f"byte 0x{first:02X} does not start a frame (expected E5, 10 or 68)", offset=0)


def long_frame_end(buf: bytes) -> int:
    """Where the checksum sits if ``buf`` starts with a complete, valid long frame with data (L > 3), else 0.

    The unchecked fast lane of decode_frame, also used by the application decoder to skip building a
    LongFrame; a 0 sends the caller down decode_frame's checked path, which names what is wrong.
    """
    if len(buf) > 9 and buf[0] == LONG_START and buf[3] == LONG_START and buf[1] == buf[2]:
        end = buf[1] + 4
        if len(buf) > end + 1 and buf[end + 1] == STOP and sum(buf[4:end]) & 0xFF == buf[end] and end > 7:
            return end
    return 0


def decode_frame(buf: bytes) -> tuple[Frame, int]:
    """Decode the frame at ``buf[0]``: (frame, bytes used). Trailing bytes are left alone.

    Raises NeedMoreData while incomplete, DecodeError with the offset of the bad byte otherwise.
    """
    # fast lane for a complete, valid long frame (what a readout mostly sees); anything else takes the
    # checked path below, which also names what is wrong
    end = long_frame_end(buf)
    if end:
        return LongFrame(buf[4], buf[5], buf[6], bytes(buf[7:end])), end + 2
    size = frame_length(buf)
    if size is None:
        raise NeedMoreData("frame incomplete", offset=len(buf))
    first = buf[0]
    if first == ACK:
        return _ACK, 1
    if first == LONG_START:
        # Check the header as soon as it is there, so garbage is rejected without waiting for L bytes.
        if len(buf) >= 3 and buf[2] != buf[1]:
            raise DecodeError(f"L-fields differ (0x{buf[1]:02X} and 0x{buf[2]:02X})", offset=2)
        if len(buf) >= 4 and buf[3] != LONG_START:
            raise DecodeError(f"second start byte is 0x{buf[3]:02X}, expected 0x68", offset=3)
    if len(buf) < size:
        raise NeedMoreData(f"frame incomplete: {len(buf)} of {size} bytes", offset=len(buf))
    if first == SHORT_START:
        c, a = buf[1], buf[2]
        if (c + a) & 0xFF != buf[3]:
            raise DecodeError(f"checksum 0x{buf[3]:02X} is wrong (expected 0x{(c + a) & 0xFF:02X})", offset=3)
        if buf[4] != STOP:
            raise DecodeError(f"stop byte is 0x{buf[4]:02X}, expected 0x16", offset=4)
        return ShortFrame(c, a), 5
    end = size - 2
    expected = sum(buf[4:end]) & 0xFF
    if buf[end] != expected:
        raise DecodeError(f"checksum 0x{buf[end]:02X} is wrong (expected 0x{expected:02X})", offset=end)
    if buf[end + 1] != STOP:
        raise DecodeError(f"stop byte is 0x{buf[end + 1]:02X}, expected 0x16", offset=end + 1)
    if size == 9:
        return ControlFrame(buf[4], buf[5], buf[6]), 9
    return LongFrame(buf[4], buf[5], buf[6], bytes(buf[7:end])), size


def find_frame(buf: bytes) -> tuple[Frame | None, int]:
    """Stream decoding: skip garbage, then (frame, bytes used up to its end) or (None, bytes to drop).

    A candidate start byte whose frame turns out invalid (bad L, checksum, stop) is skipped as garbage,
    so a broken frame costs only its own bytes. Never blocks and never raises.
    """
    frame, start, end = _find(buf)
    return frame, end if frame is not None else start


def _find(buf: bytes) -> tuple[Frame | None, int, int]:
    """(frame, start, end) of the first valid frame; (None, droppable bytes, same) when there is none yet."""
    pos = 0
    n = len(buf)
    while pos < n:
        if buf[pos] not in _START_BYTES:
            pos += 1
            continue
        try:
            frame, used = decode_frame(buf[pos:] if pos else buf)
        except NeedMoreData:
            return None, pos, pos
        except DecodeError:
            pos += 1
            continue
        return frame, pos, pos + used
    return None, n, n


class StreamDecoder:
    """Accumulates bytes in any pieces and hands out every complete frame; ``skipped`` counts garbage."""

    __slots__ = ("_buf", "skipped")

    def __init__(self) -> None:
        self._buf = bytearray()
        self.skipped = 0

    @property
    def pending(self) -> bytes:
        """Bytes held back waiting for the rest of a frame."""
        return bytes(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while self._buf:
            frame, start, end = _find(bytes(self._buf))
            self.skipped += start
            del self._buf[:end]
            if frame is None:
                break
            frames.append(frame)
        return frames


# ---- encoders for every frame a master sends ---------------------------------------------------------


def snd_nke(address: int) -> bytes:
    """SND_NKE: link reset (C 0x40); the slave answers E5 and clears its FCB state."""
    return encode(ShortFrame(C_SND_NKE, address))


def req_ud2(address: int, fcb: bool) -> bytes:
    """REQ_UD2 (class 2 data) with FCV set; the master toggles ``fcb`` after each good answer."""
    return encode(ShortFrame(C_REQ_UD2 | (FCB if fcb else 0), address))


def req_ud1(address: int, fcb: bool) -> bytes:
    """REQ_UD1 (class 1 data, alarms) with FCV set."""
    return encode(ShortFrame(C_REQ_UD1 | (FCB if fcb else 0), address))


def snd_ud(address: int, ci: int, data: bytes = b"", fcb: bool = False) -> bytes:
    """SND_UD (C 0x53/0x73): user data to a slave; a control frame when ``data`` is empty."""
    return encode(LongFrame(C_SND_UD | (FCB if fcb else 0), address, ci, bytes(data)))


def _mask_nibble_bytes(text: str, digits: int, name: str) -> bytes:
    if len(text) != digits or any(ch not in "0123456789Ff" for ch in text):
        raise UsageError(f"{name} {text!r} must be {digits} characters of 0-9 or F (F = any digit)")
    return bytes.fromhex(text)[::-1]


def select_secondary(id_mask: str, manufacturer: int = 0xFFFF, version: int = 0xFF, medium: int = 0xFF) -> bytes:
    """Select a slave by secondary address (SND_UD to 0xFD, CI 0x52).

    ``id_mask`` is 8 BCD digits, an F nibble matching any digit; ``manufacturer`` (2 bytes), ``version`` and
    ``medium`` are raw values where 0xFFFF / 0xFF mean "any".
    """
    ident = _mask_nibble_bytes(id_mask, 8, "secondary address mask")
    if not 0 <= manufacturer <= 0xFFFF:
        raise UsageError(f"manufacturer 0x{manufacturer:X} is outside 0..0xFFFF")
    data = ident + manufacturer.to_bytes(2, "little") + bytes((_byte("version", version), _byte("medium", medium)))
    return snd_ud(ADDRESS_NETWORK, CI_SELECT, data)


@valueclass(frozen=True, slots=True)
class Selection:
    """A CI 0x52 selection: ID mask (8 characters, F = any digit), raw manufacturer/version/medium
    (0xFFFF / 0xFF = any)."""

    id_mask: str
    manufacturer: int
    version: int
    medium: int

    def matches(self, ident: str, manufacturer: int, version: int, medium: int) -> bool:
        """Whether a slave with this secondary address is selected (EN 13757-3 wildcard rules)."""
        if len(ident) != 8:
            return False
        if any(m not in "Ff" and m.upper() != c.upper() for m, c in zip(self.id_mask, ident, strict=True)):
            return False
        return (
            self.manufacturer in (0xFFFF, manufacturer)
            and self.version in (0xFF, version)
            and self.medium in (0xFF, medium)
        )


def decode_select(data: bytes) -> Selection:
    """The 8 bytes after CI 0x52 (ID LSB first, manufacturer, version, medium)."""
    if len(data) < 8:
        raise DecodeError(f"a selection needs 8 bytes after the CI, got {len(data)}", offset=7 + len(data))
    return Selection(
        bytes(data[3::-1]).hex().upper(), int.from_bytes(data[4:6], "little"), data[6], data[7]
    )


def application_reset(address: int, subcode: int | None = None) -> bytes:
    """Application reset (CI 0x50), optionally with the one-byte subcode of EN 13757-3 (e.g. 0x10 = all)."""
    data = b"" if subcode is None else bytes((_byte("subcode", subcode),))
    return snd_ud(address, CI_APPLICATION_RESET, data)


def get_all_data(address: int, *, extended2: bool = False) -> bytes:
    """Global readout request (CI 0x51): DIF 7F VIF 7E ("Extended 1") or DIF 7F alone ("Extended 2").

    These are the guide's MBUS_REQUESTMODE EXT readouts; the data follow with REQ_UD2.
    """
    return snd_ud(address, CI_DATA_SEND, b"\x7f" if extended2 else b"\x7f\x7e")


def get_all_data_ext2(address: int) -> bytes:
    """Get-All-Data with DIF 7F only (the guide's "Extended 2")."""
    return get_all_data(address, extended2=True)


def storage_dif(storage: int, data_field: int = 0) -> bytes:
    """A DIF (plus DIFEs) carrying ``storage`` (up to 41 bits over 10 DIFEs) with data field ``data_field``."""
    if not 0 <= storage < 1 << 41:
        raise UsageError(f"storage number {storage} is outside 0..{(1 << 41) - 1}")
    out = bytearray([(data_field & 0x0F) | ((storage & 1) << 6)])
    rest = storage >> 1
    while rest:
        out[-1] |= 0x80
        out.append(rest & 0x0F)
        rest >>= 4
    return bytes(out)


def freeze(address: int, storage: int) -> bytes:
    """Freeze the current values into ``storage`` (the guide's MUC_USE_FREEZE / MBUS_FREEZESTORAGEENUM).

    EN 13757-3 has no dedicated CI for this; it is the master-to-slave action VIFE E000 1011 "freeze data"
    applied to all quantities: DIF = no data with the storage number (+ DIFEs), VIF 0xFE (= 0x7E "any VIF"
    with the extension bit), VIFE 0x0B, sent with SND_UD CI 0x51.
    """
    return snd_ud(address, CI_DATA_SEND, storage_dif(storage) + b"\xfe\x0b")
