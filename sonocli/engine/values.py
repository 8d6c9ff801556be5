"""Value entries of the meter list: learned from the meter, matched to every later reading, and the one
rule that decides what is delivered.

The device keeps, for every M-Bus and wM-Bus meter, one value entry (Table 26 ``<value>``) per record of
the meter's telegram, in telegram order (guide 4.2: "the arrangement of data … corresponds to the order of
the data in the M-Bus or wM-Bus protocol"). The engineer then gives a value an OBIS-ID, a user label or a
description, or deactivates it. This module is where that list meets the data:

* :func:`learn` builds the entries from a reading: one per record, with description, unit, scale, coding,
  function, storage number, tariff and subunit, and the record's DIF/VIF bytes (sonocli's ``<difvif>``
  addition) so that later readings are matched exactly. Timestamp records (VIF 6Dh) are assigned to the
  other values by the decoder and get no entry unless MUC_SHOWTIMESTAMPENTRIES=1 (guide 4.2). At most
  the meter's ``maxvaluecount`` (else METER_MAXVALUECOUNT) entries are kept; a longer telegram marks the
  meter *limited* (the "*" of Table 9).
* :func:`bind` matches a reading's records to the entries: by DIF/VIF where the entry has it, else by the
  Table 26 fields (for lists made on a device). Each matched record gets the entry's position as its
  ``index``, which is what CSV ``IndexX``, labels and OBIS-IDs are looked up by. A record that matches no
  entry is never given another entry's label: it keeps an index past the list and is reported, as is an
  entry that no record matched (new firmware, another request mode).
* :func:`deliverable` is the only filter between the store and every output: active meters, active value
  entries, nothing else. The store keeps every record of every reading (nothing is lost); the CSV log,
  the CSV and XML reports and every push channel carry exactly what the meter list says.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sonocli.model.tables import measurement_index
from sonocli.model.valueclass import replace, valueclass
from sonocli.model.values import Interface, Meter, MeterValue, Reading, ValueConfig, ValueType

TIMESTAMP_MEASUREMENT = measurement_index("Timestamp")
MANUAL = (Interface.S0, Interface.DLDE)
UNMATCHED = -1  # the index of a record hidden from the list (a timestamp record, a value past the limit)


def is_timestamp_record(value: MeterValue) -> bool:
    """The meter's own date and time (VIF 6Dh and friends): assigned to the other values, not one itself."""
    return value.measurement == TIMESTAMP_MEASUREMENT and isinstance(value.raw, datetime)


def entry_for(value: MeterValue) -> ValueConfig:
    """The Table 26 value entry a record gets when it is first seen."""
    return ValueConfig(
        description=value.description,
        unit=value.unit or "None",
        encodetype=value.encoding or "NODATA",
        exponent=value.exponent,
        valuetype=value.function,
        storagenum=value.storage,
        tariff=value.tariff,
        subunit=value.subunit,
        difvif=value.dif_vif.hex().upper(),
    )


def value_limit(meter: Meter, default: int) -> int:
    """The meter's own ``maxvaluecount``, else METER_MAXVALUECOUNT (0: no limit)."""
    return meter.max_value_count or default


def visible(values: Sequence[MeterValue], show_timestamps: bool) -> list[MeterValue]:
    """The records that have a place in the meter list (timestamps only with MUC_SHOWTIMESTAMPENTRIES)."""
    if show_timestamps:
        return list(values)
    return [v for v in values if not is_timestamp_record(v)]


def learn(values: Sequence[MeterValue], *, limit: int, show_timestamps: bool) -> tuple[tuple[ValueConfig, ...], bool]:
    """(value entries, limited) for a meter seen for the first time."""
    shown = visible(values, show_timestamps)
    limited = bool(limit) and len(shown) > limit
    if limited:
        shown = shown[:limit]
    return tuple(entry_for(v) for v in shown), limited


def _fields_key(config: ValueConfig) -> tuple[object, ...]:
    return (config.unit, config.exponent, config.valuetype, config.storagenum, config.tariff, config.subunit)


def _matches(config: ValueConfig, value: MeterValue, fresh: ValueConfig) -> bool:
    if config.difvif:
        return config.difvif == fresh.difvif
    # a list written by a device has no DIF/VIF: the Table 26 fields decide; the description too, unless
    # the engineer renamed it (then the unit, scale, function, storage, tariff and subunit must do)
    if _fields_key(config) != _fields_key(fresh):
        return False
    return config.description.lower() in (fresh.description.lower(), "none") or config.user is not None


@valueclass(frozen=True)
class Binding:
    """What :func:`bind` found: the reading with list indexes, and what the engineer must be told."""

    reading: Reading
    learned: tuple[ValueConfig, ...] | None = None  # entries to store (first reading of the meter)
    limited: bool = False  # more records than the value limit allows
    new: int = 0  # records with no entry (layout change)
    missing: int = 0  # entries no record matched (layout change)
    moved: int = 0  # records matched to an entry at another position (layout change)

    @property
    def layout_changed(self) -> bool:
        return bool(self.new or self.missing or self.moved)

    def note(self) -> str | None:
        """One line for the engineer when the meter's records no longer line up with its list entries."""
        if not self.layout_changed:
            return None
        meter = self.reading.meter
        matched = len(meter.values) - self.missing
        parts = [f"meter {meter.device_id}: its record layout changed (new firmware or another request mode?)",
                 f"{matched} of {len(meter.values)} listed values matched by DIF/VIF"]
        if self.moved:
            parts.append(f"{self.moved} at another position (labels and OBIS-IDs follow their register)")
        if self.new:
            parts.append(f"{self.new} new record(s) not in the meter list and not delivered")
        if self.missing:
            parts.append(f"{self.missing} listed value(s) not sent by the meter")
        return "; ".join(parts)


def bind(reading: Reading, meter: Meter, *, default_limit: int, show_timestamps: bool) -> Binding:
    """Match ``reading``'s records to ``meter``'s value entries (``meter`` is the list entry now).

    Manual S0/DLDE meters are made from their entries already (their index is the entry's position).
    """
    if meter.interface in MANUAL:
        return Binding(replace(reading, meter=meter))
    limit = value_limit(meter, default_limit)
    if not meter.values:
        entries, limited = learn(reading.values, limit=limit, show_timestamps=show_timestamps)
        meter = replace(meter, values=entries)
        return Binding(_indexed(reading, meter, entries, show_timestamps), learned=entries, limited=limited)
    used = [False] * len(meter.values)
    out: list[MeterValue] = []
    new = moved = 0
    position = 0
    shown = 0
    for value in reading.values:
        if not show_timestamps and is_timestamp_record(value):
            out.append(value._replace(index=UNMATCHED))
            continue
        shown += 1
        fresh = entry_for(value)
        found = -1
        # the entry at the same position first (the usual case: nothing changed), then any unused one
        if position < len(used) and not used[position] and _matches(meter.values[position], value, fresh):
            found = position
        else:
            for i, config in enumerate(meter.values):
                if not used[i] and _matches(config, value, fresh):
                    found = i
                    break
        position += 1
        if found < 0:
            out.append(value._replace(index=UNMATCHED))
            new += 1
            continue
        used[found] = True
        if found != position - 1:
            moved += 1
        out.append(value._replace(index=found))
    limited = bool(limit) and shown > limit and len(meter.values) >= limit
    if limited:
        new = max(0, new - (shown - len(meter.values)))  # records past the limit are not a layout change
    missing = used.count(False)
    return Binding(replace(reading, meter=meter, values=tuple(out)), limited=limited, new=new,
                   missing=missing, moved=moved)


def _indexed(reading: Reading, meter: Meter, entries: Sequence[ValueConfig], show_timestamps: bool) -> Reading:
    """Index the records of a reading whose entries were just learned from it (in the same order)."""
    out: list[MeterValue] = []
    position = 0
    for value in reading.values:
        if not show_timestamps and is_timestamp_record(value):
            out.append(value._replace(index=UNMATCHED))
            continue
        out.append(value._replace(index=position if position < len(entries) else UNMATCHED))
        position += 1
    return replace(reading, meter=meter, values=tuple(out))


def deliverable(reading: Reading) -> Reading | None:
    """The reading as every output carries it: None for an inactive meter, else only its active values.

    A value is delivered when the meter-list entry at its index exists and is active. A reading of a meter
    without value entries (an ad-hoc ``readout --address`` of an unlisted meter, stored before a list
    existed) is delivered as read, less the timestamp records that belong to the other values.
    """
    meter = reading.meter
    if not meter.active:
        return None
    configs = meter.values
    if not configs:
        kept = tuple(v for v in reading.values if not is_timestamp_record(v))
    else:
        kept = tuple(v for v in reading.values if 0 <= v.index < len(configs) and configs[v.index].active)
    if len(kept) == len(reading.values):
        return reading
    return replace(reading, values=kept)


def manual_reading(meter: Meter, when: datetime) -> Reading | None:
    """A reading of a manual S0/DLDE meter from its entries' set values (Figure 21: value, scale, unit,
    OBIS-ID, label), so that manual values reach the CSV log and every report like read ones."""
    from sonocli.model.tables import measurement_index as index_of

    if meter.interface not in MANUAL:
        return None
    values: list[MeterValue] = []
    for i, config in enumerate(meter.values):
        if config.value is None:
            continue
        try:
            measurement = index_of(config.description)
        except KeyError:
            measurement = 0
        raw: int | float = config.value
        if float(raw).is_integer() and abs(raw) < 2**53:
            raw = int(raw)
        values.append(MeterValue(
            index=i, measurement=measurement, unit="" if config.unit == "None" else config.unit,
            exponent=config.exponent, raw=raw, function=ValueType(config.valuetype), storage=config.storagenum,
            tariff=config.tariff, encoding=config.encodetype,
        ))
    if not values:
        return None
    return Reading(meter, when, tuple(values))
