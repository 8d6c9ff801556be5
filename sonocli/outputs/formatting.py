"""Number, scale, time and OBIS spellings shared by the CSV and XML writers.

The spellings copy the device's own output as the guide shows it: ``1.00E+03`` in CSV (C's ``%.2E``),
``1e-03`` in XML (C's ``%.0e``), raw values as plain integers (``129``, ``2850427``).

MUC_SCALEVALUES (chip.ini) is read as: write the physical value ``raw × 10^exponent`` instead of the raw
value, and a scale of 1 (``1.00E+00`` / ``1e+00``), so every row stays self-describing (value × scale is the
physical value either way). Scaling is exact decimal arithmetic (``286`` at ``1.00E-02`` becomes ``2.86``,
never ``2.8600000000000003``). Text, date and binary values are written unscaled.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

from sonocli.model.values import MeterValue

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_OBIS_RE: Final = re.compile(r"^\s*(\d{1,3})-(\d{1,3})[:\-](\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\*(\d{1,3}))?\s*$")
_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_OBIS_HEX_RE: Final = re.compile(r"^\s*(?:0x[0-9a-fA-F]{1,2}\s+){5}0x[0-9a-fA-F]{1,2}\s*$")


def unix_seconds(moment: datetime) -> int:
    """Whole seconds since the epoch (floor); a naive datetime counts as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return math.floor((moment - _EPOCH).total_seconds())


def csv_scale(exponent: int) -> str:
    return f"{10.0**exponent:.2E}"


def xml_scale(exponent: int) -> str:
    return f"{10.0**exponent:.0e}"


def _plain(number: Decimal) -> str:
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_value(value: MeterValue, *, scale_values: bool) -> str:
    """The Value column / VAL parameter for one value (see the module docstring for scaling)."""
    raw = value.raw
    if raw is None:
        return ""
    if isinstance(raw, bool):
        raw = int(raw)
    if isinstance(raw, int):
        if not scale_values or value.exponent == 0:
            return str(raw)
        return _plain(Decimal(raw).scaleb(value.exponent))
    if isinstance(raw, float):
        if not math.isfinite(raw):
            return repr(raw)
        number = Decimal(repr(raw))
        if scale_values:
            number = number.scaleb(value.exponent)
        return _plain(number)
    if isinstance(raw, datetime):
        return str(unix_seconds(raw))
    if isinstance(raw, bytes):
        return raw.hex().upper()
    return str(raw)


def effective_exponent(value: MeterValue, *, scale_values: bool) -> int:
    """The exponent written in the Scale column: 0 once the value itself has been scaled."""
    return 0 if scale_values else value.exponent


def obis_parts(text: str | None) -> tuple[int, int, int, int, int, int] | None:
    """Parse ``A-B:C.D.E*F``, ``A-B-C.D.E*F`` (Figure 22) or device_handle.cfg's ``0x01 0x00 …`` form."""
    if not text:
        return None
    match = _OBIS_RE.match(text)
    if match:
        groups = [int(part) if part is not None else 255 for part in match.groups()]
    elif _OBIS_HEX_RE.match(text):
        groups = [int(part, 16) for part in text.split()]
    else:
        return None
    if any(part > 255 for part in groups):
        return None
    a, b, c, d, e, f = groups
    return a, b, c, d, e, f


def format_obis(text: str | None, *, style: str) -> str:
    """An OBIS code as ``A-B:C.D.E*F`` (``style="iec"``, IEC 62056-61, the XML example) or ``A-B-C.D.E*F``
    (``style="figure22"``, what the guide's CSV example shows). Text that is no OBIS code is kept as is."""
    parts = obis_parts(text)
    if parts is None:
        return text or ""
    a, b, c, d, e, f = parts
    separator = ":" if style == "iec" else "-"
    return f"{a}-{b}{separator}{c}.{d}.{e}*{f}"


def value_timestamp(value: MeterValue) -> int:
    """TimestampX: the meter's own time for the value, 0 when it sent none (Table 19)."""
    return 0 if value.timestamp is None else unix_seconds(value.timestamp)


def xml_safe(text: str) -> str:
    """Replace characters XML 1.0 cannot carry (control bytes from a meter's text record) with U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)
