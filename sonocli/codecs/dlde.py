"""IEC 62056-21 (DLDE, formerly IEC 1107) messages: bytes in, objects out, no I/O.

The readout of a tariff device in modes A, B and C::

    master  /?ADDRESS!CR LF                  sign-on (ADDRESS optional: multi-drop RS-485)
    meter   /XXXZ<identification>CR LF       XXX manufacturer, Z baud-rate letter
    master  ACK 0 Z 0 CR LF                  mode C only: acknowledgement/option select (data readout)
    meter   STX <data block> ! CR LF ETX BCC the data message, at the new baud rate in modes B and C

Z is a digit 0-6 (mode C: 300..19200 baud), a letter A-I (mode B: 600..19200 baud, switched right after the
identification) or anything else (mode A: the data follows at 300 baud). The BCC is the XOR of every byte
after STX up to and including ETX. The data block is lines of data sets ``ADDRESS(VALUE*UNIT)``; the address
is an OBIS code, in full (``1-0:1.8.0*255``) or reduced (``1.8.0``, ``C.1.0``, ``F.F``).

:func:`data_set_values` turns data sets into :class:`~sonocli.model.values.MeterValue` records: the value as
an exact integer with a decimal exponent (``0000502.853*kWh`` is 502853 Wh, exponent 0), the unit in the
guide's Table 18 spelling where it has one (kWh -> Wh with exponent +3), and the OBIS code, normalised to
``A-B:C.D.E*F``, in the record's ``text`` (the refinement shown after the Table 17 description).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sonocli.errors import DecodeError, NeedMoreData, UsageError
from sonocli.model.tables import measurement_index
from sonocli.model.valueclass import valueclass
from sonocli.model.values import MeterValue, ValueType

SOH, STX, ETX, EOT, ACK, NAK = 0x01, 0x02, 0x03, 0x04, 0x06, 0x15
CRLF = b"\r\n"
INITIAL_BAUD = 300
MODE_C_BAUDS = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
MODE_B_BAUDS = {"A": 600, "B": 1200, "C": 2400, "D": 4800, "E": 9600, "F": 19200}
# a device address: up to 32 characters of digits, capital and small letters and the space (IEC 62056-21 6.3.1)
_ADDRESS = re.compile(r"^[0-9A-Za-z ]{1,32}$")
_IDENT = re.compile(rb"^/([A-Za-z]{2}[A-Za-z])(.)(\\\d)?([\x20-\x7e]{0,16})\r\n$")
# one data set: ADDRESS(VALUE*UNIT) or a continuation (VALUE*UNIT) of the previous address
_SET = re.compile(r"([^()]*)\(([^()*]*)(?:\*([^()]*))?\)")
_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")
_LETTERS = {"C": 96, "F": 97, "L": 98, "P": 99}
_OBIS = re.compile(
    r"^(?:(\d{1,3})-(\d{1,3}):)?([0-9]{1,3}|[CFLP])\.([0-9]{1,3}|[CFLP])(?:\.(\d{1,3}))?(?:[*&](\d{1,3}))?$"
)
# units as the meter writes them -> (Table 18 symbol, extra decimal exponent)
_UNITS: dict[str, tuple[str, int]] = {
    "kwh": ("Wh", 3), "wh": ("Wh", 0), "mwh": ("Wh", 6), "kw": ("W", 3), "w": ("W", 0), "mw": ("W", 6),
    "v": ("V", 0), "kv": ("V", 3), "a": ("A", 0), "hz": ("Hz", 0), "kvarh": ("kVARh", 0), "kvar": ("kVAR", 0),
    "varh": ("kVARh", -3), "var": ("kVAR", -3), "m3": ("m³", 0), "m³": ("m³", 0), "s": ("s", 0), "%": ("%", 0),
}  # fmt: skip


def bcc(data: bytes) -> int:
    """The block check character: XOR of ``data`` (the bytes after STX/SOH up to and including ETX)."""
    value = 0
    for byte in data:
        value ^= byte
    return value & 0x7F


def check_address(address: str) -> str:
    """A device address for ``/?ADDRESS!`` (multi-drop), or a UsageError naming what is wrong."""
    if address and not _ADDRESS.match(address):
        raise UsageError(
            f"DLDE address {address!r} is not allowed: up to 32 digits, letters or spaces (IEC 62056-21)"
        )
    return address


def sign_on(address: str = "") -> bytes:
    """The request message ``/?ADDRESS!CR LF`` (no address: the one meter on a point-to-point link)."""
    return b"/?" + check_address(address).encode("ascii") + b"!" + CRLF


@valueclass(frozen=True)
class Identification:
    """The meter's identification message ``/XXXZ\\W ident``.

    ``manufacturer`` is the three-letter code as sent (a lower-case third letter means the meter answers
    within 20 ms, IEC 62056-21 6.3.14 note), ``baud_char`` the letter Z, ``enhanced`` the ``\\W`` capability
    sequence if any.
    """

    manufacturer: str
    baud_char: str
    ident: str
    enhanced: str | None = None

    @property
    def mode(self) -> str:
        """A, B or C, from the baud-rate letter."""
        if self.baud_char in MODE_C_BAUDS:
            return "C"
        if self.baud_char in MODE_B_BAUDS:
            return "B"
        return "A"

    @property
    def baudrate(self) -> int:
        """The baud rate the data message comes at: the proposed one in modes B and C, 300 in mode A."""
        if self.mode == "C":
            return MODE_C_BAUDS[self.baud_char]
        if self.mode == "B":
            return MODE_B_BAUDS[self.baud_char]
        return INITIAL_BAUD

    @property
    def fast(self) -> bool:
        return self.manufacturer[2:3].islower()

    @property
    def text(self) -> str:
        return f"/{self.manufacturer}{self.baud_char}{self.enhanced or ''}{self.ident}"


def parse_identification(line: bytes) -> Identification:
    """``/XXXZ[\\W]ident CR LF`` -> Identification; anything else is a DecodeError."""
    match = _IDENT.match(line)
    if match is None:
        shown = line[:40].decode("ascii", "replace").encode("unicode_escape").decode("ascii")
        raise DecodeError(f"DLDE: not an identification message: {shown!r}")
    man, baud_char, enhanced, ident = match.groups()
    return Identification(
        manufacturer=man.decode("ascii"),
        baud_char=baud_char.decode("ascii", "replace"),
        ident=ident.decode("ascii"),
        enhanced=enhanced.decode("ascii") if enhanced else None,
    )


def baud_char_for(identification: Identification, limit: int | None = None) -> str:
    """The Z of the acknowledgement: the meter's proposal, or the fastest mode-C rate not above ``limit``."""
    if identification.mode != "C":
        raise UsageError(f"DLDE mode {identification.mode} has no acknowledgement/option select")
    proposed = identification.baud_char
    if limit is None or MODE_C_BAUDS[proposed] <= limit:
        return proposed
    allowed = [char for char, rate in MODE_C_BAUDS.items() if rate <= min(limit, MODE_C_BAUDS[proposed])]
    return allowed[-1] if allowed else "0"


def ack_option_select(baud_char: str, option: str = "0", protocol: str = "0") -> bytes:
    """``ACK V Z Y CR LF``: protocol control V (0 normal), baud rate Z, mode Y (0 data readout, 1 programming)."""
    if baud_char not in MODE_C_BAUDS:
        raise UsageError(f"DLDE baud-rate character {baud_char!r} is not one of 0..6 (mode C)")
    return bytes((ACK,)) + f"{protocol}{baud_char}{option}".encode("ascii") + CRLF


@valueclass(frozen=True)
class DataSet:
    """One ``ADDRESS(VALUE*UNIT)``; a continuation ``(VALUE)`` repeats the address with ``position`` 1, 2, …"""

    address: str
    value: str
    unit: str | None = None
    position: int = 0

    @property
    def text(self) -> str:
        unit = f"*{self.unit}" if self.unit is not None else ""
        return f"{self.address if self.position == 0 else ''}({self.value}{unit})"


@valueclass(frozen=True)
class DataMessage:
    """A checked data message: the data block's data sets, and its lines as sent."""

    lines: tuple[str, ...]
    data_sets: tuple[DataSet, ...]
    raw: bytes


def encode_data_message(lines: Sequence[str], *, bad_bcc: bool = False) -> bytes:
    """``STX lines ! CR LF ETX BCC`` (what a meter sends); ``bad_bcc`` flips the BCC (a simulator fault)."""
    body = b"".join(line.encode("ascii") + CRLF for line in lines) + b"!" + CRLF + bytes((ETX,))
    check = bcc(body) ^ (0x01 if bad_bcc else 0)
    return bytes((STX,)) + body + bytes((check,))


def parse_data_block(text: str) -> tuple[tuple[str, ...], tuple[DataSet, ...]]:
    """The data block's lines (without the final ``!``) and their data sets."""
    lines: list[str] = []
    sets: list[DataSet] = []
    for number, raw_line in enumerate(text.split("\r\n"), 1):
        line = raw_line.strip("\r\n")
        if not line:
            continue
        if line == "!":
            break
        lines.append(line)
        rest = line
        address = ""
        position = 0
        while rest:
            match = _SET.match(rest)
            if match is None:
                raise DecodeError(f"DLDE data line {number}: {line!r} is not of the form ADDRESS(VALUE*UNIT)")
            given, value, unit = match.groups()
            if given:
                address, position = given.strip(), 0
            elif not address:
                address = ""
            sets.append(DataSet(address, value, unit, position))
            position += 1
            rest = rest[match.end():]
    return tuple(lines), tuple(sets)


def decode_data_message(data: bytes) -> tuple[DataMessage, int]:
    """(message, bytes used) from ``data`` starting at STX (bytes before STX are skipped).

    NeedMoreData until ETX and the BCC are there; a wrong BCC or a malformed data block is a DecodeError.
    """
    start = data.find(bytes((STX,)))
    if start < 0:
        raise NeedMoreData("DLDE: no STX yet")
    end = data.find(bytes((ETX,)), start + 1)
    if end < 0 or end + 1 >= len(data):
        raise NeedMoreData("DLDE: data message not complete")
    body = data[start + 1 : end + 1]
    want = bcc(body)
    got = data[end + 1] & 0x7F
    if want != got:
        raise DecodeError(f"DLDE data message: BCC 0x{got:02X} received, 0x{want:02X} computed (corrupt data)")
    text = body[:-1].decode("ascii", "replace")
    if "!" not in text.split("\r\n"):
        raise DecodeError("DLDE data message: the data block has no end line '!' (truncated)")
    lines, sets = parse_data_block(text)
    return DataMessage(lines, sets, bytes(data[start : end + 2])), end + 2


def parse_obis(address: str) -> tuple[int, int, int, int, int, int] | None:
    """An OBIS code from a data-set address, full or reduced (missing A-B: 1-0, or 0-0 for C = C/F/L/P;
    missing E: 0; missing F: 255); None for an address that is no OBIS code."""
    match = _OBIS.match(address.strip())
    if match is None:
        return None
    a, b, c, d, e, f = match.groups()
    c_val = _LETTERS[c] if c in _LETTERS else int(c)
    d_val = _LETTERS[d] if d in _LETTERS else int(d)
    if a is None:
        a_val, b_val = (0, 0) if c in _LETTERS else (1, 0)
    else:
        a_val, b_val = int(a), int(b)
    parts = (a_val, b_val, c_val, d_val, int(e) if e is not None else 0, int(f) if f is not None else 255)
    if any(part > 255 for part in parts):
        return None
    return parts


def obis_text(parts: Sequence[int]) -> str:
    a, b, c, d, e, f = parts
    return f"{a}-{b}:{c}.{d}.{e}*{f}"


def obis_measurement(parts: Sequence[int] | None, unit: str) -> str:
    """The Table 18 measurement of an OBIS code (IEC 62056-61 value groups A-F; C the quantity, D how it
    is processed), else of the unit: the one mapping of the DLDE and the SML codec."""
    if parts is not None:
        c, d = parts[2], parts[3]
        if c in (12, 32, 52, 72):
            return "Volts"
        if c in (11, 31, 51, 71, 91):
            return "Ampere"
        if c == 0 and d == 9:
            return "Time"
        if 1 <= c <= 10 or 13 <= c <= 30 or 33 <= c <= 50 or 53 <= c <= 70 or 73 <= c <= 80:
            if d in (8, 9, 29):
                return "Energy"
            if d in (4, 5, 6, 7, 24, 25, 26, 27):
                return "Power"
    return {"Wh": "Energy", "W": "Power", "V": "Volts", "A": "Ampere", "m³": "Volume"}.get(unit, "None")


def _numeric(parts: Sequence[int] | None) -> bool:
    """Whether a data set's digits are a quantity: not for identifiers, error registers, date and time."""
    if parts is None:
        return True
    c, d = parts[2], parts[3]
    return not (c >= 96 or (c == 0 and d in (0, 1, 2, 9)))


def data_set_value(index: int, data_set: DataSet) -> MeterValue:
    """One data set as a record: exact integer and decimal exponent, Table 18 unit, OBIS in ``text``."""
    parts = parse_obis(data_set.address)
    unit_given = (data_set.unit or "").strip()
    unit, extra = _UNITS.get(unit_given.lower(), (unit_given, 0))
    raw: int | str
    exponent = 0
    value = data_set.value.strip()
    if _NUMBER.match(value) and _numeric(parts):
        whole, _, fraction = value.partition(".")
        raw = int(whole + fraction)
        exponent = -len(fraction) + extra
    else:
        raw = value
        unit = unit_given
    obis = obis_text(parts) if parts is not None else data_set.address
    measurement = obis_measurement(parts, unit)
    function = ValueType.MAXIMUM if parts is not None and parts[3] == 6 else ValueType.INSTANTANEOUS
    # E is the tariff of energy and demand registers (1.8.1: tariff 1); elsewhere it is a plain index
    tariff = parts[4] if parts is not None and measurement in ("Energy", "Power") and parts[4] <= 63 else 0
    storage = parts[5] if parts is not None and parts[5] != 255 else 0
    return MeterValue(
        index=index,
        measurement=measurement_index(measurement),
        unit=unit,
        exponent=exponent,
        raw=raw,
        function=function,
        storage=storage,
        tariff=tariff,
        subunit=data_set.position,  # the n-th value of a data set with several, e.g. (time)(max. demand)
        data=data_set.text.encode("ascii", "replace"),
        encoding="ASCII",
        text=obis,
    )


def data_set_values(data_sets: Sequence[DataSet]) -> tuple[MeterValue, ...]:
    """Every data set as a record, in the order sent."""
    return tuple(data_set_value(i, ds) for i, ds in enumerate(data_sets))
