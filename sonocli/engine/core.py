"""The Engine facade: one object that holds the shared state of one sonocli root — chip.ini, the meter
list, the readings store and meter state (one SQLite connection per thread), the outbox, the CSV log and
the locks that keep their writers apart — and whose methods are a table of contents of ``engine/``:

* :mod:`sonocli.engine.recording` — the recorder: readings matched to the meter list, stored and logged;
* :mod:`sonocli.engine.wired` — the wired M-Bus: scan (and save), readout, the daemon's readout;
* :mod:`sonocli.engine.wireless` — wM-Bus reception; :mod:`sonocli.engine.heard` — the temporary list;
* :mod:`sonocli.engine.delivery` — the channels, reports, the outbox sent.

Every command and the daemon drive it; it never prints and never sleeps (time comes from ``now``, so the
daemon's scheduler can run it on a virtual clock). Heavy modules are imported where they are used.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sonocli.engine import heard as temporary
from sonocli.engine import recording, wireless
from sonocli.engine.recording import Recorded
from sonocli.model.values import Interface, Meter, Reading

if TYPE_CHECKING:
    from datetime import datetime

    from sonocli.config.device_handle import MeterList
    from sonocli.engine.delivery import ChannelSpec
    from sonocli.engine.inventory import Inventory
    from sonocli.engine.master import Master, MasterSettings, ReadResult
    from sonocli.engine.meterlist import Limits
    from sonocli.engine.receiver import Heard, Receiver
    from sonocli.engine.repository import MeterRepository
    from sonocli.engine.s0 import ValueWritten
    from sonocli.engine.wired import ReadoutSummary, ScanOutcome
    from sonocli.errors import PushError
    from sonocli.push.base import Channel, StepObserver
    from sonocli.store.meterstate import HeardEntry, MeterState, MeterStatus
    from sonocli.store.outbox import DeliveryResult, Outbox, OutboxItem

# names the commands, the daemon and scripts import from here (they live in the modules named above)
__all__ = ["Engine", "ReadoutSummary", "Recorded", "ScanOutcome"]


def __getattr__(name: str) -> Any:
    """ReadoutSummary and ScanOutcome from engine.wired, imported on demand: `listen` never reads wired."""
    if name in ("ReadoutSummary", "ScanOutcome"):
        from sonocli.engine import wired

        return getattr(wired, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

T = TypeVar("T")

CSV_PARTITION_LIMIT = 256 * 1024 * 1024  # the /ext partition's share for CSV logs (the guide gives no number)


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
        # values of readings looked at but not stored (listen/readout --no-store), written in batches
        self._looks: dict[str, tuple[datetime, dict[int, str]]] = {}
        self._looks_lock = threading.Lock()
        self._looks_written = 0.0
        # Who holds the wired bus while this engine reads it (transports.buslock), and how long another
        # master on the same root is waited for; serve-daemon and the web interface name themselves.
        self.bus_purpose = "a sonocli command"
        self.bus_wait = 120.0

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
    def pulses(self) -> Any:
        """This thread's S0 pulse counters (sonocli.store.pulses; SQLite, one per thread)."""
        pulses = getattr(self._local, "pulses", None)
        if pulses is None:
            from sonocli.store.pulses import PulseStore

            self.layout.ext.mkdir(parents=True, exist_ok=True)
            pulses = PulseStore(self.layout.database)
            self._local.pulses = pulses
        return pulses

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            self.layout.ext.mkdir(parents=True, exist_ok=True)
            from sonocli.store.outbox import Outbox

            self._outbox = Outbox(self.layout.database)
        return self._outbox

    def release_thread(self) -> None:
        """Close the calling thread's store connections (worker threads call this before they end), after
        writing what this engine still holds of readings looked at (``--no-store``)."""
        recording.flush_looks(self)
        for name in ("store", "meter_state", "pulses"):
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
        return recording.record(self, readings, csv=csv, store=store)

    def latest_values(self, meter: Meter) -> tuple[datetime, dict[int, str]] | None:
        """(time, {list index: value text}) of the newest values known of a listed meter (``meters show``)."""
        return recording.latest_values(self, meter)

    def meter_statuses(self) -> dict[str, MeterStatus]:
        """Device-ID (upper case) -> status, for ``meters list``/``show`` ("*": value list limited)."""
        return self.meter_state.statuses()

    def log_csv(self, readings: Sequence[Reading]) -> None:
        """Append what the meter list says is to be delivered (active meters and values) to the CSV log."""
        recording.log_csv(self, readings)

    @staticmethod
    def configured(readings: Iterable[Reading]) -> list[Reading]:
        """The readings as every output carries them: active meters, active values (engine.values)."""
        return recording.configured(readings)

    def iter_configured(self, readings: Iterable[Reading]) -> Iterator[Reading]:
        """:meth:`configured`, one reading at a time (a report cycle streams the store)."""
        return recording.iter_configured(readings)

    def set_s0_value(self, ref: str, value: str) -> ValueWritten:
        """Write a set value to an S0 meter (list and counter; MUC_SETDEVICES S0/ALL): ``meters set-value``."""
        from sonocli.engine.s0 import set_value

        return set_value(self, ref, value)

    def read_manual(self, when: float | None = None) -> Recorded:
        """Readings of the active manual S0/DLDE meters from their set values (Figure 21), recorded like any
        other reading so they reach the CSV log and every report."""
        return recording.read_manual(self, when)

    # -- wired readout (engine.wired) ---------------------------------------------------------------------
    def wired_meters(self) -> list[Meter]:
        return [m for m in self.meters if m.interface is Interface.MBUS and m.active]

    def master_settings(self, **overrides: Any) -> MasterSettings:
        """MBUS_*/METER_* of chip.ini, with command-line overrides (None: keep chip.ini's value)."""
        from sonocli.engine.master import MasterSettings

        return MasterSettings.from_chip_ini(self.chip, **overrides)

    def wired_port(self, url: str | None = None) -> str:
        """The wired port: ``url``, else chip.ini's MBUS_PORT; neither is a UsageError."""
        from sonocli.engine import wired

        return wired.wired_port(self, url)

    def open_master(self, url: str | None = None, settings: MasterSettings | None = None) -> Master:
        """A master on the wired port, with chip.ini's line settings unless ``settings`` are given."""
        from sonocli.engine import wired

        return wired.open_master(self, url, settings)

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
        from sonocli.engine import wired

        return wired.scan(self, url=url, mode=mode, settings=settings, save=save, on_progress=on_progress,
                          cancel=cancel, master=master)

    def scan_inventory(
        self,
        *,
        url: str | None = None,
        mode: str | None = None,
        settings: MasterSettings | None = None,
        save: bool = False,
        against: Path | None = None,
        resume: bool = False,
        on_progress: Callable[[int, int | None, str], None] | None = None,
    ) -> Inventory:
        """``sonocli scan``: the scan above, journalled for ``resume`` (ext/scan_state.json), and compared with
        the meter list (``save``: missing, new, changed) or an installation list (``against``)."""
        from sonocli.engine import inventory

        return inventory.scan(self, url=url, mode=mode, settings=settings, save=save, against=against,
                              resume=resume, on_progress=on_progress)

    def save_found(self, found: Sequence[Meter], max_devices: int | None = None) -> list[Meter]:
        """Merge scan results into the meter list (one locked write); returns the meters actually added."""
        from sonocli.engine import wired

        return wired.save_found(self, found, max_devices)

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
        from sonocli.engine import wired

        return wired.readout(self, meters, url=url, settings=settings, store=store, on_progress=on_progress)

    def read_wired(
        self, meters: Sequence[Meter], *, master: Any = None, cancel: threading.Event | None = None
    ) -> ReadoutSummary:
        """Read ``meters`` one after the other, storing each reading as soon as it is taken (the daemon)."""
        from sonocli.engine import wired

        return wired.read_wired(self, meters, master=master, cancel=cancel)

    # -- wireless reception (engine.wireless) ---------------------------------------------------------------
    def wireless_receivers(self) -> list[tuple[str, str]]:
        """(port URL, dongle name) of the configured wireless receivers."""
        return [(url, dongle) for url, dongle, _mode in self.receiver_configs()]

    def receiver_configs(self) -> list[tuple[str, str, str]]:
        """(port URL, dongle, chip.ini mode) of each configured receiver: what SIGHUP compares to reopen."""
        return wireless.receiver_configs(self)

    @property
    def listen_new(self) -> bool:
        """The guide's "wM-Bus listen" switch (chip.ini WMBUS_LISTEN, a sonocli key): recognise new meters."""
        return bool(self.get("WMBUS_LISTEN"))

    def receiver(
        self, dongle: str, *, interface: int = 1, mode: str | None = None, listen_new: bool | None = None
    ) -> Receiver:
        """A receiver for ``dongle`` with chip.ini's settings of receiver ``interface`` and the meter list."""
        return wireless.receiver(self, dongle, interface=interface, mode=mode, listen_new=listen_new)

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
        return wireless.run_receiver(self, receiver, port, should_stop=should_stop, duration=duration, count=count,
                                     on_heard=on_heard, store=store)

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
        return wireless.listen(self, url, dongle, should_stop=should_stop, duration=duration, on_reading=on_reading,
                               interface=interface)

    # -- the temporary wM-Bus list, guide 5.1.2 (engine.heard) ----------------------------------------------
    def heard_meters(self) -> list[HeardEntry]:
        """Meters heard by any receiver (the daemon's too) that are not in the meter list."""
        return temporary.heard_meters(self)

    def save_heard(self, heard: Sequence[Meter]) -> list[Meter]:
        """Add heard meters to the meter list as given (``listen --save``: inactive, guide 5.1.2)."""
        return temporary.save_heard(self, heard)

    def activate(self, refs: Sequence[str], active: bool = True) -> list[str]:
        """Activate (or deactivate) meters and values of the list, and move activated meters of the
        temporary list into the meter list; all or nothing. Returns what changed, as Device-IDs/refs."""
        return temporary.activate(self, refs, active)

    # -- reports and delivery (engine.delivery) -------------------------------------------------------------
    def channel_specs(self) -> list[ChannelSpec]:
        from sonocli.engine.delivery import configured_channels

        return configured_channels(self.get)

    def make_channel(
        self, spec: ChannelSpec, *, observer: StepObserver | None = None, accept_host_key: bool = False
    ) -> Channel:
        """The channel of ``spec``, built from the registry with chip.ini's settings."""
        from sonocli.engine import delivery

        return delivery.make_channel(self, spec, observer=observer, accept_host_key=accept_host_key)

    def render(self, fmt: str, readings: Sequence[Reading], timestamp: float) -> bytes:
        """``readings`` as one CSV or XML payload (MUC_PROTOCOL_VER, MUC_SCALEVALUES)."""
        from sonocli.engine import delivery

        return delivery.render(self, fmt, readings, timestamp)

    def split(self, fmt: str, readings: list[Reading], timestamp: float, limit: int) -> list[tuple[bytes, int]]:
        """Payloads of at most ``limit`` bytes (REPORT_SIZELIMIT), in reading order; (payload, reading count).

        A single reading larger than the limit still goes out alone: dropping it would lose data.
        """
        from sonocli.engine import delivery

        return delivery.split(self, fmt, readings, timestamp, limit)

    def chunks(
        self, fmt: str, readings: Iterable[Reading], timestamp: float, limit: int
    ) -> Iterator[tuple[bytes, int]]:
        """Stream readings into payloads of at most ``limit`` bytes, holding one payload's readings at a time.

        Memory stays bounded by REPORT_SIZELIMIT however many readings wait (a long outage, a big fleet).
        """
        from sonocli.engine import delivery

        return delivery.chunks(self, fmt, readings, timestamp, limit)

    def build_reports(self, specs: Iterable[ChannelSpec] | None = None) -> list[OutboxItem]:
        """Queue one report cycle per channel: every reading not yet in a report of that channel.

        The readings are read in one SQLite snapshot and the cursor is moved to that snapshot's newest id
        in the same transaction that queues the reports, so nothing is lost or reported twice.
        """
        from sonocli.engine import delivery

        return delivery.build_reports(self, specs)

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
        from sonocli.engine import delivery

        return delivery.deliver(self, specs, force=force, stop=stop, observer=observer, on_channel=on_channel)

    def test_push(
        self, *, observer: StepObserver, accept_host_key: bool = False
    ) -> list[tuple[str, PushError | None]]:
        """The Test button (guide 4.4: "Test allows the immediate transmission of data"): the latest reading
        of every meter, as configured, sent now as a normal report on every channel; (channel, error)."""
        from sonocli.engine import delivery

        return delivery.test_push(self, observer=observer, accept_host_key=accept_host_key)
