"""Serve a simulated wired segment on a pseudo-terminal, in real time, for other M-Bus software.

The slave fd is kept open for the server's lifetime: once the last slave fd closes, reads on the master
return EIO (TESTING.md §5). A pty has no baud timing, so answers are paced by the segment at the baud
rate given (11 bits per character), with real response delays.
"""

from __future__ import annotations

import os
import select
import termios
import threading
import tty
from typing import Any

from sonocli.sim.peer import RealClock


class PtyServer:
    """Runs ``segment`` behind a new pty until ``stop()``; ``path`` is what clients open."""

    def __init__(self, segment: Any, baudrate: int = 2400, link: str | None = None) -> None:
        self.segment = segment
        self.clock = RealClock()
        self.master_fd, self.slave_fd = os.openpty()
        tty.setraw(self.slave_fd)
        self._stop = threading.Event()
        self._unpin_speed()
        self.path = os.ttyname(self.slave_fd)
        self.link = link
        if link:
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(self.path, link)
        segment.set_host_line(baudrate, True)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        while not self._stop.is_set():
            event = self.segment.next_event()
            now = self.clock.now()
            wait = 0.2 if event is None else max(0.0, min(0.2, event - now))
            ready, _, _ = select.select([self.master_fd], [], [], wait)
            if ready:
                try:
                    data = os.read(self.master_fd, 4096)
                except OSError:
                    break
                if data:
                    self.segment.receive(data, self.clock.now())
            out = self.segment.poll(self.clock.now())
            if out:
                os.write(self.master_fd, out)
            self._unpin_speed()

    def _unpin_speed(self) -> None:
        """Keep the slave at a speed no client uses, so every client open changes the speed with PARENB.

        Linux ptys do not keep PARENB; a tcsetattr whose only change is PARENB fails with EINVAL, which is
        what a second client opening at the same speed with even parity would send (TESTING.md §5).
        """
        try:
            attrs = termios.tcgetattr(self.slave_fd)
            if attrs[4] != termios.B50 or attrs[5] != termios.B50:
                attrs[4] = attrs[5] = termios.B50
                termios.tcsetattr(self.slave_fd, termios.TCSANOW, attrs)
        except termios.error:
            pass

    def start(self) -> PtyServer:
        self._thread = threading.Thread(target=self.serve_forever, name="sonocli-sim-pty", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        for fd in (self.master_fd, self.slave_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.link and os.path.islink(self.link):
            os.unlink(self.link)

    def __enter__(self) -> PtyServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
