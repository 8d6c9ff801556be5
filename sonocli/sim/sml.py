"""``sim://sml``: an eHZ electricity meter pushing SML files from its infrared interface, with faults on demand.

The files are real ones: an EMH eHZ-GW8E2A500AK2 (server ID ``02280816``) dumped with an IR head and
published in the libsml-testing collection (see tests/data/sml/README.md for the provenance); the meter
sends them one after the other, one every ``interval`` seconds, 8N1 at ``baud``. A host port at another
rate receives garbage, as a real UART would. Nothing the host writes changes anything: these meters only
push.

Query parameters::

    interval=SECONDS   time between the starts of two files (default 1.0)
    baud=N             the meter's rate (default 9600)
    count=N            send N files, then fall silent (default: forever)
    crc=bad            a wrong transport CRC on the faulty files
    crc=message        a wrong message CRC (of the GetList response) inside a good transport CRC
    truncate=N         the faulty files are cut after N bytes (the next file follows)
    unknown=1          the faulty files carry a message type no parser knows (0x0301)
    every=N            only every N-th file is faulty (default 1: all of them, when a fault is asked for)
    clock=real         pace on the wall clock (``sonocli simulate``); default virtual
"""

from __future__ import annotations

import bisect
from importlib import resources

from sonocli.codecs import sml
from sonocli.errors import NeedMoreData
from sonocli.model.valueclass import field, valueclass

BITS_8N1 = 10


def recorded_files() -> tuple[bytes, ...]:
    """The complete files of the EMH eHZ dump shipped with the simulator (sonocli/sim/data)."""
    text = resources.files("sonocli.sim").joinpath("data/sml_emh_ehz.hex").read_text("ascii")
    data = bytes.fromhex("".join(text.split()))
    out: list[bytes] = []
    pos = 0
    while True:
        start = data.find(sml.START, pos)
        if start < 0:
            break
        try:
            file, used = sml.decode_file(data[start:])
        except NeedMoreData:
            break
        out.append(file.raw)
        pos = start + used
    return tuple(out)


def with_unknown_message(raw: bytes) -> bytes:
    """``raw`` with its GetList response retyped 0x0301 (GetProfilePack.Res), re-framed with good CRCs."""
    body = _body(raw)
    return sml.encode_file(sml.with_message_crcs(body.replace(b"\x72\x63\x07\x01", b"\x72\x63\x03\x01", 1)))


def with_bad_message_crc(raw: bytes) -> bytes:
    """``raw`` with the CRC16 of its last-but-one message (the GetList response) flipped, re-framed with a
    good transport CRC: what a gateway re-framing a corrupt message would send."""
    body = bytearray(_body(raw))
    spans = sml.message_spans(bytes(body))
    _, _, crc_end = spans[-2] if len(spans) > 1 else spans[0]
    body[crc_end - 1] ^= 0x01
    return sml.encode_file(bytes(body))


def _body(raw: bytes) -> bytes:
    padding = raw[-3]
    return raw[len(sml.START) : len(raw) - 8 - padding].replace(sml.ESCAPE * 2, sml.ESCAPE)


@valueclass
class SmlMeter:
    """A SimPeer: an SML meter on the other end of the IR head."""

    files: tuple[bytes, ...]
    interval: float = 1.0
    baud: int = 9600
    count: int | None = None
    bad_crc: bool = False
    bad_message_crc: bool = False
    truncate: int | None = None
    unknown: bool = False
    every: int = 1
    host_baud: int = 9600
    sent: list[bytes] = field(default_factory=list)  # the files as sent (faults applied), for the tests
    _times: list[float] = field(default_factory=list)
    _out: list[int] = field(default_factory=list)
    _next: int = 0
    _started: float | None = None

    def faulty(self, number: int) -> bool:
        fault = self.bad_crc or self.bad_message_crc or self.truncate is not None or self.unknown
        return fault and (number + 1) % self.every == 0

    def file(self, number: int) -> bytes:
        raw = self.files[number % len(self.files)]
        if not self.faulty(number):
            return raw
        if self.unknown:
            raw = with_unknown_message(raw)
        if self.bad_message_crc:
            raw = with_bad_message_crc(raw)
        if self.bad_crc:
            raw = raw[:-1] + bytes((raw[-1] ^ 0x01,))
        if self.truncate is not None:
            raw = raw[: self.truncate]
        return raw

    # ---- SimPeer -------------------------------------------------------------------------------------

    def set_host_line(self, baudrate: int, parity: bool) -> None:
        self.host_baud = baudrate

    def receive(self, data: bytes, now: float) -> None:
        if self._started is None:
            self._started = now

    def poll(self, now: float) -> bytes:
        if self._started is None:
            self._started = now
        while self._more() and self._start_of(self._next) <= now:
            self._queue_next()
        cut = bisect.bisect_right(self._times, now)
        out = self._out[:cut]
        del self._times[:cut]
        del self._out[:cut]
        if self.host_baud != self.baud:
            return bytes((b ^ 0x5A) | 0x80 for b in out)
        return bytes(out)

    def next_event(self) -> float | None:
        if self._started is None:
            return None  # the port polls before it asks: the meter starts with the first look at the line
        if not self._times and self._more():
            self._queue_next()
        return self._times[0] if self._times else None

    def _more(self) -> bool:
        return self.count is None or self._next < self.count

    def _start_of(self, number: int) -> float:
        assert self._started is not None
        return self._started + number * self.interval

    def _queue_next(self) -> None:
        """Put the next file on the wire (its bytes are released by :meth:`poll` as their time comes)."""
        data = self.file(self._next)
        self.sent.append(data)
        char = BITS_8N1 / self.baud
        when = max(self._start_of(self._next), self._times[-1] if self._times else 0.0)
        for byte in data:
            when += char
            self._times.append(when)
            self._out.append(byte)
        self._next += 1


def peer_from_params(params: dict[str, str], clock: object | None = None) -> SmlMeter:
    """The meter a ``sim://sml?...`` URL describes (see the module docstring); bad values are ValueErrors."""
    interval = float(params.get("interval", "1.0"))
    if interval <= 0:
        raise ValueError(f"interval={interval} must be positive")
    baud = int(params.get("baud", "9600"))
    count = int(params["count"]) if "count" in params else None
    crc = params.get("crc", "ok").lower()
    if crc not in ("ok", "bad", "message"):
        raise ValueError(f"crc={params['crc']!r} is not one of ok, bad, message")
    every = int(params.get("every", "1"))
    if every < 1:
        raise ValueError(f"every={every} must be 1 or more")
    truncate = int(params["truncate"]) if "truncate" in params else None
    return SmlMeter(
        recorded_files(), interval=interval, baud=baud, count=count,
        bad_crc=crc == "bad", bad_message_crc=crc == "message", truncate=truncate,
        unknown=params.get("unknown", "").lower() in ("1", "true", "yes"), every=every, host_baud=baud,
    )
