"""A simulated wired M-Bus segment: the slave side of EN 13757-2/-3, implemented for real.

Every meter keeps its own link state (FCB, telegram position, selection), answers after its own response
delay, and several meters answering at once collide the way they do on a real bus: their UART bit streams
are wired-AND'ed (a slave pulls the line to "space"), so aligned identical bytes survive and anything else
turns to garbage; two meters with the same response delay answer in step, and their telegrams merge bit
by bit into one that may look valid (87654321 and 87654322 make 87654320). Faults on demand: silent
meters, flaky meters (ignore the first N requests), broken checksums, meters that stop in the middle of a
telegram, a level converter that echoes the request, and answer delays that vary per answer (``jitter``).
IDs may hold hex digits; a fixed-structure meter (CI 0x73/0x77) is selected by its ID alone.
"""

from __future__ import annotations

import bisect
import random
from typing import Any

from sonocli.codecs import mbus_link as link
from sonocli.errors import ConfigError
from sonocli.model.valueclass import field, valueclass

# Selection data: ID (4 bytes BCD, LSB first), manufacturer (2), version (1), medium (1).
_SELECT_LEN = 8
# A sleepy (battery) meter's receiver wakes on this long a run of 0x55 characters and then stays awake as
# long as the bus carries a frame at least every AWAKE_SECONDS (see SimMeter.sleepy).
WAKE_SECONDS = 0.4
AWAKE_SECONDS = 5.0


@valueclass
class SimMeter:
    """One slave. ``telegrams`` are (CI, data) pairs; several make a multi-telegram readout (DIF 1F)."""

    primary: int
    telegrams: list[tuple[int, bytes]]
    name: str = ""
    delay_bits: int = 40
    jitter_bits: int = 0  # each answer starts up to this many bit times after delay_bits (random, seeded)
    silent: bool = False
    flaky: int = 0  # ignore this many requests before answering
    corrupt: bool = False  # wrong checksum on every long frame
    answers_all: bool = False  # a broken slave that answers every primary address and every selection
    stop_after: int | None = None  # send only this many bytes of each long frame
    baud: int | None = None
    # A battery meter whose receiver sleeps: it hears nothing until a wake-up preamble of 0x55 characters
    # (MBUS_WAKEUPENABLE on the master) lasting WAKE_SECONDS, and falls asleep after AWAKE_SECONDS of quiet.
    sleepy: bool = False
    awake_until: float = float("-inf")
    # link state
    selected: bool = False
    last_fcb: int | None = None
    position: int = 0
    frozen: list[int] = field(default_factory=list)
    get_all_data: int = 0
    app_resets: int = 0

    @property
    def fixed(self) -> bool:
        """A fixed-structure meter (CI 0x73/0x77): its header has an ID but no manufacturer or version."""
        return self.telegrams[0][0] in (0x73, 0x77)

    @property
    def address_bytes(self) -> bytes:
        """The 8 selection bytes from the first telegram's long header (CI 72/76), or zeros; a fixed-structure
        meter's ID (LSB first) with wildcards for the fields it does not have."""
        ci, data = self.telegrams[0]
        if ci in (0x72, 0x76) and len(data) >= 8:
            return data[:8]
        if ci in (0x73, 0x77) and len(data) >= 4:
            ident = data[:4] if ci == 0x73 else data[:4][::-1]
            return ident + b"\xff\xff\xff\xff"
        return bytes(8)

    @property
    def secondary_id(self) -> str:
        return self.address_bytes[:4][::-1].hex().upper()

    def reset_link(self) -> None:
        self.last_fcb = None
        self.position = 0

    def matches(self, mask: bytes) -> bool:
        """Nibble-wise compare with F wildcards in every field (ID, manufacturer, version, medium)."""
        own = self.address_bytes
        for index, (want, have) in enumerate(zip(mask, own, strict=True)):
            if self.fixed and index >= 4:
                break  # no manufacturer, version or medium to compare: the ID decides
            for shift in (0, 4):
                nibble = (want >> shift) & 0xF
                if nibble != 0xF and nibble != (have >> shift) & 0xF:
                    return False
        return True

    def next_response(self, fcb: int | None, address: int) -> bytes:
        """RSP_UD for a REQ_UD2; ``fcb`` None means FCV was clear (answer the current telegram)."""
        if fcb is not None and self.last_fcb is not None and fcb == self.last_fcb:
            pass  # FCB did not toggle: the master lost our answer, repeat it
        elif fcb is not None and self.last_fcb is not None:
            self.position = (self.position + 1) % len(self.telegrams)
        self.last_fcb = fcb if fcb is not None else self.last_fcb
        ci, data = self.telegrams[self.position]
        frame = link.encode(link.LongFrame(link.C_RSP_UD, address, ci, data))
        if self.corrupt:
            frame = frame[:-2] + bytes(((frame[-2] + 1) & 0xFF,)) + frame[-1:]
        if self.stop_after is not None:
            frame = frame[: self.stop_after]
        return frame


def _uart_bits(data: bytes, parity: bool) -> list[int]:
    bits: list[int] = []
    for byte in data:
        bits.append(0)
        data_bits = [(byte >> i) & 1 for i in range(8)]
        bits.extend(data_bits)
        if parity:
            bits.append(sum(data_bits) & 1)
        bits.append(1)
    return bits


def _uart_decode(bits: list[int], parity: bool) -> bytes:
    """What a UART makes of a bit stream: sync on each start bit, take 8 data bits, skip parity/stop."""
    out = bytearray()
    size = 11 if parity else 10
    pos = 0
    while pos < len(bits):
        if bits[pos] == 1:
            pos += 1
            continue
        chunk = bits[pos + 1 : pos + 9]
        chunk += [1] * (8 - len(chunk))
        out.append(sum(bit << i for i, bit in enumerate(chunk)))
        pos += size
    return bytes(out)


def collide(answers: list[tuple[int, bytes]], parity: bool = True) -> tuple[int, bytes]:
    """Wired-AND the UART bit streams of several (start bit offset, bytes) answers.

    Returns (start offset of the result, bytes a receiver sees). Identical bytes sent in the same bit
    period survive; everything else becomes garbage, as on a real bus.
    """
    start = min(offset for offset, _ in answers)
    streams = [(offset - start, _uart_bits(data, parity)) for offset, data in answers]
    length = max(offset + len(bits) for offset, bits in streams)
    line = [1] * length
    for offset, bits in streams:
        for index, bit in enumerate(bits):
            line[offset + index] &= bit
    return start, _uart_decode(line, parity)


@valueclass
class WiredSegment:
    """A SimPeer: host bytes in, timed slave bytes out. ``log`` records every frame the host sent."""

    meters: list[SimMeter]
    baud: int | None = None  # the meters' baud rate; None = whatever the host uses
    echo: bool = False
    host_baud: int = 2400
    parity: bool = True
    log: list[tuple[float, bytes]] = field(default_factory=list)
    seed: int = 0  # for the meters' jitter_bits: a segment replays the same delays
    _rng: random.Random = field(default_factory=random.Random)
    _decoder: link.StreamDecoder = field(default_factory=link.StreamDecoder)
    _times: list[float] = field(default_factory=list)
    _bytes: bytearray = field(default_factory=bytearray)
    _wake_run: int = 0  # consecutive 0x55 characters heard so far
    _now: float = 0.0

    # ---- SimPeer -------------------------------------------------------------------------------------

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    def set_host_line(self, baudrate: int, parity: bool) -> None:
        self.host_baud = baudrate
        self.parity = parity

    @property
    def char_time(self) -> float:
        return (11 if self.parity else 10) / self.host_baud

    def receive(self, data: bytes, now: float) -> None:
        if self.echo:
            first = now - len(data) * self.char_time
            for index, byte in enumerate(data):
                self._put(first + (index + 1) * self.char_time, bytes((byte,)))
        if self.baud is not None and self.baud != self.host_baud:
            return  # the meters hear noise at a foreign baud rate
        self._wake(data, now)
        self._now = now
        for frame_bytes in self._frames(data):
            self.log.append((now, frame_bytes))
            self._handle(frame_bytes, now)

    def poll(self, now: float) -> bytes:
        cut = bisect.bisect_right(self._times, now)
        out = bytes(self._bytes[:cut])
        del self._times[:cut]
        del self._bytes[:cut]
        return out

    def next_event(self) -> float | None:
        return self._times[0] if self._times else None

    # ---- slave side ----------------------------------------------------------------------------------

    def _frames(self, data: bytes) -> list[bytes]:
        out = []
        for frame in self._decoder.feed(data):
            out.append(link.encode(frame))
        return out

    def _put(self, when: float, data: bytes) -> None:
        for byte in data:
            index = bisect.bisect_right(self._times, when)
            self._times.insert(index, when)
            self._bytes.insert(index, byte)

    def _wake(self, data: bytes, now: float) -> None:
        """Count runs of 0x55; a long enough run wakes the sleepy meters, any other traffic keeps them up."""
        needed = max(1, round(WAKE_SECONDS / self.char_time))
        woke = False
        for byte in data:
            self._wake_run = self._wake_run + 1 if byte == 0x55 else 0
            woke = woke or self._wake_run >= needed
        for meter in self.meters:
            if not meter.sleepy:
                continue
            if woke or now <= meter.awake_until:
                meter.awake_until = now + AWAKE_SECONDS

    def _listening(self) -> list[SimMeter]:
        return [m for m in self.meters if not m.sleepy or self._now <= m.awake_until]

    def _targets(self, address: int) -> list[SimMeter]:
        meters = self._listening()
        if address in (link.ADDRESS_BROADCAST, link.ADDRESS_BROADCAST_REPLY):
            return meters
        if address == link.ADDRESS_NETWORK:
            return [m for m in meters if m.selected]
        return [m for m in meters if m.primary == address or m.answers_all]

    def _handle(self, raw: bytes, now: float) -> None:
        frame, _ = link.decode_frame(raw)
        answers: list[tuple[SimMeter, bytes]] = []
        if isinstance(frame, link.ShortFrame):
            answers = self._short(frame)
        elif isinstance(frame, link.ControlFrame | link.LongFrame):
            data = frame.data if isinstance(frame, link.LongFrame) else b""
            answers = self._snd_ud(frame.control, frame.address, frame.ci, data)
        if isinstance(frame, link.Ack) or frame.address == link.ADDRESS_BROADCAST:
            return  # 0xFF: everybody acts, nobody answers
        live = []
        for meter, reply in answers:
            if meter.silent:
                continue
            if meter.flaky > 0:
                meter.flaky -= 1
                continue
            live.append((meter, reply))
        self._send(live, now)

    def _short(self, frame: link.ShortFrame) -> list[tuple[SimMeter, bytes]]:
        control = frame.control & ~(link.FCB | 0x10)
        targets = self._targets(frame.address)
        if frame.control == link.C_SND_NKE:
            for meter in targets:
                meter.reset_link()
                if frame.address == link.ADDRESS_NETWORK:
                    meter.selected = False  # EN 13757-3: SND_NKE to 0xFD ends the selection
            return [(m, b"\xe5") for m in targets]
        if control in (0x4B, 0x4A):  # REQ_UD2 / REQ_UD1
            fcv = bool(frame.control & 0x10)
            fcb = (1 if frame.control & link.FCB else 0) if fcv else None
            if control == 0x4A:
                return [(m, b"\xe5") for m in targets]
            # a slave answers with its own primary address in the A field, also when addressed by FD
            return [(m, m.next_response(fcb, m.primary)) for m in targets]
        return []

    def _snd_ud(self, control: int, address: int, ci: int, data: bytes) -> list[tuple[SimMeter, bytes]]:
        if control & ~link.FCB != link.C_SND_UD:
            return []
        if ci == link.CI_SELECT and address == link.ADDRESS_NETWORK:
            if len(data) != _SELECT_LEN:
                return []
            chosen = []
            for meter in self._listening():
                meter.selected = meter.answers_all or meter.matches(data)
                if meter.selected:
                    chosen.append((meter, b"\xe5"))
            return chosen
        targets = self._targets(address)
        for meter in targets:
            if ci == link.CI_APPLICATION_RESET:
                meter.app_resets += 1
                meter.reset_link()
            elif ci == link.CI_DATA_SEND and len(data) == 3 and data[:2] == b"\x01\x7a":
                meter.primary = data[2]  # set primary address (DIF 01 VIF 7A), used by the ALLOC scans
            elif ci == link.CI_DATA_SEND and data[:1] == b"\x7f":
                meter.get_all_data += 1
            elif ci == link.CI_DATA_SEND and data.endswith(b"\xfe\x0b"):
                meter.frozen.append(_storage_of(data[:-2]))
        return [(m, b"\xe5") for m in targets]

    def _send(self, answers: list[tuple[SimMeter, bytes]], now: float) -> None:
        if not answers:
            return
        bit = 1.0 / self.host_baud
        char = self.char_time
        delays = [self._delay(m) for m, _ in answers]
        if len(answers) == 1:
            _meter, reply = answers[0]
            start = now + delays[0] * bit
            for index, byte in enumerate(reply):
                self._put(start + (index + 1) * char, bytes((byte,)))
            return
        offset, garbled = collide([(d, reply) for d, (_m, reply) in zip(delays, answers, strict=True)], self.parity)
        start = now + offset * bit
        for index, byte in enumerate(garbled):
            self._put(start + (index + 1) * char, bytes((byte,)))


    def _delay(self, meter: SimMeter) -> int:
        """This answer's start in bit times: the meter's delay plus its jitter, within EN 13757-2's 330."""
        if not meter.jitter_bits:
            return meter.delay_bits
        return min(330, meter.delay_bits + self._rng.randint(0, meter.jitter_bits))


def _storage_of(dif_bytes: bytes) -> int:
    if not dif_bytes:
        return 0
    storage = (dif_bytes[0] >> 6) & 1
    shift = 1
    for dife in dif_bytes[1:]:
        storage |= (dife & 0x0F) << shift
        shift += 4
    return storage


# ---- loading ---------------------------------------------------------------------------------------------


def _hex(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


def _telegram(entry: Any, where: str) -> tuple[int, bytes]:
    """A telegram as "CI+data" hex, or a whole long frame ``68 L L 68 C A CI … CS 16``."""
    try:
        raw = _hex(str(entry))
    except ValueError as exc:
        raise ConfigError(f"{where}: telegram is not hex: {exc}") from exc
    if raw[:1] == b"\x68":
        frame, _ = link.decode_frame(raw)
        if not isinstance(frame, link.LongFrame):
            raise ConfigError(f"{where}: a telegram must be a long frame")
        return frame.ci, frame.data
    if not raw:
        raise ConfigError(f"{where}: empty telegram")
    return raw[0], raw[1:]


def _header_overrides(data: bytes, entry: dict[str, Any], where: str) -> bytes:
    """Rewrite ID/manufacturer/version/medium of a CI 72 long header from the segment file."""
    head = bytearray(data[:8])
    if "id" in entry:
        head[0:4] = _id_bytes(entry, where)
    if "manufacturer" in entry:
        man = str(entry["manufacturer"]).upper()
        code = ((ord(man[0]) - 64) << 10) | ((ord(man[1]) - 64) << 5) | (ord(man[2]) - 64)
        head[4:6] = code.to_bytes(2, "little")
    if "version" in entry:
        head[6] = int(entry["version"]) & 0xFF
    if "medium" in entry:
        head[7] = int(entry["medium"]) & 0xFF
    return bytes(head) + data[8:]


def _id_bytes(entry: dict[str, Any], where: str) -> bytes:
    """The ``id`` of a segment entry, LSB first: 8 digits 0-9 or A-F (hex IDs exist, F included)."""
    ident = str(entry["id"])
    try:
        if len(ident) != 8:
            raise ValueError
        return bytes.fromhex(ident)[::-1]
    except ValueError:
        raise ConfigError(f"{where}: id {ident!r} must be 8 hex digits") from None


def meter_from_dict(entry: dict[str, Any], where: str) -> SimMeter:
    try:
        primary = int(entry.get("primary", 0))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: primary must be a number") from exc
    if not 0 <= primary <= 250:
        raise ConfigError(f"{where}: primary {primary} is outside 0..250")
    raw = entry.get("telegrams") or ([entry["frame"]] if "frame" in entry else [])
    if not raw:
        raise ConfigError(f"{where}: a meter needs 'telegrams' (hex) or 'frame'")
    telegrams = []
    for index, item in enumerate(raw):
        ci, data = _telegram(item, f"{where} telegram {index}")
        if ci in (0x72, 0x76) and len(data) >= 12:
            data = _header_overrides(data, entry, where)
        elif ci == 0x73 and len(data) >= 4 and "id" in entry:
            data = _id_bytes(entry, where) + data[4:]
        telegrams.append((ci, data))
    delay = int(entry.get("delay_bits", 11 + (primary * 37) % 300))
    if not 11 <= delay <= 330:
        raise ConfigError(f"{where}: delay_bits {delay} is outside 11..330 (EN 13757-2 answer window)")
    return SimMeter(
        primary=primary,
        telegrams=telegrams,
        name=str(entry.get("name", "")),
        delay_bits=delay,
        jitter_bits=int(entry.get("jitter_bits", 0)),
        silent=bool(entry.get("silent", False)),
        flaky=int(entry.get("flaky", 0)),
        corrupt=bool(entry.get("corrupt", False)),
        answers_all=bool(entry.get("answers_all", False)),
        stop_after=int(entry["stop_after"]) if "stop_after" in entry else None,
        sleepy=bool(entry.get("sleepy", False)),
    )


def segment_from_dict(doc: dict[str, Any], source: str) -> WiredSegment:
    meters_raw = doc.get("meter", doc.get("meters", []))
    if not isinstance(meters_raw, list):
        raise ConfigError(f"{source}: 'meter' must be a list of tables")
    meters = [meter_from_dict(entry, f"{source}: meter {i}") for i, entry in enumerate(meters_raw)]
    baud = doc.get("baud")
    return WiredSegment(meters=meters, baud=int(baud) if baud is not None else None, echo=bool(doc.get("echo")))


def load_segment(path: str) -> WiredSegment:
    """A segment from a TOML or JSON file, or ``demo`` for the built-in twelve meters."""
    import json
    import tomllib
    from pathlib import Path

    if path == "demo":
        from importlib import resources

        text = resources.files("sonocli.sim").joinpath("data/demo.toml").read_text(encoding="utf-8")
        return segment_from_dict(tomllib.loads(text), "demo")
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read segment file: {exc.strerror}", file=str(file)) from exc
    try:
        doc = json.loads(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"not valid {'JSON' if file.suffix == '.json' else 'TOML'}: {exc}", file=str(file)) from exc
    if not isinstance(doc, dict):
        raise ConfigError("a segment file holds a table with a 'meter' list", file=str(file))
    return segment_from_dict(doc, str(file))
