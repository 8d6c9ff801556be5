"""Receiver dongle framings: pure byte-stream framers plus the set-up commands each stick needs.

A driver never touches a port. ``feed(bytes)`` returns events: a received telegram with its RSSI, a reply
to a set-up command, or a note that garbage was skipped. Binary framers resync by trying the next start
byte; a frame that claims more bytes than have arrived does not block a complete, valid frame behind it,
and an unchecked frame (no CRC) is not taken while a checked one that starts inside it is still arriving.
Text framers resync inside a line: noise in front of a record (no line break between them) is skipped up
to the first start from which the rest of the line is a checked record. However the bytes are split into
reads, a frame whose check passes comes out (tests/unit/test_framer_resync.py: every split).
The stick side of each framing (``encode_indication``, ``answer``) lives next to the parser so the
simulated radio speaks exactly what the driver understands, and a real stick is the only other party.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from sonocli.errors import UsageError
from sonocli.model.valueclass import valueclass

MODES = ("T1", "C1", "S1", "C1T1")


@valueclass(frozen=True, slots=True)
class Received:
    """A telegram as the stick delivered it; ``frame_format`` tells the link layer whether CRCs are in.

    ``rssi`` is always dBm (None when the stick gives no dBm figure); a level on another scale (rtl-wmbus's
    relative PACKET_RSSI) goes in ``rssi_rel`` so the two never mix in one field. ``link_mode`` is the mode
    the stick says it heard the telegram in (rtl-wmbus's T1/C1 field, CUL's ``bY`` = frame format B = C
    mode), None when it does not say.
    """

    telegram: bytes
    rssi: int | None = None
    frame_format: str = "none"
    timestamp: int | None = None
    rssi_rel: int | None = None
    link_mode: str | None = None


@valueclass(frozen=True, slots=True)
class Reply:
    """An answer of the stick to a command (``code`` is driver specific, compared with SetupStep.expect)."""

    code: str
    payload: bytes = b""


@valueclass(frozen=True, slots=True)
class Garbage:
    """Bytes skipped while hunting for a frame, and why (the receiver counts and logs them)."""

    data: bytes
    reason: str


Event = Received | Reply | Garbage


@valueclass(frozen=True, slots=True)
class SetupStep:
    """Write ``command``; if ``expect`` is set, wait for a Reply whose code starts with it."""

    command: bytes
    expect: str | None
    what: str


def check_mode(mode: str, allowed: tuple[str, ...], dongle: str) -> str:
    wanted = mode.upper().replace("+", "").replace("-", "")
    if wanted == "T1C1":
        wanted = "C1T1"
    if wanted not in allowed:
        raise UsageError(f"--mode {mode!r} is not supported by the {dongle} dongle; allowed: {', '.join(allowed)}")
    return wanted


# Outcome of trying to read one frame at a position of the buffer.
NEED = -1
BAD = -2


class DongleDriver(ABC):
    """Common state and the resynchronising feed loop; subclasses parse one frame at a position."""

    name = "dongle"
    baudrate = 9600
    modes: tuple[str, ...] = MODES
    max_buffer = 4096

    def __init__(self) -> None:
        self._buf = bytearray()

    def setup(self, mode: str) -> list[SetupStep]:
        """Commands that put the stick into ``mode`` (T1, C1, S1 or C1T1 where the stick can)."""
        check_mode(mode, self.modes, self.name)
        return []

    def feed(self, data: bytes) -> list[Event]:
        self._buf += data
        events: list[Event] = []
        buf = self._buf
        pos = 0
        garbage_from = -1
        while pos < len(buf):
            used, event = self._try(buf, pos)
            if used == BAD:
                if garbage_from < 0:
                    garbage_from = pos
                pos += 1
                continue
            if used == NEED:
                later = self._complete_frame_after(buf, pos)
                if later is None:
                    break
                if garbage_from < 0:
                    garbage_from = pos
                pos = later
                continue
            if not self._strong(buf, pos):
                # A frame without a CRC that swallows a checked frame is a false start (noise that happens
                # to begin with the start byte): drop it in favour of the checked frame inside it.
                inner = self._complete_frame_after(buf, pos, pos + used)
                if inner is not None:
                    if garbage_from < 0:
                        garbage_from = pos
                    pos = inner
                    continue
                if self._checked_frame_arriving(buf, pos, pos + used):
                    break  # decide when it is complete: taking the false start now would cut it in two
            else:
                inner = self._better_inner_frame(buf, pos, pos + used)
                if inner == NEED:
                    break  # what follows the frame decides; it has not arrived yet
                if inner is not None:
                    if garbage_from < 0:
                        garbage_from = pos
                    pos = inner
                    continue
            if garbage_from >= 0:
                events.append(Garbage(bytes(buf[garbage_from:pos]), self._garbage_reason()))
                garbage_from = -1
            if event is not None:
                events.append(event)
            pos += used
        if garbage_from >= 0:
            events.append(Garbage(bytes(buf[garbage_from:pos]), self._garbage_reason()))
        del buf[:pos]
        if len(buf) > self.max_buffer:
            events.append(Garbage(bytes(buf), "buffer overflow: no frame end found"))
            buf.clear()
        return events

    def _complete_frame_after(self, buf: bytearray, pos: int, limit: int | None = None) -> int | None:
        """The start of a later complete, checked frame (before ``limit``), so a false start cannot block it."""
        for start in range(pos + 1, len(buf) if limit is None else min(limit, len(buf))):
            used, _ = self._try(buf, start)
            if used >= 0 and self._strong(buf, start):
                return start
        return None

    def _better_inner_frame(self, buf: bytearray, pos: int, end: int) -> int | None:
        """For a checked frame ``pos..end`` that swallows a complete checked frame: the inner frame's start
        when it, not the outer one, is followed by a frame start or the end of the data (the outer one is
        then noise whose checksum passed by chance, 1 in 256 for an XOR byte); NEED while the bytes after
        the outer frame have not arrived; None to keep the outer frame. Real frames are back to back, so a
        frame that ends in the middle of another is the false one."""
        inner = self._complete_frame_after(buf, pos, end)
        if inner is None:
            return None
        if end >= len(buf):
            return NEED
        if self._try(buf, end)[0] != BAD:
            return None
        inner_used, _ = self._try(buf, inner)
        after = inner + inner_used
        if after >= len(buf) or self._try(buf, after)[0] != BAD:
            return inner
        return None

    def _checked_frame_arriving(self, buf: bytearray, pos: int, limit: int) -> bool:
        """Whether a frame that will be checked starts inside ``pos+1 .. limit`` and still needs bytes (and no
        complete checked frame behind it shows that start to be noise)."""
        return any(
            self._try(buf, start)[0] == NEED
            and self._may_be_strong(buf, start)
            and self._complete_frame_after(buf, start) is None
            for start in range(pos + 1, min(limit, len(buf)))
        )

    def _strong(self, buf: bytearray, pos: int) -> bool:
        """Whether a frame at ``pos`` is checked well enough (CRC/checksum) to skip a pending start for it."""
        return True

    def _may_be_strong(self, buf: bytearray, pos: int) -> bool:
        """Whether an incomplete frame at ``pos`` may turn out checked (its header so far allows it)."""
        return True

    def _garbage_reason(self) -> str:
        return f"{self.name}: bytes outside a valid frame skipped"

    @abstractmethod
    def _try(self, buf: bytearray, pos: int) -> tuple[int, Event | None]:
        """(bytes used, event or None) for a frame at ``pos``; (NEED, None) or (BAD, None)."""


# How much a parsed line is worth (LineDriver._quality): resync prefers a checked record to a plausible one.
BAD_LINE, PLAUSIBLE, CHECKED = 0, 1, 2


class LineDriver(DongleDriver):
    """Text framings, one record a line; a line that does not parse is reported as garbage.

    Noise without a line break runs into the next record's line. A line that is not a checked record is
    therefore searched for a later start (``_line_starts``) from which the rest is one: the noise before it
    is reported as garbage and the record is parsed on its own.
    """

    max_line = 2048

    def _try(self, buf: bytearray, pos: int) -> tuple[int, Event | None]:
        end = buf.find(b"\n", pos)
        if end < 0:
            if len(buf) - pos > self.max_line:
                return len(buf) - pos, Garbage(bytes(buf[pos:]), f"{self.name}: line too long")
            return NEED, None
        raw = bytes(buf[pos:end])
        line = raw.decode("ascii", "replace").strip()
        used = end + 1 - pos
        if not line:
            return used, None
        event = self.parse_line(line, raw)
        quality = self._quality(event)
        if quality < CHECKED:
            start = self._resync_line(raw, quality)
            if start is not None:
                return start, Garbage(raw[:start], f"{self.name}: noise before a record skipped")
        return used, event

    def _resync_line(self, raw: bytes, quality: int) -> int | None:
        """The first offset from which ``raw`` is a better record than as a whole (checked first)."""
        candidates = [start for start in self._line_starts(raw) if 0 < start < len(raw)]
        for wanted in (CHECKED, PLAUSIBLE):
            if wanted <= quality:
                break
            for start in self._checked_starts(raw, candidates) if wanted == CHECKED else candidates:
                rest = raw[start:]
                text = rest.decode("ascii", "replace").strip()
                if text and self._quality(self.parse_line(text, rest)) >= wanted:
                    return start
        return None

    def _line_starts(self, raw: bytes) -> list[int]:
        """Offsets where a record may start inside a line (after noise); every one by default."""
        return list(range(1, len(raw)))

    def _checked_starts(self, raw: bytes, candidates: list[int]) -> list[int]:
        """The candidates where a checked record may begin, by a cheap look before each is parsed (the
        default: all of them)."""
        return candidates

    def _quality(self, event: Event | None) -> int:
        """BAD_LINE for garbage, CHECKED for a record whose check passed (or that has none to pass)."""
        return BAD_LINE if isinstance(event, Garbage) else CHECKED

    def _complete_frame_after(self, buf: bytearray, pos: int, limit: int | None = None) -> int | None:
        return None

    @abstractmethod
    def parse_line(self, line: str, raw: bytes) -> Event | None: ...


def hex_bytes(text: str) -> bytes | None:
    text = text.strip()
    if text[:2].lower() == "0x":
        text = text[2:]
    if len(text) % 2:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def crc_checked(data: bytes, frame_format: str) -> bool:
    """Whether ``data`` is a whole wM-Bus frame whose DLL CRCs pass in ``frame_format`` ("A", "B", or "auto":
    either, with at most two bytes of RSSI/LQI after it)."""
    from sonocli.codecs.wmbus_link import format_a_length, strip_format_a, strip_format_b
    from sonocli.errors import SonoError

    if len(data) < 12 or data[0] < 10:
        return False
    formats = ("A", "B") if frame_format == "auto" else (frame_format,)
    for fmt in formats:
        size = format_a_length(data[0]) if fmt == "A" else data[0] + 1
        if not size <= len(data) <= size + 2:
            continue
        try:
            (strip_format_a if fmt == "A" else strip_format_b)(data[:size])
        except (SonoError, ValueError, IndexError):
            continue
        return True
    return False
