"""Serve a simulated wired segment on a pseudo-terminal, in real time, for other M-Bus software.

The slave fd is kept open for the server's lifetime: once the last slave fd closes, reads on the master
return EIO (TESTING.md §5). A pty has no baud timing, so answers are paced by the segment at the baud
rate given (11 bits per character), with real response delays.

With logging at INFO for ``sonocli.sim`` (``sonocli simulate -v``) every request the segment decoded is
logged as one line once its answer is complete: the time, the request (type and address) and the answer
(``ACK``, ``RSP_UD`` of which meter, a collision, or no answer); at DEBUG (``-vv``) with both in hex.
"""

from __future__ import annotations

import os
import select
import termios
import threading
import tty
from datetime import UTC, datetime
from typing import Any, Self

from sonocli import logs
from sonocli.codecs import mbus_link as link
from sonocli.errors import DecodeError, NeedMoreData
from sonocli.sim.peer import RealClock

log = logs.logger("sonocli.sim")

_CONTROL_NAMES = {link.C_SND_NKE: "SND_NKE", link.C_REQ_UD1: "REQ_UD1", link.C_REQ_UD2: "REQ_UD2",
                  link.C_SND_UD: "SND_UD"}
_CI_NAMES = {link.CI_SELECT: "select", link.CI_APPLICATION_RESET: "application reset",
             link.CI_DATA_SEND: "data send"}


def _address(address: int) -> str:
    if address == link.ADDRESS_NETWORK:
        return "the selected meter (FD)"
    if address == link.ADDRESS_BROADCAST:
        return "broadcast (FF)"
    if address == link.ADDRESS_BROADCAST_REPLY:
        return "broadcast with reply (FE)"
    return f"address {address}"


def _manufacturer(code: int) -> str:
    letters = ((code >> 10) & 0x1F, (code >> 5) & 0x1F, code & 0x1F)
    return "".join(chr(c + 64) for c in letters) if all(1 <= c <= 26 for c in letters) else f"{code:04X}"


def describe_request(raw: bytes) -> str:
    """A request frame in words: ``REQ_UD2 FCB=1 to address 5``, ``SND_UD select 1234FFFF-SON-FF-FF``."""
    try:
        frame, _ = link.decode_frame(raw)
    except DecodeError as exc:
        return f"undecodable request ({exc})"
    if isinstance(frame, link.Ack):
        return "ACK"
    name = _CONTROL_NAMES.get(frame.control & ~link.FCB, f"C={frame.control:02X}")
    fcb = f" FCB={1 if frame.control & link.FCB else 0}" if frame.control & 0x10 else ""
    if isinstance(frame, link.ShortFrame):
        return f"{name}{fcb} to {_address(frame.address)}"
    what = _CI_NAMES.get(frame.ci, f"CI={frame.ci:02X}")
    if isinstance(frame, link.LongFrame) and frame.ci == link.CI_SELECT and len(frame.data) >= 8:
        sel = link.decode_select(frame.data)
        manufacturer = "any" if sel.manufacturer == 0xFFFF else _manufacturer(sel.manufacturer)
        what += f" {sel.id_mask}-{manufacturer}-{sel.version:02X}-{sel.medium:02X}"
    return f"{name} {what} to {_address(frame.address)}"


def describe_answer(raw: bytes) -> str:
    """What the segment answered: ``no answer``, ``ACK``, ``RSP_UD 12345678 SON (63 bytes)``, or garbage."""
    if not raw:
        return "no answer"
    try:
        frame, used = link.decode_frame(raw)
    except NeedMoreData:
        return f"truncated frame, {len(raw)} byte(s)"
    except DecodeError:
        return f"garbled answer, {len(raw)} byte(s) (a collision of several meters?)"
    extra = f" + {len(raw) - used} byte(s) more (collision?)" if used < len(raw) else ""
    if isinstance(frame, link.Ack):
        return "ACK (E5)" + extra
    if isinstance(frame, link.LongFrame):
        who = ""
        if frame.ci in (0x72, 0x76) and len(frame.data) >= 8:
            who = f" {frame.data[3::-1].hex().upper()} {_manufacturer(int.from_bytes(frame.data[4:6], 'little'))}"
        return f"RSP_UD{who} ({len(raw)} bytes, CI {frame.ci:02X}){extra}"
    return f"frame C={frame.control:02X} ({len(raw)} bytes){extra}"


class RequestLog:
    """Pairs each request the segment decoded with the bytes sent after it, and logs one line per pair
    once the answer is complete (nothing more scheduled) or the next request arrives."""

    def __init__(self, segment: Any) -> None:
        self.segment = segment
        self._seen = len(getattr(segment, "log", ()))
        self._pending: tuple[datetime, bytes] | None = None
        self._answer = bytearray()
        self.lines = 0

    def received(self) -> None:
        """Call after ``segment.receive``: starts a pair for every frame it decoded."""
        frames = getattr(self.segment, "log", [])
        for _when, raw in frames[self._seen :]:
            self._flush()
            self._pending = (datetime.now(UTC), bytes(raw))
        self._seen = len(frames)
        self._maybe_done()

    def sent(self, data: bytes) -> None:
        if self._pending is not None:
            self._answer += data
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self._pending is not None and self.segment.next_event() is None:
            self._flush()

    def _flush(self) -> None:
        if self._pending is None:
            return
        when, request = self._pending
        answer = bytes(self._answer)
        if getattr(self.segment, "echo", False) and answer.startswith(request):
            answer = answer[len(request) :]  # the level converter's echo is not the meters' answer
        self._pending = None
        self._answer.clear()
        self.lines += 1
        stamp = when.strftime("%H:%M:%S.") + f"{when.microsecond // 1000:03d}"
        log.info("%s %s -> %s", stamp, describe_request(request), describe_answer(answer))
        if log.isEnabledFor(logs.DEBUG):
            log.debug("  request %s; answer %s", request.hex(" ").upper(), answer.hex(" ").upper() or "-")


class PtyEndpoint:
    """A new raw pseudo-terminal (``path`` is what clients open, ``link`` an optional symlink to it) served
    by a thread until ``stop()``: the part every simulator behind a pty shares (M-Bus, DLDE)."""

    thread_name = "sonocli-sim-pty"
    max_wait = 0.2  # seconds a turn of the loop waits for the client when the peer has nothing due

    def __init__(self, peer: Any, link: str | None = None) -> None:
        self.peer = peer  # a SimPeer: next_event(), receive(data, now), poll(now)
        self.clock = RealClock()
        self.master_fd, self.slave_fd = os.openpty()
        tty.setraw(self.slave_fd)
        self._unpin_speed()
        self.path = os.ttyname(self.slave_fd)
        self.link = link
        if link:
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(self.path, link)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        """In real time: the client's bytes to the peer, the peer's answers to the client, until ``stop()``."""
        while not self._stop.is_set():
            self._follow_client()
            event = self.peer.next_event()
            now = self.clock.now()
            wait = self.max_wait if event is None else max(0.0, min(self.max_wait, event - now))
            ready, _, _ = select.select([self.master_fd], [], [], wait)
            if ready:
                try:
                    data = os.read(self.master_fd, 4096)
                except OSError:
                    break
                if data:
                    self._follow_client()
                    self.peer.receive(data, self.clock.now())
                    self._received()
            out = self.peer.poll(self.clock.now())
            if out:
                os.write(self.master_fd, out)
                self._sent(out)
            self._after_turn()

    # hooks of the loop (none by default)
    def _follow_client(self) -> None:
        """Before each turn and before the peer gets bytes: follow what the client set (a speed)."""

    def _received(self) -> None:
        """After the peer got the client's bytes."""

    def _sent(self, out: bytes) -> None:
        """After the peer's answer went to the client."""

    def _after_turn(self) -> None:
        """At the end of each turn of the loop."""

    def _unpin_speed(self) -> None:
        """Keep the slave at a speed no client uses, so every client open changes the speed with PARENB.

        Linux ptys do not keep PARENB; a tcsetattr whose only change is PARENB fails with EINVAL, which is
        what a second client opening at the same speed with even parity would send (TESTING.md §5). It also
        makes every speed a client sets visible to a simulator that follows it (DLDE's baud switch).
        """
        try:
            attrs = termios.tcgetattr(self.slave_fd)
            if attrs[4] != termios.B50 or attrs[5] != termios.B50:
                attrs[4] = attrs[5] = termios.B50
                termios.tcsetattr(self.slave_fd, termios.TCSANOW, attrs)
        except termios.error:
            pass

    def start(self) -> Self:
        self._thread = threading.Thread(target=self.serve_forever, name=self.thread_name, daemon=True)
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class PtyServer(PtyEndpoint):
    """Runs ``segment`` behind a new pty until ``stop()``; ``path`` is what clients open."""

    def __init__(self, segment: Any, baudrate: int = 2400, link: str | None = None) -> None:
        super().__init__(segment, link)
        self.segment = segment
        segment.set_host_line(baudrate, True)
        self.requests = RequestLog(segment)

    def _received(self) -> None:
        if log.isEnabledFor(logs.INFO):
            self.requests.received()

    def _sent(self, out: bytes) -> None:
        if log.isEnabledFor(logs.INFO):
            self.requests.sent(out)

    def _after_turn(self) -> None:
        self._unpin_speed()  # every client open must change the speed (see _unpin_speed)
