"""The contract between the ``sim://`` serial port and whatever it simulates (wired segment or radio).

A simulated port is a pyserial object on one side and a ``SimPeer`` on the other. The port hands the peer
every byte the host writes, stamped with the clock's time, and asks it which bytes it has sent by a given
time. With a virtual clock the port jumps straight to ``next_event()`` instead of sleeping, so a 50-second
scan at 2400 baud runs in milliseconds with exact wire timings.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class SimPeer(Protocol):
    """The far end of a simulated port."""

    def receive(self, data: bytes, now: float) -> None:
        """Bytes written by the host, complete on the wire at ``now`` (seconds on the port's clock)."""

    def poll(self, now: float) -> bytes:
        """Bytes the peer has put on the wire up to ``now``; each byte is returned once."""

    def next_event(self) -> float | None:
        """When the next byte will be ready (clock seconds), or None when the peer has nothing pending."""


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep_until(self, when: float) -> None: ...


class RealClock:
    """Wall-clock time (monotonic); used by ``sonocli simulate`` and when pacing must be real."""

    def now(self) -> float:
        return time.monotonic()

    def sleep_until(self, when: float) -> None:
        delay = when - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class VirtualClock:
    """Simulated time that only moves when someone waits: tests and benchmarks get exact timings, fast."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep_until(self, when: float) -> None:
        with self._lock:
            if when > self._now:
                self._now = when

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
