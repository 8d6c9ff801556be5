"""The wired M-Bus as the engine drives it: open the master, scan (and save what is found), read out.

The protocol work is in sonocli.engine.master (frames, selection, REQ_UD2) and sonocli.engine.scan (the
primary and secondary scans); here it meets chip.ini (MBUS_*/METER_*), the meter list and the recorder:
``scan --save`` merges the meters found into the list and reads each one added once so its value entries
are listed, ``readout`` reads once, and the daemon's :func:`read_wired` stores each reading as it is taken.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sonocli import logs
from sonocli.engine.recording import Recorded
from sonocli.errors import UsageError
from sonocli.model.valueclass import valueclass
from sonocli.model.values import Interface, Meter, Reading

if TYPE_CHECKING:
    from sonocli.config.device_handle import MeterList
    from sonocli.engine.core import Engine
    from sonocli.engine.master import Master, MasterSettings, ReadResult
    from sonocli.engine.scan import Journal, ScanResult

log = logs.logger("sonocli.engine")

# the daemon's readings reach the CSV log in batches of this many (the file is rewritten per append)
CSV_BATCH = 100


@valueclass(frozen=True)
class ScanOutcome:
    """A scan and what it changed: mode, port, the scan's result, the wired meters listed before, the
    meters added to the list and the first readout of those (their value entries)."""

    mode: str
    port: str
    result: ScanResult
    known: tuple[Meter, ...]
    added: tuple[Meter, ...]
    recorded: Recorded
    unreadable: tuple[tuple[str, str], ...] = ()  # (Device-ID, why): answered the scan, not its first readout


@valueclass(frozen=True)
class ReadoutSummary:
    readings: int
    failed: tuple[tuple[str, str], ...]  # (device id, error)


def _no_progress(done: int, total: int | None, info: str = "") -> None:
    return None


def _suppress() -> contextlib.AbstractContextManager[None]:
    return contextlib.suppress(Exception)


def wired_port(engine: Engine, url: str | None = None) -> str:
    """The wired port: ``url``, else chip.ini's MBUS_PORT; neither is a UsageError."""
    port = (url or str(engine.get("MBUS_PORT") or "")).strip()
    if not port:
        raise UsageError(
            "no port given: use --port URL (/dev/ttyUSB0, socket://host:port, sim://demo)",
            hint="or set MBUS_PORT in chip.ini (sonocli config set MBUS_PORT /dev/ttyUSB0)",
        )
    return port


def open_master(engine: Engine, url: str | None = None, settings: MasterSettings | None = None) -> Master:
    """A master on the wired port, with chip.ini's line settings unless ``settings`` are given."""
    from sonocli.engine.master import Master
    from sonocli.transports import Link, open_link
    from sonocli.transports.buslock import BusLock, LockedLink

    port = engine.wired_port(url)
    s = settings if settings is not None else engine.master_settings()
    # One master per bus: the daemon's cycle, a web readout and an SSH command on this root take turns
    # (transports.buslock); the lock is held until the master's link is closed.
    lock = BusLock.acquire(engine.layout.ext, port, purpose=engine.bus_purpose, wait=engine.bus_wait)
    try:
        link: Link = LockedLink(open_link(port, s.baudrate, s.parity, s.databits, s.stopbits), lock)
    except BaseException:
        lock.release()
        raise
    # Table 25's debugging aids for the wired bus: MBUS_RAWLOGENABLE logs every frame (TX and RX, UTC
    # time, hex) to ext/log/mbus_raw.log; MBUS_DEBUGOUT raises the wire logger to DEBUG, one line per frame
    # (so does -vv). Set on every open, so a reloaded chip.ini (SIGHUP) switches it off again.
    wire_log = logs.logger("sonocli.engine.wire")
    wire_log.setLevel(logs.DEBUG if engine.get("MBUS_DEBUGOUT") else logs.NOTSET)
    if engine.get("MBUS_RAWLOGENABLE") or wire_log.isEnabledFor(logs.DEBUG):
        from sonocli.transports.rawlog import LogSink, RawLog, RawLogSink, TeeLink

        sinks: list[RawLogSink] = [LogSink(wire_log)]
        if engine.get("MBUS_RAWLOGENABLE"):
            sinks.append(RawLog(engine.layout.log_dir / "mbus_raw.log"))
        link = TeeLink(link, sinks)
    return Master(link, s)


def scan(
    engine: Engine,
    *,
    url: str | None = None,
    mode: str | None = None,
    settings: MasterSettings | None = None,
    save: bool = False,
    on_progress: Callable[[int, int | None, str], None] | None = None,
    cancel: threading.Event | None = None,
    master: Master | None = None,
    journal: Journal | None = None,
    on_scanned: Callable[[ScanResult], None] | None = None,
) -> ScanOutcome:
    """A scan (MBUS_SCANMODE or ``mode``); with ``save`` the meters found are merged into the meter list
    (additively, guide 4.2) and each meter added is read once so its value entries are recorded.

    ``journal`` records every probe as it is made (and replays saved ones first): engine.inventory keeps
    it on disk so an interrupted scan can be resumed; ``on_scanned`` is told when the search is complete,
    before the meter list changes. This is the one scan of the engine: the daemon, the
    web interface and ``sonocli scan`` (through engine.inventory) all come here."""
    from sonocli.engine.master import SCAN_MODES
    from sonocli.engine.scan import primary_scan, secondary_scan

    s = settings if settings is not None else engine.master_settings()
    scan_mode = (mode or s.scan_mode).upper().replace("-", "").replace(" ", "")
    if scan_mode not in SCAN_MODES:
        raise UsageError(f"MBUS_SCANMODE {scan_mode!r} is not one of {', '.join(SCAN_MODES)}")
    alloc = "ALLOC" in scan_mode
    # the meter list counts against METER_MAXDEVICECOUNT when the scan adds to it; ALLOC must not reuse
    # or change the primary addresses of listed meters
    known = [m for m in engine.meter_list().meters if m.interface is Interface.MBUS] if save or alloc else []
    own = master is None
    if master is None:
        master = engine.open_master(url, s)
    progress = on_progress or _no_progress
    try:
        if scan_mode == "PRIMARYSCAN":
            result = primary_scan(master, known=known, on_progress=progress, journal=journal)
        else:
            result = secondary_scan(master, reverse=scan_mode.endswith("REVERSE"), alloc=alloc, known=known,
                                    on_progress=progress, journal=journal)
        if on_scanned is not None:
            on_scanned(result)
        added: list[Meter] = []
        recorded = Recorded()
        unreadable: tuple[tuple[str, str], ...] = ()
        if save:
            added = engine.save_found(result.meters, s.max_device_count)
            if added and (cancel is None or not cancel.is_set()):
                recorded, unreadable = _first_readout(engine, master, added)
    finally:
        if own:
            with _suppress():
                master.link.close()
    return ScanOutcome(scan_mode, engine.wired_port(url) if own else "", result, tuple(known), tuple(added),
                       recorded, unreadable)


def save_found(engine: Engine, found: Sequence[Meter], max_devices: int | None = None) -> list[Meter]:
    """Merge scan results into the meter list (one locked write); returns the meters actually added."""
    from sonocli.engine.meterlist import merge_found

    limit = int(engine.get("METER_MAXDEVICECOUNT")) if max_devices is None else max_devices

    def change(meters: MeterList) -> tuple[MeterList, list[Meter]]:
        return merge_found(meters, found, limit)

    return engine.update_meters(change)


def _first_readout(
    engine: Engine, master: Master, meters: Sequence[Meter]
) -> tuple[Recorded, tuple[tuple[str, str], ...]]:
    """Read the meters a scan just added, so their value entries are in the list (Table 26) at once.

    The readings are not stored: this is a commissioning look, taken before the engineer configured the
    meters (labels, OBIS-IDs, what is active); stored readings would go out with that unconfigured state.
    """
    from sonocli.engine.master import read_all

    results = read_all(master, list(meters))
    readings = [r.reading for r in results if r.reading is not None]
    failed = tuple((r.meter.device_id, str(r.error)) for r in results if r.reading is None)
    for device_id, why in failed:
        log.warning("first readout of %s failed: %s (its values are recorded at its next readout)", device_id, why)
    # a commissioning look, not data: the values are learned and listed, nothing is stored or reported
    # before the engineer has configured the meter (labels, OBIS-IDs, what is active)
    return engine.record(readings, store=False), failed


def readout(
    engine: Engine,
    meters: Sequence[Meter],
    *,
    url: str | None = None,
    settings: MasterSettings | None = None,
    store: bool = True,
    on_progress: Callable[[int, int | None, str], None] | None = None,
) -> tuple[list[ReadResult], Recorded]:
    """Read ``meters`` once (``readout``): results per meter, and what was recorded."""
    from sonocli.engine.master import read_all
    from sonocli.model.valueclass import replace

    master = engine.open_master(url, settings)
    try:
        results = read_all(master, list(meters), on_progress)
    finally:
        with _suppress():
            master.link.close()
    recorded = engine.record([r.reading for r in results if r.reading is not None], store=store)
    # the results carry the readings as recorded: indexed to the meter list, with its labels
    by_reading = iter(recorded.readings)
    out = [replace(r, reading=next(by_reading)) if r.reading is not None else r for r in results]
    return out, recorded


def read_wired(
    engine: Engine, meters: Sequence[Meter], *, master: Any = None, cancel: threading.Event | None = None
) -> ReadoutSummary:
    """Read ``meters`` one after the other, storing each reading as soon as it is taken (the daemon)."""
    from sonocli.engine.master import read_all

    if not meters:
        return ReadoutSummary(0, ())
    own = master is None
    if master is None:
        master = engine.open_master()
    failed: list[tuple[str, str]] = []
    count = 0
    # each reading is in SQLite the moment it is taken; the CSV log (a file rewritten atomically per
    # append) gets them in batches, which keeps a 500-meter cycle from rewriting the day file 500 times
    batch: list[Reading] = []
    try:
        for meter in meters:
            if cancel is not None and cancel.is_set():
                break
            for result in read_all(master, [meter]):
                if result.reading is not None:
                    batch.extend(engine.record([result.reading], csv=False).readings)
                    count += 1
                else:
                    failed.append((meter.device_id, str(result.error)))
                    log.warning("readout of %s failed: %s", meter.device_id, result.error)
            if len(batch) >= CSV_BATCH:
                engine.log_csv(batch)
                batch = []
    finally:
        engine.log_csv(batch)
        if own:
            with _suppress():
                master.link.close()
    return ReadoutSummary(count, tuple(failed))
