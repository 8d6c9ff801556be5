"""SML 1.04 (Smart Message Language, BSI TR-03109-1 / FNN) files: bytes in, records out, no I/O.

An SML *file* on the wire (transport protocol version 1)::

    1B 1B 1B 1B  01 01 01 01   messages ...   00 (padding)   1B 1B 1B 1B  1A NN CC CC

NN is the number of padding bytes, CC CC the CRC16/X.25 over everything before it; an escape sequence
inside the data is doubled. The messages (SML_PublicOpen.Res, SML_GetList.Res with the values,
SML_PublicClose.Res) are parsed by smllib (a well-kept parser of SML 1.04, imported only here and only when
SML is used); this module checks the transport CRC, refuses what it cannot vouch for (a bad CRC, a file that
ends early, a message type smllib does not know) with one line each, and turns the list entries into
:class:`~sonocli.model.values.MeterValue` records as the DLDE codec does: the value as an exact integer
with the entry's scaler as decimal exponent, the DLMS unit code in the guide's Table 18 spelling, and the
OBIS code ``A-B:C.D.E*F`` in the record's ``text``.

:class:`SmlStream` cuts a byte stream (a meter pushing a file every second or so through an IR head) into
files; :func:`find_files` finds files embedded in other bytes (SML inside M-Bus and wM-Bus telegrams).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sonocli.codecs.dlde import obis_measurement
from sonocli.errors import DecodeError, NeedMoreData
from sonocli.model.tables import measurement_index
from sonocli.model.valueclass import valueclass
from sonocli.model.values import MeterValue, ValueType

START = b"\x1b\x1b\x1b\x1b\x01\x01\x01\x01"
END = b"\x1b\x1b\x1b\x1b\x1a"
ESCAPE = b"\x1b\x1b\x1b\x1b"
MAX_FILE = 50 * 1024  # a meter's file is a few hundred bytes; more is a line stuck on noise

# DLMS/COSEM unit codes (IEC 62056-62, as SML uses them) -> (Table 18 symbol, extra decimal exponent)
_UNIT_CODES: dict[int, tuple[str, int]] = {
    1: ("year", 0), 2: ("month", 0), 3: ("week", 0), 4: ("day", 0), 5: ("h", 0), 6: ("min", 0), 7: ("s", 0),
    8: ("°", 0), 9: ("°C", 0), 11: ("m", 0), 13: ("m³", 0), 14: ("m³", 0), 15: ("m³/h", 0), 16: ("m³/h", 0),
    19: ("l", 0), 20: ("kg", 0), 23: ("Pa", 0), 24: ("bar", 0), 25: ("J", 0), 26: ("J/h", 0), 27: ("W", 0),
    28: ("VA", 0), 29: ("kVAR", -3), 30: ("Wh", 0), 31: ("VAh", 0), 32: ("kVARh", -3), 33: ("A", 0),
    35: ("V", 0), 44: ("Hz", 0), 52: ("K", 0), 56: ("%", 0),
}  # fmt: skip
_MESSAGES = {0x0101: "SML_PublicOpen.Res", 0x0201: "SML_PublicClose.Res", 0x0701: "SML_GetList.Res"}


def crc16_x25(data: bytes) -> int:
    """CRC16/X.25 (poly 0x1021 reflected, init and final XOR 0xFFFF): the SML transport checksum."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    crc ^= 0xFFFF
    return ((crc & 0xFF) << 8) | (crc >> 8)  # sent high byte first, as the meters do


@valueclass(frozen=True)
class SmlEntry:
    """One ``SML_ListEntry``: OBIS code (6 bytes), value (int, text or None), DLMS unit code, scaler."""

    obis: tuple[int, int, int, int, int, int]
    value: int | str | None
    unit: int | None = None
    scaler: int | None = None
    status: int | None = None

    @property
    def obis_text(self) -> str:
        a, b, c, d, e, f = self.obis
        return f"{a}-{b}:{c}.{d}.{e}*{f}"


@valueclass(frozen=True)
class SmlFile:
    """A checked SML file: the messages' names, the server ID (the meter), its list entries, the bytes."""

    messages: tuple[str, ...]
    server_id: bytes
    entries: tuple[SmlEntry, ...]
    raw: bytes

    @property
    def manufacturer(self) -> str | None:
        """The FLAG manufacturer code: of a binary server ID (DIN 43863-5: 0A 01 'EMH' …) or of OBIS
        129-129:199.130.3 (the meter's own entry), else None."""
        for entry in self.entries:
            if entry.obis == (129, 129, 199, 130, 3, 255) and isinstance(entry.value, str):
                return entry.value.strip()[:3].upper() or None
        sid = self.server_id
        if len(sid) == 10 and sid[2:5].isalpha():
            return sid[2:5].decode("ascii").upper()
        return None

    @property
    def serial(self) -> str:
        """The meter number for the meter list: an ASCII server ID's digits (last 8), a binary one's
        4-byte serial in decimal (8 digits), else FFFFFFFF."""
        sid = self.server_id
        if sid and sid.isdigit():
            return sid.decode("ascii")[-8:].zfill(8)
        if len(sid) >= 4:
            return str(int.from_bytes(sid[-4:], "big") % 100_000_000).zfill(8)
        return "FFFFFFFF"


def _escape_end(data: bytes, start: int) -> int:
    """Index of the end sequence ``1B1B1B1B 1A`` of the file starting at ``start``, skipping doubled escapes;
    -1 while it has not come, ``-2 - i`` when a new start sequence at ``i`` cut the file short.

    Escape sequences sit on 4-byte boundaries of the file (the transport works in 4-byte blocks, as libsml
    reads it), so a run of 1B bytes in the data that straddles a boundary is data, not an escape."""
    pos = start + len(START)
    while True:
        found = data.find(ESCAPE, pos)
        if found < 0:
            return -1
        if found % 4 != start % 4:  # escapes are 4-byte aligned in the file: a 1B run across a boundary
            pos = found + 1
            continue
        marker = data[found + 4 : found + 5]
        if marker == b"\x1b":  # an escaped escape: 1B1B1B1B 1B1B1B1B is data
            pos = found + 8
            continue
        if not marker:
            return -1
        if marker == b"\x1a":
            return found
        if data[found : found + 8] == START:  # a new file started: the old one was cut short
            return -2 - found
        pos = found + 4


def decode_file(data: bytes) -> tuple[SmlFile, int]:
    """(file, bytes used) from ``data`` starting at the first start sequence (bytes before it are skipped).

    NeedMoreData while the end sequence and the CRC are still to come; a bad CRC, a file cut short by the
    next one, a message that is none or of a type the parser does not know: DecodeError, one line.
    """
    start = data.find(START)
    if start < 0:
        raise NeedMoreData("SML: no start sequence 1B1B1B1B 01010101 yet")
    end = _escape_end(data, start)
    if end == -1:
        if len(data) - start > MAX_FILE:
            raise DecodeError(f"SML: no end sequence within {MAX_FILE} bytes (not SML, or noise on the line)")
        raise NeedMoreData("SML: file not complete")
    if end < -1:
        cut = -2 - end
        raise _Truncated(f"SML file: truncated after {cut - start} bytes, then a new file started", cut)
    if len(data) < end + 8:
        raise NeedMoreData("SML: CRC not received yet")
    raw = bytes(data[start : end + 8])
    want = crc16_x25(raw[:-2])
    got = int.from_bytes(raw[-2:], "big")
    if want != got:
        raise _BadFile(f"SML file: CRC 0x{got:04X} received, 0x{want:04X} computed (corrupt data)", end + 8)
    padding = raw[-3]
    if padding > 3:
        raise _BadFile(f"SML file: {padding} padding bytes announced (at most 3)", end + 8)
    body = raw[len(START) : len(raw) - 8 - padding].replace(ESCAPE + ESCAPE, ESCAPE)
    return parse_messages(body, raw), end + 8


class _BadFile(DecodeError):
    """A complete file that is wrong; ``used`` is how far the stream may skip past it."""

    def __init__(self, message: str, used: int) -> None:
        super().__init__(message)
        self.used = used


class _Truncated(_BadFile):
    pass


def _skip_element(body: bytes, pos: int) -> int:
    """The position after the SML element (type-length field and value) starting at ``pos``.

    A TL byte is ``more-flag | type (3 bits) | length (4 bits)``; with the more-flag set the next TL byte adds
    four bits to the length. For a list (type 7) the length counts its elements, otherwise it counts the bytes
    of the element including its TL bytes (TR-03109-1, SML 1.04 section 6.3)."""
    if pos >= len(body):
        raise DecodeError(f"SML file: a message ends early at byte {pos}")
    tl = body[pos]
    kind = tl & 0x70
    size = tl & 0x0F
    p = pos + 1
    while tl & 0x80:
        if p >= len(body):
            raise DecodeError(f"SML file: a type-length field is cut short at byte {p}")
        tl = body[p]
        size = (size << 4) | (tl & 0x0F)
        p += 1
    if kind == 0x70:
        for _ in range(size):
            p = _skip_element(body, p)
        return p
    if tl == 0x00 and p == pos + 1:  # end of message
        return p
    end = pos + max(size, p - pos)
    if end > len(body):
        raise DecodeError(f"SML file: an element of {size} bytes at byte {pos} runs past the end of the file")
    return end


def message_spans(body: bytes) -> list[tuple[int, int, int]]:
    """(start, CRC field start, CRC field end) of each message of an unescaped file body, in order.

    A message is a list of 6: transaction ID, group number, abort on error, message body, CRC16, end of
    message (00h); zero bytes between messages are the padding to the 4-byte boundary."""
    spans: list[tuple[int, int, int]] = []
    pos = 0
    while pos < len(body):
        if body[pos] == 0x00:
            pos += 1
            continue
        if body[pos] != 0x76:
            raise DecodeError(f"SML file: message {len(spans) + 1} does not start with a list of 6 (76h) "
                              f"but with {body[pos]:02X}h at byte {pos}")
        p = pos + 1
        for _ in range(4):
            p = _skip_element(body, p)
        crc_at = p
        p = _skip_element(body, p)
        spans.append((pos, crc_at, p))
        pos = _skip_element(body, p)
    return spans


def check_message_crcs(body: bytes) -> None:
    """Every message's own CRC16 (its fifth element, over the message bytes before it): DecodeError naming
    the message for the first that does not match.

    The transport CRC protects the file on the line; the message CRC is what the meter computed over each
    message, and a file re-framed by a gateway, or SML carried in an M-Bus/wM-Bus telegram, can pass the first
    and still be wrong in the second. libsml checks both; so does sonocli. The CRC is CRC16/X.25 as for the
    transport (TR-03109-1); a meter that sends it as an Unsigned8 (TL 62h, for a CRC below 100h) is read as
    sent."""
    for number, (start, crc_at, crc_end) in enumerate(message_spans(body), 1):
        field = body[crc_at:crc_end]
        if not field or field[0] not in (0x62, 0x63):
            raise DecodeError(f"SML file: message {number} has no CRC16 field (TL {field[:1].hex() or '-'})")
        sent = int.from_bytes(field[1:], "big")
        computed = crc16_x25(body[start:crc_at])
        if sent != computed:
            raise DecodeError(f"SML file: message {number} CRC 0x{sent:04X} received, 0x{computed:04X} "
                              f"computed (corrupt message)")


def with_message_crcs(body: bytes) -> bytes:
    """``body`` with every message's CRC16 recomputed (simulators and tests that alter a message)."""
    out = bytearray(body)
    for start, crc_at, crc_end in message_spans(body):
        if crc_end - crc_at == 3 and out[crc_at] == 0x63:
            out[crc_at + 1 : crc_end] = crc16_x25(bytes(out[start:crc_at])).to_bytes(2, "big")
    return bytes(out)


def parse_messages(body: bytes, raw: bytes | None = None) -> SmlFile:
    """The messages of an unescaped file body through smllib, each message's CRC checked first; DecodeError
    for what it cannot parse."""
    from smllib.errors import SmlLibException, UnsupportedChoiceValue
    from smllib.sml_frame import SmlFrame

    check_message_crcs(body)
    frame = SmlFrame(body)
    try:
        messages = frame.parse_frame()
    except UnsupportedChoiceValue as exc:
        known = ", ".join(_MESSAGES.values())
        raise DecodeError(f"SML file: unknown message type 0x{exc.type:04X} (this parser knows {known})") from exc
    except (SmlLibException, ValueError, IndexError, TypeError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DecodeError(f"SML file: not a valid SML message: {text[:120]}") from exc
    names: list[str] = []
    entries: list[SmlEntry] = []
    server_id = b""
    for message in messages:
        body_obj: Any = message.message_body
        names.append(type(body_obj).__name__)
        sid = getattr(body_obj, "server_id", None)
        if sid and not server_id:
            server_id = _octets(sid)
        for entry in getattr(body_obj, "val_list", None) or ():
            entries.append(_entry(entry))
    return SmlFile(tuple(names), server_id, tuple(entries), raw if raw is not None else body)


def _octets(value: Any) -> bytes:
    """smllib gives the octet strings of messages (the server ID) in hex: their bytes."""
    text = str(value)
    try:
        return bytes.fromhex(text)
    except ValueError:
        return text.encode("latin-1", "replace")


def _entry(entry: Any) -> SmlEntry:
    obis = bytes.fromhex(str(entry.obis))
    if len(obis) != 6:
        raise DecodeError(f"SML list entry: OBIS code {str(entry.obis)!r} is not 6 bytes")
    value = entry.value
    if isinstance(value, bool):
        value = int(value)
    elif not isinstance(value, int | str) and value is not None:
        value = str(value)
    a, b, c, d, e, f = obis
    return SmlEntry((a, b, c, d, e, f), value, entry.unit, entry.scaler, entry.status)


def find_files(data: bytes) -> list[SmlFile]:
    """Every complete SML file inside ``data`` (e.g. the manufacturer data of an M-Bus telegram); a bad one
    is a DecodeError, an incomplete tail is ignored."""
    out: list[SmlFile] = []
    pos = 0
    while True:
        start = data.find(START, pos)
        if start < 0:
            return out
        try:
            file, used = decode_file(data[start:])
        except NeedMoreData:
            return out
        out.append(file)
        pos = start + used


class SmlStream:
    """A byte stream of SML files (a meter pushing them): feed bytes, take files or the error of each bad one.

    Bytes before a start sequence are skipped (the reader came in in the middle of a file), a bad file is
    reported once and skipped, so one corrupt telegram never stops the stream.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[SmlFile | DecodeError]:
        self._buf += data
        while True:
            start = self._buf.find(START)
            if start < 0:
                keep = len(START) - 1  # a start sequence may be cut between two reads
                if len(self._buf) > keep:
                    del self._buf[: len(self._buf) - keep]
                return
            if start:
                del self._buf[:start]
            try:
                file, used = decode_file(bytes(self._buf))
            except NeedMoreData:
                return
            except _BadFile as exc:
                del self._buf[: exc.used]
                yield exc
                continue
            except DecodeError as exc:
                del self._buf[: len(START)]
                yield exc
                continue
            del self._buf[:used]
            yield file

    @property
    def pending(self) -> int:
        return len(self._buf)


def encode_file(body: bytes, *, bad_crc: bool = False) -> bytes:
    """A transport-v1 file around unescaped message bytes (simulators; ``bad_crc`` flips the CRC)."""
    data = body.replace(ESCAPE, ESCAPE + ESCAPE)
    padding = (-len(data)) % 4
    head = START + data + b"\x00" * padding + END + bytes((padding,))
    crc = crc16_x25(head) ^ (0x0001 if bad_crc else 0)
    return head + crc.to_bytes(2, "big")


def entry_value(index: int, entry: SmlEntry) -> MeterValue:
    """One list entry as a record: exact integer and decimal exponent, Table 18 unit, OBIS in ``text``."""
    unit, extra = _UNIT_CODES.get(entry.unit, (f"unit {entry.unit}", 0)) if entry.unit is not None else ("", 0)
    raw: int | str | None = entry.value
    exponent = 0
    if isinstance(raw, int):
        exponent = (entry.scaler or 0) + extra
    measurement = obis_measurement(entry.obis, unit)
    tariff = entry.obis[4] if measurement in ("Energy", "Power") and entry.obis[4] <= 63 else 0
    storage = entry.obis[5] if entry.obis[5] != 255 else 0
    return MeterValue(
        index=index,
        measurement=measurement_index(measurement),
        unit=unit if isinstance(raw, int) else "",
        exponent=exponent,
        raw=raw,
        function=ValueType.INSTANTANEOUS,
        storage=storage,
        tariff=tariff,
        data=bytes(entry.obis),
        encoding="SML",
        text=entry.obis_text,
    )


def file_values(file: SmlFile) -> tuple[MeterValue, ...]:
    """Every list entry of the file as a record, in the order sent."""
    return tuple(entry_value(i, entry) for i, entry in enumerate(file.entries))
