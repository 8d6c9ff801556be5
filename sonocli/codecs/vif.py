"""EN 13757-3 value information: the primary VIF table, the 0xFB and 0xFD extension tables, combinable VIFEs.

Every VIF maps to the guide's Table 17 measurement (index), a Table 18 unit symbol and a decimal exponent
(value = raw × 10**exponent in that unit), so ``0x06`` is Energy in Wh with exponent 3 (kWh). Where the
standard names something Table 18 has no unit for (kVAh, "per hour" combinations, additive constants),
the unit stays the base unit and the rest goes into ``text``; nothing is dropped silently.

Tables are built once at import from literal data (immutable tuples), never changed afterwards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from sonocli.model.tables import measurement_index

if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from sonocli.model.namedtuple import NamedTuple  # typing's syntax, not its cost (see there)

# Data kinds a VIF can impose on the record's data (beyond the DIF's own coding).
NUMBER: Final = 0
DATE: Final = 1  # type G (2 bytes) date; with 4/6 bytes date+time (types F/I)
DATETIME: Final = 2  # type F (4 bytes), I (6 bytes), J (3 bytes, time only), G (2 bytes)
TEXT_VIF: Final = 3  # plain-text VIF (0x7C / 0xFC)
MANUFACTURER: Final = 4  # manufacturer-specific VIF (0x7F / 0xFF)
EXT_FB: Final = 5
EXT_FD: Final = 6
ANY: Final = 7  # 0x7E "any VIF" (readout requests)
BINARY: Final = 8  # bit fields / identifiers: binary data are unsigned


class VifInfo(NamedTuple):
    measurement: int
    unit: str
    exponent: int
    kind: int = NUMBER
    text: str | None = None


def _m(name: str) -> int:
    return measurement_index(name)


_TIME_UNITS: Final = ("s", "min", "H", "D")
_TIME_UNITS_HDMY: Final = ("H", "D", "mon", "y")


def _primary() -> tuple[VifInfo, ...]:
    energy, volume, mass = _m("Energy"), _m("Volume"), _m("Mass")
    power, flow, flow_ext = _m("Power"), _m("Volume flow"), _m("Volume flow ext")
    table: list[VifInfo] = []
    for code in range(0x80):
        n3, n2 = code & 0x07, code & 0x03
        if code < 0x08:
            info = VifInfo(energy, "Wh", n3 - 3)
        elif code < 0x10:
            info = VifInfo(energy, "J", n3)
        elif code < 0x18:
            info = VifInfo(volume, "m³", n3 - 6)
        elif code < 0x20:
            info = VifInfo(mass, "kg", n3 - 3)
        elif code < 0x24:
            info = VifInfo(_m("On-time"), _TIME_UNITS[n2], 0)
        elif code < 0x28:
            info = VifInfo(_m("Operating time"), _TIME_UNITS[n2], 0)
        elif code < 0x30:
            info = VifInfo(power, "W", n3 - 3)
        elif code < 0x38:
            info = VifInfo(power, "J/h", n3)
        elif code < 0x40:
            info = VifInfo(flow, "m³/h", n3 - 6)
        elif code < 0x48:
            info = VifInfo(flow_ext, "m³/min", n3 - 7)
        elif code < 0x50:
            info = VifInfo(flow_ext, "m³/s", n3 - 9)
        elif code < 0x58:
            info = VifInfo(_m("Mass flow"), "kg/h", n3 - 3)
        elif code < 0x5C:
            info = VifInfo(_m("Flow temperature"), "degree C", n2 - 3)
        elif code < 0x60:
            info = VifInfo(_m("Return temperature"), "degree C", n2 - 3)
        elif code < 0x64:
            info = VifInfo(_m("Temperature difference"), "K", n2 - 3)
        elif code < 0x68:
            info = VifInfo(_m("External temperature"), "degree C", n2 - 3)
        elif code < 0x6C:
            info = VifInfo(_m("Pressure"), "Bar", n2 - 3)
        elif code == 0x6C:
            info = VifInfo(_m("Time point"), "UTC", 0, DATE, "date")
        elif code == 0x6D:
            info = VifInfo(_m("Timestamp"), "UTC", 0, DATETIME, "date and time")
        elif code == 0x6E:
            info = VifInfo(_m("Units for H.C.A."), "", 0)
        elif code == 0x6F:
            info = VifInfo(_m("Reserved"), "Res", 0, NUMBER, "reserved VIF 0x6F")
        elif code < 0x74:
            info = VifInfo(_m("Averaging duration"), _TIME_UNITS[n2], 0)
        elif code < 0x78:
            info = VifInfo(_m("Actuality duration"), _TIME_UNITS[n2], 0)
        elif code == 0x78:
            info = VifInfo(_m("Fabrication"), "None", 0, BINARY, "fabrication number")
        elif code == 0x79:
            info = VifInfo(_m("Identification"), "None", 0, BINARY, "(enhanced) identification")
        elif code == 0x7A:
            info = VifInfo(_m("Address"), "None", 0, BINARY, "bus address")
        elif code == 0x7B:
            info = VifInfo(0, "None", 0, EXT_FB)
        elif code == 0x7C:
            info = VifInfo(_m("User specific description (text based)"), "None", 0, TEXT_VIF)
        elif code == 0x7D:
            info = VifInfo(0, "None", 0, EXT_FD)
        elif code == 0x7E:
            info = VifInfo(_m("None"), "None", 0, ANY, "any VIF")
        else:
            info = VifInfo(_m("Vendor specific data"), "None", 0, MANUFACTURER, "manufacturer specific VIF")
        table.append(info)
    return tuple(table)


def _reserved(table: str, code: int) -> VifInfo:
    return VifInfo(_m("Reserved"), "Res", 0, NUMBER, f"reserved VIF extension {table} 0x{code:02X}")


def _fb() -> tuple[VifInfo, ...]:
    """Table 14 of EN 13757-3:2013 (first extension, VIF 0xFB)."""
    energy, power = _m("Energy"), _m("Power")
    table: list[VifInfo] = []
    for code in range(0x80):
        n1, n2, n3 = code & 0x01, code & 0x03, code & 0x07
        if code < 0x02:
            info = VifInfo(energy, "Wh", n1 - 1 + 6)
        elif code < 0x04:
            info = VifInfo(_m("Reactive energy"), "kVARh", n1)
        elif code < 0x06:
            info = VifInfo(_m("Apparent energy"), "None", n1, NUMBER, "kVAh")
        elif code == 0x06:
            info = VifInfo(_m("None"), "", -1, NUMBER, "coefficient of performance")
        elif code == 0x07:
            info = _reserved("FB", code)
        elif code < 0x0A:
            info = VifInfo(energy, "J", n1 - 1 + 9)
        elif code < 0x0C:
            info = _reserved("FB", code)
        elif code < 0x10:
            info = VifInfo(energy, "cal", n2 - 1 + 6)
        elif code < 0x12:
            info = VifInfo(_m("Volume"), "m³", n1 + 2)
        elif code < 0x14:
            info = _reserved("FB", code)
        elif code < 0x18:
            info = VifInfo(_m("Reactive power"), "kVAR", n2 - 3)
        elif code < 0x1A:
            info = VifInfo(_m("Mass"), "kg", n1 + 2 + 3)
        elif code < 0x1C:
            info = VifInfo(_m("Relative humidity"), "%", n1 - 1)
        elif code < 0x20:
            info = _reserved("FB", code)
        elif code < 0x22:
            info = VifInfo(_m("Volume"), "Ft³", -n1)
        elif code < 0x24:
            info = VifInfo(_m("Volume"), "US gal", n1 - 1)
        elif code == 0x24:
            info = VifInfo(_m("Volume flow"), "US gal/min", -3)
        elif code == 0x25:
            info = VifInfo(_m("Volume flow"), "US gal/min", 0)
        elif code == 0x26:
            info = VifInfo(_m("Volume flow"), "US gal/h", 0)
        elif code == 0x27:
            info = _reserved("FB", code)
        elif code < 0x2A:
            info = VifInfo(power, "W", n1 - 1 + 6)
        elif code == 0x2A:
            info = VifInfo(_m("Phase voltage to voltage"), "Degree", -1)
        elif code == 0x2B:
            info = VifInfo(_m("Phase voltage to current"), "Degree", -1)
        elif code < 0x30:
            info = VifInfo(_m("Frequency"), "Hz", n2 - 3)
        elif code < 0x32:
            info = VifInfo(power, "J/h", n1 - 1 + 9)
        elif code < 0x34:
            info = _reserved("FB", code)
        elif code < 0x38:
            info = VifInfo(_m("Apparent power"), "None", n2 - 3, NUMBER, "kVA")
        elif code < 0x58:
            info = _reserved("FB", code)
        elif code < 0x5C:
            info = VifInfo(_m("Flow temperature"), "Degree F", n2 - 3)
        elif code < 0x60:
            info = VifInfo(_m("Return temperature"), "Degree F", n2 - 3)
        elif code < 0x64:
            info = VifInfo(_m("Temperature difference"), "Degree F", n2 - 3)
        elif code < 0x68:
            info = VifInfo(_m("External temperature"), "Degree F", n2 - 3)
        elif code < 0x70:
            info = _reserved("FB", code)
        elif code < 0x74:
            info = VifInfo(_m("Cold/Warm Temperature limit"), "Degree F", n2 - 3)
        elif code < 0x78:
            info = VifInfo(_m("Cold/Warm Temperature limit"), "degree C", n2 - 3)
        else:
            info = VifInfo(_m("Cumulative count max. power"), "W", n3 - 3)
        table.append(info)
    return tuple(table)


def _fd() -> tuple[VifInfo, ...]:
    """Table 12 of EN 13757-3:2013 (second extension, VIF 0xFD)."""
    simple: dict[int, VifInfo] = {
        0x08: VifInfo(_m("Access number"), "None", 0, BINARY),
        0x09: VifInfo(_m("Device type"), "None", 0, BINARY),
        0x0A: VifInfo(_m("Manufacturer"), "None", 0, BINARY),
        0x0B: VifInfo(_m("Parameter set identification"), "None", 0, BINARY),
        0x0C: VifInfo(_m("Model / Version"), "None", 0, BINARY),
        0x0D: VifInfo(_m("Hardware version"), "None", 0, BINARY),
        0x0E: VifInfo(_m("Metrology (firmware) version"), "None", 0, BINARY),
        0x0F: VifInfo(_m("Software version"), "None", 0, BINARY),
        0x10: VifInfo(_m("Customer location"), "None", 0, BINARY),
        0x11: VifInfo(_m("Customer"), "None", 0, BINARY),
        0x12: VifInfo(_m("Access code user"), "None", 0, BINARY),
        0x13: VifInfo(_m("Access code operator"), "None", 0, BINARY),
        0x14: VifInfo(_m("Access code system operator"), "None", 0, BINARY),
        0x15: VifInfo(_m("Access code developer"), "None", 0, BINARY),
        0x16: VifInfo(_m("Password"), "None", 0, BINARY),
        0x17: VifInfo(_m("Error flags (Device type specific)"), "Bin", 0, BINARY),
        0x18: VifInfo(_m("Error mask"), "Bin", 0, BINARY),
        0x19: VifInfo(_m("Security key"), "None", 0, BINARY),
        0x1A: VifInfo(_m("Digital output"), "Bin", 0, BINARY),
        0x1B: VifInfo(_m("Digital input"), "Bin", 0, BINARY),
        0x1C: VifInfo(_m("Baud rate"), "bd", 0),
        0x1D: VifInfo(_m("Response delay time"), "bt", 0),
        0x1E: VifInfo(_m("Retry"), "", 0),
        0x1F: VifInfo(_m("Remote control (device specific)"), "Bin", 0, BINARY),
        0x20: VifInfo(_m("First storagenum. for cyclic storage"), "", 0),
        0x21: VifInfo(_m("Last storagenum. for cyclic storage"), "", 0),
        0x22: VifInfo(_m("Size of storage block"), "", 0),
        0x28: VifInfo(_m("Storage interval"), "mon", 0),
        0x29: VifInfo(_m("Storage interval"), "y", 0),
        0x2B: VifInfo(_m("Time point"), "s", 0, NUMBER, "second"),
        0x30: VifInfo(_m("Start of tariff"), "UTC", 0, DATETIME),
        0x38: VifInfo(_m("Period of tariff"), "mon", 0),
        0x39: VifInfo(_m("Period of tariff"), "y", 0),
        0x3A: VifInfo(_m("No VIF"), "", 0, NUMBER, "dimensionless"),
        0x3B: VifInfo(_m("wM-Bus data container"), "None", 0, BINARY),
        0x60: VifInfo(_m("Reset counter"), "", 0),
        0x61: VifInfo(_m("Cumulation counter"), "", 0),
        0x62: VifInfo(_m("Control signal"), "Bin", 0, BINARY),
        0x63: VifInfo(_m("Day of week"), "", 0),
        0x64: VifInfo(_m("Week number"), "", 0),
        0x65: VifInfo(_m("Time point of day change"), "UTC", 0, DATETIME),
        0x66: VifInfo(_m("State of parameter activation"), "Bin", 0, BINARY),
        0x67: VifInfo(_m("Special supplier information"), "None", 0, BINARY),
        0x70: VifInfo(_m("Battery change"), "UTC", 0, DATETIME, "date and time of battery change"),
        0x71: VifInfo(_m("RSSI"), "dBm", 0),
        0x72: VifInfo(_m("Day light saving"), "None", 0, BINARY),
        0x73: VifInfo(_m("Listening window management"), "None", 0, BINARY),
        0x74: VifInfo(_m("Remaining battery life time"), "D", 0),
        0x75: VifInfo(_m("Stop counter"), "", 0),
        0x76: VifInfo(_m("Vendor specific data container"), "None", 0, BINARY),
    }
    table: list[VifInfo] = []
    for code in range(0x80):
        n2, n4 = code & 0x03, code & 0x0F
        if code in simple:
            info = simple[code]
        elif code < 0x04:
            info = VifInfo(_m("Credit"), "Cur", n2 - 3)
        elif code < 0x08:
            info = VifInfo(_m("Debit"), "Cur", n2 - 3)
        elif 0x24 <= code < 0x28:
            info = VifInfo(_m("Storage interval"), _TIME_UNITS[n2], 0)
        elif 0x2C <= code < 0x30:
            info = VifInfo(_m("Duration since last readout"), _TIME_UNITS[n2], 0)
        elif 0x31 <= code < 0x34:
            info = VifInfo(_m("Duration of tariff"), _TIME_UNITS[n2], 0)
        elif 0x34 <= code < 0x38:
            info = VifInfo(_m("Period of tariff"), _TIME_UNITS[n2], 0)
        elif 0x3C <= code < 0x40:
            info = VifInfo(_m("Data transmit interval"), _TIME_UNITS[n2], 0)
        elif 0x40 <= code < 0x50:
            info = VifInfo(_m("Volts"), "V", n4 - 9)
        elif 0x50 <= code < 0x60:
            info = VifInfo(_m("Ampere"), "A", n4 - 12)
        elif 0x68 <= code < 0x6C:
            info = VifInfo(_m("Duration since last cumulation"), _TIME_UNITS_HDMY[n2], 0)
        elif 0x6C <= code < 0x70:
            info = VifInfo(_m("Operating time battery"), _TIME_UNITS_HDMY[n2], 0)
        else:
            info = _reserved("FD", code)
        table.append(info)
    return tuple(table)


# VIF FD, VIFE 7D: a further extension level (EN 13757-3:2018), selected by the next VIFE.
EXTENSION_FD_7D: Final[dict[int, VifInfo]] = {
    0x00: VifInfo(_m("None"), "None", 0, BINARY, "currently selected application"),
    0x02: VifInfo(_m("Remaining battery life time"), "mon", 0),
    0x03: VifInfo(_m("Remaining battery life time"), "y", 0),
}

PRIMARY: Final[tuple[VifInfo, ...]] = _primary()
EXTENSION_FB: Final[tuple[VifInfo, ...]] = _fb()
EXTENSION_FD: Final[tuple[VifInfo, ...]] = _fd()

# EN 13757-3 Table 15 (record error codes in combinable VIFE E000 xxxx, slave to master).
RECORD_ERRORS: Final[dict[int, str]] = {
    0x00: "no error",
    0x01: "too many DIFEs",
    0x02: "storage number not implemented",
    0x03: "unit number not implemented",
    0x04: "tariff number not implemented",
    0x05: "function not implemented",
    0x06: "data class not implemented",
    0x07: "data size not implemented",
    0x0B: "too many VIFEs",
    0x0C: "illegal VIF group",
    0x0D: "illegal VIF exponent",
    0x0E: "VIF/DIF mismatch",
    0x0F: "unimplemented action",
    0x15: "no data available (undefined value)",
    0x16: "data overflow",
    0x17: "data underflow",
    0x18: "data error",
    0x1C: "premature end of record",
}

_PER: Final[dict[int, str]] = {
    0x20: "per second",
    0x21: "per minute",
    0x22: "per hour",
    0x23: "per day",
    0x24: "per week",
    0x25: "per month",
    0x26: "per year",
    0x27: "per revolution/measurement",
    0x28: "increment per input pulse on input channel 0",
    0x29: "increment per input pulse on input channel 1",
    0x2A: "increment per output pulse on output channel 0",
    0x2B: "increment per output pulse on output channel 1",
    0x2C: "per litre",
    0x2D: "per m³",
    0x2E: "per kg",
    0x2F: "per K",
    0x30: "per kWh",
    0x31: "per GJ",
    0x32: "per kW",
    0x33: "per (K·l)",
    0x34: "per V",
    0x35: "per A",
    0x36: "multiplied by s",
    0x37: "multiplied by s/V",
    0x38: "multiplied by s/A",
    0x39: "start date(/time) of",
    0x3A: "uncorrected unit",
    0x3B: "accumulation only if positive",
    0x3C: "accumulation of abs value only if negative",
    0x3D: "non-metric unit",
    0x3E: "value at base conditions",
    0x3F: "OBIS declaration",
}

_FIRST_LAST: Final = ("first", "last")
_BEGIN_END: Final = ("begin", "end")
_LOWER_UPPER: Final = ("lower", "upper")
# EN 13757-3 Table 15, E110 1u0x: values recorded while a limit was exceeded, leakage and overflow values.
_LIMIT_VALUES: Final[dict[int, str]] = {
    0x00: "value during lower limit exceed",
    0x01: "leakage values",
    0x04: "value during upper limit exceed",
    0x05: "overflow values",
}


class Combined(NamedTuple):
    """The effect of the combinable VIFEs: exponent shift, date override, words for the text, qualifiers.

    ``words`` are the long Table 15 texts kept in a record's ``text``; ``qualifiers`` the short phrases of
    the VIFEs that change what the value means (forward/backward flow, per hour, limit values, errors,
    manufacturer specific, at phase L1, ...), shown after the description: "Volume (backward flow)".
    Scale-only VIFEs (E111 0nnn, E111 1101) and structural ones (compact profiles, "no error", "standard
    conform data content") have no qualifier. ``date_at`` is the qualifier that turned the record into a
    date (-1: none), so the decoder can name the quantity it is the date of.
    """

    exponent_shift: int
    is_date: bool
    words: tuple[str, ...]
    error: int | None
    profile: int = 0  # PROFILE_* below: the LVAR data is a compact profile (EN 13757-3:2018 Annex F)
    qualifiers: tuple[str, ...] = ()
    date_at: int = -1


PROFILE_NONE: Final = 0
PROFILE_COMPACT: Final = 1  # VIFE 0x1F: oldest element first
PROFILE_INVERSE: Final = 2  # VIFE 0x13: newest element first
PROFILE_REGISTERS: Final = 3  # VIFE 0x1E: compact profile with register numbers (a storage number each)

_PROFILES: Final = {
    0x13: (PROFILE_INVERSE, "inverse compact profile"),
    0x1E: (PROFILE_REGISTERS, "compact profile with register numbers"),
    0x1F: (PROFILE_COMPACT, "compact profile"),
}


# EN 13757-3:2018 Table 16 gave these codes of the old error range a meaning; the value is valid.
_QUALIFIERS: Final[dict[int, str]] = {
    0x12: "average value",
    0x14: "relative deviation",
    0x1D: "standard conform data content",
}
# ... and the qualifier each one puts on the value (0x1D only says the content follows the standard)
_QUALIFIER_SHORT: Final[dict[int, str]] = {0x12: "average", 0x14: "relative deviation"}

# The short qualifier of E01x xxxx where it differs from the Table 15 text in _PER: 0x3B/0x3C are what
# wmbusmeters calls forward and backward flow (accumulation of positive / of the absolute value of negative
# contributions only), 0x39 loses its "of" (the decoder names the quantity when the record becomes a date).
_PER_SHORT: Final[dict[int, str]] = {
    0x39: "start date(/time)",
    0x3B: "forward flow",
    0x3C: "backward flow",
}

# EN 13757-3:2018 Table 16, combinable VIFE extension (E111 1100, then this byte): phases, quadrants, ...
# (the same codes libmbus leaves out and wmbusmeters names AtPhase1 ... DataPresentedWithTypeD).
EXTENSION_7C: Final[dict[int, str]] = {
    0x01: "at phase L1",
    0x02: "at phase L2",
    0x03: "at phase L3",
    0x04: "at neutral",
    0x05: "between phase L1 and L2",
    0x06: "between phase L2 and L3",
    0x07: "between phase L3 and L1",
    0x08: "at quadrant Q1",
    0x09: "at quadrant Q2",
    0x0A: "at quadrant Q3",
    0x0B: "at quadrant Q4",
    0x0C: "delta between import and export",
    0x10: "accumulation of absolute value of positive and negative contributions",
    0x11: "data presented with type C",
    0x12: "data presented with type D",
}


def combinable(vifes: bytes) -> Combined:
    """Interpret orthogonal VIFEs (EN 13757-3 Table 15), stopping at 0x7F/0xFF (manufacturer specific)."""
    shift = 0
    is_date = False
    words: list[str] = []
    quals: list[str] = []
    error: int | None = None
    profile = PROFILE_NONE
    date_at = -1
    i = 0
    n = len(vifes)
    while i < n:
        code = vifes[i] & 0x7F
        i += 1
        if code == 0x00:
            continue  # "no error": some meters (ABB) send it on every record
        if code in _PROFILES:
            # EN 13757-3:2018 took these three codes out of the error-code range for compact profiles
            profile, word = _PROFILES[code]
            words.append(word)
            continue
        if code in _QUALIFIERS:
            words.append(_QUALIFIERS[code])  # also EN 13757-3:2018: qualifiers of a valid value, not errors
            if code in _QUALIFIER_SHORT:
                quals.append(_QUALIFIER_SHORT[code])
            continue
        if code < 0x20:
            error = code
            word = "error: " + RECORD_ERRORS.get(code, f"reserved error code 0x{code:02X}")
            words.append(word)
            quals.append(word)
        elif code < 0x40:
            words.append(_PER[code])
            quals.append(_PER_SHORT.get(code) or _PER[code])
            if code == 0x39:
                is_date = True
                date_at = len(quals) - 1 if date_at < 0 else date_at
        elif code < 0x50:
            upper = _LOWER_UPPER[(code >> 3) & 1]
            low = code & 0x07
            if low == 0:
                word = f"{upper} limit value"
            elif low == 1:
                word = f"number of exceeds of {upper} limit"
            elif low & 0x02:
                edge, which = _BEGIN_END[low & 1], _FIRST_LAST[(low >> 2) & 1]
                word = f"date(/time) of {edge} of {which} {upper} limit exceed"
                is_date = True
                date_at = len(quals) if date_at < 0 else date_at
            else:
                word = f"reserved VIFE 0x{code:02X}"
            words.append(word)
            quals.append(word)
        elif code < 0x60:
            # By Table 15 the value is then a duration in the VIFE's unit (nn), but libmbus and wmbusmeters
            # keep the VIF's quantity and unit (SEN_Pollustat, wmbusmeters' qwater tests): sonocli does the
            # same, so values compare across tools, and names the duration and its unit in the text
            word = (
                f"duration of {_FIRST_LAST[(code >> 2) & 1]} {_LOWER_UPPER[(code >> 3) & 1]} limit exceed"
                f" ({_TIME_UNITS[code & 3]})"
            )
            words.append(word)
            quals.append(word)
        elif code < 0x68:
            word = f"duration of {_FIRST_LAST[(code >> 2) & 1]} ({_TIME_UNITS[code & 3]})"
            words.append(word)
            quals.append(word)
        elif code < 0x70:
            if code & 0x02:  # E110 1f1b
                word = f"date(/time) of {_BEGIN_END[code & 1]} of {_FIRST_LAST[(code >> 2) & 1]}"
                is_date = True
                date_at = len(quals) if date_at < 0 else date_at
            else:  # E110 1u00 / E110 1u01 (libmbus, jMBus and wmbusmeters name these too)
                word = _LIMIT_VALUES[code & 0x05]
            words.append(word)
            quals.append(word)
        elif code < 0x78:
            shift += (code & 0x07) - 6
        elif code < 0x7C:
            word = f"additive correction constant 10^{(code & 0x03) - 3} × unit"
            words.append(word)
            quals.append(word)
        elif code == 0x7C:
            # extension of combinable VIFEs (EN 13757-3:2018 Table 16): the next byte says which
            if i < n:
                ext = vifes[i] & 0x7F
                word = EXTENSION_7C.get(ext) or f"combinable extension 0x{vifes[i]:02X}"
                words.append(word)
                quals.append(word)
                i += 1
        elif code == 0x7D:
            shift += 3
        elif code == 0x7E:
            words.append("future value")
            quals.append("future value")
        else:
            rest = vifes[i:].hex(" ").upper()
            word = f"manufacturer specific VIFE {rest}" if rest else "manufacturer specific"
            words.append(word)
            quals.append(word)
            break
    return Combined(shift, is_date, tuple(words), error, profile, tuple(quals), date_at)
