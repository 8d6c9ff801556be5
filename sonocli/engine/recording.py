"""The recorder: readings matched to the meter list, stored and logged (``Engine.record`` and its kin).

Every reading the engine takes — wired, wireless or a manual meter's set values — goes through
:func:`record`: it is bound to its meter-list entry (labels, OBIS-IDs, what is active; sonocli.engine.values),
a listed meter's first reading teaches the list its value entries, the "*" flag and layout notes are kept in
the meter state, and the readings go to the store (every record: nothing is lost) and, as configured, to the
CSV log. :func:`configured` is what every output carries: active meters, active values.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sonocli.model.values import Interface, Meter, Reading

if TYPE_CHECKING:
    from sonocli.config.device_handle import MeterList
    from sonocli.engine.core import Engine

log = logging.getLogger("sonocli.engine")


@dataclass(frozen=True)
class Recorded:
    """What :meth:`Engine.record` did: the readings as stored (indexed to the meter list), the meters whose
    value list is limited by the value count, layout-change notes, and the meters whose values were learned."""

    readings: tuple[Reading, ...] = ()
    limited: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    learned: tuple[str, ...] = ()


def record(engine: Engine, readings: Sequence[Reading], *, csv: bool = True, store: bool = True) -> Recorded:
    """Match readings to the meter list, learn value entries on a listed meter's first reading, store them
    (every record: nothing is lost) and log what is configured to the CSV log (MUC_CSVLOG_ENABLE).

    ``store=False`` only binds and learns (``readout --no-store``, a listed but inactive wM-Bus meter).
    """
    from dataclasses import replace

    from sonocli.engine.values import bind

    if not readings:
        return Recorded()
    bound: list[Reading] = []
    limited: list[str] = []
    notes: list[str] = []
    learned: list[str] = []
    default_limit = int(engine.get("METER_MAXVALUECOUNT"))
    show = engine.show_timestamps
    for reading in readings:
        entry = engine.listed(reading.meter)
        meter = entry if entry is not None else reading.meter
        if entry is not None and reading.meter.rssi != entry.rssi and reading.meter.interface is Interface.WMBUS:
            meter = replace(entry, rssi=reading.meter.rssi)
        binding = bind(reading, meter, default_limit=default_limit, show_timestamps=show)
        if binding.learned is not None and entry is not None:
            _learn(engine, entry, binding.learned)
            learned.append(entry.device_id)
        if entry is not None:
            _note_status(engine, entry.device_id, binding.limited, binding.note())
        if binding.limited:
            limited.append(meter.device_id)
        note = binding.note()
        if note is not None:
            notes.append(note)
            log.warning("%s", note)
        bound.append(binding.reading)
    if store:
        with engine._write_lock:
            engine.store.add_many(bound)
        if csv:
            engine.log_csv(bound)
    else:
        _keep_looks(engine, bound)
    return Recorded(tuple(bound), tuple(limited), tuple(notes), tuple(learned))


def value_texts(reading: Reading) -> dict[int, str]:
    """List index -> the value as shown (exact text; dates ISO 8601) for the records that have an entry."""
    out: dict[int, str] = {}
    for value in reading.values:
        if value.index >= 0 and value.index not in out:
            shown = value.value
            out[value.index] = "" if shown is None else str(shown)
    return out


def _keep_looks(engine: Engine, readings: Sequence[Reading]) -> None:
    """Remember the values of listed meters' readings that were not stored, for ``meters show``."""
    for reading in readings:
        if engine.listed(reading.meter) is None:
            continue
        try:
            engine.meter_state.set_look(reading.meter.device_id, reading.taken_at, value_texts(reading))
        except Exception as exc:  # a full disk must not fail a readout for a display nicety
            log.debug("look of %s not kept: %s", reading.meter.device_id, exc)


def latest_values(engine: Engine, meter: Meter) -> tuple[datetime, dict[int, str]] | None:
    """The newest values known of a listed meter: its latest stored reading, or the last look at it."""
    found: tuple[datetime, dict[int, str]] | None = None
    if engine.layout.database.exists():
        for reading in engine.store.latest_readings():
            if reading.meter.device_id.upper() == meter.device_id.upper():
                found = (reading.taken_at, value_texts(reading))
        look = engine.meter_state.look(meter.device_id)
        if look is not None and (found is None or look[0] > found[0]):
            found = look
    return found


def _learn(engine: Engine, entry: Meter, values: tuple[Any, ...]) -> None:
    """Save the value entries learned from a meter's first reading, unless another writer gave the meter
    entries meanwhile (then those stand: the next reading is matched to them)."""
    from dataclasses import replace

    from sonocli.engine.meterlist import same_meter

    def change(meters: MeterList) -> tuple[MeterList, bool]:
        items = list(meters.meters)
        for i, meter in enumerate(items):
            if same_meter(meter, entry) and not meter.values:
                items[i] = replace(meter, values=values)
                return replace(meters, meters=tuple(items)), True
        return meters, False

    engine.update_meters(change, refresh=False)
    if engine._meters is not None:  # the cached view learns them too, without re-reading the whole list
        engine._meters = tuple(replace(m, values=values) if same_meter(m, entry) and not m.values else m
                               for m in engine._meters)


def _note_status(engine: Engine, device_id: str, limited: bool, note: str | None) -> None:
    """Keep the "*" flag (value list limited) and the last layout note where every command sees them."""
    known = _statuses(engine)
    current = known.get(device_id.upper())
    if current is None and not limited and note is None:
        return
    if current is not None and current == (limited, note):
        return
    engine.meter_state.set_status(device_id, limited=limited, note=note,
                                  when=datetime.fromtimestamp(engine.now(), UTC))
    known[device_id.upper()] = (limited, note)


def _statuses(engine: Engine) -> dict[str, tuple[bool, str | None]]:
    """This thread's cache of the meter statuses (Device-ID upper case -> (limited, note))."""
    cache: dict[str, tuple[bool, str | None]] | None = getattr(engine._local, "statuses", None)
    if cache is None:
        cache = {key: (s.limited, s.note) for key, s in engine.meter_state.statuses().items()}
        engine._local.statuses = cache
    return cache


def log_csv(engine: Engine, readings: Sequence[Reading]) -> None:
    """Append what the meter list says is to be delivered (active meters and values) to the CSV log."""
    if readings and engine.get("MUC_CSVLOG_ENABLE"):
        configured = engine.configured(readings)
        if configured:
            with engine._csv_lock:
                engine.csvlog().append(configured)


def configured(readings: Iterable[Reading]) -> list[Reading]:
    """The readings as every output carries them: active meters, active values (engine.values)."""
    from sonocli.engine.values import deliverable

    out: list[Reading] = []
    for reading in readings:
        kept = deliverable(reading)
        if kept is not None:
            out.append(kept)
    return out


def iter_configured(readings: Iterable[Reading]) -> Iterator[Reading]:
    """:func:`configured`, one reading at a time (a report cycle streams the store)."""
    from sonocli.engine.values import deliverable

    for reading in readings:
        kept = deliverable(reading)
        if kept is not None:
            yield kept


def read_manual(engine: Engine, when: float | None = None) -> Recorded:
    """Readings of the active manual S0/DLDE meters from their set values (Figure 21), recorded like any
    other reading so they reach the CSV log and every report."""
    from sonocli.engine.values import manual_reading

    moment = datetime.fromtimestamp(engine.now() if when is None else when, UTC)
    readings = [r for m in engine.meters if m.active
                for r in [manual_reading(m, moment)] if r is not None]
    return engine.record(readings)
