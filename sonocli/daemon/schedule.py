"""When things are due, with chip.ini semantics; pure functions of time so tests need no clock at all.

- Readouts every METER_TIME seconds, aligned to UTC multiples of the interval, each started METER_DELAY s
  late; a meter with its own ``readoutcycle`` (device_handle.cfg, tab Meter "Cycle": "0 means using the
  general readout interval") is read every that many seconds instead, shorter or longer than METER_TIME.
- Reports every REPORT_TIME minutes, aligned likewise, started REPORT_DELAY min late plus a random delay
  of up to REPORT_RANDOMDELAY min - or up to 12.5 % of the report interval when that is 0 (Table 25) -
  so that a fleet of concentrators does not hit the head-end in the same second.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Protocol


class WallClock(Protocol):
    """UNIX time that the daemon can wait on; ``wake`` ends a wait early (signals)."""

    def now(self) -> float: ...

    def wait_until(self, when: float, wake: threading.Event) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def wait_until(self, when: float, wake: threading.Event) -> None:
        delay = when - time.time()
        if delay > 0:
            wake.wait(delay)


class FastClock:
    """Virtual UNIX time that jumps to the next due time: a simulated day runs in seconds (tests, benchmark)."""

    def __init__(self, start: float) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def wait_until(self, when: float, wake: threading.Event) -> None:
        with self._lock:
            if when > self._now and not wake.is_set():
                self._now = when


def next_aligned(now: float, interval: float, offset: float = 0.0) -> float:
    """The first ``k*interval + offset`` strictly after ``now``."""
    if interval <= 0:
        raise ValueError("interval must be positive")
    base = (now - offset) // interval * interval + offset
    return base + interval if base <= now else base


def report_jitter(report_minutes: int, random_minutes: int, rng: Callable[[], float] = random.random) -> float:
    """REPORT_RANDOMDELAY in seconds, drawn anew each cycle; 0 means 12.5 % of the report interval."""
    span = random_minutes * 60.0 if random_minutes > 0 else report_minutes * 60.0 * 0.125
    return rng() * span


def meter_due(last: float | None, cycle: int, now: float) -> bool:
    """A meter with its own readout cycle (``readoutcycle`` s, Table 26) is due ``cycle`` s after its last read.

    Meters with cycle 0 follow METER_TIME and are not asked here. One second of slack absorbs the time the
    readout itself took.
    """
    if last is None:
        return True
    return now - last >= cycle - 1.0
