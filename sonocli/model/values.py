"""Typed meter data, no I/O: what a readout produces and what the meter list holds.

Everything is immutable: a reading that has been taken never changes, and configuration edits produce new
objects (``dataclasses.replace``; ``_replace`` for the NamedTuple MeterValue), which makes the meter list
safe to share between the daemon's threads.
"""

from __future__ import annotations

import enum
import math
import struct
from datetime import datetime
from typing import TYPE_CHECKING, Final

from sonocli.model.tables import measurement_text, medium_text
from sonocli.model.valueclass import field, valueclass

if TYPE_CHECKING:
    from decimal import Decimal  # imported where a value needs it: most wired frames' values are whole
    from typing import NamedTuple
else:
    from sonocli.model.namedtuple import NamedTuple  # typing's syntax, not its cost (see there)


class ValueType(enum.StrEnum):
    """EN 13757-3 DIF function field, with the guide's names (device_handle.cfg ``valuetype``)."""

    INSTANTANEOUS = "instantaneous"
    MAXIMUM = "maximum"
    MINIMUM = "minimum"
    ERRORGATE = "errorgate"


class Interface(enum.IntEnum):
    """Meter interface; the numbers are the XML ``INTERFACE`` codes of Table 21."""

    S0 = 1
    MBUS = 2
    WMBUS = 5
    DLDE = 6

    @property
    def label(self) -> str:
        """The guide's spelling in device_handle.cfg and the tab Meter."""
        return _INTERFACE_LABELS[self]

    @classmethod
    def from_label(cls, text: str) -> Interface:
        wanted = text.strip().lower().replace("_", "-")
        for member, label in _INTERFACE_LABELS.items():
            if label.lower() == wanted or member.name.lower() == wanted.replace("-", ""):
                return member
        allowed = ", ".join(_INTERFACE_LABELS.values())
        raise ValueError(f"interface {text!r} is not one of {allowed}")


_INTERFACE_LABELS = {
    Interface.S0: "S0",
    Interface.MBUS: "M-Bus",
    Interface.WMBUS: "wM-Bus",
    Interface.DLDE: "DLDE",
}


class AddressMode(enum.IntEnum):
    """device_handle.cfg ``addressmode``: 0 secondary, 1 primary."""

    SECONDARY = 0
    PRIMARY = 1


@valueclass(frozen=True, slots=True)
class MeterIdentity:
    """The secondary address of a meter: ID (8 BCD digits as text), manufacturer, version, medium."""

    id: str
    manufacturer: str
    version: int
    medium: int

    @property
    def device_id(self) -> str:
        """The guide's Device-ID column: ``MAN-SERIAL-VV-MM`` with version and medium in hex."""
        return f"{self.manufacturer}-{self.id}-{self.version:02X}-{self.medium:02X}"

    @property
    def medium_text(self) -> str:
        return medium_text(self.medium)


class MeterValue(NamedTuple):
    """One value read from a meter (a DIF/VIF record) or entered for a manual S0/DLDE meter.

    A NamedTuple rather than a frozen dataclass, although it is the only such record here: the decoder
    builds one per record, and a tuple is built in C in about a quarter of the time a frozen dataclass
    needs (which stores each of its 14 fields through ``object.__setattr__``). It is just as immutable;
    edits make a new value with ``value._replace(...)``. Being a tuple, it also compares equal to a plain
    tuple of the same fields and unpacks; nothing in sonocli relies on either.

    ``exponent`` is the decimal scale: the physical value is ``raw * 10**exponent`` in ``unit``.
    ``raw`` is an int or float for numbers, a str for text, a datetime for dates, bytes for binary data,
    None where the record carries no data. ``dif_vif`` and ``data`` keep the raw bytes for the guide's
    description modes (Table 10). ``qualifiers`` are what the record's combinable VIFEs (EN 13757-3 Table
    15) change in its meaning: ``("backward flow",)``, ``("per hour",)``, ``("at phase L1",)``; empty for
    a plain record. They are shown after the description ("Volume (backward flow)"), never in the CSV/XML
    description, which stays the guide's Table 17 text.
    """

    index: int  # type: ignore[assignment]  # shadows tuple.index(), which nothing calls on a value
    measurement: int
    unit: str
    exponent: int = 0
    raw: int | float | str | bytes | datetime | None = None
    function: ValueType = ValueType.INSTANTANEOUS
    storage: int = 0
    tariff: int = 0
    subunit: int = 0
    timestamp: datetime | None = None
    dif_vif: bytes = b""
    data: bytes = b""
    encoding: str = "NODATA"
    text: str | None = None  # a plain-text VIF's own description, or a refinement shown after the table text
    qualifiers: tuple[str, ...] = ()  # last, with a default: positional constructors stay valid

    @property
    def description(self) -> str:
        """The Table 17 text; for plain-text VIFs (index 31) the meter's own text where it has one."""
        if self.measurement == 31 and self.text:
            return self.text
        return measurement_text(self.measurement)

    @property
    def scale(self) -> float:
        return float(10.0**self.exponent)

    @property
    def is_numeric(self) -> bool:
        return isinstance(self.raw, int | float) and not isinstance(self.raw, bool)

    @property
    def described(self) -> str:
        """The description with the qualifiers in brackets: ``Volume (backward flow)``; for tables."""
        if not self.qualifiers:
            return self.description
        return f"{self.description} ({', '.join(self.qualifiers)})"

    @property
    def exact(self) -> int | Decimal | str | None:
        """``raw × 10^exponent`` exactly: an int where that is whole, else a Decimal (never a binary float
        artefact); ISO 8601 for dates, text as is, hex for binary data, None without data.

        A float raw (a REAL32 record) counts as the shortest decimal that reads back as the same 32-bit
        float the meter sent (``0.1``, not ``0.10000000149011612``): lossless, as Python's repr is for
        64-bit floats; a float no 32-bit float equals (a manual value) as its repr.
        """
        raw = self.raw
        if raw is None:
            return None
        if type(raw) is int or type(raw) is bool:
            number = int(raw)
            if self.exponent >= 0:
                return number * _pow10(self.exponent)
            whole, rest = divmod(number, _pow10(-self.exponent))
            if not rest:
                return whole
            from decimal import Decimal  # here, not at import: a run whose values are whole never needs it

            return Decimal(f"{number}E{self.exponent}")  # the constructor is exact (no context rounding)
        if type(raw) is float:
            from decimal import Decimal

            real = raw
            if not math.isfinite(real):
                return Decimal(repr(real))
            scaled = Decimal(f"{shortest_decimal(real)}E{self.exponent}")
            return int(scaled) if scaled == scaled.to_integral_value() else scaled
        return self._text_value()

    def _text_value(self) -> str | None:
        raw = self.raw
        if isinstance(raw, datetime):
            return raw.isoformat()
        if isinstance(raw, bytes):
            return raw.hex().upper()
        return None if raw is None else str(raw)

    @property
    def value(self) -> float | str | None:
        """``raw × scale`` for numbers as a float (for arithmetic; :attr:`exact` is what to show or
        export: a float rounds above 2^53 and at 17 digits); ISO 8601 for dates; text as is; hex for
        binary data."""
        raw = self.raw
        if raw is None:
            return None
        if isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, int | float):
            if self.exponent >= 0:
                return float(raw * 10**self.exponent)
            # divide rather than multiply by 10**-n to keep 12345 * 1e-3 == 12.345 exactly representable
            return float(raw / 10 ** (-self.exponent))
        if isinstance(raw, datetime):
            return raw.isoformat()
        if isinstance(raw, bytes):
            return raw.hex().upper()
        return str(raw)


_F32: Final = struct.Struct("<f")


def shortest_decimal(real: float) -> str:
    """The shortest decimal text of a finite float: of the 32-bit float it is, where it is one (REAL32
    data: ``0.1`` for 0x3DCCCCCD), else its 64-bit repr. Either reads back as exactly that float."""
    try:
        single: float = _F32.unpack(_F32.pack(real))[0]
    except OverflowError:  # beyond the 32-bit range: a 64-bit value
        return repr(real)
    if single != real:
        return repr(real)
    # 9 significant digits always identify a 32-bit float; a shorter one comes out of 6 digits already
    # (%g drops trailing zeros, and a 32-bit float is far closer to its shortest decimal than 10^-6)
    for digits in range(6, 10):
        text = f"{real:.{digits}g}"
        if _F32.unpack(_F32.pack(float(text)))[0] == real:
            return text
    return repr(real)


class ExactNumber(float):
    """A number for JSON whose exact decimal ``text`` a float cannot hold (more than 15 significant
    digits): a float (the nearest one) to every consumer, so ``json.dumps`` still works everywhere, and
    written as ``text`` by :func:`sonocli.engine.decoding.json_text`, the encoder of sonocli's ``--json``."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, number: Decimal) -> ExactNumber:
        self = super().__new__(cls, number)
        self.text = plain_decimal(number)
        return self


def plain_float(value: float) -> str:
    """A finite float's repr (the shortest decimal that reads back as it: what json_number makes exact) in
    positional notation, as :func:`plain_decimal` writes the same decimal: ``1e-05`` -> ``0.00001``,
    ``1.5e+16`` -> ``15000000000000000``, ``-0.0`` -> ``0``. String work only: the terminal's record
    table needs no ``decimal`` (~0.7 ms to import) for a float's digits."""
    text = repr(value)
    sign = "-" if text[0] == "-" else ""
    text = text.lstrip("-")
    mantissa, _, exp = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    if not digits:
        return "0"
    # the decimal point sits after len(whole) digits; the exponent moves it, leading zeros do not count
    point = len(whole) + (int(exp) if exp else 0) - (len(whole + fraction) - len((whole + fraction).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    if point <= 0:
        out = "0." + "0" * -point + digits
    elif point >= len(digits):
        out = digits + "0" * (point - len(digits))
    else:
        out = digits[:point] + "." + digits[point:]
    return sign + out


def plain_decimal(number: Decimal) -> str:
    """A Decimal in positional notation without trailing fractional zeros: ``12.345``, ``0.00001``."""
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


_EXACT_DIGITS: Final = 10**15  # a decimal of up to 15 significant digits survives a float and its repr
_POW10: Final[tuple[int, ...]] = tuple(10**k for k in range(32))


def _pow10(exponent: int) -> int:
    """10^exponent (exponent ≥ 0) as an int; a table for the exponents records have."""
    return _POW10[exponent] if exponent < 32 else int(10**exponent)


def json_number(value: MeterValue) -> int | float | str | None:
    """The value as a JSON-ready exact number: an int where it is whole, a float where the float's repr
    is the exact decimal (up to 15 significant digits: ``0.069``, never ``0.30000000000000004``), an
    :class:`ExactNumber` beyond that; dates, text and binary data as :attr:`MeterValue.exact` gives them.
    Kept cheap: ``decode --json`` runs this for every record."""
    raw = value.raw
    if type(raw) is int:
        exponent = value.exponent
        if exponent >= 0:
            return raw * _pow10(exponent)
        if -_EXACT_DIGITS < raw < _EXACT_DIGITS:
            scale = _pow10(-exponent)
            whole, rest = divmod(raw, scale)
            if not rest:
                return whole
            return raw / scale  # correctly rounded: its repr is the exact decimal
    elif type(raw) is datetime:
        return raw.isoformat()
    elif type(raw) is float:
        if not math.isfinite(raw):
            return raw  # NaN / infinity as before (no exact decimal)
        if value.exponent == 0:
            number = float(shortest_decimal(raw))  # its repr is that shortest decimal
            return int(number) if number.is_integer() and abs(number) < _EXACT_DIGITS else number
    elif raw is None:
        return None
    exact = value.exact
    from decimal import Decimal

    if isinstance(exact, Decimal):
        digits = exact.as_tuple().digits
        if len(digits) <= 15:
            return float(exact)
        return ExactNumber(exact)
    return exact


@valueclass(frozen=True, slots=True)
class ValueConfig:
    """A value entry of the meter list (device_handle.cfg ``<value>``), defaults as in Table 26."""

    description: str = "None"
    unit: str = "None"
    encodetype: str = "NODATA"
    exponent: int = 0
    valuetype: ValueType = ValueType.INSTANTANEOUS
    storagenum: int = 0
    tariff: int = 0
    obis: str | None = None
    active: bool = True
    register: int = 0
    user: str | None = None
    value: float | None = None  # only for manual S0/DLDE values
    # sonocli's additions (not in Table 26), so a value entry is matched to its record exactly:
    subunit: int = 0  # DIFE subunit (device number) of the record
    difvif: str = ""  # the record's DIF/DIFE/VIF/VIFE bytes in hex, empty for entries made by a device
    extra: tuple[tuple[str, str], ...] = ()  # unknown child elements, kept for a lossless round trip


@valueclass(frozen=True, slots=True)
class Meter:
    """A meter-list entry (device_handle.cfg ``<meter>``), defaults as in Table 26."""

    interface: Interface
    serial: str = "FFFFFFFF"  # 8 hex/BCD digits, as printed on the meter
    manufacturer: str | None = None
    version: int | None = None
    medium: int | None = None
    primary_address: int = 0
    address_mode: AddressMode = AddressMode.SECONDARY
    readout_cycle: int = 0
    max_value_count: int = 0
    key: bytes | None = None
    active: bool = True
    rssi: int = 0
    register: int = 0
    user: str | None = None
    values: tuple[ValueConfig, ...] = ()
    extra: tuple[tuple[str, str], ...] = field(default=())  # unknown child elements, kept verbatim

    @property
    def device_id(self) -> str:
        """``MAN-SERIAL-VV-MM`` (Figure 22); unknown parts print as ``---``/``00``."""
        man = self.manufacturer or "---"
        return f"{man}-{self.serial}-{(self.version or 0):02X}-{(self.medium or 0):02X}"

    @property
    def identity(self) -> MeterIdentity:
        return MeterIdentity(self.serial, self.manufacturer or "---", self.version or 0, self.medium or 0)

    @property
    def link(self) -> int:
        """The CSV ``Link`` column: primary address for wired meters, RSSI for wireless ones."""
        return self.rssi if self.interface is Interface.WMBUS else self.primary_address


@valueclass(frozen=True, slots=True)
class Reading:
    """One readout of one meter (or one received telegram), as stored and exported.

    ``taken_at`` is the concentrator's UTC time of the readout (T_MUC), ``values`` what the meter said.
    """

    meter: Meter
    taken_at: datetime
    values: tuple[MeterValue, ...]
    rssi: int | None = None
    raw_frames: tuple[bytes, ...] = ()
    # The application data of an encrypted telegram as decrypted, for what is carried inside it (SML with
    # WMBUS_SMLENEBALE). Never stored nor exported: the store keeps the frames as they came on the air.
    plain: tuple[bytes, ...] = field(default=(), compare=False, repr=False)
