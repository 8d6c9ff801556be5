"""The Engine facade: one object that wires chip.ini, the meter list, the wired master, the wireless
receiver, the readings store, the CSV log, the exporters, the outbox and the push channels.

Every command and the daemon drive it; it never prints and never sleeps (time comes from ``now``, so the
daemon's scheduler can run it on a virtual clock). Heavy modules are imported where they are used.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sonocli.errors import NotFoundError, PushError, UsageError
from sonocli.model.values import Interface, Meter, Reading
from sonocli.push.base import Channel, Report, StepObserver
from sonocli.store.outbox import DeliveryResult, NewReport, Outbox, OutboxItem, numbered

if TYPE_CHECKING:
    from sonocli.config.device_handle import MeterList
    from sonocli.engine.master import Master, MasterSettings, ReadResult
    from sonocli.engine.meterlist import Limits
    from sonocli.engine.receiver import Heard, HeardMeter, Receiver
    from sonocli.engine.repository import MeterRepository
    from sonocli.engine.scan import ScanResult
    from sonocli.store.meterstate import HeardEntry, MeterState, MeterStatus

T = TypeVar("T")
log = logging.getLogger("sonocli.engine")

CSV_PARTITION_LIMIT = 256 * 1024 * 1024
CSV_BATCH = 100  # the /ext partition's share for CSV logs (the guide gives no number)


@dataclass(frozen=True)
class ChannelSpec:
    """An outbox channel key and how to build its channel: registry name plus constructor options."""

    key: str
    registry: str
    options: tuple[tuple[str, Any], ...] = ()


def configured_channels(get: Callable[[str], Any]) -> list[ChannelSpec]:
    """The WAN channels chip.ini enables (guide 4.4 Mode; Table 25 *_ENABLE).

    Keys are stable across harmless edits (ftp ↔ ftps keeps the key ``ftp``) so pending reports survive a
    configuration save. XMLTOTCP with an empty XMLTOTCP_IP is ``tcp-server``: the head-end fetches.
    """
    specs: list[ChannelSpec] = []
    if get("FTP_ENABLE"):
        ip = str(get("FTP_IP") or "").strip().lower()
        specs.append(ChannelSpec("sftp", "sftp") if ip.startswith("sftp://") else ChannelSpec("ftp", "ftp"))
    if get("XMLTOTCP_ENABLE"):
        if not str(get("XMLTOTCP_IP") or "").strip():
            specs.append(ChannelSpec("tcp-server", "tcp"))
        elif str(get("XMLTOTCP_SITE") or "").strip():
            specs.append(ChannelSpec("http", "http"))
        else:
            specs.append(ChannelSpec("tcp", "tcp"))
    if get("TLS_ENABLE"):
        if str(get("TLS_SITE") or "").strip():
            specs.append(ChannelSpec("https", "http", (("tls", True),)))
        else:
            specs.append(ChannelSpec("tls", "tcp", (("tls", True),)))
    if get("SMTP_ENABLE"):
        specs.append(ChannelSpec("smtp", "smtp"))
    return specs


@dataclass(frozen=True)
class ScanOutcome:
    """A scan and what it changed: mode, port, the scan's result, the wired meters listed before, the
    meters added to the list and the first readout of those (their value entries)."""

    mode: str
    port: str
    result: ScanResult
    known: tuple[Meter, ...]
    added: tuple[Meter, ...]
    recorded: Recorded


@dataclass(frozen=True)
class ReadoutSummary:
    readings: int
    failed: tuple[tuple[str, str], ...]  # (device id, error)


def _no_progress(done: int, total: int | None, info: str = "") -> None:
    return None


def _suppress() -> contextlib.AbstractContextManager[None]:
    return contextlib.suppress(Exception)


@dataclass(frozen=True)
class Recorded:
    """What :meth:`Engine.record` did: the readings as stored (indexed to the meter list), the meters whose
    value list is limited by the value count, layout-change notes, and the meters whose values were learned."""

    readings: tuple[Reading, ...] = ()
    limited: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    learned: tuple[str, ...] = ()


class Engine:
    """Configuration and data of one sonocli root, and the operations on them."""

    def __init__(
        self,
        root: Path,
        *,
        now: Callable[[], float] = time.time,
        chip: Any = None,
        meters: Sequence[Meter] | None = None,
        muc_id: int | None = None,
    ) -> None:
        from sonocli.config.layout import RootLayout

        self.root = Path(root)
        self.layout = RootLayout(self.root)
        self.now = now
        self._chip = chip
        self._meters = tuple(meters) if meters is not None else None
        self._muc_id = muc_id
        self._local = threading.local()
        self._outbox: Outbox | None = None
        self._write_lock = threading.Lock()  # readings written and reports built never interleave
        self._csv_lock = threading.Lock()  # one CSV log writer at a time (it rewrites the day file)
        self._csvlog: Any = None

    # -- configuration ------------------------------------------------------------------------------------
    @property
    def chip(self) -> Any:
        if self._chip is None:
            from sonocli.config.chipini import ChipIni

            path = self.layout.chip_ini
            self._chip = ChipIni.load(path) if path.is_file() else ChipIni.from_text("")
        return self._chip

    def get(self, name: str) -> Any:
        return self.chip.get(name)

    def reload(self) -> None:
        """Re-read chip.ini and device_handle.cfg (SIGHUP, a configuration save)."""
        self._chip = None
        self._meters = None
        self._csvlog = None
        _ = self.chip, self.meters

    # -- the meter list -------------------------------------------------------------------------------------
    @property
    def repository(self) -> MeterRepository:
        """The one writer path of device_handle.cfg (locked read-modify-write)."""
        from sonocli.engine.repository import MeterRepository

        return MeterRepository(self.layout.device_handle)

    @property
    def meters(self) -> tuple[Meter, ...]:
        """The meters as last loaded (cached for the daemon's cycles; :meth:`reload` refreshes)."""
        if self._meters is None:
            self._meters = tuple(self.meter_list().meters)
        return self._meters

    def meter_list(self) -> MeterList:
        """The meter list as it is on disk now (an empty one when there is no file yet)."""
        return self.repository.load()

    def update_meters(self, change: Callable[[MeterList], tuple[MeterList, T]], *, refresh: bool = True) -> T:
        """Change the meter list through the repository (see :mod:`sonocli.engine.repository`).

        A missing root is created first (``init`` layout), so a first ``scan --save`` works on a fresh root.
        ``refresh=False`` keeps the cached list (the daemon's view changes on SIGHUP, as on the device).
        """
        if not self.layout.device_handle.exists():
            from sonocli.config.layout import init_root

            init_root(self.root)
        try:
            return self.repository.update(change)
        finally:
            if refresh:
                self._meters = None

    def limits(self) -> Limits:
        from sonocli.engine.meterlist import Limits

        return Limits.from_settings(self.get)

    @property
    def show_timestamps(self) -> bool:
        """MUC_SHOWTIMESTAMPENTRIES: timestamp records get value entries of their own (guide 4.2)."""
        return bool(self.get("MUC_SHOWTIMESTAMPENTRIES"))

    @property
    def meter_state(self) -> MeterState:
        """This thread's view of the temporary wM-Bus list and meter status (SQLite, one per thread)."""
        state = getattr(self._local, "meter_state", None)
        if state is None:
            from sonocli.store.meterstate import MeterState

            self.layout.ext.mkdir(parents=True, exist_ok=True)
            state = MeterState(self.layout.database)
            self._local.meter_state = state
        return state

    def listed(self, meter: Meter) -> Meter | None:
        """The meter-list entry of ``meter`` (same interface and secondary address), or None."""
        from sonocli.engine.meterlist import same_meter

        if meter.interface is Interface.WMBUS:
            wanted = meter.serial.upper()
            return next((m for m in self.meters if m.interface is Interface.WMBUS and m.serial.upper() == wanted), None)
        for entry in self.meters:
            if same_meter(entry, meter):
                return entry
        return None

    @property
    def muc_id(self) -> int:
        if self._muc_id is None:
            from sonocli.service.info import muc_id

            self._muc_id = muc_id(self.layout)[0]
        return self._muc_id

    # -- storage ------------------------------------------------------------------------------------------
    @property
    def store(self) -> Any:
        """This thread's ReadingStore (sqlite3 connections belong to one thread)."""
        store = getattr(self._local, "store", None)
        if store is None:
            from sonocli.store.readings import ReadingStore

            self.layout.ext.mkdir(parents=True, exist_ok=True)
            store = ReadingStore(self.layout.database)
            self._local.store = store
        return store

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            self.layout.ext.mkdir(parents=True, exist_ok=True)
            self._outbox = Outbox(self.layout.database)
        return self._outbox

    def release_thread(self) -> None:
        """Close the calling thread's store connections (worker threads call this before they end)."""
        for name in ("store", "meter_state"):
            conn = getattr(self._local, name, None)
            if conn is not None:
                conn.close()
                setattr(self._local, name, None)

    def close(self) -> None:
        self.release_thread()
        if self._outbox is not None:
            self._outbox.close()
            self._outbox = None

    def csvlog(self) -> Any:
        if self._csvlog is None:
            from sonocli.store.csvlog import CsvLog

            self._csvlog = CsvLog(
                self.layout.log_dir,
                int(self.get("MUC_PROTOCOL_VER")),
                size_limit=int(self.get("REPORT_SIZELIMIT")),
                partition_limit=CSV_PARTITION_LIMIT,
                scale_values=bool(self.get("MUC_SCALEVALUES")),
            )
        return self._csvlog

    def record(self, readings: Sequence[Reading], *, csv: bool = True, store: bool = True) -> Recorded:
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
        default_limit = int(self.get("METER_MAXVALUECOUNT"))
        show = self.show_timestamps
        for reading in readings:
            entry = self.listed(reading.meter)
            meter = entry if entry is not None else reading.meter
            if entry is not None and reading.meter.rssi != entry.rssi and reading.meter.interface is Interface.WMBUS:
                meter = replace(entry, rssi=reading.meter.rssi)
            binding = bind(reading, meter, default_limit=default_limit, show_timestamps=show)
            if binding.learned is not None and entry is not None:
                self._learn(entry, binding.learned)
                learned.append(entry.device_id)
            if entry is not None:
                self._note_status(entry.device_id, binding.limited, binding.note())
            if binding.limited:
                limited.append(meter.device_id)
            note = binding.note()
            if note is not None:
                notes.append(note)
                log.warning("%s", note)
            bound.append(binding.reading)
        if store:
            with self._write_lock:
                self.store.add_many(bound)
            if csv:
                self.log_csv(bound)
        return Recorded(tuple(bound), tuple(limited), tuple(notes), tuple(learned))

    def _learn(self, entry: Meter, values: tuple[Any, ...]) -> None:
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

        self.update_meters(change, refresh=False)
        if self._meters is not None:  # the cached view learns them too, without re-reading the whole list
            self._meters = tuple(replace(m, values=values) if same_meter(m, entry) and not m.values else m
                                 for m in self._meters)

    def _note_status(self, device_id: str, limited: bool, note: str | None) -> None:
        """Keep the "*" flag (value list limited) and the last layout note where every command sees them."""
        known = self._statuses()
        current = known.get(device_id.upper())
        if current is None and not limited and note is None:
            return
        if current is not None and current == (limited, note):
            return
        self.meter_state.set_status(device_id, limited=limited, note=note,
                                    when=datetime.fromtimestamp(self.now(), UTC))
        known[device_id.upper()] = (limited, note)

    def _statuses(self) -> dict[str, tuple[bool, str | None]]:
        cache: dict[str, tuple[bool, str | None]] | None = getattr(self._local, "statuses", None)
        if cache is None:
            cache = {key: (s.limited, s.note) for key, s in self.meter_state.statuses().items()}
            self._local.statuses = cache
        return cache

    def meter_statuses(self) -> dict[str, MeterStatus]:
        """Device-ID (upper case) -> status, for ``meters list``/``show`` ("*": value list limited)."""
        return self.meter_state.statuses()

    def log_csv(self, readings: Sequence[Reading]) -> None:
        """Append what the meter list says is to be delivered (active meters and values) to the CSV log."""
        if readings and self.get("MUC_CSVLOG_ENABLE"):
            configured = self.configured(readings)
            if configured:
                with self._csv_lock:
                    self.csvlog().append(configured)

    @staticmethod
    def configured(readings: Iterable[Reading]) -> list[Reading]:
        """The readings as every output carries them: active meters, active values (engine.values)."""
        from sonocli.engine.values import deliverable

        out: list[Reading] = []
        for reading in readings:
            kept = deliverable(reading)
            if kept is not None:
                out.append(kept)
        return out

    def iter_configured(self, readings: Iterable[Reading]) -> Iterator[Reading]:
        from sonocli.engine.values import deliverable

        for reading in readings:
            kept = deliverable(reading)
            if kept is not None:
                yield kept

    def read_manual(self, when: float | None = None) -> Recorded:
        """Readings of the active manual S0/DLDE meters from their set values (Figure 21), recorded like any
        other reading so they reach the CSV log and every report."""
        from sonocli.engine.values import manual_reading

        moment = datetime.fromtimestamp(self.now() if when is None else when, UTC)
        readings = [r for m in self.meters if m.active
                    for r in [manual_reading(m, moment)] if r is not None]
        return self.record(readings)

    # -- wired readout ------------------------------------------------------------------------------------
    def wired_meters(self) -> list[Meter]:
        return [m for m in self.meters if m.interface is Interface.MBUS and m.active]

    def master_settings(self, **overrides: Any) -> MasterSettings:
        """MBUS_*/METER_* of chip.ini, with command-line overrides (None: keep chip.ini's value)."""
        from sonocli.engine.master import MasterSettings

        return MasterSettings.from_chip_ini(self.chip, **overrides)

    def wired_port(self, url: str | None = None) -> str:
        port = (url or str(self.get("MBUS_PORT") or "")).strip()
        if not port:
            raise UsageError(
                "no port given: use --port URL (/dev/ttyUSB0, socket://host:port, sim://demo)",
                hint="or set MBUS_PORT in chip.ini (sonocli config set MBUS_PORT /dev/ttyUSB0)",
            )
        return port

    def open_master(self, url: str | None = None, settings: MasterSettings | None = None) -> Master:
        from sonocli.engine.master import Master
        from sonocli.transports import open_link

        port = self.wired_port(url)
        s = settings if settings is not None else self.master_settings()
        link = open_link(port, s.baudrate, s.parity, s.databits, s.stopbits)
        return Master(link, s)

    def scan(
        self,
        *,
        url: str | None = None,
        mode: str | None = None,
        settings: MasterSettings | None = None,
        save: bool = False,
        on_progress: Callable[[int, int | None, str], None] | None = None,
        cancel: threading.Event | None = None,
        master: Master | None = None,
    ) -> ScanOutcome:
        """A scan (MBUS_SCANMODE or ``mode``); with ``save`` the meters found are merged into the meter list
        (additively, guide 4.2) and each meter added is read once so its value entries are recorded."""
        from sonocli.engine.master import SCAN_MODES
        from sonocli.engine.scan import primary_scan, secondary_scan

        s = settings if settings is not None else self.master_settings()
        scan_mode = (mode or s.scan_mode).upper().replace("-", "").replace(" ", "")
        if scan_mode not in SCAN_MODES:
            raise UsageError(f"MBUS_SCANMODE {scan_mode!r} is not one of {', '.join(SCAN_MODES)}")
        alloc = "ALLOC" in scan_mode
        # the meter list counts against METER_MAXDEVICECOUNT when the scan adds to it; ALLOC must not reuse
        # or change the primary addresses of listed meters
        known = [m for m in self.meter_list().meters if m.interface is Interface.MBUS] if save or alloc else []
        own = master is None
        if master is None:
            master = self.open_master(url, s)
        progress = on_progress or _no_progress
        try:
            if scan_mode == "PRIMARYSCAN":
                result = primary_scan(master, known=known, on_progress=progress)
            else:
                result = secondary_scan(master, reverse=scan_mode.endswith("REVERSE"), alloc=alloc, known=known,
                                        on_progress=progress)
            added: list[Meter] = []
            recorded = Recorded()
            if save:
                added = self.save_found(result.meters, s.max_device_count)
                if added and (cancel is None or not cancel.is_set()):
                    recorded = self._first_readout(master, added)
        finally:
            if own:
                with _suppress():
                    master.link.close()
        return ScanOutcome(scan_mode, self.wired_port(url) if own else "", result, tuple(known), tuple(added),
                           recorded)

    def save_found(self, found: Sequence[Meter], max_devices: int | None = None) -> list[Meter]:
        """Merge scan results into the meter list (one locked write); returns the meters actually added."""
        from sonocli.engine.meterlist import merge_found

        limit = int(self.get("METER_MAXDEVICECOUNT")) if max_devices is None else max_devices

        def change(meters: MeterList) -> tuple[MeterList, list[Meter]]:
            return merge_found(meters, found, limit)

        return self.update_meters(change)

    def _first_readout(self, master: Master, meters: Sequence[Meter]) -> Recorded:
        """Read the meters a scan just added, so their value entries are in the list (Table 26) at once.

        The readings are not stored: this is a commissioning look, taken before the engineer configured the
        meters (labels, OBIS-IDs, what is active); stored readings would go out with that unconfigured state.
        """
        from sonocli.engine.master import read_all

        results = read_all(master, list(meters))
        readings = [r.reading for r in results if r.reading is not None]
        for r in results:
            if r.reading is None:
                log.warning("first readout of %s failed: %s (its values are recorded at its next readout)",
                            r.meter.device_id, r.error)
        # a commissioning look, not data: the values are learned and listed, nothing is stored or reported
        # before the engineer has configured the meter (labels, OBIS-IDs, what is active)
        return self.record(readings, store=False)

    def readout(
        self,
        meters: Sequence[Meter],
        *,
        url: str | None = None,
        settings: MasterSettings | None = None,
        store: bool = True,
        on_progress: Callable[[int, int | None, str], None] | None = None,
    ) -> tuple[list[ReadResult], Recorded]:
        """Read ``meters`` once (``readout``): results per meter, and what was recorded."""
        from dataclasses import replace

        from sonocli.engine.master import read_all

        master = self.open_master(url, settings)
        try:
            results = read_all(master, list(meters), on_progress)
        finally:
            with _suppress():
                master.link.close()
        recorded = self.record([r.reading for r in results if r.reading is not None], store=store)
        # the results carry the readings as recorded: indexed to the meter list, with its labels
        by_reading = iter(recorded.readings)
        out = [replace(r, reading=next(by_reading)) if r.reading is not None else r for r in results]
        return out, recorded

    def read_wired(
        self, meters: Sequence[Meter], *, master: Any = None, cancel: threading.Event | None = None
    ) -> ReadoutSummary:
        """Read ``meters`` one after the other, storing each reading as soon as it is taken (the daemon)."""
        from sonocli.engine.master import read_all

        if not meters:
            return ReadoutSummary(0, ())
        own = master is None
        if master is None:
            master = self.open_master()
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
                        batch.extend(self.record([result.reading], csv=False).readings)
                        count += 1
                    else:
                        failed.append((meter.device_id, str(result.error)))
                        log.warning("readout of %s failed: %s", meter.device_id, result.error)
                if len(batch) >= CSV_BATCH:
                    self.log_csv(batch)
                    batch = []
        finally:
            self.log_csv(batch)
            if own:
                with _suppress():
                    master.link.close()
        return ReadoutSummary(count, tuple(failed))

    # -- wireless reception ---------------------------------------------------------------------------------
    def wireless_receivers(self) -> list[tuple[str, str]]:
        """(port URL, dongle name) of the configured wireless receivers."""
        return [(url, dongle) for url, dongle, _mode in self.receiver_configs()]

    def receiver_configs(self) -> list[tuple[str, str, str]]:
        """(port URL, dongle, chip.ini mode) of each configured receiver: what SIGHUP compares to reopen."""
        out: list[tuple[str, str, str]] = []
        if not self.get("WMBUS_ENABLE"):
            return out
        for prefix in ("WMBUS", "WMBUS2"):
            url = str(self.get(f"{prefix}_PORT") or "").strip()
            if url:
                out.append((url, str(self.get(f"{prefix}_DONGLE") or "im871a"), str(self.get(f"{prefix}_MODE"))))
        return out

    @property
    def listen_new(self) -> bool:
        """The guide's "wM-Bus listen" switch (chip.ini WMBUS_LISTEN, a sonocli key): recognise new meters."""
        return bool(self.get("WMBUS_LISTEN"))

    def receiver(
        self, dongle: str, *, interface: int = 1, mode: str | None = None, listen_new: bool | None = None
    ) -> Receiver:
        """A receiver for ``dongle`` with chip.ini's settings of receiver ``interface`` and the meter list."""
        from dataclasses import replace

        from sonocli.engine.receiver import Receiver, settings_from_chip
        from sonocli.registry import DONGLES, load

        driver = load(DONGLES, dongle, "dongle")()
        settings = settings_from_chip(self.chip, self.layout.log_dir, interface)
        settings = replace(settings, listen_new=self.listen_new if listen_new is None else listen_new)
        if mode is not None:
            settings = replace(settings, mode=mode.upper())
        return Receiver(driver, settings, self.meters)

    def open_receiver_port(self, url: str, receiver: Receiver) -> Any:
        from sonocli.engine.receiver import open_port

        return open_port(url, receiver.driver)

    def run_receiver(
        self,
        receiver: Receiver,
        port: Any,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        duration: float | None = None,
        count: int | None = None,
        on_heard: Callable[[Heard, Recorded | None], None] | None = None,
        store: bool = True,
    ) -> int:
        """Set up the stick and receive: readings of listed meters are matched to the list (values learned
        on the first one) and those of active meters stored; meters not in the list go to the temporary
        list in the store (guide 5.1.2), published at least every FASTRESCAN_TIME. Returns readings stored."""
        stored = 0
        flushed: dict[str, int] = {}
        last_flush = [self.now()]

        def publish(force: bool = False) -> None:
            if not force and self.now() - last_flush[0] < receiver.settings.fast_rescan:
                return
            last_flush[0] = self.now()
            entries = []
            for heard in receiver.temporary():
                delta = heard.telegrams - flushed.get(heard.id, 0)
                if delta <= 0 and heard.id in flushed:
                    continue
                entries.append(_heard_entry(heard, delta))
                flushed[heard.id] = heard.telegrams
            if entries:
                try:
                    self.meter_state.heard(entries)
                except Exception as exc:  # a full disk must not stop reception
                    log.warning("temporary wM-Bus list not saved: %s", exc)

        def heard(item: Heard) -> None:
            nonlocal stored
            recorded = None
            if item.reading is not None and not item.duplicate:
                active = item.reading.meter.active
                recorded = self.record([item.reading], store=store and active)
                if store and active:
                    stored += 1
            if item.meter is not None and not item.meter.in_list and not item.duplicate:
                publish(force=item.new_meter)
            if on_heard is not None:
                on_heard(item, recorded)

        try:
            receiver.setup(port)
            receiver.run(port, on_heard=heard, duration=duration, count=count, should_stop=should_stop)
        finally:
            publish(force=True)
            receiver.close()
        return stored

    def listen(
        self,
        url: str,
        dongle: str,
        *,
        should_stop: Callable[[], bool],
        duration: float | None = None,
        on_reading: Callable[[Reading], None] | None = None,
        interface: int | None = None,
    ) -> int:
        """Receive telegrams on one receiver until ``should_stop()`` (the daemon); returns readings stored."""
        if interface is None:
            second = url == str(self.get("WMBUS2_PORT") or "").strip() != str(self.get("WMBUS_PORT") or "").strip()
            interface = 2 if second else 1
        receiver = self.receiver(dongle, interface=interface)
        port = self.open_receiver_port(url, receiver)

        def heard(item: Heard, recorded: Recorded | None) -> None:
            if on_reading is not None and recorded is not None and item.reading is not None \
                    and item.reading.meter.active:
                for reading in recorded.readings:
                    on_reading(reading)

        try:
            return self.run_receiver(receiver, port, should_stop=should_stop, duration=duration, on_heard=heard)
        finally:
            with _suppress():
                port.close()

    # -- the temporary wM-Bus list (guide 5.1.2) -----------------------------------------------------------
    def heard_meters(self) -> list[HeardEntry]:
        """Meters heard by any receiver (the daemon's too) that are not in the meter list."""
        listed = {m.serial.upper() for m in self.meter_list().meters if m.interface is Interface.WMBUS}
        return [e for e in self.meter_state.heard_list() if e.id.upper() not in listed]

    def save_heard(self, heard: Sequence[Meter]) -> list[Meter]:
        """Add heard meters to the meter list as given (``listen --save``: inactive, guide 5.1.2)."""
        from dataclasses import replace

        def change(meters: MeterList) -> tuple[MeterList, list[Meter]]:
            present = {m.serial.upper() for m in meters.meters if m.interface is Interface.WMBUS}
            new = [m for m in heard if m.serial.upper() not in present]
            return replace(meters, meters=(*meters.meters, *new)), new

        added = self.update_meters(change)
        self.meter_state.forget_heard(m.serial for m in added)
        return added

    def activate(self, refs: Sequence[str], active: bool = True) -> list[str]:
        """Activate (or deactivate) meters and values of the list, and move activated meters of the
        temporary list into the meter list; all or nothing. Returns what changed, as Device-IDs/refs."""
        from dataclasses import replace

        from sonocli.engine.meterlist import find, set_active, split_ref
        from sonocli.model.values import Meter as MeterEntry

        temporary = {e.id.upper(): e for e in self.meter_state.heard_list()} if active else {}

        def heard_id(ref: str) -> str:
            text = ref.strip().upper()
            return (text[2:] if text.startswith("0X") else text).zfill(8)

        def change(meters: MeterList) -> tuple[MeterList, list[str]]:
            done: list[str] = []
            for ref in refs:
                try:
                    find(meters, ref)
                except NotFoundError:
                    # only a whole meter can come from the temporary list, and only to be activated: any
                    # other reference keeps the meter list's own message ("value 1/9 does not exist; …")
                    if not active or split_ref(ref)[1] is not None:
                        raise
                    entry = temporary.get(heard_id(ref))
                    if entry is None:
                        raise NotFoundError(
                            f"meter {ref!r} is neither in the meter list nor in the temporary list of heard "
                            "meters (sonocli meters list, sonocli meters heard)") from None
                    meter = MeterEntry(Interface.WMBUS, serial=entry.id, manufacturer=entry.manufacturer,
                                       version=entry.version, medium=entry.medium, rssi=entry.rssi or 0)
                    meters = replace(meters, meters=(*meters.meters, meter))
                    done.append(meter.device_id)
                    continue
                meters = set_active(meters, ref, active)
                done.append(ref)
            return meters, done

        done = self.update_meters(change)
        if temporary:
            self.meter_state.forget_heard(
                e.id for e in temporary.values() if any(d.startswith(f"{e.manufacturer}-{e.id}-") for d in done))
        return done

    # -- reports and delivery -------------------------------------------------------------------------------
    def channel_specs(self) -> list[ChannelSpec]:
        return configured_channels(self.get)

    def make_channel(
        self, spec: ChannelSpec, *, observer: StepObserver | None = None, accept_host_key: bool = False
    ) -> Channel:
        from sonocli.registry import CHANNELS, load

        cls = load(CHANNELS, spec.registry, "channel")
        options = dict(spec.options)
        if spec.registry == "smtp":
            options["muc_id"] = f"{self.muc_id:x}"
        if spec.registry == "sftp":
            options["accept_host_key"] = accept_host_key
        channel: Channel = cls(self.get, self.root, observer=observer, **options)
        return channel

    def render(self, fmt: str, readings: Sequence[Reading], timestamp: float) -> bytes:
        version = int(self.get("MUC_PROTOCOL_VER"))
        scale = bool(self.get("MUC_SCALEVALUES"))
        if fmt == "csv":
            from sonocli.outputs.csv_writer import CsvWriter

            text = io.StringIO()
            CsvWriter(version, scale_values=scale).write(readings, text)
            return text.getvalue().encode("utf-8")
        from sonocli.outputs.xml_writer import XmlWriter

        out = io.BytesIO()
        XmlWriter(version, muc_id=self.muc_id, scale_values=scale).write(
            readings, out, timestamp=datetime.fromtimestamp(timestamp, UTC)
        )
        return out.getvalue()

    def split(self, fmt: str, readings: list[Reading], timestamp: float, limit: int) -> list[tuple[bytes, int]]:
        """Payloads of at most ``limit`` bytes (REPORT_SIZELIMIT), in reading order; (payload, reading count).

        A single reading larger than the limit still goes out alone: dropping it would lose data.
        """
        payload = self.render(fmt, readings, timestamp)
        if len(payload) <= limit or len(readings) <= 1:
            if len(payload) > limit:
                log.warning("a reading needs %d bytes, over REPORT_SIZELIMIT %d; sent alone", len(payload), limit)
            return [(payload, len(readings))]
        half = len(readings) // 2
        return self.split(fmt, readings[:half], timestamp, limit) + self.split(fmt, readings[half:], timestamp, limit)

    def chunks(
        self, fmt: str, readings: Iterable[Reading], timestamp: float, limit: int
    ) -> Iterator[tuple[bytes, int]]:
        """Stream readings into payloads of at most ``limit`` bytes, holding one payload's readings at a time.

        Memory stays bounded by REPORT_SIZELIMIT however many readings wait (a long outage, a big fleet).
        """
        if fmt == "csv":
            yield from self._csv_chunks(readings, limit)
            return
        source = iter(readings)
        while True:
            batch: list[Reading] = []
            size = 0
            for reading in source:
                batch.append(reading)
                size += _xml_estimate(reading)
                if size >= limit:
                    break
            if not batch:
                return
            yield from self.split(fmt, batch, timestamp, limit)

    def _csv_chunks(self, readings: Iterable[Reading], limit: int) -> Iterator[tuple[bytes, int]]:
        from sonocli.outputs.csv_writer import CsvWriter

        version = int(self.get("MUC_PROTOCOL_VER"))
        scale = bool(self.get("MUC_SCALEVALUES"))
        writer = CsvWriter(version, scale_values=scale)
        rows: list[str] = []
        size = widest = 0
        for reading in readings:
            row = writer.row(reading)
            wide = max(widest, len(reading.values))
            if rows and size + len(row) + len(writer.header(wide)) > limit:
                yield (writer.header(widest) + "".join(rows)).encode("utf-8"), len(rows)
                writer = CsvWriter(version, scale_values=scale)
                row = writer.row(reading)
                rows, size, wide = [], 0, len(reading.values)
            rows.append(row)
            size += len(row)
            widest = wide
        if rows:
            yield (writer.header(widest) + "".join(rows)).encode("utf-8"), len(rows)

    def build_reports(self, specs: Iterable[ChannelSpec] | None = None) -> list[OutboxItem]:
        """Queue one report cycle per channel: every reading not yet in a report of that channel.

        The readings are read in one SQLite snapshot and the cursor is moved to that snapshot's newest id
        in the same transaction that queues the reports, so nothing is lost or reported twice.
        """
        created: list[OutboxItem] = []
        now = self.now()
        limit = int(self.get("REPORT_SIZELIMIT"))
        for spec in specs if specs is not None else self.channel_specs():
            channel = self.make_channel(spec)
            with self._write_lock:
                cursor = self.outbox.cursor(spec.key)
                conn = self.store.connection
                content_type = "text/csv" if channel.format == "csv" else "application/xml"
                conn.execute("BEGIN")
                try:
                    latest = int(self.store.latest_id())
                    if latest <= cursor:
                        continue
                    # what the meter list says is delivered: active meters, active values (engine.values)
                    stream = self.iter_configured(self.store.iter_readings(after_id=cursor))
                    new = [NewReport(payload, content_type, readings=count)
                           for payload, count in self.chunks(channel.format, stream, now, limit)]
                finally:
                    conn.execute("COMMIT")
                if not new:  # nothing configured among the new readings: move on past them
                    self.outbox.enqueue(spec.key, [], name=channel.report_name, now=now, cursor=latest)
                    continue
                items = self.outbox.enqueue(spec.key, new, name=channel.report_name, now=now, cursor=latest)
            log.info("%s: %d report(s) queued with %d reading(s)", spec.key, len(items), sum(n.readings for n in new))
            created.extend(items)
        return created

    def deliver(
        self,
        specs: Iterable[ChannelSpec] | None = None,
        *,
        force: bool = False,
        stop: threading.Event | None = None,
        observer: StepObserver | None = None,
        on_channel: Callable[[Channel | None], None] | None = None,
    ) -> dict[str, DeliveryResult]:
        """Send the outbox of every pushing channel, oldest first; a failure is logged, never raised."""
        results: dict[str, DeliveryResult] = {}
        cap = float(max(60, int(self.get("REPORT_TIME")) * 60))
        for spec in specs if specs is not None else self.channel_specs():
            if spec.key == "tcp-server":
                continue  # the head-end fetches; see sonocli.daemon
            channel = self.make_channel(spec, observer=observer)
            if on_channel is not None:
                on_channel(channel)

            def send(item: OutboxItem, payload: bytes, channel: Channel = channel) -> None:
                channel.send(Report(item.name, payload, item.content_type, float(item.created)))

            try:
                result = self.outbox.deliver(spec.key, send, now=self.now, force=force, stop=stop, cap=cap)
            finally:
                if on_channel is not None:
                    on_channel(None)
            if result.error:
                log.error("%s: delivery failed, %d report(s) wait in the outbox: %s",
                          spec.key, result.waiting, result.error)
            elif result.sent:
                log.info("%s: %d report(s) delivered", spec.key, result.sent)
            results[spec.key] = result
        return results

    def test_push(
        self, *, observer: StepObserver, accept_host_key: bool = False
    ) -> list[tuple[str, PushError | None]]:
        """The Test button (guide 4.4: "Test allows the immediate transmission of data"): the latest reading
        of every meter, as configured, sent now as a normal report on every channel; (channel, error)."""
        specs = [s for s in self.channel_specs() if s.key != "tcp-server"]
        if not specs:
            raise UsageError(
                "no push channel is enabled in chip.ini",
                hint="set FTP_ENABLE, XMLTOTCP_ENABLE, TLS_ENABLE or SMTP_ENABLE to 1",
            )
        outcome: list[tuple[str, PushError | None]] = []
        now = int(self.now())
        latest = self.configured(self.store.latest_readings())
        limit = int(self.get("REPORT_SIZELIMIT"))
        for spec in specs:
            channel = self.make_channel(spec, observer=observer, accept_host_key=accept_host_key)
            content_type = "text/csv" if channel.format == "csv" else "application/xml"
            parts = list(self.chunks(channel.format, latest, now, limit)) or [(self.render(channel.format, [], now), 0)]
            try:
                names: set[str] = set()
                for index, (payload, _count) in enumerate(parts, start=1):
                    name = channel.report_name(now, index)
                    if name in names:  # FTP/SFTP names carry only the time: parts must not overwrite each other
                        name = numbered(name, index)
                    names.add(name)
                    channel.test(Report(name, payload, content_type, now))
                outcome.append((spec.key, None))
            except PushError as exc:
                outcome.append((spec.key, exc))
        return outcome


def _heard_entry(heard: HeardMeter, telegrams: int) -> HeardEntry:
    from sonocli.store.meterstate import HeardEntry

    seen = heard.last_seen or datetime.now(UTC)
    return HeardEntry(heard.id, heard.manufacturer, heard.version, heard.medium, heard.rssi, seen, seen,
                      max(0, telegrams), heard.security, not heard.last_error)


def _xml_estimate(reading: Reading) -> int:
    """Rough XML size of a reading (a <meter> element plus one <data> element per value, ~200 bytes each)."""
    return 250 + 200 * len(reading.values)
