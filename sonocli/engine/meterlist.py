"""The meter-list rules of the operating guide (sections 4.2 and 5.1.3), as pure functions.

Every function takes a :class:`MeterList` and returns a new one; nothing here reads or writes files, so
the CLI, the daemon and the scan all apply the same rules. Bad requests raise UsageError/NotFoundError
(exit 2) naming what was asked and what is allowed.

References to meters (``ref``): the 1-based position in the list (``3``), the serial (``30101198``,
must be unique) or the Device-ID (``DFS-30101198-01-04``). A value is ``METER/N`` or ``METER.N`` with N
the 1-based position of the value within its meter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from sonocli.config.device_handle import MeterList, parse_obis
from sonocli.errors import NotFoundError, UsageError
from sonocli.model.valueclass import replace, valueclass
from sonocli.model.values import Interface, Meter, ValueConfig

MANUAL_INTERFACES = (Interface.S0, Interface.DLDE)
# Table 9 lists A-Z a-z 0-9 ! $ % & / ( ) = ? + * and the comma as valid; its own example label "OG-1-Re"
# (Table 26) uses "-", so the hyphen is accepted too, and so are space, "." and "_", which no export
# format gives a meaning. Refused: < > " (named by Table 9) and everything else, notably ";" (the CSV
# separator, which Table 9 says to avoid).
LABEL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!$%&/()=?+*,-._ ")
METER_EDITABLE = frozenset(
    {"user", "key", "readout_cycle", "active", "max_value_count", "primary_address", "address_mode", "register"}
)
MANUAL_METER_EDITABLE = METER_EDITABLE | {"serial", "manufacturer", "version", "medium"}
VALUE_EDITABLE = frozenset({"obis", "user", "description", "active", "register"})
MANUAL_VALUE_EDITABLE = VALUE_EDITABLE | {
    "value",
    "exponent",
    "unit",
    "encodetype",
    "valuetype",
    "storagenum",
    "tariff",
}


@valueclass(frozen=True)
class Limits:
    """METER_MAXDEVICECOUNT, METER_MAXVALUECOUNT, METER_MAXALLVALUECOUNT (0: no limit)."""

    max_devices: int = 80
    max_values: int = 25
    max_all_values: int = 0

    @classmethod
    def from_settings(cls, get: Any) -> Limits:
        """From anything with chip.ini's ``get(name)`` (a ChipIni)."""
        return cls(
            int(get("METER_MAXDEVICECOUNT")), int(get("METER_MAXVALUECOUNT")), int(get("METER_MAXALLVALUECOUNT"))
        )


# ------------------------------------------------------------------------------------------ checking
def check_label(text: str) -> str:
    """A user label as Table 9 allows it; UsageError naming the first bad character."""
    for char in text:
        if char not in LABEL_CHARS:
            shown = repr(char) if char.isprintable() else f"U+{ord(char):04X}"
            raise UsageError(
                f"user label {text!r}: character {shown} is not allowed; "
                "allowed: A-Z a-z 0-9 ! $ % & / ( ) = ? + * , - . _ and space"
            )
    return text


def check_obis(text: str) -> str:
    """An OBIS code ``A-B:C.D.E*F`` with each part 0..255, normalised (``*255`` added when missing)."""
    try:
        parts = parse_obis(text)
    except ValueError as exc:
        raise UsageError(f"{exc} (each of A..F 0..255, e.g. 1-0:1.8.0*255)") from None
    a, b, c, d, e, f = parts
    return f"{a}-{b}:{c}.{d}.{e}*{f}"


def check_key(key: bytes | None) -> bytes | None:
    """An AES-128 key (16 bytes) or None to remove it."""
    if key is not None and len(key) != 16:
        raise UsageError(f"encryption key has {len(key)} bytes; an AES-128 key has 16")
    return key


def check_serial(serial: str) -> str:
    digits = serial[2:] if serial.lower().startswith("0x") else serial
    if not re.fullmatch(r"[0-9A-Fa-f]{1,8}", digits):
        raise UsageError(f"serial {serial!r}: allowed are up to 8 hex/BCD digits, e.g. 30101198")
    return digits.zfill(8).upper()


def check_manufacturer(code: str) -> str:
    if not re.fullmatch(r"[A-Za-z@]{3}", code):
        raise UsageError(f"manufacturer {code!r}: allowed is a 3-letter code (DLMS UA flag ID), e.g. DFS")
    return code.upper()


def _check_meter(meter: Meter) -> Meter:
    if meter.user is not None:
        check_label(meter.user)
    check_key(meter.key)
    check_serial(meter.serial)
    if meter.manufacturer is not None:
        check_manufacturer(meter.manufacturer)
    for name, value, high in (
        ("version", meter.version, 255),
        ("medium", meter.medium, 255),
        ("primary address", meter.primary_address, 255),
        ("readout cycle", meter.readout_cycle, 4294967295),
        ("max value count", meter.max_value_count, 65535),
    ):
        if value is not None and not 0 <= value <= high:
            raise UsageError(f"{name} {value}: allowed 0..{high}")
    return meter


def _check_value(value: ValueConfig) -> ValueConfig:
    if value.user is not None:
        check_label(value.user)
    if value.obis is not None:
        value = replace(value, obis=check_obis(value.obis))
    for name in ("description", "unit", "encodetype"):
        text = getattr(value, name)
        if any(char in text for char in '<>"') or not text.isprintable():
            raise UsageError(f'{name} {text!r}: < > " and control characters are not allowed')
    if not -99 <= value.exponent <= 99:
        raise UsageError(f"scale 1e{value.exponent}: allowed 1e-99..1e99")
    return value


# ------------------------------------------------------------------------------------------- lookups
def find_meter(meters: MeterList, ref: str) -> int:
    """The 0-based position of the meter ``ref`` names; NotFoundError when there is none."""
    text = ref.strip()
    items = meters.meters
    if re.fullmatch(r"\d{1,5}", text):
        number = int(text)
        if 1 <= number <= len(items):
            return number - 1
        raise NotFoundError(f"meter {text} does not exist; the list has {len(items)} meter(s) (1..{len(items)})")
    for index, meter in enumerate(items):
        if meter.device_id.upper() == text.upper():
            return index
    serial = text[2:] if text.lower().startswith("0x") else text
    if re.fullmatch(r"[0-9A-Fa-f]{6,8}", serial):
        hits = [i for i, meter in enumerate(items) if meter.serial.upper() == serial.zfill(8).upper()]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            ids = ", ".join(items[i].device_id for i in hits)
            raise UsageError(f"serial {text} is ambiguous ({ids}); use the Device-ID or the list position")
    raise NotFoundError(f"meter {text!r} does not exist (use a list position, serial or Device-ID)")


def split_ref(ref: str) -> tuple[str, int | None]:
    """``"3/2"`` -> ("3", 2); ``"3"`` -> ("3", None). Value numbers are 1-based."""
    match = re.fullmatch(r"(.+?)[/.](\d+)", ref.strip())
    if match is None:
        return ref.strip(), None
    return match.group(1), int(match.group(2))


def find(meters: MeterList, ref: str) -> tuple[int, int | None]:
    """(meter position, value position or None), both 0-based, for a meter or value reference."""
    meter_ref, value_number = split_ref(ref)
    index = find_meter(meters, meter_ref)
    if value_number is None:
        return index, None
    count = len(meters.meters[index].values)
    if not 1 <= value_number <= count:
        raise NotFoundError(f"value {ref!r} does not exist; meter {meter_ref} has {count} value(s)")
    return index, value_number - 1


# ---------------------------------------------------------------------------------------- changes
def _with_meter(meters: MeterList, index: int, meter: Meter) -> MeterList:
    items = list(meters.meters)
    items[index] = meter
    return replace(meters, meters=tuple(items))


def _total_values(meters: Sequence[Meter]) -> int:
    return sum(len(meter.values) for meter in meters)


def _next_serial(serial: str, step: int) -> str:
    """Serial ``step`` numbers on, for adding N meters at once (decimal/BCD serials only)."""
    if not serial.isdigit() or step == 0:
        return serial
    number = int(serial) + step
    if number > 99999999:
        raise UsageError(f"adding meters from serial {serial} runs past 99999999")
    return f"{number:08d}"


def add_meters(meters: MeterList, template: Meter, count: int, limits: Limits) -> tuple[MeterList, list[Meter]]:
    """Add ``count`` meters like ``template`` (the dialog's "Number of meters").

    Decimal serials count up from the template's so that each new meter can be told apart; S0 impulse
    meters are added one at a time (section 5.1.3). METER_MAXDEVICECOUNT caps the list.
    """
    if count < 1:
        raise UsageError(f"number of meters {count}: allowed 1 or more")
    if template.interface is Interface.S0 and count != 1:
        raise UsageError("S0 impulse meters are added one at a time (number of meters fixed to 1)")
    _check_meter(template)
    new = [replace(template, serial=_next_serial(check_serial(template.serial), i)) for i in range(count)]
    new = [replace(meter, values=tuple(_check_value(v) for v in meter.values)) for meter in new]
    total = len(meters.meters) + count
    if limits.max_devices and total > limits.max_devices:
        raise UsageError(
            f"{count} more meter(s) would make {total}; METER_MAXDEVICECOUNT allows {limits.max_devices}",
            hint="sonocli config set METER_MAXDEVICECOUNT N (0: no limit)",
        )
    if any(meter.values for meter in new):
        _check_value_totals([*meters.meters, *new], limits, new)
    return replace(meters, meters=(*meters.meters, *new)), new


def _check_value_totals(items: Sequence[Meter], limits: Limits, changed: Sequence[Meter]) -> None:
    """Limits apply to what is being added: meters read with more values before are not touched."""
    for meter in changed:
        limit = meter.max_value_count or limits.max_values
        if limit and len(meter.values) > limit:
            raise UsageError(
                f"meter {meter.device_id} would have {len(meter.values)} values; "
                f"{'its maxvaluecount' if meter.max_value_count else 'METER_MAXVALUECOUNT'} allows {limit}"
            )
    total = _total_values(items)
    if limits.max_all_values and total > limits.max_all_values:
        raise UsageError(f"{total} values in all; METER_MAXALLVALUECOUNT allows {limits.max_all_values}")


def add_values(
    meters: MeterList, ref: str, template: ValueConfig, count: int, limits: Limits
) -> tuple[MeterList, list[ValueConfig]]:
    """Add ``count`` values to a manual (S0/DLDE) meter; S0 values one at a time (section 5.1.3)."""
    index = find_meter(meters, ref)
    meter = meters.meters[index]
    if meter.interface not in MANUAL_INTERFACES:
        raise UsageError(
            f"meter {meter.device_id} is {meter.interface.label}: values are added only to S0 and DLDE meters; "
            "M-Bus and wM-Bus values come from the meter"
        )
    if count < 1:
        raise UsageError(f"number of values {count}: allowed 1 or more")
    if meter.interface is Interface.S0 and count != 1:
        raise UsageError("S0 values are added one at a time (number of values fixed to 1)")
    value = _check_value(template)
    new = [value] * count
    updated = replace(meter, values=(*meter.values, *new))
    items = list(meters.meters)
    items[index] = updated
    _check_value_totals(items, limits, [updated])
    return replace(meters, meters=tuple(items)), new


def edit_meter(meters: MeterList, ref: str, changes: dict[str, Any]) -> MeterList:
    """Change meter fields; identity fields only for manual meters (M-Bus/wM-Bus identities come from the wire)."""
    index = find_meter(meters, ref)
    meter = meters.meters[index]
    allowed = MANUAL_METER_EDITABLE if meter.interface in MANUAL_INTERFACES else METER_EDITABLE
    refused = sorted(set(changes) - allowed)
    if refused:
        raise UsageError(
            f"meter {meter.device_id} ({meter.interface.label}): {', '.join(refused)} cannot be changed; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    fixed = dict(changes)
    if "serial" in fixed:
        fixed["serial"] = check_serial(str(fixed["serial"]))
    updated = _check_meter(replace(meter, **fixed))
    if "active" in changes:
        return set_active(
            _with_meter(meters, index, replace(updated, active=meter.active)), ref, bool(changes["active"])
        )
    return _with_meter(meters, index, updated)


def edit_value(meters: MeterList, ref: str, changes: dict[str, Any]) -> MeterList:
    """Change value fields; value, scale and unit only on manual meters (Table 9: "only for S0")."""
    index, value_index = find(meters, ref)
    if value_index is None:
        raise UsageError(f"{ref!r} names a meter; a value is METER/N")
    meter = meters.meters[index]
    allowed = MANUAL_VALUE_EDITABLE if meter.interface in MANUAL_INTERFACES else VALUE_EDITABLE
    refused = sorted(set(changes) - allowed)
    if refused:
        raise UsageError(
            f"value {ref} of {meter.interface.label} meter {meter.device_id}: {', '.join(refused)} cannot be "
            f"changed; allowed: {', '.join(sorted(allowed))}"
        )
    values = list(meter.values)
    values[value_index] = _check_value(replace(values[value_index], **changes))
    result = _with_meter(meters, index, replace(meter, values=tuple(values)))
    if changes.get("active"):
        result = set_active(result, ref, True)
    return result


def set_key(meters: MeterList, ref: str, key: bytes | None) -> MeterList:
    index = find_meter(meters, ref)
    return _with_meter(meters, index, replace(meters.meters[index], key=check_key(key)))


def set_active(meters: MeterList, ref: str, active: bool) -> MeterList:
    """The hierarchy of section 4.2: a meter takes its values along; activating a value activates its meter."""
    index, value_index = find(meters, ref)
    meter = meters.meters[index]
    if value_index is None:
        cascaded = tuple(replace(value, active=active) for value in meter.values)
        return _with_meter(meters, index, replace(meter, active=active, values=cascaded))
    values = list(meter.values)
    values[value_index] = replace(values[value_index], active=active)
    return _with_meter(meters, index, replace(meter, active=meter.active or active, values=tuple(values)))


def delete(meters: MeterList, refs: Iterable[str]) -> tuple[MeterList, list[str]]:
    """Delete meters and values (all refs resolved first, so positions do not shift under the user).

    Single values of M-Bus and wM-Bus meters cannot be deleted (section 4.2): they come from the meter.
    """
    whole: set[int] = set()
    parts: dict[int, set[int]] = {}
    removed: list[str] = []
    for ref in refs:
        index, value_index = find(meters, ref)
        meter = meters.meters[index]
        if value_index is None:
            whole.add(index)
            removed.append(meter.device_id)
            continue
        if meter.interface not in MANUAL_INTERFACES:
            raise UsageError(
                f"value {ref}: deleting single values of {_article(meter.interface.label)} meter is not allowed "
                "(delete the meter or deactivate the value)"
            )
        parts.setdefault(index, set()).add(value_index)
        removed.append(f"{meter.device_id}/{value_index + 1}")
    items: list[Meter] = []
    for index, meter in enumerate(meters.meters):
        if index in whole:
            continue
        if index in parts:
            meter = replace(meter, values=tuple(v for i, v in enumerate(meter.values) if i not in parts[index]))
        items.append(meter)
    return replace(meters, meters=tuple(items)), removed


def _article(label: str) -> str:
    """"an M-Bus", "a wM-Bus" (as the words are spoken)."""
    return f"{'an' if label[:1] in 'AEIMOSU' else 'a'} {label}"


def same_meter(a: Meter, b: Meter) -> bool:
    """Scan results match list entries by interface and secondary address (serial, manufacturer, version, medium)."""
    return (
        a.interface == b.interface
        and a.serial.upper().zfill(8) == b.serial.upper().zfill(8)
        and (a.manufacturer or "").upper() == (b.manufacturer or "").upper()
        and (a.version or 0) == (b.version or 0)
        and (a.medium or 0) == (b.medium or 0)
    )


def merge_found(meters: MeterList, found: Iterable[Meter], max_devices: int) -> tuple[MeterList, list[Meter]]:
    """Add scan results to the list (section 4.2: additive; meters already listed stay as configured).

    New meters are appended in the order found until METER_MAXDEVICECOUNT (``max_devices``, 0: no limit)
    is reached; already configured meters are not limited by it (Table 10).
    """
    items = list(meters.meters)
    added: list[Meter] = []
    for meter in found:
        if any(same_meter(meter, known) for known in items):
            continue
        if max_devices and len(items) >= max_devices:
            break
        items.append(meter)
        added.append(meter)
    return replace(meters, meters=tuple(items)), added
