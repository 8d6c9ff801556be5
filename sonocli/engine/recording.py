"""The recorder: readings matched to the meter list, stored and logged (``Engine.record`` and its kin).

Every reading the engine takes — wired, wireless or a manual meter's set values — goes through
:func:`record`: it is bound to its meter-list entry (labels, OBIS-IDs, what is active; sonocli.engine.values),
a listed meter's first reading teaches the list its value entries, the "*" flag and layout notes are kept in
the meter state, and the readings go to the store (every record: nothing is lost) and, as configured, to the
CSV log. :func:`configured` is what every output carries: active meters, active values.

Writing little (issue 13, flash wear): SQLite writes every page a transaction touches whole, twice (WAL,
then checkpoint), so a transaction per reading cost about 40 KB per reading. Inside :func:`batched` (the
daemon's steps and receivers) readings are held and stored together — a readout cycle in one transaction,
a transaction at least every STORE_COMMITINTERVAL seconds (default :data:`BATCH_AGE`) — and the CSV log is
appended once per transaction. That interval is the span a kill -9 or a power cut can lose of readings taken
but not yet stored (wired meters are read again at their next cycle, wM-Bus meters send again): 30 s by
default; a longer one writes a little less (measured in benchmarks/daemon.py, README "Disk space").
A reading counts as stored (and is logged as read) only once its transaction committed, so kill -9 never
loses a reading acknowledged as stored; what was only held is taken again at the next cycle.

The CSV log follows the database: after each store, :func:`catch_up_csv` appends what the database holds and
the log does not (sonocli.store.csvlog keeps the high-water id and resolves a crash mid-append), so the log is
complete after any crash. The bounds (STORE_MAXREADINGS, CSVLOG_MAXSIZE; OUTBOX_MAXITEMS in delivery) are
enforced after each store, oldest first, with a warning counting what was dropped.

A full disk or read-only root is an operating condition: in :func:`batched` a failing store keeps the readings
in memory (at most :data:`HOLD_LIMIT`, oldest dropped loudly beyond), logs the cause with the free space once
per change of condition, retries at every flush and says so when storing works again.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from sonocli import logs
from sonocli.errors import SonoError
from sonocli.model.valueclass import field, valueclass
from sonocli.model.values import Interface, Meter, Reading

if TYPE_CHECKING:
    from sonocli.config.device_handle import MeterList
    from sonocli.engine.core import Engine

log = logs.logger("sonocli.engine")

BATCH_ITEMS: Final = 250  # readings held before a flush: bounds memory; more per transaction saves little
BATCH_AGE: Final = 30.0  # default of STORE_COMMITINTERVAL: seconds a held reading waits at most for its transaction
HOLD_LIMIT: Final = 20_000  # readings held in memory while the disk cannot take them; beyond, oldest dropped


@valueclass
class _Held:
    """Readings recorded but not yet stored, shared by the engine's threads (one transaction takes all)."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    readings: list[Reading] = field(default_factory=list)
    since: float | None = None
    failure: str | None = None  # the storage condition last logged: logged again only when it changes
    csv_failure: str | None = None
    dropped: int = 0
    learned: list[tuple[Meter, tuple[Any, ...]]] = field(default_factory=list)  # value entries to save
    learned_since: float | None = None  # when the oldest of them was learned (learning_held)


_HELD: weakref.WeakKeyDictionary[Any, _Held] = weakref.WeakKeyDictionary()
_HELD_GUARD = threading.Lock()


def _held(engine: Engine) -> _Held:
    with _HELD_GUARD:
        held = _HELD.get(engine)
        if held is None:
            held = _HELD[engine] = _Held()
        return held


def _batching(engine: Engine) -> bool:
    return int(getattr(engine._local, "batch_depth", 0)) > 0


@contextlib.contextmanager
def batched(engine: Engine) -> Iterator[None]:
    """Hold the readings recorded by this thread and store them together: when :data:`BATCH_ITEMS` are
    held, when the oldest waited STORE_COMMITINTERVAL s (:func:`flush_due`), and when the block ends.

    Storage failures do not raise here: the readings stay held and the condition is logged (see module doc).
    """
    with _nested(engine, "batch_depth", flush):
        yield


@contextlib.contextmanager
def _nested(engine: Engine, counter: str, at_end: Callable[[Engine], object]) -> Iterator[None]:
    """A block this thread may nest: ``at_end`` runs when the outermost one ends (``counter`` counts them)."""
    depth = int(getattr(engine._local, counter, 0))
    setattr(engine._local, counter, depth + 1)
    try:
        yield
    finally:
        setattr(engine._local, counter, depth)
        if depth == 0:
            at_end(engine)


LEARN_HOLD = 5.0  # seconds learned value entries wait in learning_held before the meter list is written


@contextlib.contextmanager
def learning_held(engine: Engine) -> Iterator[None]:
    """Hold the value entries learned by this thread and write them to the meter list together, at most
    every LEARN_HOLD seconds and when the block ends (a receiver's loop: ``listen`` and the daemon).

    Each write is a whole read-modify-write of device_handle.cfg: learning 500 new meters one by one
    rewrote a 500-meter list 500 times (50 s of CPU in ``listen``). Readings are not held (``batched`` does
    that); the cached view learns at once, so later telegrams are matched to the entries. A crash loses at
    most LEARN_HOLD seconds of learned entries, learned again from the next telegram."""
    with _nested(engine, "learn_depth", save_learned_held):
        yield


def save_learned_held(engine: Engine) -> None:
    """Write the held learned entries (one locked read-modify-write); on failure they stay held."""
    held = _held(engine)
    with held.lock:
        if not held.learned:
            return
        learned, held.learned = held.learned, []
        held.learned_since = None
        try:
            _save_learned(engine, learned)
        except SonoError as exc:  # the cached view has them: they are saved with the next ones
            log.error("learned value entries not saved to the meter list: %s", exc)
            held.learned[:0] = learned
            held.learned_since = engine.now()


def held_count(engine: Engine) -> int:
    """Readings recorded but not (yet) stored: waiting for their transaction, or for disk space."""
    return len(_held(engine).readings)


def commit_interval(engine: Engine) -> float:
    """chip.ini STORE_COMMITINTERVAL (sonocli's own), seconds; :data:`BATCH_AGE` when it is not set."""
    try:
        return float(engine.get("STORE_COMMITINTERVAL"))
    except (KeyError, SonoError, TypeError, ValueError):
        return BATCH_AGE


def flush_due(engine: Engine) -> None:
    """Store the held readings if enough are held or the oldest waited long enough (called by receivers
    between telegrams, so that a quiet radio does not keep a reading in memory for long)."""
    held = _held(engine)
    if held.readings and (len(held.readings) >= BATCH_ITEMS or
                          held.since is None or engine.now() - held.since >= commit_interval(engine)):
        flush(engine)


def flush(engine: Engine) -> bool:
    """Store every held reading in one transaction, then bring the CSV log up and enforce the bounds.

    Returns False (readings kept, condition logged once) when the store cannot take them."""
    held = _held(engine)
    with held.lock:
        save_learned_held(engine)
        batch = list(held.readings)
        if not batch:
            return True
        try:
            before = _store(engine, batch)
        except SonoError as exc:
            _storage_failed(engine, held, exc)
            return False
        del held.readings[: len(batch)]
        held.since = engine.now() if held.readings else None
        if held.failure is not None:
            log.warning("storing works again: %d held reading(s) stored", len(batch))
            held.failure = None
        _after_store(engine, held, before)
    return True


def _store(engine: Engine, readings: Sequence[Reading]) -> int:
    """Store ``readings`` in one transaction; returns the newest id before them (where the CSV log of a
    fresh log starts)."""
    with engine._write_lock:
        store = engine.store
        before = int(store.latest_id())
        store.add_many(readings)
    return before


def _storage_failed(engine: Engine, held: _Held, exc: SonoError) -> None:
    from sonocli.store.db import free_space

    reason = str(getattr(exc, "reason", "") or type(exc).__name__)
    if len(held.readings) > HOLD_LIMIT:
        drop = len(held.readings) - HOLD_LIMIT
        del held.readings[:drop]
        held.dropped += drop
        log.error("cannot store readings and %d are held in memory: dropped the %d oldest (%d so far)",
                  HOLD_LIMIT, drop, held.dropped)
    if held.failure == reason:
        return
    held.failure = reason
    hint = f"; {exc.hint}" if exc.hint else ""
    log.error("%s (%s on %s)%s; %d reading(s) held in memory, storing is retried at every readout and "
              "every %.0f s", exc, free_space(engine.layout.ext), engine.layout.ext, hint, len(held.readings),
              commit_interval(engine))


def _after_store(engine: Engine, held: _Held, before: int) -> None:
    """The CSV log catches up on what was just stored, and the bounds are enforced; neither may fail the
    readings, which are stored: failures are logged once per change of condition."""
    try:
        catch_up_csv(engine, start=before)
    except SonoError as exc:
        reason = str(getattr(exc, "reason", "") or type(exc).__name__)
        if held.csv_failure != reason:
            held.csv_failure = reason
            log.error("CSV log not written: %s%s; it catches up from the database once it can",
                      exc, f"; {exc.hint}" if exc.hint else "")
    else:
        if held.csv_failure is not None:
            log.warning("CSV log written again: it caught up on the readings stored meanwhile")
            held.csv_failure = None
    try:
        bound_store(engine)
    except SonoError as exc:
        log.error("STORE_MAXREADINGS not enforced: %s", exc)


def bound_store(engine: Engine) -> int:
    """STORE_MAXREADINGS: delete the oldest readings beyond it (those already in every channel's reports
    first - they are the oldest), with a warning counting them. Returns how many were deleted."""
    limit = int(engine.get("STORE_MAXREADINGS"))
    specs = engine.channel_specs()
    delivered = min((engine.outbox.cursor(spec.key) for spec in specs), default=None) if specs else None
    with engine._write_lock:
        deleted, undelivered = engine.store.prune(limit, delivered_upto=delivered)
    if deleted:
        log.warning("readings over STORE_MAXREADINGS %d: deleted the %d oldest%s", limit, deleted,
                    f" ({undelivered} of them not yet in a report)" if undelivered else
                    " (all already in every channel's reports)")
    return int(deleted)


def catch_up_csv(engine: Engine, *, start: int | None = None) -> int:
    """Append to the CSV log (MUC_CSVLOG_ENABLE) what the database holds and the log does not; the daemon
    calls it on start, and every store ends with it. Returns the rows appended."""
    from sonocli.engine.values import deliverable

    if not engine.get("MUC_CSVLOG_ENABLE") or not engine.layout.database.exists():
        return 0
    csvlog = engine.csvlog()
    csvlog.partition_limit = int(engine.get("CSVLOG_MAXSIZE")) * 1024
    store = engine.store

    def stored(after: int, upto: int) -> Iterator[tuple[int, Reading | None]]:
        for reading_id, reading in store.iter_stored(after_id=after, upto_id=upto):
            yield reading_id, deliverable(reading)

    with engine._csv_lock:
        appended = int(csvlog.catch_up(stored, int(store.latest_id()), start=start))
    return appended


@valueclass(frozen=True)
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
    from sonocli.engine.values import bind
    from sonocli.model.valueclass import replace

    if not readings:
        return Recorded()
    if engine.get("MBUS_SMLENEABLE") or engine.get("WMBUS_SMLENEBALE"):  # SML inside the telegrams
        from sonocli.engine.sml import with_embedded

        readings = with_embedded(engine, readings)
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
        if binding.learned is not None and reading.meter.interface in (Interface.MBUS, Interface.WMBUS):
            from sonocli.engine.sml import learned_obis

            binding = learned_obis(binding)  # SML records inside the telegram: their entries get the OBIS-ID
        if binding.learned is not None and entry is not None:
            _learn(engine, entry, binding.learned)
            learned.append(entry.device_id)
        if entry is not None:
            try:
                _note_status(engine, entry.device_id, binding.limited, binding.note())
            except SonoError as exc:  # a full or read-only disk must not stop the reading itself
                log.debug("status of %s not kept: %s", entry.device_id, exc)
        if binding.limited:
            limited.append(meter.device_id)
        note = binding.note()
        if note is not None:
            notes.append(note)
            log.warning("%s", note)
        bound.append(binding.reading)
    if store:
        if _batching(engine):
            held = _held(engine)
            with held.lock:
                if not held.readings:
                    held.since = engine.now()
                held.readings.extend(bound)
            flush_due(engine)
        else:
            _store_now(engine, bound)
    else:
        _keep_looks(engine, bound)
    return Recorded(tuple(bound), tuple(limited), tuple(notes), tuple(learned))


def _store_now(engine: Engine, readings: Sequence[Reading]) -> None:
    """Outside :func:`batched` (a command): store at once (readings held from before first), raising a
    StoreError (full disk, read-only root) to the command. The CSV log catches up even for ``csv=False``
    (whose caller logs the same readings right after: that is then a no-op), so that a log that starts
    with these readings knows where it starts."""
    held = _held(engine)
    with held.lock:
        batch = [*held.readings, *readings]
        before = _store(engine, batch)
        held.readings.clear()
        held.since = None
        catch_up_csv(engine, start=before)
        bound_store(engine)


def value_texts(reading: Reading) -> dict[int, str]:
    """List index -> the value as shown (exact text; dates ISO 8601) for the records that have an entry."""
    from decimal import Decimal

    from sonocli.model.values import plain_decimal

    out: dict[int, str] = {}
    for value in reading.values:
        if value.index >= 0 and value.index not in out:
            shown = value.exact if value.is_numeric else value.value  # 4090, 12.345: never a float's 4090.0
            out[value.index] = ("" if shown is None else
                                plain_decimal(shown) if isinstance(shown, Decimal) else str(shown))
    return out


LOOK_INTERVAL = 5.0  # seconds between two writes of the values looked at (listen --no-store: a telegram/s)


def _keep_looks(engine: Engine, readings: Sequence[Reading]) -> None:
    """Remember the values of listed meters' readings that were not stored, for ``meters show``.

    They are held and written in one transaction every LOOK_INTERVAL seconds and when the engine closes:
    one fsync'd transaction per telegram made ``listen --no-store`` spend most of its time in SQLite. A
    crash loses the last seconds of these display values only; readings are not involved (not stored by
    the user's choice)."""
    with engine._looks_lock:
        for reading in readings:
            if engine.listed(reading.meter) is not None:
                engine._looks[reading.meter.device_id] = (reading.taken_at, value_texts(reading))
        due = engine._looks and engine.now() - engine._looks_written >= LOOK_INTERVAL
    if due:
        flush_looks(engine)


def flush_looks(engine: Engine) -> None:
    """Write the values held by :func:`_keep_looks` (one transaction); a full disk only loses them."""
    with engine._looks_lock:
        held, engine._looks = engine._looks, {}
        engine._looks_written = engine.now()
    if not held:
        return
    try:
        engine.meter_state.set_looks((device, when, values) for device, (when, values) in held.items())
    except Exception as exc:  # a full disk must not fail a readout for a display nicety
        log.debug("looks of %d meter(s) not kept: %s", len(held), exc)


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
    entries meanwhile (then those stand: the next reading is matched to them).

    Inside :func:`batched` the meter list is written once per flush for every meter learned meanwhile,
    not once per meter: a first cycle over 500 new meters rewrote the whole list 500 times (hundreds of MB
    of flash). The cached view learns at once, so the cycle's later readings are matched to the entries."""
    from sonocli.engine.meterlist import same_meter
    from sonocli.model.valueclass import replace

    if _batching(engine) or int(getattr(engine._local, "learn_depth", 0)) > 0:
        held = _held(engine)
        with held.lock:
            held.learned.append((entry, values))
            if held.learned_since is None:
                held.learned_since = engine.now()
            due = not _batching(engine) and engine.now() - held.learned_since >= LEARN_HOLD
        if due:
            save_learned_held(engine)
    else:
        _save_learned(engine, [(entry, values)])
    if engine._meters is not None:  # the cached view learns them too, without re-reading the whole list
        engine._meters = tuple(replace(m, values=values) if same_meter(m, entry) and not m.values else m
                               for m in engine._meters)


def _save_learned(engine: Engine, learned: Sequence[tuple[Meter, tuple[Any, ...]]]) -> None:
    """Write learned value entries into device_handle.cfg in one locked read-modify-write."""
    from sonocli.engine.meterlist import same_meter
    from sonocli.model.valueclass import replace

    def change(meters: MeterList) -> tuple[MeterList, bool]:
        items = list(meters.meters)
        changed = False
        for entry, values in learned:
            for i, meter in enumerate(items):
                if same_meter(meter, entry) and not meter.values:
                    items[i] = replace(meter, values=values)
                    changed = True
                    break
        return (replace(meters, meters=tuple(items)), True) if changed else (meters, False)

    engine.update_meters(change, refresh=False)


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
    """Bring the CSV log up to the database (``readings`` were stored with ``csv=False``): what the meter
    list says is to be delivered (active meters and values). Inside :func:`batched` the flush does it."""
    if readings and not _batching(engine):
        catch_up_csv(engine)


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
    if any(r.meter.interface is Interface.S0 for r in readings):  # counted S0 meters: set value + pulses
        from sonocli.engine.s0 import with_counts

        readings = with_counts(engine, readings)
    return engine.record(readings)
