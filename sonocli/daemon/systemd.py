"""systemd without a dependency: ``sd_notify`` over the notification socket, journald's log line format,
and the summary of repeated log events.

``sd_notify`` is a datagram of ``KEY=VALUE`` lines sent to the unix socket named in ``NOTIFY_SOCKET``
(a path, or an abstract name written with a leading ``@``); see sd_notify(3). With ``Type=notify`` the
daemon says ``READY=1`` once it is up, ``STOPPING=1`` when SIGTERM arrives and, with ``WatchdogSec=``,
``WATCHDOG=1`` from its main loop at half of ``WATCHDOG_USEC``: a main loop that stops kicking is killed
and restarted by systemd even if the process watchdog itself were stuck. Without ``NOTIFY_SOCKET`` every
call does nothing, so the same code runs under cron, a shell or another service manager.

journald: when stderr is the journal's stream (``JOURNAL_STREAM`` names its device and inode), lines carry
no timestamp or PID of their own (journald records both) but a ``<N>`` syslog priority prefix, so
``journalctl -p err`` shows errors only.

Repeated events (undecryptable telegrams of a neighbour's meters, CRC errors on a noisy channel) would
otherwise be one line each, many a second: :class:`RepeatSummary` lets the first of a kind through and
then one line per interval with the count.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping

from sonocli.model.valueclass import valueclass

# syslog priorities (RFC 5424) of the logging levels: what journald's SyslogLevelPrefix= reads
PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
DEBUG_PRIORITY = 7


def notify_address(environ: Mapping[str, str]) -> str | bytes | None:
    """The socket address of ``NOTIFY_SOCKET``: a path, or (leading ``@``) an abstract name."""
    name = environ.get("NOTIFY_SOCKET", "")
    if not name:
        return None
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    if name.startswith("/"):
        return name
    return None  # vsock: and other forms are not for a daemon like this one


class Notifier:
    """sd_notify(3): one datagram socket, kept open; every failure is swallowed (systemd may be gone)."""

    def __init__(self, environ: Mapping[str, str] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        env = os.environ if environ is None else environ
        self.address = notify_address(env)
        self.monotonic = monotonic
        self.interval: float | None = None  # seconds between WATCHDOG=1, half of WATCHDOG_USEC
        watchdog_pid = env.get("WATCHDOG_PID", "")
        usec = env.get("WATCHDOG_USEC", "")
        if usec.isdigit() and int(usec) > 0 and (not watchdog_pid or watchdog_pid == str(os.getpid())):
            self.interval = int(usec) / 2e6
        self._next_kick = 0.0
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.stopping_sent = False
        if self.address is not None:
            try:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            except OSError:
                self._sock = None

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *fields: str) -> bool:
        """Send ``KEY=VALUE`` fields in one datagram; False when there is no socket or it failed."""
        if self._sock is None or self.address is None:
            return False
        message = "\n".join(fields).encode()
        with self._lock:
            try:
                self._sock.sendto(message, self.address)
            except OSError:
                return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", f"MAINPID={os.getpid()}", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def stopping(self) -> bool:
        """STOPPING=1 (once): systemd shows "deactivating" and waits TimeoutStopSec for the exit."""
        if self.stopping_sent:
            return False
        self.stopping_sent = True
        return self.send("STOPPING=1", "STATUS=stopping")

    def kick(self) -> bool:
        """WATCHDOG=1 when half of WATCHDOG_USEC passed since the last one (call often; sends rarely)."""
        if self.interval is None or not self.enabled:
            return False
        now = self.monotonic()
        if now < self._next_kick:
            return False
        self._next_kick = now + self.interval
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


# -- journald --------------------------------------------------------------------------------------------
def journal_stream(environ: Mapping[str, str] | None = None, fd: int = 2) -> bool:
    """Whether ``fd`` (stderr) is the journal stream systemd connected (``JOURNAL_STREAM=dev:inode``).

    Compared with the descriptor itself: a shell started from a service inherits the variable while its
    stderr may go to a terminal or a file, and there the line should keep its own time and PID.
    """
    env = os.environ if environ is None else environ
    value = env.get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return st.st_dev == int(dev) and st.st_ino == int(ino)


def priority(levelno: int) -> int:
    for level, prio in PRIORITIES:
        if levelno >= level:
            return prio
    return DEBUG_PRIORITY


class JournalFormatter(logging.Formatter):
    """``<3>sonocli.daemon: message`` - the priority on every line (a traceback's lines too), no time or PID."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.splitlines() or [""])


# -- repeated events -------------------------------------------------------------------------------------
# byte dumps ("73 A5 C2 03"), long hex (frames, IDs), numbers (counts, IDs, positions)
_VARIABLE = re.compile(r"\b(?:[0-9A-Fa-f]{2}\s){2,}[0-9A-Fa-f]{2}\b|\b[0-9A-Fa-f]{6,}\b|\d+(?:\.\d+)?")


def event_kind(record: logging.LogRecord) -> tuple[str, int, str]:
    """What makes two records "the same event": logger, level and the message with its numbers, IDs and hex
    dumps blanked (``meter 12345678: no key`` and ``meter 87654321: no key`` are one kind, and so are
    ``bytes outside a valid frame skipped (91 bytes: 73 A5 …)`` and ``(5 bytes: 20 82 3C FD E6)``)."""
    return record.name, record.levelno, _VARIABLE.sub("#", record.getMessage())[:100]


@valueclass
class _Kind:
    since: float
    suppressed: int = 0
    last: logging.LogRecord | None = None


class RepeatSummary(logging.Filter):
    """A handler filter: per kind of event from the ``loggers`` named, the first record of an interval goes
    through and the others are counted; at the end of the interval one line says how many there were and
    shows the last. A timer thread (:meth:`start`) writes summaries when the events stop coming as well.
    """

    def __init__(self, handler: logging.Handler, loggers: tuple[str, ...] = ("sonocli.receiver",),
                 interval: float = 60.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.handler = handler
        self.loggers = loggers
        self.interval = interval
        self.monotonic = monotonic
        self._kinds: dict[tuple[str, int, str], _Kind] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _watched(self, name: str) -> bool:
        return any(name == n or name.startswith(n + ".") for n in self.loggers)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "sonocli_summary", False) or not self._watched(record.name):
            return True
        now = self.monotonic()
        self.flush(now)
        key = event_kind(record)
        with self._lock:
            kind = self._kinds.get(key)
            if kind is None:
                self._kinds[key] = _Kind(now)
                return True
            kind.suppressed += 1
            kind.last = record
            return False

    def flush(self, now: float | None = None, *, everything: bool = False) -> int:
        """Write the summary of every kind whose interval ended (all of them with ``everything``)."""
        now = self.monotonic() if now is None else now
        due: list[tuple[_Kind, float]] = []
        with self._lock:
            for key, kind in list(self._kinds.items()):
                if everything or now - kind.since >= self.interval:
                    del self._kinds[key]
                    if kind.suppressed and kind.last is not None:
                        due.append((kind, now - kind.since))
        for kind, span in due:
            last = kind.last
            assert last is not None
            summary = logging.LogRecord(last.name, last.levelno, last.pathname, last.lineno,
                                        "%d more like this in the last %.0f s, the last: %s",
                                        (kind.suppressed, span, last.getMessage()), None)
            summary.sonocli_summary = True
            self.handler.handle(summary)
        return len(due)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sonocli-log-summary", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(min(self.interval, 5.0)):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self.flush(everything=True)
