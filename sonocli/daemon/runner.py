"""``serve-daemon``: the Engine run continuously with chip.ini semantics.

Main thread: the scheduler. It runs one step at a time (readout, report, delivery retry) in a worker
thread and watches it: a step that outlives its WATCHDOG_* timeout (WATCHDOG_READOUT for a readout,
WATCHDOG_SCAN for a scan, WATCHDOG_PROCESS for a report/upload) is aborted (sockets closed, the wired link
closed, a cancel flag set) and logged with the reason; if it still does not end, the daemon exits with
status 70 so that the service manager restarts it - the only way to "restart" a thread that ignores
cancellation. The main thread itself is watched too, like the device's hardware watchdog: it reports its
state to a :class:`Watchdog` thread - "idle" (kicked at least every WATCHDOG_IDLE/2 s while waiting; limit
WATCHDOG_IDLE), "busy" (its own bookkeeping between steps: WATCHDOG_PROCESS) or a step (the step's limit
plus the abort grace) - and a state that lasts longer than its limit ends the process with status 70.
Wireless receivers (one thread per configured receiver, each with its own stop flag) and the TCP server
(XMLTOTCP_IP empty) run in their own threads all the time. SIGTERM/SIGINT let the current step finish and
exit cleanly; SIGHUP reloads chip.ini and device_handle.cfg between steps and reopens every wireless
receiver whose port, dongle, mode, settings or wM-Bus meters changed (closes those no longer configured,
opens new ones), and the S0 counter when its lines changed; SIGUSR1 starts an M-Bus scan (MBUS_SCANMODE;
the Meters tab's Scan button) whose meters are added to device_handle.cfg. The daemon only schedules:
every reading, scan, report and delivery is an engine call (the dependency rule: daemon/ imports the
engine, the model and errors).
Signal handlers only set flags: the log lines are written by the main thread (a handler that logs could
re-enter a stderr write that the signal interrupted). A PID file ``ext/sonocli-daemon.pid`` (locked while
we run) lets ``sonocli service stop-daemon/restart-daemon`` find us.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sonocli.daemon.schedule import SystemClock, WallClock, meter_due, next_aligned, report_jitter
from sonocli.daemon.systemd import Notifier
from sonocli.engine.recording import batched, catch_up_csv, flush_due
from sonocli.engine.status import HEARTBEAT, StatusTracker
from sonocli.errors import SonoError
from sonocli.model.valueclass import field, valueclass

if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from sonocli.model.namedtuple import NamedTuple  # typing's syntax, not its cost (see there)

log = logging.getLogger("sonocli.daemon")

PID_FILE = "sonocli-daemon.pid"
EXIT_WATCHDOG = 70
ABORT_GRACE = 10.0
KEEP_DONE = 7 * 86400.0
RECEIVER_STOP = 5.0  # seconds a receiver thread gets to close its port when SIGHUP or SIGTERM stops it


class ReceiverConfig(NamedTuple):
    """One wireless receiver as chip.ini configures it (``Engine.receiver_configs``)."""

    url: str
    dongle: str
    mode: str


@valueclass
class RunningReceiver:
    """A receiver thread, the configuration and inputs it opened with, and its own stop flag."""

    config: ReceiverConfig
    inputs: tuple[Any, ...]
    stop: threading.Event
    thread: threading.Thread


@valueclass
class RunningCounter:
    """The S0 counter thread, the lines it counts (line -> meter, GPIO settings) and its own stop flag."""

    inputs: tuple[Any, ...]
    stop: threading.Event
    thread: threading.Thread


class WatchdogTripped(SonoError):
    """A step outlived its WATCHDOG_* timeout and could not be stopped."""


class Watchdog:
    """The process watchdog: the main thread names its state and limit; a thread checks that it moves on.

    A state that lasts longer than its limit calls ``on_hang(state, elapsed, limit)`` once; the daemon's
    default exits the process (status 70) for the service manager to restart, as the device reboots.
    Times are monotonic seconds, independent of the (possibly virtual) scheduling clock.
    """

    def __init__(self, on_hang: Callable[[str, float, float], None],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._on_hang = on_hang
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._state = ("starting", monotonic(), float("inf"))
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def enter(self, state: str, limit: float) -> None:
        """Kick: the main thread is alive and now in ``state`` for at most ``limit`` seconds."""
        with self._lock:
            self._state = (state, self._monotonic(), float(limit))

    def overdue(self) -> tuple[str, float, float] | None:
        with self._lock:
            state, since, limit = self._state
        elapsed = self._monotonic() - since
        return (state, elapsed, limit) if elapsed > limit else None

    def start(self, period: float) -> None:
        self._thread = threading.Thread(target=self._watch, args=(period,), name="sonocli-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _watch(self, period: float) -> None:
        while not self._stop.wait(period):
            hung = self.overdue()
            if hung is not None:
                self._on_hang(*hung)
                return


def exit_for_restart(state: str, elapsed: float, limit: float) -> None:
    """The default ``on_hang``: log why, then end the process so that systemd (Restart=always) restarts it."""
    import sys

    log.critical("watchdog: main loop %s for %.0f s (limit %.0f s); exiting so the service manager restarts "
                 "sonocli", state, elapsed, limit)
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(EXIT_WATCHDOG)


@valueclass
class DaemonStats:
    readouts: int = 0
    readings: int = 0
    reports: int = 0
    delivered: int = 0
    failures: int = 0
    watchdog_trips: int = 0
    meter_failures: int = 0
    manual: int = 0  # readings of manual S0/DLDE meters (also counted in ``readings``)
    cycle_cpu: list[float] = field(default_factory=list)


@contextlib.contextmanager
def pid_file(ext: Path) -> Iterator[Path]:
    """Write and lock ``ext/sonocli-daemon.pid``; refuse to start when another daemon holds it."""
    import fcntl

    path = ext / PID_FILE
    try:
        ext.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        # a read-only (or full) root: the daemon still reads meters and delivers what it can, without the
        # PID file (and so without its guard against a second daemon); said once, here
        log.error("cannot create %s: %s; running without a PID file (service stop-daemon cannot find this "
                  "process; pid %d)", path, exc.strerror or exc, os.getpid())
        yield path
        return
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            raise SonoError(f"another serve-daemon (pid {other or '?'}) runs on this root; see {path}",
                            hint="sonocli service stop-daemon") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            os.fsync(fd)
        except OSError as exc:  # a full disk: the lock holds all the same
            log.error("cannot write %s: %s; the lock is held, but service stop-daemon cannot read the pid "
                      "(%d)", path, exc.strerror or exc, os.getpid())
        yield path
    finally:
        with contextlib.suppress(OSError):
            if os.pread(fd, 32, 0).decode().strip() == str(os.getpid()):
                path.unlink()
        os.close(fd)


class Daemon:
    """The scheduler around one Engine. ``run()`` blocks until stopped; ``once()`` is the cron mode."""

    def __init__(
        self,
        engine: Any,
        *,
        clock: WallClock | None = None,
        rng: random.Random | None = None,
        wireless: bool = True,
        until: float | None = None,
        on_hang: Callable[[str, float, float], None] = exit_for_restart,
        notifier: Notifier | None = None,
        status_every: float | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.wireless = wireless
        self.until = until  # stop at this clock time (tests, benchmark)
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.reload_requested = False
        self.scan_requested = False
        self.stop_requested = False
        self._signal_pipe: int | None = None
        self._signals: list[int] = []  # received, not yet logged (handlers must not write to stderr)
        self.watchdog = Watchdog(on_hang)
        self.stats = DaemonStats()
        self.last_read: dict[str, float] = {}
        self._abortables: list[Callable[[], None]] = []
        self._threads: list[threading.Thread] = []
        self._receivers: dict[int, RunningReceiver] = {}  # by interface: 1 WMBUS_*, 2 WMBUS2_*
        self.s0_source: Any = None  # the S0 edge source (None: the GPIO lines of S0_GPIOCHIP; tests give a fake)
        self._counter: RunningCounter | None = None
        engine.now = self.clock.now
        # systemd (NOTIFY_SOCKET: READY/WATCHDOG/STOPPING; nothing without it) and the status snapshot
        self.notifier = notifier if notifier is not None else Notifier()
        self.status = StatusTracker(engine, clock=self.clock.now, heartbeat=status_every or HEARTBEAT)
        self.last_step_error = ""

    # -- signals --------------------------------------------------------------------------------------------
    def install_signals(self) -> None:
        """Handlers that only set flags and write one byte to a pipe; a relay thread sets the events.

        ``threading.Event.set()`` takes the event's (non-reentrant) lock: called from a handler that
        interrupted the main thread inside ``wake.clear()`` or ``wake.wait()`` it would deadlock. ``os.write``
        to a non-blocking pipe is safe anywhere.
        """
        rfd, wfd = os.pipe()
        os.set_blocking(wfd, False)
        self._signal_pipe = wfd  # kept open for the process's life: a late signal never hits a reused fd
        threading.Thread(target=self._relay_signals, args=(rfd,), name="sonocli-signals", daemon=True).start()
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGUSR1, self._on_usr1)

    def _relay_signals(self, rfd: int) -> None:
        while os.read(rfd, 64):
            if self.stop_requested:
                self.notifier.stopping()  # at once, not after the current step: systemd shows "deactivating"
                self.stop_event.set()  # before wake: the main loop looks at stop_event once woken
            self.wake.set()

    def _poke(self) -> None:
        if self._signal_pipe is not None and threading.current_thread() is threading.main_thread():
            with contextlib.suppress(OSError):  # pipe full: a wake-up is pending anyway
                os.write(self._signal_pipe, b"!")
        else:  # called from another thread (tests, embedders): setting the events directly is safe
            if self.stop_requested:
                self.stop_event.set()
            self.wake.set()

    def _on_stop(self, signum: int, frame: Any) -> None:
        self._signals.append(signum)
        self.stop_requested = True
        self._poke()

    def _on_hup(self, signum: int, frame: Any) -> None:
        self._signals.append(signum)
        self.reload_requested = True
        self._poke()

    def _on_usr1(self, signum: int, frame: Any) -> None:
        self._signals.append(signum)
        self.scan_requested = True
        self._poke()

    def log_signals(self) -> None:
        """Log the signals received since the last call (main thread only)."""
        while self._signals:
            signum = self._signals.pop(0)
            name = signal.Signals(signum).name
            if signum in (signal.SIGTERM, signal.SIGINT):
                log.info("signal %s: finishing the current step, then exiting", name)
            elif signum == signal.SIGHUP:
                log.info("signal %s: reloading chip.ini, device_handle.cfg and the wireless receivers after the "
                         "current step", name)
            else:
                log.info("signal %s: M-Bus scan after the current step", name)

    @property
    def stopping(self) -> bool:
        """SIGTERM seen (the flag is set in the handler, the event a moment later by the relay thread)."""
        return self.stop_requested or self.stop_event.is_set()

    def stop(self) -> None:
        """Stop after the current step (any thread but a signal handler: see :meth:`install_signals`)."""
        self.stop_requested = True
        self.stop_event.set()
        self.wake.set()

    # -- watchdog -------------------------------------------------------------------------------------------
    def guarded(self, what: str, timeout: float, work: Callable[[threading.Event], Any]) -> Any:
        """Run ``work(cancel)`` in a worker thread; abort it when it outlives ``timeout`` seconds."""
        cancel = threading.Event()
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                # every reading the step records is stored in one transaction when it ends (flash wear); a
                # disk that cannot take them keeps them held and logs why (sonocli.engine.recording)
                with batched(self.engine):
                    box["result"] = work(cancel)
            except BaseException as exc:
                box["error"] = exc
            finally:
                self.engine.release_thread()  # this thread's SQLite connection dies with it

        worker = threading.Thread(target=target, name=f"sonocli-{what}", daemon=True)
        # the process watchdog backs this one up: the aborts below run in this thread and could hang too
        self.watchdog.enter(what, timeout + 2 * ABORT_GRACE + 5.0)
        worker.start()
        deadline = time.monotonic() + timeout
        while worker.is_alive() and (left := deadline - time.monotonic()) > 0:
            worker.join(min(left, 1.0, self.notifier.interval or 1.0))
            self.log_signals()
            self._alive()
        aborted = worker.is_alive()
        if aborted:
            self.stats.watchdog_trips += 1
            log.error("watchdog: %s still running after %.0f s; aborting it", what, timeout)
            cancel.set()
            for abort in list(self._abortables):
                with contextlib.suppress(Exception):
                    abort()
            worker.join(ABORT_GRACE)
            if worker.is_alive():
                log.critical("watchdog: %s does not stop; exiting so the service manager restarts sonocli", what)
                raise WatchdogTripped(f"watchdog: {what} hung and could not be aborted")
            log.error("watchdog: %s aborted; it runs again at its next due time", what)
        self._busy()
        if "error" in box:
            exc = box["error"]
            # after an abort, whatever the step died of (pyserial raises TypeError on a port closed under a
            # read) is the abort's doing, not a bug to crash the daemon with
            if aborted or isinstance(exc, SonoError | OSError):
                self.last_step_error = f"{what} failed: {exc}"
                self.stats.failures += 1
                log.error("%s failed: %s", what, exc)
                return None
            raise exc
        return box.get("result")

    def _abortable(self, abort: Callable[[], None]) -> None:
        self._abortables.append(abort)

    def _not_abortable(self, abort: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._abortables.remove(abort)

    def _busy(self) -> None:
        """The main thread's own work between steps (queries, pruning, reload) is "busy": WATCHDOG_PROCESS."""
        self.watchdog.enter("busy", float(self.g("WATCHDOG_PROCESS")))

    def idle_until(self, due: float) -> None:
        """Wait for ``due`` (or a signal), kicking the watchdog at least every WATCHDOG_IDLE/2 seconds."""
        limit = float(self.g("WATCHDOG_IDLE"))
        beat = max(0.05, min(limit / 2.0, self.notifier.interval or limit, self.status.heartbeat))
        while not self.wake.is_set():
            self.watchdog.enter("idle", limit)
            self._alive()
            now = self.clock.now()
            if now >= due:
                break
            self.clock.wait_until(min(due, now + beat), self.wake)
        self._busy()

    def _alive(self) -> None:
        """The main thread moves on: WATCHDOG=1 to systemd when due, and the status heartbeat."""
        self.notifier.kick()
        self.status.write(force=False)

    # -- steps ----------------------------------------------------------------------------------------------
    def g(self, name: str) -> int:
        return int(self.engine.get(name))

    def due_meters(self, now: float, *, general: bool) -> list[Any]:
        """Meters on the general cycle when its tick came, and meters whose own cycle has run out."""
        out = []
        for m in self.engine.wired_meters():
            if m.readout_cycle > 0:
                if meter_due(self.last_read.get(m.device_id), m.readout_cycle, now):
                    out.append(m)
            elif general:
                out.append(m)
        return out

    def next_own_cycle(self) -> float | None:
        """When the next meter with its own readout cycle is due (None: no such meter)."""
        times = [self.last_read.get(m.device_id, 0.0) + m.readout_cycle
                 for m in self.engine.wired_meters() if m.readout_cycle > 0]
        return min(times) if times else None

    def step_readout(self, *, all_meters: bool = False, general: bool = True) -> None:
        """One readout: the due wired meters, and on the general cycle the manual S0/DLDE meters too."""
        now = self.clock.now()
        meters = self.engine.wired_meters() if all_meters else self.due_meters(now, general=general)
        for meter in meters:  # also when the readout fails: a dead meter waits for its next cycle
            self.last_read[meter.device_id] = now
        self._read_wired(meters)
        if str(self.engine.get("DLDE_PORT") or "").strip():  # DLDE meters on DLDE_PORT (sonocli.engine.dlde)
            from sonocli.engine.dlde import read_due

            self.last_step_error = ""
            results = self.guarded("dlde", float(self.g("WATCHDOG_READOUT")), lambda cancel: read_due(
                self.engine, self.last_read, now, general=general or all_meters, cancel=cancel))
            if results:
                good = sum(r.error is None for r in results)
                self.status.event("dlde", good == len(results), f"{good} of {len(results)} meter(s) read")
            elif results is None:
                self.status.event("dlde", False, self.last_step_error or "readout failed")
        if (general or all_meters) and str(self.engine.get("SML_PORT") or "").strip():  # SML meters pushing
            from sonocli.engine import sml

            self.guarded("sml", float(self.g("WATCHDOG_READOUT")), lambda cancel: sml.read_due(self.engine, cancel))
        if general or all_meters:
            self.step_manual()

    def _read_wired(self, meters: list[Any]) -> None:
        if not meters or not str(self.engine.get("MBUS_PORT") or "").strip() or not self.engine.get("MBUS_ENABLE"):
            return
        timeout = max(self.g("WATCHDOG_READOUT"), self.g("WATCHDOG_PROCESS"))
        cpu = time.process_time()

        def work(cancel: threading.Event) -> Any:
            master = self.engine.open_master()
            close = master.link.close
            self._abortable(close)
            try:
                return self.engine.read_wired(meters, master=master, cancel=cancel)
            finally:
                self._not_abortable(close)
                with contextlib.suppress(Exception):
                    close()

        self.last_step_error = ""
        summary = self.guarded("readout", timeout, work)
        self.stats.cycle_cpu.append(time.process_time() - cpu)
        self.stats.readouts += 1
        if summary is not None:
            self.stats.readings += summary.readings
            self.stats.meter_failures += len(summary.failed)
            log.info("readout: %d of %d meter(s) read", summary.readings, len(meters))
            self.status.event("mbus", not summary.failed, f"{summary.readings} of {len(meters)} meter(s) read")
        else:
            self.status.event("mbus", False, self.last_step_error or "readout failed")

    def step_manual(self) -> None:
        """Record the set values of the active manual S0/DLDE meters (Figure 21) once per readout cycle.

        Nothing reads these meters, so without this their values would never reach the CSV log or a report;
        recording them every cycle gives each report the current set values, stamped like the other readings.
        """
        from sonocli.engine.values import MANUAL

        if not any(m.active and m.interface in MANUAL for m in self.engine.meters):
            return
        recorded = self.guarded("manual", float(self.g("WATCHDOG_PROCESS")),
                                lambda cancel: self.engine.read_manual())
        if recorded is not None:
            self.stats.readings += len(recorded.readings)
            self.stats.manual += len(recorded.readings)
            log.info("manual: %d S0/DLDE meter(s) recorded", len(recorded.readings))

    def step_scan(self) -> None:
        """An M-Bus scan (MBUS_SCANMODE) under WATCHDOG_SCAN; found meters are added to device_handle.cfg.

        The engine scans, merges the meters found into the meter list (additively, guide 4.2) and reads the
        added ones once; the daemon only opens the master itself so that the watchdog can close its link.
        """
        if not str(self.engine.get("MBUS_PORT") or "").strip() or not self.engine.get("MBUS_ENABLE"):
            log.error("scan: the wired M-Bus is off (MBUS_ENABLE=0 or MBUS_PORT empty); nothing scanned")
            return

        def work(cancel: threading.Event) -> Any:
            master = self.engine.open_master()
            close = master.link.close
            self._abortable(close)
            try:
                return self.engine.scan(save=True, master=master, cancel=cancel)
            finally:
                self._not_abortable(close)
                with contextlib.suppress(Exception):
                    close()

        log.info("scan: %s started (WATCHDOG_SCAN %d s)", self.engine.get("MBUS_SCANMODE"), self.g("WATCHDOG_SCAN"))
        outcome = self.guarded("scan", float(self.g("WATCHDOG_SCAN")), work)
        if outcome is None:
            return
        learned = len(outcome.recorded.learned)
        log.info("scan: %d meter(s) found, %d added to the meter list%s", len(outcome.result.meters),
                 len(outcome.added), f" (value entries of {learned} recorded)" if outcome.added else "")

    def step_csv_catch_up(self) -> None:
        """On start: append to the CSV log what the database holds and the log does not (issue 13)."""
        appended = self.guarded("csv log", float(self.g("WATCHDOG_PROCESS")),
                                lambda cancel: catch_up_csv(self.engine))
        if appended:
            log.warning("CSV log: %d reading(s) stored before a crash or a full disk appended now", appended)

    def step_report(self, *, force: bool = True) -> None:
        timeout = float(self.g("WATCHDOG_PROCESS"))

        def build(cancel: threading.Event) -> Any:
            return self.engine.build_reports()

        items = self.guarded("report", timeout, build)
        if items:
            self.stats.reports += len(items)
        self.step_deliver(force=force)
        # delivered reports are kept a week for `outbox list --all`, then their payloads are freed
        try:
            self.engine.outbox.prune(KEEP_DONE, self.clock.now())
        except SonoError as exc:  # a full or read-only disk: pruning waits for the next report cycle
            log.debug("delivered reports not pruned: %s", exc)

    def step_deliver(self, *, force: bool = False) -> None:
        timeout = float(self.g("WATCHDOG_PROCESS"))
        current: list[Any] = []

        def on_channel(channel: Any) -> None:
            if current:
                self._not_abortable(current.pop().abort)
            if channel is not None:
                current.append(channel)
                self._abortable(channel.abort)

        def work(cancel: threading.Event) -> Any:
            return self.engine.deliver(force=force, stop=cancel, on_channel=on_channel)

        self.last_step_error = ""
        results = self.guarded("upload", timeout, work)
        for key, result in (results or {}).items():
            self.stats.delivered += result.sent
            self.status.delivery(key, result.sent, result.failed, result.error)
        if results is None and self.last_step_error:
            for spec in self.engine.channel_specs():
                if spec.key != "tcp-server":
                    self.status.delivery(spec.key, 0, 1, self.last_step_error)
        while current:
            self._not_abortable(current.pop().abort)

    # -- background threads -----------------------------------------------------------------------------------
    def start_background(self) -> None:
        if self.wireless:
            self._sync_receivers(initial=True)
        self._sync_counter(initial=True)
        if any(spec.key == "tcp-server" for spec in self.engine.channel_specs()):
            t = threading.Thread(target=self._tcp_server, name="sonocli-tcp-server", daemon=True)
            t.start()
            self._threads.append(t)

    def _receiver_plan(self) -> dict[int, ReceiverConfig]:
        """The configured receivers by interface (1: WMBUS_*, 2: WMBUS2_*), as the engine assigns them."""
        first = str(self.engine.get("WMBUS_PORT") or "").strip()
        second = str(self.engine.get("WMBUS2_PORT") or "").strip()
        plan: dict[int, ReceiverConfig] = {}
        for url, dongle, mode in self.engine.receiver_configs():
            slot = 2 if url == second != first else 1
            plan.setdefault(slot, ReceiverConfig(url, dongle, mode))  # one port is opened once
        return plan

    def _receiver_inputs(self, slot: int, config: ReceiverConfig) -> tuple[Any, ...]:
        """What a receiver takes in when it opens, besides port, dongle and mode: its chip.ini settings
        (cache, raw log, FASTRESCAN_TIME, wM-Bus listen) and the wireless meters of the list (IDs, keys,
        active flags). A change of either reopens it on SIGHUP, so a key or an activation takes effect."""
        from sonocli.model.values import Interface

        try:
            settings: Any = self.engine.receiver(config.dongle, interface=slot).settings
        except SonoError as exc:  # the thread's open fails and logs the same error; reopen to retry it
            settings = ("invalid", str(exc))
        meters = frozenset((m.serial.upper(), m.manufacturer, m.version, m.medium, m.key, m.active)
                           for m in self.engine.meters if m.interface is Interface.WMBUS)
        return settings, meters

    def _sync_receivers(self, *, initial: bool = False) -> None:
        """Make the receiver threads match the configuration: stop the threads whose receiver disappeared
        or changed, then start the new ones (stopping first frees a port that moved between receivers)."""
        plan = self._receiver_plan()
        inputs = {slot: self._receiver_inputs(slot, config) for slot, config in plan.items()}
        changes: dict[int, str] = {}
        for slot, running in sorted(self._receivers.items()):
            wanted = plan.get(slot)
            if wanted == running.config and inputs[slot] == running.inputs:
                continue
            if wanted is None:
                changes[slot] = f"closed (port {running.config.url})"
            elif wanted == running.config:
                changes[slot] = f"reopened (port {wanted.url}; its settings or wM-Bus meters changed)"
            else:
                changes[slot] = f"reopened ({_describe_change(running.config, wanted)})"
            self._stop_receiver(running)
            del self._receivers[slot]
            self.status.drop_interface(f"wmbus{slot}")
        for slot, config in sorted(plan.items()):
            if slot in self._receivers:
                continue
            self._start_receiver(slot, config, inputs[slot])
            if initial:
                log.info("wireless receiver %d: %s on %s (%s)", slot, config.dongle, config.url, config.mode)
            elif slot not in changes:
                changes[slot] = f"opened (port {config.url}, {config.dongle}, {config.mode})"
        for slot, change in sorted(changes.items()):
            log.info("SIGHUP: wireless receiver %d %s", slot, change)

    def _start_receiver(self, slot: int, config: ReceiverConfig, inputs: tuple[Any, ...]) -> None:
        stop = threading.Event()
        self.status.interface(f"wmbus{slot}", f"wmbus ({config.dongle}, {config.mode})", config.url)
        thread = threading.Thread(target=self._receive, args=(slot, config.url, config.dongle, stop),
                                  name=f"sonocli-rx{slot}-{config.url}", daemon=True)
        self._receivers[slot] = RunningReceiver(config, inputs, stop, thread)
        thread.start()

    def _stop_receiver(self, running: RunningReceiver) -> None:
        running.stop.set()
        running.thread.join(RECEIVER_STOP)
        if running.thread.is_alive():  # it sees its stop flag after its current read and ends by itself
            log.warning("wireless receiver on %s did not stop within %.0f s", running.config.url, RECEIVER_STOP)

    def _receive(self, slot: int, url: str, dongle: str, own_stop: threading.Event) -> None:
        """One receiver, reopened after an error (a dongle unplugged) until the daemon or SIGHUP stops it.

        Every (re)open builds the receiver from the engine's current chip.ini and meter list.
        """

        def halted() -> bool:
            return self.stop_event.is_set() or own_stop.is_set()

        def polled() -> bool:  # between telegrams: store what is held once it waited STORE_COMMITINTERVAL
            flush_due(self.engine)
            return halted()

        try:
            while not halted():
                try:
                    with batched(self.engine):
                        self.engine.listen(url, dongle, should_stop=polled, interface=slot,
                                           on_reading=lambda r: self.status.reception(f"wmbus{slot}",
                                                                                      r.meter.device_id))
                except Exception as exc:  # a dongle unplugged: log, wait, reopen
                    if halted():
                        break
                    log.error("wireless receiver %s (%s): %s; retrying in 10 s", url, dongle, exc)
                    self.status.event(f"wmbus{slot}", False, f"receiver error: {exc}")
                    own_stop.wait(10)
                else:
                    if not halted():
                        own_stop.wait(1)
        finally:
            self.engine.release_thread()  # this thread's SQLite connections die with it

    def _counter_inputs(self) -> tuple[Any, ...]:
        """What the S0 counter opens with: the GPIO chip, edge and debounce of chip.ini and which meter each
        line counts for. A change of any (a line added or moved on SIGHUP) reopens the counter; a set value
        changed in the list needs no reopen (the readout writes it, sonocli.engine.s0.with_counts)."""
        from sonocli.engine.s0 import counted_meters

        try:
            lines = tuple(sorted((line, meter.device_id) for line, meter in counted_meters(self.engine).items()))
        except SonoError as exc:  # the thread's start fails with the same error and logs it
            return ("invalid", str(exc))
        if not lines and self.s0_source is None:
            return ()
        return (str(self.engine.get("S0_GPIOCHIP")), str(self.engine.get("S0_EDGE")),
                int(self.engine.get("S0_DEBOUNCE")), lines)

    def _sync_counter(self, *, initial: bool = False) -> None:
        """Make the S0 counter thread match the meter list and chip.ini: start it when S0 lines are
        configured, reopen it when they changed (SIGHUP), stop it when none are left. Counted pulses are in
        the store already, so a reopen loses none; edges while the lines are closed (a moment) are missed,
        as on the device."""
        inputs = self._counter_inputs()
        running = self._counter
        if running is not None and running.inputs == inputs and running.thread.is_alive():
            return
        if running is not None:
            running.stop.set()
            running.thread.join(RECEIVER_STOP)
            if running.thread.is_alive():
                log.warning("S0 counter did not stop within %.0f s", RECEIVER_STOP)
            self._counter = None
        if not inputs:
            if running is not None:
                log.info("SIGHUP: S0 counter closed (no S0 line configured)")
            return
        stop = threading.Event()
        thread = threading.Thread(target=self._count_pulses, args=(stop,), name="sonocli-s0", daemon=True)
        self._counter = RunningCounter(inputs, stop, thread)
        thread.start()
        if not initial:
            lines = inputs[3] if len(inputs) == 4 else ()
            log.info("SIGHUP: S0 counter %s (lines %s)", "reopened" if running is not None else "opened",
                     ", ".join(f"{line}={device}" for line, device in lines) or "-")

    def _count_pulses(self, own_stop: threading.Event) -> None:
        """The S0 counter (sonocli.engine.s0): edges of the S0 lines into the store until the daemon stops
        or SIGHUP reopens it. A missing or busy GPIO line is one error line; the other meters are read on."""
        from sonocli.engine.s0 import run_counter

        try:
            run_counter(self.engine, lambda: self.stop_event.is_set() or own_stop.is_set(), self.s0_source)
        except SonoError as exc:
            log.error("%s", exc)
        finally:
            self.engine.release_thread()

    def _tcp_server(self) -> None:
        """XMLTOTCP_IP empty: head-ends connect to XMLTOTCP_PORT and fetch the pending reports."""
        from sonocli.engine.tcpserver import open_tcp_server

        try:
            server = open_tcp_server(self.engine)
        except SonoError as exc:
            log.error("%s", exc)
            return
        log.info("tcp server: head-ends may connect to port %d", server.port)
        self.status.listening(server.describe())
        try:
            while not self.stop_event.is_set():
                try:
                    server.serve_one()
                except OSError as exc:
                    log.error("tcp server: %s", exc)
        finally:
            server.close()
            self.status.listening(None)
            self.engine.release_thread()

    # -- main loops -----------------------------------------------------------------------------------------
    def once(self) -> DaemonStats:
        """Cron mode: read every configured meter once, report everything not yet delivered, send, exit."""
        self.step_csv_catch_up()
        self.step_readout(all_meters=True)
        if self.wireless:
            for url, dongle in self.engine.wireless_receivers():
                self._listen_once(url, dongle)
        self.step_report(force=True)
        return self.stats

    def _listen_once(self, url: str, dongle: str) -> None:
        from sonocli.model.values import Interface

        wanted = {m.serial for m in self.engine.meters if m.interface is Interface.WMBUS and m.active}
        seen: set[str] = set()
        window = float(max(60, self.g("FASTRESCAN_TIME")))
        try:
            with batched(self.engine):
                self.engine.listen(url, dongle, duration=window,
                                   should_stop=lambda: (bool(wanted) and wanted <= seen) or self.stop_event.is_set(),
                                   on_reading=lambda r: seen.add(r.meter.serial))
        except Exception as exc:
            log.error("wireless receiver %s (%s): %s", url, dongle, exc)

    def run(self) -> DaemonStats:
        """Until stopped: readouts, reports, retries; returns when SIGTERM (or ``until``) ends it."""
        self._busy()
        self.watchdog.start(min(1.0, max(0.02, self.g("WATCHDOG_IDLE") / 4.0)))
        try:
            return self._run()
        finally:
            self.watchdog.stop()

    def _run(self) -> DaemonStats:
        # the first snapshot before any thread starts: it also creates and migrates a new database alone
        # (two connections switching a fresh file to WAL at once can fail with "database is locked")
        self.status.write()
        self.start_background()
        now = self.clock.now()
        next_readout = next_aligned(now, self.g("METER_TIME")) + self.g("METER_DELAY")
        next_report = self._next_report(now)
        log.info("daemon started: next readout %s, next report %s", _ts(next_readout), _ts(next_report))
        if str(self.engine.get("MBUS_PORT") or "").strip() and self.engine.get("MBUS_ENABLE"):
            self.status.interface("mbus", "mbus", str(self.engine.get("MBUS_PORT")))
        if str(self.engine.get("DLDE_PORT") or "").strip():
            self.status.interface("dlde", "dlde", str(self.engine.get("DLDE_PORT")))
        self.status.schedule(next_readout, next_report)
        self.status.write()
        # up: receivers and servers opened; the first readout may take minutes, systemd need not wait for it
        self.notifier.ready(f"next readout {_ts(next_readout)}, next report {_ts(next_report)}")
        # the CSV log first gets what the database holds and it does not (a crash, a full disk), then the first
        # readout runs right away: a restarted device has no fresh data
        self.step_csv_catch_up()
        self.step_readout(all_meters=True)
        while not self.stopping:
            self.status.schedule(next_readout, next_report)
            self.status.write()  # after every step: what `sonocli status` shows
            # Clear the wake-up flag before looking at what is due: a signal that lands after this line sets
            # it again and cuts the wait short (clearing it later could swallow a SIGTERM).
            self.wake.clear()
            self.log_signals()
            if self.stopping:
                break
            if self.scan_requested:
                self.scan_requested = False
                self.step_scan()
                continue
            if self.reload_requested:
                self.reload_requested = False
                self._reload()
                now = self.clock.now()
                next_readout = next_aligned(now, self.g("METER_TIME")) + self.g("METER_DELAY")
                next_report = self._next_report(now)
            retry = self._next_retry()
            own = self.next_own_cycle()
            due = min(next_readout, next_report, retry if retry is not None else float("inf"),
                      own if own is not None else float("inf"))
            if self.until is not None and due > self.until:
                break
            self.idle_until(due)
            self.log_signals()
            if self.stopping:
                break
            now = self.clock.now()
            if now < due and (self.reload_requested or self.scan_requested):
                continue
            general = now >= next_readout
            if general or (own is not None and now >= own - 1.0):
                self.step_readout(general=general)
            if general:
                next_readout = next_aligned(self.clock.now(), self.g("METER_TIME")) + self.g("METER_DELAY")
            if now >= next_report:
                self.step_report(force=True)
                next_report = self._next_report(self.clock.now())
            elif retry is not None and now >= retry:
                self.step_deliver(force=False)
        self.log_signals()
        self.shutdown()
        return self.stats

    def _next_report(self, now: float) -> float:
        minutes = self.g("REPORT_TIME")
        base = next_aligned(now, minutes * 60.0) + self.g("REPORT_DELAY") * 60.0
        return base + report_jitter(minutes, self.g("REPORT_RANDOMDELAY"), self.rng.random)

    def _next_retry(self) -> float | None:
        # only channels still configured: a report left behind by a disabled channel waits for the engineer
        keys = {spec.key for spec in self.engine.channel_specs()} - {"tcp-server"}
        try:
            pending = self.engine.outbox.items()
        except SonoError as exc:  # a full or read-only root without an outbox yet: nothing to retry
            log.debug("outbox not read: %s", exc)
            return None
        times = [item.next_try for item in pending if item.channel in keys and item.attempts > 0]
        return min(times) if times else None

    def _reload(self) -> None:
        """SIGHUP: chip.ini and device_handle.cfg anew, and the wireless receivers to match them."""
        try:
            self.engine.reload()
            log.info("SIGHUP: chip.ini and device_handle.cfg reloaded (%d meters)", len(self.engine.meters))
        except SonoError as exc:
            log.error("SIGHUP: reload failed, keeping the previous configuration: %s", exc)
            return
        if self.wireless:
            try:
                self._sync_receivers()
            except SonoError as exc:
                log.error("SIGHUP: wireless receivers not reopened: %s", exc)
        try:
            self._sync_counter()
        except SonoError as exc:
            log.error("SIGHUP: S0 counter not reopened: %s", exc)

    def shutdown(self) -> None:
        receivers = list(self._receivers.values())
        counter = [self._counter] if self._counter is not None else []
        self.watchdog.enter("stopping", 5.0 * (len(self._threads) + len(receivers) + len(counter) + 1) + 5.0)
        self.stop_event.set()
        for flag in [*(r.stop for r in receivers), *(c.stop for c in counter)]:
            flag.set()
        for t in [*self._threads, *(r.thread for r in receivers), *(c.thread for c in counter)]:
            t.join(5)
        self._receivers.clear()
        self._counter = None
        self.notifier.stopping()
        self.status.stop()
        log.info("daemon stopped")


def _describe_change(old: ReceiverConfig, new: ReceiverConfig) -> str:
    """``port A -> B`` (and dongle/mode when those changed too), for the SIGHUP log line."""
    parts = [f"port {old.url} -> {new.url}" if old.url != new.url else f"port {new.url}"]
    if old.dongle != new.dongle:
        parts.append(f"dongle {old.dongle} -> {new.dongle}")
    if old.mode != new.mode:
        parts.append(f"mode {old.mode} -> {new.mode}")
    return ", ".join(parts)


def _ts(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
