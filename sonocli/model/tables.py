"""The guide's Tables 16 (medium), 17 (measurement) and 18 (unit), index and text as the guide writes them.

One deliberate deviation: the guide's PDF extraction prints the cubic-metre units as ``m ³``; the CSV
example (Figure 22) and every head-end write ``m³``, so that is what sonocli emits. Reserved ranges
answer "Reserved" (units: "Res"), exactly as the guide lists them.
"""

from __future__ import annotations

from typing import Final

_MEDIA: Final[dict[int, str]] = {
    0: "Other",
    1: "Oil",
    2: "Electricity",
    3: "Gas",
    4: "Heat (outlet)",
    5: "Steam",
    6: "Hot water",
    7: "Water",
    8: "Heat cost allocator",
    9: "Compressed air",
    10: "Cooling load device (outlet)",
    11: "Cooling load device (inlet)",
    12: "Heat (inlet)",
    13: "Heat (Cooling load meter)",
    14: "Bus/System",
    15: "Unknown medium",
    20: "Calorific value",
    21: "Hot water",
    22: "Cold water",
    23: "Dual register (hot/cold) water meter",
    24: "Pressure",
    25: "A/D converter",
    26: "Smoke detector",
    27: "Room sensor",
    28: "Gas detector",
    32: "Breaker (electricity)",
    33: "Valve (gas or water)",
    37: "Customer unit",
    40: "Waste water",
    41: "Waste",
    42: "Carbon dioxide",
    49: "Communication controller",
    50: "Unidirectional repeater",
    51: "Bidirectional repeater",
    54: "Radio converter (system side)",
    55: "Radio converter (meter side)",
}

_MEASUREMENTS: Final[tuple[str, ...]] = (
    "None",
    "Error flags (Device type specific)",
    "Digital output",
    "Special supplier information",
    "Credit",
    "Debit",
    "Volts",
    "Ampere",
    "Reserved",
    "Energy",
    "Volume",
    "Mass",
    "Operating time",
    "On-time",
    "Power",
    "Volume flow",
    "Volume flow ext",
    "Mass flow",
    "Return temperature",
    "Flow temperature",
    "Temperature difference",
    "External temperature",
    "Pressure",
    "Timestamp",
    "Time",
    "Units for H.C.A.",
    "Averaging duration",
    "Actuality duration",
    "Identification",
    "Fabrication",
    "Address",
    "User specific description (text based)",
    "Digital input",
    "Software version",
    "Access number",
    "Device type",
    "Manufacturer",
    "Parameter set identification",
    "Model / Version",
    "Hardware version",
    "Metrology (firmware) version",
    "Customer location",
    "Customer",
    "Access code user",
    "Access code operator",
    "Access code system operator",
    "Access code developer",
    "Password",
    "Error mask",
    "Baud rate",
    "Response delay time",
    "Retry",
    "Remote control (device specific)",
    "First storagenum. for cyclic storage",
    "Last storagenum. for cyclic storage",
    "Size of storage block",
    "Storage interval",
    "Vendor specific data",
    "Time point",
    "Duration since last readout",
    "Start of tariff",
    "Duration of tariff",
    "Period of tariff",
    "No VIF",
    "wM-Bus data container",
    "Data transmit interval",
    "Reset counter",
    "Cumulation counter",
    "Control signal",
    "Day of week",
    "Week number",
    "Time point of day change",
    "State of parameter activation",
    "Duration since last cumulation",
    "Operating time battery",
    "Battery change",
    "RSSI",
    "Day light saving",
    "Listening window management",
    "Remaining battery life time",
    "Stop counter",
    "Vendor specific data container",
    "Reactive energy",
    "Reactive power",
    "Relative humidity",
    "Phase voltage to voltage",
    "Phase voltage to current",
    "Frequency",
    "Cold/Warm Temperature limit",
    "Cumulative count max. power",
    "Remaining readout requests",
    "Meter status byte",
    "Apparent energy",
    "Apparent power",
    "Security key",
    "Data frame",
)

# (unit symbol, description) for Table 18.
_UNITS: Final[tuple[tuple[str, str], ...]] = (
    ("None", "None"),
    ("Bin", "Binary"),
    ("Cur", "Local currency unit"),
    ("V", "Volt"),
    ("A", "Ampere"),
    ("Wh", "Watt hour"),
    ("J", "Joule"),
    ("m³", "Cubic meter"),
    ("kg", "Kilogram"),
    ("s", "Second"),
    ("min", "Minute"),
    ("H", "Hour"),
    ("D", "Day"),
    ("W", "Watt"),
    ("J/h", "Joule per hour"),
    ("m³/h", "Cubic meter per hour"),
    ("m³/min", "Cubic meter per minute"),
    ("m³/s", "Cubic meter per second"),
    ("kg/h", "Kilogram per hour"),
    ("degree C", "Degree Celsius"),
    ("K", "Kelvin"),
    ("Bar", "Bar"),
    ("", "Dimensionless"),
    ("Res", "Reserved"),
    ("Res", "Reserved"),
    ("UTC", "UTC"),
    ("bd", "Baud"),
    ("bt", "Bit time"),
    ("mon", "Month"),
    ("y", "Year"),
    ("", "Day of week"),
    ("dBm", "dBm"),
    ("Bin", "Bin"),
    ("Bin", "Bin"),
    ("kVARh", "Kilo voltampere reactive hour"),
    ("kVAR", "Kilo voltampere reactive"),
    ("cal", "Calorie"),
    ("%", "Percent"),
    ("Ft³", "Cubic feet"),
    ("Degree", "Degree"),
    ("Hz", "Hertz"),
    ("kBTU", "Kilo british thermal unit"),
    ("mBTU/s", "Milli british thermal unit per second"),
    ("US gal", "US gallon"),
    ("US gal/s", "US gallon per second"),
    ("US gal/min", "US gallon per minute"),
    ("US gal/h", "US gallon per hour"),
    ("Degree F", "Degree Fahrenheit"),
)


def medium_text(index: int) -> str:
    """Table 16 text for a medium index (EN 13757-3 device type); "Reserved" for the reserved ranges."""
    if not 0 <= index <= 255:
        raise ValueError(f"medium index {index} is outside 0..255")
    return _MEDIA.get(index, "Reserved")


def medium_index(text: str) -> int:
    """The Table 16 index for a medium text (case-insensitive); the first match for duplicates."""
    wanted = text.strip().lower()
    for index, name in _MEDIA.items():
        if name.lower() == wanted:
            return index
    raise KeyError(text)


def measurement_text(index: int) -> str:
    """Table 17 text for a measurement index; "Reserved" for 96..255."""
    if not 0 <= index <= 255:
        raise ValueError(f"measurement index {index} is outside 0..255")
    return _MEASUREMENTS[index] if index < len(_MEASUREMENTS) else "Reserved"


_MEASUREMENT_INDEX: dict[str, int] = {}


def measurement_index(text: str) -> int:
    """The Table 17 index for a description text (case-insensitive; the first of duplicates).

    A dict built on first use: the VIF tables ask for some 300 indexes while they are built at import, and
    a scan of the table for each cost milliseconds of every command's start-up."""
    if not _MEASUREMENT_INDEX:
        for index, name in enumerate(_MEASUREMENTS):
            _MEASUREMENT_INDEX.setdefault(name.lower(), index)
    try:
        return _MEASUREMENT_INDEX[text.strip().lower()]
    except KeyError:
        raise KeyError(text) from None


def unit_text(index: int) -> str:
    """Table 18 unit symbol (column 2) for a unit index; "Res" for reserved."""
    if not 0 <= index <= 255:
        raise ValueError(f"unit index {index} is outside 0..255")
    return _UNITS[index][0] if index < len(_UNITS) else "Res"


def unit_description(index: int) -> str:
    """Table 18 description (column 3) for a unit index."""
    if not 0 <= index <= 255:
        raise ValueError(f"unit index {index} is outside 0..255")
    return _UNITS[index][1] if index < len(_UNITS) else "Reserved"


def unit_index(symbol: str) -> int:
    """The first Table 18 index whose symbol is ``symbol`` (exact match; ``m ³`` accepted for ``m³``)."""
    wanted = symbol.replace(" ³", "³")
    for index, (sym, _desc) in enumerate(_UNITS):
        if sym == wanted:
            return index
    raise KeyError(symbol)


MEDIA: Final = _MEDIA
MEASUREMENTS: Final = _MEASUREMENTS
UNITS: Final = _UNITS
