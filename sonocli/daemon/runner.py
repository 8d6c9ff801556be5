"""``serve-daemon``: the Engine run continuously with chip.ini semantics.

Main thread: the scheduler. It runs one step at a time (readout, report, delivery retry) in a worker
thread and watches it: a step that outlives its WATCHDOG_* timeout is aborted (sockets closed, the wired
link closed, a cancel flag set) and logged with the reason; if it still does not end, the daemon exits with
status 70 so that the service manager restarts it - the only way to "restart" a thread that ignores
cancellation. Wireless receivers and the TCP server (XMLTOTCP_IP empty) run in their own threads all the
time. SIGTERM/SIGINT let the current step finish and exit cleanly; SIGHUP reloads chip.ini and
device_handle.cfg between steps. A PID file ``ext/sonocli-daemon.pid`` (locked while we run) lets
``sonocli service stop-daemon/restart-daemon`` find us.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sonocli.daemon.schedule import SystemClock, WallClock, meter_due, next_aligned, report_jitter
from sonocli.errors import SonoError

log = logging.getLogger("sonocli.daemon")

PID_FILE = "sonocli-daemon.pid"
EXIT_WATCHDOG = 70
ABORT_GRACE = 10.0
KEEP_DONE = 7 * 86400.0


class WatchdogTripped(SonoError):
    """A step outlived its WATCHDOG_* timeout and could not be stopped."""


@dataclass
class DaemonStats:
    readouts: int = 0
    readings: int = 0
    reports: int = 0
    delivered: int = 0
    failures: int = 0
    watchdog_trips: int = 0
    meter_failures: int = 0
    cycle_cpu: list[float] = field(default_factory=list)


@contextlib.contextmanager
def pid_file(ext: Path) -> Iterator[Path]:
    """Write and lock ``ext/sonocli-daemon.pid``; refuse to start when another daemon holds it."""
    import fcntl

    ext.mkdir(parents=True, exist_ok=True)
    path = ext / PID_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            raise SonoError(f"another serve-daemon (pid {other or '?'}) runs on this root; see {path}",
                            hint="sonocli service stop-daemon") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
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
    ) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.wireless = wireless
        self.until = until  # stop at this clock time (tests, benchmark)
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.reload_requested = False
        self.stats = DaemonStats()
        self.last_read: dict[str, float] = {}
        self._abortables: list[Callable[[], None]] = []
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        engine.now = self.clock.now

    # -- signals --------------------------------------------------------------------------------------------
    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop(self, signum: int, frame: Any) -> None:
        log.info("signal %s: finishing the current step, then exiting", signal.Signals(signum).name)
        self.stop()

    def _on_hup(self, signum: int, frame: Any) -> None:
        self.reload_requested = True
        self.wake.set()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()

    # -- watchdog -------------------------------------------------------------------------------------------
    def guarded(self, what: str, timeout: float, work: Callable[[threading.Event], Any]) -> Any:
        """Run ``work(cancel)`` in a worker thread; abort it when it outlives ``timeout`` seconds."""
        cancel = threading.Event()
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["result"] = work(cancel)
            except BaseException as exc:
                box["error"] = exc
            finally:
                self.engine.release_thread()  # this thread's SQLite connection dies with it

        worker = threading.Thread(target=target, name=f"sonocli-{what}", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
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
        if "error" in box:
            exc = box["error"]
            if isinstance(exc, SonoError | OSError):
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
        now = self.clock.now()
        meters = self.engine.wired_meters() if all_meters else self.due_meters(now, general=general)
        for meter in meters:  # also when the readout fails: a dead meter waits for its next cycle
            self.last_read[meter.device_id] = now
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

        summary = self.guarded("readout", timeout, work)
        self.stats.cycle_cpu.append(time.process_time() - cpu)
        self.stats.readouts += 1
        if summary is not None:
            self.stats.readings += summary.readings
            self.stats.meter_failures += len(summary.failed)
            log.info("readout: %d of %d meter(s) read", summary.readings, len(meters))

    def step_report(self, *, force: bool = True) -> None:
        timeout = float(self.g("WATCHDOG_PROCESS"))

        def build(cancel: threading.Event) -> Any:
            return self.engine.build_reports()

        items = self.guarded("report", timeout, build)
        if items:
            self.stats.reports += len(items)
        self.step_deliver(force=force)
        # delivered reports are kept a week for `outbox list --all`, then their payloads are freed
        self.engine.outbox.prune(KEEP_DONE, self.clock.now())

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

        results = self.guarded("upload", timeout, work)
        for result in (results or {}).values():
            self.stats.delivered += result.sent
        while current:
            self._not_abortable(current.pop().abort)

    # -- background threads -----------------------------------------------------------------------------------
    def start_background(self) -> None:
        if self.wireless:
            for url, dongle in self.engine.wireless_receivers():
                t = threading.Thread(target=self._receive, args=(url, dongle), name=f"sonocli-rx-{url}", daemon=True)
                t.start()
                self._threads.append(t)
        if any(spec.key == "tcp-server" for spec in self.engine.channel_specs()):
            t = threading.Thread(target=self._tcp_server, name="sonocli-tcp-server", daemon=True)
            t.start()
            self._threads.append(t)

    def _receive(self, url: str, dongle: str) -> None:
        while not self.stop_event.is_set():
            try:
                self.engine.listen(url, dongle, should_stop=self.stop_event.is_set)
            except Exception as exc:  # a dongle unplugged: log, wait, reopen
                log.error("wireless receiver %s (%s): %s; retrying in 10 s", url, dongle, exc)
                self.stop_event.wait(10)
            else:
                if not self.stop_event.is_set():
                    self.stop_event.wait(1)

    def _tcp_server(self) -> None:
        from sonocli.push.tcp import serve_pending

        port = self.g("XMLTOTCP_PORT")
        try:
            listener = socket.create_server(("", port), reuse_port=False)
        except OSError as exc:
            log.error("tcp server: cannot listen on port %d: %s", port, exc)
            return
        self._listener = listener
        listener.settimeout(0.5)
        outbox = self.engine.outbox
        log.info("tcp server: head-ends may connect to port %d", listener.getsockname()[1])
        while not self.stop_event.is_set():
            try:
                serve_pending(
                    listener,
                    lambda: [(i.id, outbox.payload(i.id)) for i in outbox.items(channel="tcp-server")],
                    lambda item_id: outbox.mark_done(item_id, self.clock.now()),
                    timeout=float(self.g("XMLTOTCP_DISCONNECTTIMEOUT")),
                )
            except TimeoutError:
                continue
            except OSError as exc:
                log.error("tcp server: %s", exc)
        listener.close()

    # -- main loops -----------------------------------------------------------------------------------------
    def once(self) -> DaemonStats:
        """Cron mode: read every configured meter once, report everything not yet delivered, send, exit."""
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
            self.engine.listen(url, dongle, duration=window,
                               should_stop=lambda: (bool(wanted) and wanted <= seen) or self.stop_event.is_set(),
                               on_reading=lambda r: seen.add(r.meter.serial))
        except Exception as exc:
            log.error("wireless receiver %s (%s): %s", url, dongle, exc)

    def run(self) -> DaemonStats:
        """Until stopped: readouts, reports, retries; returns when SIGTERM (or ``until``) ends it."""
        self.start_background()
        now = self.clock.now()
        next_readout = next_aligned(now, self.g("METER_TIME")) + self.g("METER_DELAY")
        next_report = self._next_report(now)
        log.info("daemon started: next readout %s, next report %s", _ts(next_readout), _ts(next_report))
        # the first readout runs right away: a restarted device has no fresh data
        self.step_readout(all_meters=True)
        while not self.stop_event.is_set():
            # Clear the wake-up flag before looking at what is due: a signal that lands after this line sets
            # it again and cuts the wait short (clearing it later could swallow a SIGTERM).
            self.wake.clear()
            if self.stop_event.is_set():
                break
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
            self.clock.wait_until(due, self.wake)
            if self.stop_event.is_set():
                break
            now = self.clock.now()
            if now < due and self.reload_requested:
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
        self.shutdown()
        return self.stats

    def _next_report(self, now: float) -> float:
        minutes = self.g("REPORT_TIME")
        base = next_aligned(now, minutes * 60.0) + self.g("REPORT_DELAY") * 60.0
        return base + report_jitter(minutes, self.g("REPORT_RANDOMDELAY"), self.rng.random)

    def _next_retry(self) -> float | None:
        # only channels still configured: a report left behind by a disabled channel waits for the engineer
        keys = {spec.key for spec in self.engine.channel_specs()} - {"tcp-server"}
        times = [item.next_try for item in self.engine.outbox.items()
                 if item.channel in keys and item.attempts > 0]
        return min(times) if times else None

    def _reload(self) -> None:
        try:
            self.engine.reload()
            log.info("SIGHUP: chip.ini and device_handle.cfg reloaded (%d meters)", len(self.engine.meters))
        except SonoError as exc:
            log.error("SIGHUP: reload failed, keeping the previous configuration: %s", exc)

    def shutdown(self) -> None:
        self.stop_event.set()
        for t in self._threads:
            t.join(5)
        log.info("daemon stopped")


def _ts(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
