"""EN 13757-3 application layer: CI headers, DIF/DIFE/VIF/VIFE records, data types, manufacturer data.

One pass per telegram keeps the hot path cheap: it walks the bytes, splits each record into its DIB/VIB
("header") and data, and looks the header up in a memo of parsed headers (a meter repeats the same headers
in every telegram, so the table work happens once per distinct header), then builds the frozen MeterValue.
When the meter sends its own date and time (VIF 0x6D), that timestamp is attached to the values of the
same storage number and subunit, as the guide asks ("timestamps ... are automatically assigned to the
other meter values").

Tolerances for real meters, each documented where it happens: plain-text VIFs in libmbus order (DIF,
0xFC, LEN, ASCII, VIFE — the order Elvaco and others send), idle fillers anywhere, BCD with a leading
F (negative) and hex digits A–E (kept as text, as error markers).
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

from sonocli.codecs import vif as V
from sonocli.errors import DecodeError, NoKeyError
from sonocli.model.tables import measurement_index, measurement_text
from sonocli.model.values import MeterValue, ValueType

if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from sonocli.model.namedtuple import NamedTuple  # typing's syntax, not its cost (see there)

MAX_DIFE: Final = 10
MAX_VIFE: Final = 10

_FUNCTIONS: Final = (ValueType.INSTANTANEOUS, ValueType.MAXIMUM, ValueType.MINIMUM, ValueType.ERRORGATE)

# device_handle.cfg encodetype names, by DIF data field.
ENCODINGS: Final = (
    "NODATA", "INT8", "INT16", "INT24", "INT32", "REAL32", "INT48", "INT64",
    "READOUT", "BCD2", "BCD4", "BCD6", "BCD8", "VARLEN", "BCD12", "SPECIAL",
)  # fmt: skip
_LENGTHS: Final = (0, 1, 2, 3, 4, 4, 6, 8, 0, 1, 2, 3, 4, -1, 6, 0)

# data decoders
(_D_NONE, _D_INT, _D_UINT, _D_REAL, _D_BCD, _D_LVAR, _D_DATE_G, _D_DATE_F, _D_DATE_I, _D_TIME_J, _D_DATE_BCD,
 _D_PROFILE) = range(12)

APPLICATION_ERRORS: Final[dict[int, str]] = {
    0: "unspecified error",
    1: "unimplemented CI-field",
    2: "buffer too long, truncated",
    3: "too many records",
    4: "premature end of record",
    5: "more than 10 DIFEs",
    6: "more than 10 VIFEs",
    7: "reserved",
    8: "application busy",
    9: "too many readouts",
}

_TEXT_ALLOWED: Final = frozenset(range(0x20, 0x7F))
_CONTROL_BYTES: Final = bytes((*range(0x20), *range(0x7F, 0xA0)))  # C0, DEL and C1: not ISO 8859-1 text


class Header(NamedTuple):
    """The data header: secondary address (long header only), access number, status, signature.

    NamedTuples, like MeterValue, because one is built per telegram on the decoding hot path.
    """

    id: str
    manufacturer: str
    version: int
    medium: int
    access_number: int
    status: int
    signature: int


class AppData(NamedTuple):
    """A decoded application layer. ``application_error`` is set for CI 0x6E/0x6F/0x70 (code, -1 = none
    given), ``alarm`` for CI 0x71/0x74/0x75; ``warnings`` name tolerated deviations from EN 13757-3."""

    ci: int
    header: Header | None
    values: tuple[MeterValue, ...]
    more_records_follow: bool
    manufacturer_data: bytes
    application_error: int | None = None
    alarm: int | None = None
    warnings: tuple[str, ...] = ()

    @property
    def application_error_text(self) -> str | None:
        if self.application_error is None:
            return None
        if self.application_error < 0:
            return "error (no code given)"
        return APPLICATION_ERRORS.get(self.application_error, f"error code {self.application_error}")


# ---- manufacturer --------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def manufacturer_text(code: int) -> str:
    """Three letters from the 15-bit FLAG code (bit 15, used by some as a flag, is ignored)."""
    return (
        chr(((code >> 10) & 0x1F) + 64) + chr(((code >> 5) & 0x1F) + 64) + chr((code & 0x1F) + 64)
    )


def manufacturer_code(man: str) -> int:
    """The FLAG code of three letters A–Z (``KAM`` → 0x2C2D)."""
    text = man.strip().upper()
    if len(text) != 3 or not all("A" <= ch <= "Z" for ch in text):
        raise DecodeError(f"manufacturer {man!r} must be three letters A-Z")
    return ((ord(text[0]) - 64) << 10) | ((ord(text[1]) - 64) << 5) | (ord(text[2]) - 64)


# ---- enhanced identification (VIF 0x79) ----------------------------------------------------------------

_IDENTIFICATION: Final = measurement_index("Identification")


class Identification(NamedTuple):
    """A VIF 0x79 record's secondary address (EN 13757-3 "enhanced identification"): the ID, and with
    eight data bytes (as in a long header: ID, manufacturer, version, medium) the rest of it."""

    id: str
    manufacturer: str | None = None
    version: int | None = None
    medium: int | None = None

    @property
    def text(self) -> str:
        """``MAN-ID-VV-MM`` (the guide's Device-ID) for a full address, ``MAN-ID`` or the ID alone else."""
        if self.manufacturer is None:
            return self.id
        if self.version is None or self.medium is None:
            return f"{self.manufacturer}-{self.id}"
        return f"{self.manufacturer}-{self.id}-{self.version:02X}-{self.medium:02X}"


def enhanced_identification(value: MeterValue) -> Identification | None:
    """The identification a VIF 0x79 record carries, or None for any other record.

    Eight binary data bytes (DIF 07) are a whole secondary address in long-header order; six (DIF 06) ID
    and manufacturer; BCD data (DIF 0C/0E) the ID alone, its digits as sent (leading zeros kept). A record
    with qualifiers (manufacturer-specific VIFEs, Kamstrup's ``02 F9 FF 15``) is the manufacturer's and
    stays a number. The data are read least significant byte first (CI 0x76 meters are not handled).
    """
    if value.measurement != _IDENTIFICATION or value.qualifiers:
        return None
    data = value.data
    encoding = value.encoding
    if encoding in ("INT64", "INT48") and len(data) in (6, 8):
        ident = data[3::-1].hex().upper()
        manufacturer = manufacturer_text(int.from_bytes(data[4:6], "little"))
        if len(data) == 6:
            return Identification(ident, manufacturer)
        return Identification(ident, manufacturer, data[6], data[7])
    if encoding in ("BCD8", "BCD12") and data:
        return Identification(data[::-1].hex().upper())
    return None


# ---- record headers ------------------------------------------------------------------------------------


class _Spec(NamedTuple):
    """What a DIB/VIB says, everything but the data: parsed once per distinct header."""

    length: int  # data bytes; -1 = LVAR
    decoder: int
    measurement: int
    unit: str
    exponent: int
    function: ValueType
    storage: int
    tariff: int
    subunit: int
    encoding: str
    text: str | None
    is_meter_time: bool  # VIF 0x6D: the meter's own date/time, attached to the other values
    profile: int  # vif.PROFILE_*: an LVAR record holding a compact profile (EN 13757-3:2018 Annex F)
    qualifiers: tuple[str, ...]  # what the combinable VIFEs change in the value's meaning (vif.Combined)


_TIMESTAMP: Final = measurement_index("Timestamp")
_TIME_POINT: Final = measurement_index("Time point")


@lru_cache(maxsize=2048)
def _parse_header(head: bytes, text_at: int, text_len: int, libmbus_order: bool) -> _Spec:
    """Parse one DIB+VIB (already split and checked for length by the caller).

    ``text_at``/``text_len`` locate a plain-text VIF's ASCII inside ``head`` (0/0 when there is none).
    lru_cache memoises a pure function of immutable bytes: no state leaks between telegrams.
    """
    dif = head[0]
    storage = (dif >> 6) & 1
    tariff = 0
    subunit = 0
    pos = 1
    shift_storage = 1
    shift_tariff = 0
    b = dif
    while b & 0x80:
        b = head[pos]
        pos += 1
        storage |= (b & 0x0F) << shift_storage
        tariff |= ((b >> 4) & 0x03) << shift_tariff
        subunit |= ((b >> 6) & 0x01) << (shift_tariff // 2)
        shift_storage += 4
        shift_tariff += 2
    dfield = dif & 0x0F
    vif = head[pos]
    pos += 1
    code = vif & 0x7F
    info = V.PRIMARY[code]
    text: str | None = info.text
    if not text_len and info.kind != V.TEXT_VIF:
        vifes = head[pos:]
    elif libmbus_order:
        vifes = head[text_at + text_len :]
    else:
        vifes = head[pos : text_at - 1]  # VIFEs, then LEN, then the ASCII
    if info.kind in (V.EXT_FB, V.EXT_FD):
        if vifes:
            table = V.EXTENSION_FB if info.kind == V.EXT_FB else V.EXTENSION_FD
            info = table[vifes[0] & 0x7F]
            text = info.text
            vifes = vifes[1:]
            if table is V.EXTENSION_FD and code == 0x7D and head[pos] & 0x7F == 0x7D and vifes:
                # FD 7D xx: one more table level; unknown entries stay visible as reserved
                second = vifes[0] & 0x7F
                info = V.EXTENSION_FD_7D.get(second) or V.VifInfo(
                    measurement_index("Reserved"), "Res", 0, V.NUMBER, f"reserved VIF extension FD 7D {second:02X}"
                )
                text = info.text
                vifes = vifes[1:]
        else:
            # 0x7B/0x7D without the extension bit: no table entry follows (seen on Sensus PolluTherm)
            info = V.VifInfo(measurement_index("Reserved"), "Res", 0, V.NUMBER)
            text = f"VIF 0x{vif:02X} without extension"
    elif info.kind == V.TEXT_VIF:
        raw_text = head[text_at : text_at + text_len][::-1]
        text = raw_text.decode("latin-1")
    measurement, unit, exponent = info.measurement, info.unit, info.exponent
    is_date = info.kind in (V.DATE, V.DATETIME)
    words: list[str] = [text] if text else []
    profile = V.PROFILE_NONE
    qualifiers: tuple[str, ...] = ()
    if info.kind == V.MANUFACTURER and vifes:
        words.append("VIFE " + vifes.hex(" ").upper())
        qualifiers = (words[-1],)  # the manufacturer's own VIFEs: what tells its records apart
    elif vifes:
        combined = V.combinable(vifes)
        exponent += combined.exponent_shift
        words.extend(combined.words)
        qualifiers = combined.qualifiers
        profile = combined.profile if dfield == 0x0D else V.PROFILE_NONE
        if combined.is_date and not is_date:
            # e.g. flow temperature + VIFE 0x6F: the record is the date of that quantity's maximum, not a
            # temperature; say so in the description and keep the quantity in the text and the qualifier
            is_date = True
            quantity = measurement_text(measurement)
            words.insert(0, quantity)
            at = combined.date_at
            qualifiers = (*qualifiers[:at], f"{qualifiers[at]} of {quantity}", *qualifiers[at + 1 :])
            measurement, unit = _TIME_POINT, "UTC"
    length = _LENGTHS[dfield]
    binary = info.kind == V.BINARY
    if dfield in (0, 8):
        decoder = _D_NONE
    elif dfield == 0x0D:
        decoder = _D_LVAR
    elif dfield == 0x05:
        decoder = _D_REAL
    elif dfield == 0x0E and is_date:
        decoder = _D_DATE_BCD  # ABB and others: ss mm hh DD MM YY in BCD, least significant first
    elif dfield >= 0x09:
        decoder = _D_BCD
    elif is_date and length == 2:
        decoder = _D_DATE_G
    elif is_date and length == 4:
        decoder = _D_DATE_F
    elif is_date and length == 6:
        decoder = _D_DATE_I
    elif is_date and length == 3:
        decoder = _D_TIME_J
    else:
        decoder = _D_UINT if binary else _D_INT
    if profile:
        decoder = _D_PROFILE
    if decoder in (_D_DATE_G, _D_DATE_F, _D_DATE_I, _D_TIME_J, _D_DATE_BCD):
        exponent = 0
    final_text = "; ".join(words) if words else None
    if info.kind == V.TEXT_VIF:
        final_text = "; ".join([text or "", *words[1:]]) if len(words) > 1 else text
    return _Spec(
        length,
        decoder,
        measurement,
        unit,
        exponent,
        _FUNCTIONS[(dif >> 4) & 0x03],
        storage,
        tariff,
        subunit,
        ENCODINGS[dfield],
        final_text,
        code == 0x6D and is_date and measurement == _TIMESTAMP,
        profile,
        qualifiers,
    )


# ---- data types ----------------------------------------------------------------------------------------


def _bcd(data: bytes) -> int | str:
    """BCD, least significant byte first; a leading F nibble means negative (EN 13757-3 Annex A)."""
    text = data[::-1].hex()
    if text.isdigit():
        return int(text)
    if text[0] == "f" and (len(text) == 1 or text[1:].isdigit()):
        return -int(text[1:] or "0")
    return text.upper()  # hex digits A-E mark errors or non-BCD identifiers: keep them visible


def _date_g(d: bytes) -> datetime | None:
    day = d[0] & 0x1F
    month = d[1] & 0x0F
    year = ((d[0] & 0xE0) >> 5) | ((d[1] & 0xF0) >> 1)
    try:
        return datetime(2000 + year, month, day, 0, 0, 0, 0, UTC)  # as wmbusmeters: 127 (all ones) is 2127
    except ValueError:
        return None


def _date_f(d: bytes) -> datetime | None:
    """Type F (date and time). The year is a two-digit window, 00-80 are 2000-2080 and 81-99 are
    1981-1999: EN 13757-3 defines hundred-year bits (HY), but real meters fill them inconsistently (a
    public wmbusmeters test telegram, uiws, carries HY=2 in a timestamp whose other dates say 2026).
    libmbus and wmbusmeters both ignore HY, and so does sonocli, so a frame gives the same date in every
    tool. ``tzinfo`` is passed positionally: as a keyword it doubles the cost of building the datetime.
    """
    if d[0] & 0x80:  # IV: time invalid
        return None
    year = ((d[2] & 0xE0) >> 5) | ((d[3] & 0xF0) >> 1)
    year += 2000 if year <= 80 else 1900
    try:
        return datetime(year, d[3] & 0x0F, d[2] & 0x1F, d[1] & 0x1F, d[0] & 0x3F, 0, 0, UTC)
    except ValueError:
        return None


def _date_i(d: bytes) -> datetime | None:
    if d[1] & 0x80:
        return None
    year = ((d[3] & 0xE0) >> 5) | ((d[4] & 0xF0) >> 1)
    try:
        return datetime(2000 + year, d[4] & 0x0F, d[3] & 0x1F, d[2] & 0x1F, d[1] & 0x3F, d[0] & 0x3F, 0, UTC)
    except ValueError:
        return None


def _date_bcd(d: bytes) -> datetime | None:
    digits = d[::-1].hex()
    if not digits.isdigit():
        return None
    year, month, day, hour, minute, second = (int(digits[i : i + 2]) for i in range(0, 12, 2))
    try:
        return datetime(2000 + year, month, day, hour, minute, second, 0, UTC)
    except ValueError:
        return None


def _time_j(d: bytes) -> str | None:
    sec, minute, hour = d[0] & 0x3F, d[1] & 0x3F, d[2] & 0x1F
    if sec > 59 or minute > 59 or hour > 23:
        return None
    return f"{hour:02d}:{minute:02d}:{sec:02d}"


def _lvar_length(lvar: int, offset: int) -> int:
    if lvar <= 0xBF:
        return lvar
    if lvar <= 0xDF:
        return lvar & 0x0F  # (LVAR-C0h)·2 BCD digits = LVAR-C0h bytes; D0h.. the same, negative
    if lvar <= 0xEF:
        return lvar - 0xE0
    if lvar <= 0xF4:
        return (lvar - 0xEC) * 4
    if lvar == 0xF5:
        return 48
    if lvar == 0xF6:
        return 64
    raise DecodeError(f"LVAR 0x{lvar:02X} is reserved", offset=offset)


def _lvar_value(lvar: int, d: bytes) -> int | str | bytes:
    if lvar <= 0xBF:
        # text, transmitted last character first; manufacturers also put binary data here (0D FF ..):
        # control characters mean it is not ISO 8859-1 text, so it is kept as bytes (shown in hex)
        if len(d.translate(None, _CONTROL_BYTES)) != len(d):
            return bytes(d)
        return d[::-1].decode("latin-1")
    if lvar <= 0xCF:
        return _bcd(d) if d else 0
    if lvar <= 0xDF:
        value = _bcd(d) if d else 0
        return -value if isinstance(value, int) else "-" + value
    # E0h-F6h: "binary number" of 0 to 64 bytes (EN 13757-3 Table 5). The standard does not say signed;
    # up to 8 bytes sonocli reads it as two's complement like the fixed-size Type B integers (m-bus-parser
    # does the same). Longer ones carry passwords and keys in practice (libmbus's example_binary16_lvar, a
    # plain-text "PW"), so they stay bytes, shown in hex as libmbus shows them.
    if len(d) <= 8:
        return int.from_bytes(d, "little", signed=True)
    return bytes(d)


# ---- records -------------------------------------------------------------------------------------------

_REAL = struct.Struct("<f")


class RecordBlock(NamedTuple):
    """The records of a variable data structure and what had to be tolerated to read them."""

    values: tuple[MeterValue, ...]
    more_records_follow: bool
    manufacturer_data: bytes
    warnings: tuple[str, ...]


def decode_record_block(
    data: bytes, *, base_offset: int = 0, msb_first: bool = False, strict: bool = False
) -> RecordBlock:
    """Records with warnings. Not ``strict``: a record cut short (or undecodable) ends the list, the
    complete records before it are kept and a warning says so (EN 13757-3 "premature end of record";
    wmbusmeters does the same). ``strict`` raises DecodeError instead, naming the byte offset."""
    return RecordBlock(*_records(bytes(data), base_offset, msb_first, strict))


def decode_records(
    data: bytes, *, base_offset: int = 0, msb_first: bool = False, strict: bool = True
) -> tuple[tuple[MeterValue, ...], bool, bytes]:
    """Records of a variable data structure: (values, more_records_follow, manufacturer data).

    Strict by default: any defect raises DecodeError naming the byte offset (``base_offset`` is where
    ``data`` starts in the frame). ``strict=False`` keeps the records before a broken one; use
    decode_record_block to get the warning that says so.
    """
    values, more, mfr, _warnings = _records(bytes(data), base_offset, msb_first, strict)
    return values, more, mfr


def _records(
    data: bytes, base: int, msb_first: bool, strict: bool = True
) -> tuple[tuple[MeterValue, ...], bool, bytes, tuple[str, ...]]:
    """The hot path: kept in one function with local names, a fast lane for the usual DIF+VIF record.

    Each record becomes a row, a list of MeterValue's fields, and the MeterValues are built from the
    rows at the end: the meter's own timestamp (VIF 0x6D) may come after the values it belongs to, and
    writing it into a row is far cheaper than rebuilding an immutable value.
    """
    n = len(data)
    pos = 0
    rows: list[list[Any]] = []
    append = rows.append
    times: dict[tuple[int, int], datetime] = {}
    from_bytes = int.from_bytes
    more = False
    mfr = b""
    warnings: list[str] = []
    specs = _SPECS.get
    profiles: list[tuple[int, _Spec, bytes, bytes, int]] = []
    index = 0
    try:
        while pos < n:
            # Fast lane: walk the DIFE and VIFE chains without checks and look the bytes up among the
            # headers already parsed. Only complete, valid headers without plain text are ever stored,
            # and headers are self-delimiting, so a walk that ran off the end, a special DIF or anything
            # else that needs a check or an error misses and takes _general_header.
            dif = data[pos]
            q = pos + 1
            if dif & 0x80:
                while q < n and data[q] & 0x80:
                    q += 1
                q += 1
            if q < n and data[q] & 0x80:
                q += 1
                while q < n and data[q] & 0x80:
                    q += 1
            q += 1
            head = data[pos:q]
            spec = specs(head)
            if spec is not None:
                pos = q
            else:
                start = pos
                spec, head, pos = _general_header(data, pos, n, base, warnings)
                if spec is None:  # filler, readout request or manufacturer data
                    if pos < 0:
                        more = data[start] == 0x1F
                        mfr = data[start + 1 :]
                        break
                    continue
            length, decoder, meas, unit, exp, func, storage, tariff, subunit, enc, text, is_time, _profile, quals = spec
            if length < 0:
                if pos >= n:
                    raise DecodeError("record ends before its LVAR byte", offset=base + pos)
                length = _lvar_length(data[pos], base + pos) + 1
            end = pos + length
            if end > n:
                raise DecodeError(f"record data needs {length} bytes but only {n - pos} remain", offset=base + pos)
            raw_data = data[pos:end]
            pos = end
            d = raw_data[::-1] if msb_first else raw_data
            raw: int | float | str | bytes | datetime | None
            if decoder == _D_INT:
                raw = from_bytes(d, "little", signed=True)
            elif decoder == _D_BCD:
                digits = d[::-1].hex()
                raw = int(digits) if digits.isdigit() else _bcd(d)
            elif decoder == _D_UINT:
                raw = from_bytes(d, "little")
            elif decoder == _D_DATE_F:
                raw = _date_f(d)
            elif decoder == _D_REAL:
                raw = _REAL.unpack(d)[0]
            elif decoder == _D_NONE:
                raw = None
            elif decoder == _D_DATE_G:
                raw = _date_g(d)
            elif decoder == _D_DATE_I:
                raw = _date_i(d)
            elif decoder == _D_TIME_J:
                raw = _time_j(d)
            elif decoder == _D_DATE_BCD:
                raw = _date_bcd(d)
            elif decoder == _D_PROFILE:
                # expanded after the loop: its base time may be anywhere in the telegram
                profiles.append((len(rows), spec, head, raw_data, base + end - length))
                continue
            else:
                raw = _lvar_value(raw_data[0], raw_data[1:][::-1] if msb_first else raw_data[1:])
            append([
                index, meas, unit, exp, raw, func, storage, tariff, subunit, None, head, raw_data, enc, text, quals,
            ])  # fmt: skip
            index += 1
            if is_time and raw.__class__ is datetime and func is _INSTANT:
                times.setdefault((storage, subunit), raw)
    except DecodeError as exc:
        if strict:
            raise
        # EN 13757-3 calls this "premature end of record": the complete records before it stay valid
        warnings.append(f"records end early ({exc}); kept the {len(rows)} complete records before it")
    if profiles:
        _expand_profiles(rows, profiles, strict, warnings)
    if times:
        _attach_times(rows, times)
    new = tuple.__new__  # MeterValue is a NamedTuple: built in C from its row
    return tuple([new(MeterValue, row) for row in rows]), more, mfr, tuple(warnings)


_SPACING_UNITS: Final = ("s", "min", "H", "D")
_INCREMENT_MODES: Final = ("absolute values", "increments", "decrements", "signed differences")


def _expand_profiles(
    rows: list[list[Any]], profiles: list[tuple[int, _Spec, bytes, bytes, int]], strict: bool, warnings: list[str]
) -> None:
    """Put each compact profile's element rows where its record stood, then number the rows again.

    A profile that cannot be read raises in strict mode; otherwise it is left out with a warning, like a
    broken record at the end of a telegram.
    """
    plain = list(rows)  # base times come from the ordinary records only
    for at, spec, head, raw_data, offset in reversed(profiles):
        try:
            rows[at:at] = _expand_profile(spec, head, raw_data, offset, plain)
        except DecodeError as exc:
            if strict:
                raise
            warnings.append(f"compact profile at byte {offset} left out: {exc}")
    for number, row in enumerate(rows):
        row[0] = number


def _expand_profile(spec: _Spec, head: bytes, raw_data: bytes, offset: int, plain: list[list[Any]]) -> list[list[Any]]:
    """A compact profile (EN 13757-3:2018 Annex F) as one value per element.

    LVAR data: spacing control (bits 0-3 element coding as a DIF data field, bits 4-5 spacing unit,
    bits 6-7 increment mode), spacing value, then the elements. As wmbusmeters and exmbus read Annex F:

    - element k (from 0, in the order sent) is the value of storage number base + k + 1; a spacing value
      of 0 makes the profile an array whose spacing unit names the column, i.e. subunit + unit;
    - absolute values are signed (illegal: the signed minimum); increments and decrements are unsigned
      (illegal: all ones) and signed differences (younger minus older) signed. An illegal element (not
      recorded yet) is left out; the others keep their storage numbers;
    - differences stay differences: they are not summed onto the base value. wmbusmeters' generic parser
      sums them, but its drivers (Techem fhkvdataiv: "consumption at set date" = the element) and the
      meters' own documentation treat them as the consumption of each period, which is what they are;
    - the base time is the date/time record of the base storage number; element k is that time moved
      by (k + 1) spacings (0xFE: months, 0xFD: half months, with the unit "days/months"), back for the
      inverse profile, and becomes the element's timestamp;
    - spacing values 0xFB-0xFF other than those two are reserved: the profile is kept as one raw value.
    """
    body = raw_data[1:]
    if len(body) < 2:
        raise DecodeError("compact profile without spacing control and spacing value", offset=offset)
    control, spacing = body[0], body[1]
    coding = control & 0x0F
    size = _LENGTHS[coding]
    if size <= 0 or coding == 0x0D:
        raise DecodeError(f"compact profile element coding 0x{coding:X} is not a fixed-size type", offset=offset)
    unit_index = (control >> 4) & 0x03
    mode = control >> 6
    inverse = spec.profile == V.PROFILE_INVERSE
    elements = body[2:]
    count = len(elements) // size
    kind = spec.text or "compact profile"
    if spacing >= 0xFB and not (unit_index == 3 and spacing in (0xFD, 0xFE)):
        text = f"{kind}; reserved spacing value 0x{spacing:02X} with unit {_SPACING_UNITS[unit_index]}: not expanded"
        return [[
            0, spec.measurement, spec.unit, spec.exponent, bytes(raw_data[1:]), spec.function, spec.storage,
            spec.tariff, spec.subunit, None, head, raw_data, "VARLEN", text, spec.qualifiers,
        ]]  # fmt: skip
    array = spacing == 0
    if array:
        every = f"array, column {unit_index + 1}"
    elif unit_index == 3 and spacing in (0xFD, 0xFE):
        every = "every half a month" if spacing == 0xFD else "every 1 month"
    else:
        every = f"every {spacing} {_SPACING_UNITS[unit_index]}"
    subunit = spec.subunit + (unit_index if array else 0)
    base_time = None if array else _profile_base_time(spec, plain)
    words = _INCREMENT_MODES[mode]
    order = "newest first" if inverse else "oldest first"
    out: list[list[Any]] = []
    for k in range(count):
        element = elements[k * size : (k + 1) * size]
        raw = _profile_element(element, coding, mode)
        if raw is None:  # illegal: not (yet) recorded
            continue
        storage = spec.storage + k + 1
        steps = -(k + 1) if inverse else k + 1
        stamp = None if base_time is None else _shift_time(base_time, unit_index, spacing, steps)
        text = f"{kind}; element {k + 1} of {count}, {order}, {every}, {words}"
        out.append([
            0, spec.measurement, spec.unit, spec.exponent, raw, spec.function, storage,
            spec.tariff, subunit, stamp, head, element, ENCODINGS[coding], text, spec.qualifiers,
        ])  # fmt: skip
    return out


def _profile_element(element: bytes, coding: int, mode: int) -> int | float | None:
    """One element's number, or None where it holds the "illegal" preset (Annex F, Annex A types B/C)
    or is no number (BCD with hex digits)."""
    if coding == 0x05:
        real: float = _REAL.unpack(element)[0]
        return None if real != real else real  # NaN
    if coding >= 0x09:
        digits = _bcd(element)
        return digits if isinstance(digits, int) else None
    if mode in (1, 2):  # unsigned increments/decrements: all ones is illegal
        return None if element == b"\xff" * len(element) else int.from_bytes(element, "little")
    value = int.from_bytes(element, "little", signed=True)
    return None if value == -(1 << (8 * len(element) - 1)) else value


def _profile_base_time(spec: _Spec, plain: list[list[Any]]) -> datetime | None:
    """The date/time record of the profile's storage number: when the base value was taken."""
    for row in plain:
        when = row[_RAW]
        if row[_STORAGE] == spec.storage and isinstance(when, datetime):
            return when
    return None


def _shift_time(base: datetime, unit_index: int, spacing: int, steps: int) -> datetime:
    if unit_index == 3 and spacing == 0xFE:
        return _add_months(base, steps)
    if unit_index == 3 and spacing == 0xFD:
        moved = base
        for _ in range(abs(steps)):  # half months: the 1st and the 16th of each month
            if steps > 0:
                moved = moved.replace(day=16) if moved.day < 16 else _add_months(moved.replace(day=1), 1)
            else:
                moved = moved.replace(day=1) if moved.day >= 16 else _add_months(moved, -1).replace(day=16)
        return moved
    seconds = (1, 60, 3600, 86400)[unit_index] * spacing * steps
    return base + timedelta(seconds=seconds)


def _add_months(when: datetime, months: int) -> datetime:
    month0 = when.month - 1 + months
    year, month = when.year + month0 // 12, month0 % 12 + 1
    import calendar

    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


# where MeterValue's fields sit in a row of _records
_MEASUREMENT, _RAW, _STORAGE, _SUBUNIT, _STAMP = (
    MeterValue._fields.index(name) for name in ("measurement", "raw", "storage", "subunit", "timestamp")
)


def _attach_times(rows: list[list[Any]], times: dict[tuple[int, int], datetime]) -> None:
    """Give each row the meter's own timestamp of its storage number and subunit (not the time record
    itself)."""
    measurement, raw, storage, subunit, stamp_at = _MEASUREMENT, _RAW, _STORAGE, _SUBUNIT, _STAMP
    for row in rows:
        found = times.get((row[storage], row[subunit]))
        if (
            found is not None
            and row[stamp_at] is None  # a profile element's own time stays
            and (row[measurement] != _TIMESTAMP or row[raw].__class__ is not datetime)
        ):
            row[stamp_at] = found


# Parsed record headers by their bytes, for the fast lane in _records: only complete headers without
# plain text (whose bytes alone decide the spec). Bounded: emptied when full (a real installation has a
# few hundred distinct headers; arbitrary input must not grow it without limit).
_SPECS: Final[dict[bytes, _Spec]] = {}
_SPECS_MAX: Final = 4096


def _general_header(
    data: bytes, pos: int, n: int, base: int, warnings: list[str]
) -> tuple[_Spec | None, bytes, int]:
    """DIF+DIFEs, VIF+VIFEs and plain text, with every length check; (None, b"", next) for specials.

    For manufacturer data (DIF 0x0F/0x1F) the position returned is -1: the rest of the data is theirs.
    """
    start = pos
    dif = data[pos]
    if dif & 0x0F == 0x0F:
        if dif in (0x2F, 0x7F):  # idle filler; global readout request (master to slave): nothing to show
            return None, b"", pos + 1
        if dif in (0x0F, 0x1F):
            return None, b"", -1
        raise DecodeError(f"DIF 0x{dif:02X} is a reserved special function", offset=base + pos)
    pos += 1
    b = dif
    ndife = 0
    while b & 0x80:
        if pos >= n:
            raise DecodeError("record ends inside its DIFEs", offset=base + pos)
        b = data[pos]
        pos += 1
        ndife += 1
        if ndife > MAX_DIFE:
            raise DecodeError(f"more than {MAX_DIFE} DIFEs in one record", offset=base + pos - 1)
    if pos >= n:
        raise DecodeError("record ends before its VIF", offset=base + pos)
    vif = data[pos]
    pos += 1
    text_at = text_len = 0
    libmbus_order = False
    # Plain-text VIF 0xFC: EN 13757-3 puts the VIFEs first and LEN + ASCII after them; libmbus and the
    # meters it was written against send LEN + ASCII right after the VIF. Take that order when the
    # byte after 0xFC reads as a short length of printable ASCII.
    if vif == 0xFC and pos < n and _looks_like_text(data, pos, n):
        libmbus_order = True
        text_len = data[pos]
        text_at = pos + 1 - start
        pos += 1 + text_len
        warnings.append(f"record at byte {base + start}: plain-text VIF before its VIFEs (libmbus order)")
    b = vif
    nvife = 0
    while b & 0x80:
        if pos >= n:
            raise DecodeError("record ends inside its VIFEs", offset=base + pos)
        b = data[pos]
        pos += 1
        nvife += 1
        if nvife > MAX_VIFE:
            raise DecodeError(f"more than {MAX_VIFE} VIFEs in one record", offset=base + pos - 1)
    if vif & 0x7F == 0x7C and not libmbus_order:
        if pos >= n:
            raise DecodeError("record ends before the plain-text VIF length", offset=base + pos)
        text_len = data[pos]
        text_at = pos + 1 - start
        pos += 1 + text_len
        if pos > n:
            raise DecodeError("record ends inside its plain-text VIF", offset=base + n)
    elif libmbus_order and pos > n:
        raise DecodeError("record ends inside its plain-text VIF", offset=base + n)
    head = data[start:pos]
    spec = _parse_header(head, text_at, text_len, libmbus_order)
    if not text_len and vif & 0x7F != 0x7C:
        if len(_SPECS) >= _SPECS_MAX:
            _SPECS.clear()
        _SPECS[head] = spec
    return spec, head, pos


@lru_cache(maxsize=1024)
def qualifiers_of(dif_vif: bytes) -> tuple[str, ...]:
    """The qualifiers the decoder gives a record with these DIF/DIFE/VIF/VIFE bytes (MeterValue.dif_vif);
    () for bytes that are no record header (a fixed-structure unit byte, a manual value's empty bytes).
    The readings store uses it for values stored before it kept the qualifiers."""
    try:
        spec, _head, end = _general_header(bytes(dif_vif), 0, len(dif_vif), 0, [])
    except (DecodeError, IndexError):
        return ()
    if spec is None or end != len(dif_vif):
        return ()
    return spec.qualifiers


def _looks_like_text(data: bytes, pos: int, n: int) -> bool:
    length = data[pos]
    if not 0 < length <= 16 or pos + 1 + length > n:
        return False
    return all(ch in _TEXT_ALLOWED for ch in data[pos + 1 : pos + 1 + length])


_INSTANT: Final = ValueType.INSTANTANEOUS


# ---- fixed data structure (CI 0x73 / 0x77, EN 1434-3) --------------------------------------------------

_FIXED_MEDIA: Final = (0, 1, 2, 3, 4, 5, 6, 7, 8, 15, 3, 4, 6, 7, 8, 15)  # 4-bit code → Table 16 index


def _fixed_units() -> tuple[tuple[int, str, int, str | None], ...]:
    energy, power, volume, flow = (measurement_index(t) for t in ("Energy", "Power", "Volume", "Volume flow"))
    table: list[tuple[int, str, int, str | None]] = [
        (measurement_index("Time"), "None", 0, "h,m,s"),
        (measurement_index("Time point"), "None", 0, "D,M,Y"),
    ]
    for measurement, unit, first in (
        (energy, "Wh", 0), (energy, "Wh", 3), (energy, "Wh", 6),
        (energy, "J", 3), (energy, "J", 6), (energy, "J", 9),
        (power, "W", 0), (power, "W", 3), (power, "W", 6),
        (power, "J/h", 3), (power, "J/h", 6), (power, "J/h", 9),
        (volume, "m³", -6), (volume, "m³", -3), (volume, "m³", 0),
        (flow, "m³/h", -6), (flow, "m³/h", -3), (flow, "m³/h", 0),
    ):  # fmt: skip
        table.extend((measurement, unit, first + k, None) for k in range(3))
    table.append((0, "degree C", -3, "temperature"))
    table.append((measurement_index("Units for H.C.A."), "", 0, None))
    table.extend((measurement_index("Reserved"), "Res", 0, "reserved unit") for _ in range(4))
    table.append((-1, "", 0, "same unit as counter 1, historic value"))
    table.append((0, "", 0, "without units"))
    return tuple(table)


_FIXED_UNITS: Final = _fixed_units()


def _fixed(ci: int, data: bytes, base: int) -> AppData:
    if len(data) < 16:
        raise DecodeError(f"fixed data structure needs 16 bytes after the CI, got {len(data)}", offset=base + len(data))
    msb = ci == 0x77
    ident = data[0:4][::-1] if not msb else data[0:4]
    acc, status, mu1, mu2 = data[4], data[5], data[6], data[7]
    medium = _FIXED_MEDIA[((mu1 >> 6) & 0x03) | ((mu2 >> 6) << 2)]
    header = Header(ident.hex().upper(), "", 0, medium, acc, status, 0)
    binary = bool(status & 0x80)
    storage = 1 if status & 0x40 else 0
    values: list[MeterValue] = []
    first_unit = _FIXED_UNITS[mu1 & 0x3F]
    for index, (mu, counter) in enumerate(((mu1, data[8:12]), (mu2, data[12:16]))):
        measurement, unit, exponent, text = _FIXED_UNITS[mu & 0x3F]
        record_storage = storage
        if measurement < 0:  # "same but historic": counter 2 repeats counter 1's unit as a stored value
            measurement, unit, exponent, _ = first_unit
            record_storage = 1
        d = counter[::-1] if msb else counter
        raw: int | str = int.from_bytes(d, "little", signed=True) if binary else _bcd(d)
        values.append(
            MeterValue(
                index, max(measurement, 0), unit, exponent, raw, ValueType.INSTANTANEOUS, record_storage,
                dif_vif=bytes((mu,)), data=bytes(counter), encoding="INT32" if binary else "BCD8", text=text,
            )
        )  # fmt: skip
    return AppData(ci, header, tuple(values), False, bytes(data[16:]))


# ---- CI dispatch ---------------------------------------------------------------------------------------

_LONG, _SHORT, _NONE = 12, 4, 0
# CI -> (header size, payload kind, msb first)
_CI: Final[dict[int, tuple[int, str, bool]]] = {
    0x72: (_LONG, "records", False),
    0x76: (_LONG, "records", True),
    0x7A: (_SHORT, "records", False),
    0x78: (_NONE, "records", False),
    0x51: (_NONE, "records", False),  # SND_UD data to a slave
    0x70: (_NONE, "error", False),
    0x6E: (_SHORT, "error", False),
    0x6F: (_LONG, "error", False),
    0x71: (_NONE, "alarm", False),
    0x74: (_SHORT, "alarm", False),
    0x75: (_LONG, "alarm", False),
    0x50: (_NONE, "raw", False),  # application reset (optional subcode)
    0x52: (_NONE, "raw", False),  # selection by secondary address
}

SUPPORTED_CI: Final = frozenset((*_CI, 0x73, 0x77))


def _header(ci: int, data: bytes, size: int, msb: bool, base: int) -> Header | None:
    if size == _NONE:
        return None
    if len(data) < size:
        raise DecodeError(
            f"CI 0x{ci:02X} needs a {size}-byte header but only {len(data)} bytes follow", offset=base + len(data)
        )
    if size == _SHORT:
        sig = int.from_bytes(data[2:4], "big" if msb else "little")
        return Header("", "", 0, 0, data[0], data[1], sig)
    ident, man, version, medium, access, status, sig = (_LONG_MSB if msb else _LONG_LSB).unpack_from(data)
    return tuple.__new__(Header, (f"{ident:08X}", manufacturer_text(man), version, medium, access, status, sig))


# the long header: ID (BCD, read as a number and printed in hex: the digits as sent), manufacturer,
# version, medium, access number, status, signature
_LONG_LSB: Final = struct.Struct("<IHBBBBH")
_LONG_MSB: Final = struct.Struct(">IHBBBBH")


def security_mode(header: Header) -> int:
    """OMS security mode from the configuration field (the header's signature word), bits 8-12."""
    return (header.signature >> 8) & 0x1F


def _refuse_encrypted(header: Header, body: bytes, offset: int) -> None:
    """AES modes 5 and 7 encrypt N 16-byte blocks (cfg bits 4-7); decrypted data start with 2F 2F.

    Other non-zero "modes" are left alone: old wired meters put arbitrary values in the signature word.
    """
    mode = security_mode(header)
    blocks = (header.signature >> 4) & 0x0F
    if mode in (5, 7) and blocks and len(body) >= 16 * blocks and body[:2] != b"\x2f\x2f":
        raise NoKeyError(
            f"the payload is encrypted (security mode {mode}, {blocks} block(s) of 16 bytes at byte {offset});"
            " a key is needed to decode it"
        )


def decode_application(ci: int, data: bytes, *, base_offset: int = 0, strict: bool = True) -> AppData:
    """Decode what follows the CI field. ``base_offset`` is the frame offset of ``data[0]``.

    ``strict`` (the default for wired frames, where a broken record is bad input): any defect raises
    DecodeError; otherwise the records before a broken one are kept with a warning.
    """
    data = bytes(data)
    if ci in (0x73, 0x77):
        return _fixed(ci, data, base_offset)
    entry = _CI.get(ci)
    if entry is None:
        raise DecodeError(f"CI 0x{ci:02X} is not supported", offset=base_offset - 1)
    size, kind, msb = entry
    header = _header(ci, data, size, msb, base_offset)
    body = data[size:]
    if kind == "records" and header is not None and header.signature:
        _refuse_encrypted(header, body, base_offset + size)
    if kind == "records":
        values, more, mfr, warnings = _records(body, base_offset + size, msb, strict)
        return tuple.__new__(AppData, (ci, header, values, more, mfr, None, None, warnings))
    if kind == "error":
        code = body[0] if body else -1
        return AppData(ci, header, (), False, body[1:], application_error=code)
    if kind == "alarm":
        return AppData(ci, header, (), False, body[1:], alarm=body[0] if body else 0)
    return AppData(ci, header, (), False, body)


def decode_wired(frame: bytes) -> AppData:
    """A whole long frame (68 L L 68 … 16) to its application data; link errors are DecodeErrors too."""
    from sonocli.codecs.mbus_link import LongFrame, decode_frame, long_frame_end  # wired only: not on listen's path

    frame = bytes(frame)
    end = long_frame_end(frame)
    if end and end + 2 == len(frame):
        return decode_application(frame[6], frame[7:end], base_offset=7)
    decoded, used = decode_frame(frame)
    if used != len(frame):
        extra = len(frame) - used
        raise DecodeError(f"{extra} byte{'s' if extra > 1 else ''} after the end of the frame", offset=used)
    if not isinstance(decoded, LongFrame):
        ci = getattr(decoded, "ci", None)
        if ci is None:
            raise DecodeError(f"a {type(decoded).__name__} carries no application data", offset=0)
        return decode_application(ci, b"", base_offset=7)
    return decode_application(decoded.ci, decoded.data, base_offset=7)
