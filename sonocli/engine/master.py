"""The wired M-Bus master: link transactions, frame hunting, retries, resets and the readout sequence.

Timing follows EN 13757-2 and Table 25: a slave answers within 330 bit times (+ 50 ms margin for the
level converter), so a probe waits exactly that long; a readout waits MBUS_TIMEOUT for the first byte,
MBUS_IDLETIMEOUT between bytes and MBUS_FULLTIMEOUT for the whole telegram. The end of a frame is known
from its length field, so a complete frame never waits for an idle timeout. All time is measured on the
link's clock, which is virtual on ``sim://`` ports: scans there report exact wire time.

The flight recorder keeps the last frames in hex (TX and RX) and attaches them to a failed readout's error.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sonocli.codecs import mbus_link as link
from sonocli.config.chipini_schema import Value, by_name, mask_number, param
from sonocli.errors import ConfigError, DecodeError, NeedMoreData, ProtocolError, TimeoutError_, UsageError
from sonocli.model import AddressMode, Interface, Meter, MeterValue, Reading
from sonocli.model.valueclass import replace, valueclass

if TYPE_CHECKING:
    from sonocli.transports import Link

REQUEST_MODES = tuple(str(choice) for choice in param("MBUS_REQUESTMODE").choices)  # from the chip.ini schema
SCAN_MODES = tuple(str(choice) for choice in param("MBUS_SCANMODE").choices)
ANSWER_BITS = 330  # EN 13757-2: the latest start of a slave's answer, in bit times
ANSWER_MARGIN = 0.050  # seconds added for level converters and USB latency
WAKEUP_SECONDS = 0.5  # length of the 0x55 wake-up preamble (MBUS_WAKEUPENABLE)


# MasterSettings field -> the chip.ini parameter (Table 25) whose schema entry checks it
CHIP_INI_FIELDS: dict[str, str] = {
    "baudrate": "MBUS_BAUDRATE",
    "databits": "MBUS_DATABITS",
    "parity": "MBUS_PARITY",
    "stopbits": "MBUS_STOPBITS",
    "timeout_ms": "MBUS_TIMEOUT",
    "idle_timeout_ms": "MBUS_IDLETIMEOUT",
    "full_timeout_ms": "MBUS_FULLTIMEOUT",
    "max_retry": "MBUS_MAXRETRY",
    "max_multipage": "MBUS_MAXMULTIPAGE",
    "request_mode": "MBUS_REQUESTMODE",
    "reset_mode": "MBUS_RESETMODE",
    "freeze_storage": "MBUS_FREEZESTORAGEENUM",
    "first_fcb_neg": "MBUS_FIRSTFCBBIT_NEG",
    "select_mask": "MBUS_SELECTMASK",
    "wakeup": "MBUS_WAKEUPENABLE",
    "min_primary": "MBUS_MINPRIMARYADDRESS",
    "max_primary": "MBUS_MAXPRIMARYADDRESS",
    "scan_mode": "MBUS_SCANMODE",
    "secmask_serial": "MBUS_SECMASKSERIAL",
    "secmask_manufacturer": "MBUS_SECMASKMANUFACTURER",
    "secmask_version": "MBUS_SECMASKVERSION",
    "secmask_medium": "MBUS_SECMASKMEDIUM",
    "max_device_count": "METER_MAXDEVICECOUNT",
    "max_value_count": "METER_MAXVALUECOUNT",
    "use_freeze": "MUC_USE_FREEZE",
}
_NUMBER_MASKS = ("secmask_manufacturer", "secmask_version", "secmask_medium")  # kept as numbers


MASK_CHARS = "0123456789ABCDEF"


def check_mask(mask: str, name: str = "") -> str:
    """A secondary address mask or ID: up to 8 characters 0-9, A-E and F (F = any digit), upper case.

    The guide (Table 12, "Secondary address mask"): missing characters are filled up with leading zeros, so
    ``084F`` is ``0000084F``. Hex digits A-E are real ID digits (some meters number in hex); F is the wildcard.
    ``name`` (a chip.ini parameter) makes the error a ConfigError in ``config set``'s words.
    """
    text = mask.strip().upper()
    text = text[2:] if text.startswith("0X") else text
    if not text or len(text) > 8 or any(ch not in MASK_CHARS for ch in text):
        why = "more than 8 characters" if len(text) > 8 else "not a mask"
        allowed = "at most 8 characters 0-9, A-E or F (F: any digit); shorter masks get leading zeros"
        if name:
            raise ConfigError(f"{name}={mask!r}: {why}; allowed: {allowed}")
        raise UsageError(f"secondary address mask {mask!r}: {why}; allowed: {allowed}")
    return text.zfill(8)


def _native(field: str, value: Value) -> Any:
    """A checked chip.ini value as the field keeps it: the serial mask as 8 digits, the others as numbers."""
    if field == "secmask_serial":
        return check_mask(str(value), "MBUS_SECMASKSERIAL")
    if field in _NUMBER_MASKS:
        return mask_number(str(value))
    return value


def _default(field: str) -> Any:
    """The chip.ini schema's default of a MasterSettings field."""
    return _native(field, param(CHIP_INI_FIELDS[field]).default)


@valueclass(frozen=True, slots=True)
class MasterSettings:
    """The MBUS_*/METER_* values of Table 25 the master uses; defaults and checks are the chip.ini schema's."""

    baudrate: int = _default("baudrate")
    databits: int = _default("databits")
    parity: int = _default("parity")
    stopbits: int = _default("stopbits")
    timeout_ms: int = _default("timeout_ms")
    idle_timeout_ms: int = _default("idle_timeout_ms")
    full_timeout_ms: int = _default("full_timeout_ms")
    max_retry: int = _default("max_retry")
    max_multipage: int = _default("max_multipage")
    request_mode: str = _default("request_mode")
    reset_mode: int = _default("reset_mode")
    freeze_storage: int = _default("freeze_storage")
    first_fcb_neg: bool = _default("first_fcb_neg")
    select_mask: int = _default("select_mask")
    wakeup: bool = _default("wakeup")
    min_primary: int = _default("min_primary")
    max_primary: int = _default("max_primary")
    scan_mode: str = _default("scan_mode")
    secmask_serial: str = _default("secmask_serial")
    secmask_manufacturer: int = _default("secmask_manufacturer")
    secmask_version: int = _default("secmask_version")
    secmask_medium: int = _default("secmask_medium")
    max_device_count: int = _default("max_device_count")
    max_value_count: int = _default("max_value_count")
    use_freeze: bool = _default("use_freeze")
    recorder_size: int = 16

    def __post_init__(self) -> None:
        """Check every chip.ini value by the schema's own rule (as ``config set`` does) and normalise it.

        A value the schema refuses is a ConfigError naming the parameter, the value and what is allowed;
        only what one parameter's rule cannot say (MBUS_MINPRIMARYADDRESS <= MBUS_MAXPRIMARYADDRESS) is
        checked here.
        """
        schema = by_name()
        for field, name in CHIP_INI_FIELDS.items():
            if field == "secmask_serial":
                # the guide's rule (section 5.1.1): hex digits, F = any, missing characters are leading zeros;
                # the schema's "exactly 8 of 0-9/F" would refuse hex IDs and short masks
                object.__setattr__(self, field, _native(field, str(getattr(self, field))))
                continue
            # Param.check is check_setting's rule; the table is looked up once for all fields
            object.__setattr__(self, field, _native(field, schema[name].check(getattr(self, field))))
        if self.min_primary > self.max_primary:
            raise UsageError(
                f"primary scan range {self.min_primary}..{self.max_primary} is empty: MBUS_MINPRIMARYADDRESS "
                f"({self.min_primary}) is above MBUS_MAXPRIMARYADDRESS ({self.max_primary})"
            )

    @classmethod
    def from_chip_ini(cls, ini: Any, **overrides: Any) -> MasterSettings:
        """Map a loaded ``ChipIni`` (anything with ``get(NAME)``) to settings; ``overrides`` win.

        ``overrides`` are field names (``baudrate=9600``, ``max_retry=0``, ``min_primary``, ``max_primary``,
        ``secmask_serial``, ...), e.g. from command options; None means "not given". Both the file's values
        and the overrides pass the chip.ini schema's check, so ``--baud 1234`` is refused with the words of
        ``config set MBUS_BAUDRATE 1234``.
        """
        values: dict[str, Any] = {field: ini.get(name) for field, name in CHIP_INI_FIELDS.items()}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class Outcome(enum.Enum):
    NOTHING = "nothing"
    SINGLE = "single"
    COLLISION = "collision"
    UNREADABLE = "unreadable"  # one meter acknowledged the selection, but its answer gave no address


@valueclass(frozen=True, slots=True)
class Received:
    """What came back: a frame, or None with the raw bytes (empty on timeout, garbage on collision)."""

    frame: link.Frame | None
    raw: bytes
    truncated: bool = False
    full_timeout: bool = False
    bad: str = ""  # why a complete frame was refused, when nothing else came (a wrong checksum, say)

    @property
    def timeout(self) -> bool:
        return self.frame is None and not self.raw


@valueclass(frozen=True, slots=True)
class Identity:
    """A secondary address read from a long header (CI 72/76), or the ID of a fixed-structure meter.

    ``fixed``: CI 0x73/0x77 (EN 1434-3 fixed data structure) carries only the ID and a medium code, no
    manufacturer or version: such a meter is selected by its ID with wildcards in the other fields.
    """

    id: str
    manufacturer: str
    version: int
    medium: int
    fixed: bool = False

    @property
    def select_bytes(self) -> bytes:
        if self.fixed:
            return bytes.fromhex(self.id)[::-1] + b"\xff\xff\xff\xff"
        return (
            bytes.fromhex(self.id)[::-1]
            + manufacturer_code(self.manufacturer).to_bytes(2, "little")
            + bytes((self.version, self.medium))
        )


def manufacturer_code(text: str) -> int:
    """The 2-byte code of a manufacturer: three letters (EN 62056-21 flag), or the 4 hex digits that
    manufacturer_text gives a code that spells no letters (meters send such codes too)."""
    text = text.upper()
    if len(text) == 4 and all(ch in "0123456789ABCDEF" for ch in text):
        return int(text, 16)
    if len(text) != 3 or not all("A" <= ch <= "Z" for ch in text):
        raise UsageError(f"manufacturer {text!r} must be three letters A-Z")
    return ((ord(text[0]) - 64) << 10) | ((ord(text[1]) - 64) << 5) | (ord(text[2]) - 64)


def manufacturer_text(code: int) -> str:
    """Three letters, or 4 hex digits for a code that spells none (bit 15 set, or a 5-bit group 0/27-31)."""
    letters = [((code >> shift) & 0x1F) + 64 for shift in (10, 5, 0)]
    if code <= 0x7FFF and all(65 <= ch <= 90 for ch in letters):
        return "".join(chr(ch) for ch in letters)
    return f"{code:04X}"


# EN 1434-3 fixed structure: the 4-bit medium code (2 bits in each Medium/Unit byte) -> EN 13757-3 medium
_FIXED_MEDIA = (0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x0F, 0x03, 0x04, 0x06, 0x07, 0x08, 0x0F)


def identity_of(frame: link.LongFrame) -> Identity | None:
    """The secondary address of an RSP_UD with a long header (CI 72, or 76 with the same layout), or the
    ID of a fixed-structure answer (CI 73 LSB first, CI 77 MSB first)."""
    data = frame.data
    if frame.ci in (0x73, 0x77) and len(data) >= 8:
        ident = data[0:4][::-1] if frame.ci == 0x73 else data[0:4]
        medium = _FIXED_MEDIA[((data[6] >> 6) & 0x03) | ((data[7] >> 6) << 2)]
        return Identity(ident.hex().upper(), "", 0, medium, fixed=True)
    if frame.ci not in (0x72, 0x76) or len(data) < 8:
        return None
    return Identity(
        data[0:4][::-1].hex().upper(), manufacturer_text(int.from_bytes(data[4:6], "little")), data[6], data[7]
    )


class Master:
    """Talks M-Bus over a ``Link``. Not thread-safe: one master per port."""

    def __init__(self, port: Link, settings: MasterSettings | None = None) -> None:
        self.link = port
        self.settings = settings or MasterSettings()
        self.clock = port.clock
        self.recorder: collections.deque[str] = collections.deque(maxlen=self.settings.recorder_size)
        self.tx_frames = 0
        self._last_tx: bytes | None = None
        self._tx_end = 0.0
        self.last_bad = ""  # why identify's last complete answer was refused (a wrong checksum, say)

    # ---- timing ----------------------------------------------------------------------------------------

    @property
    def bit_time(self) -> float:
        return 1.0 / self.link.baudrate

    def answer_window(self) -> float:
        """How long a probe waits for the first byte: 330 bit times + 50 ms, never above MBUS_TIMEOUT."""
        window = ANSWER_BITS * self.bit_time + ANSWER_MARGIN
        if self.settings.timeout_ms:
            window = min(window, self.settings.timeout_ms / 1000.0)
        return window

    def frames(self) -> tuple[str, ...]:
        return tuple(self.recorder)

    # ---- transactions ------------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.link.reset_input_buffer()
        self.recorder.append(f"TX {data.hex(' ').upper()}")
        self.tx_frames += 1
        self.link.write(data)
        self.link.drain()
        self._last_tx = data
        self._tx_end = self.clock.now()

    def first_byte_timeout(self) -> float:
        """MBUS_TIMEOUT for a readout's answers; 0 means the standard answer window (330 bits + 50 ms)."""
        if self.settings.timeout_ms:
            return self.settings.timeout_ms / 1000.0
        return ANSWER_BITS * self.bit_time + ANSWER_MARGIN

    def receive(self, first_timeout: float) -> Received:
        """One frame: wait ``first_timeout`` for its first byte, then read to the end its length gives.

        MBUS_IDLETIMEOUT is the longest silence allowed between two characters of a telegram (at least
        three character times); MBUS_FULLTIMEOUT bounds the whole answer, counted from the end of the
        request (0 = no bound: the length field and the idle timeout still end every telegram).
        """
        buf = bytearray(self.link.read(1, first_timeout))
        if not buf:
            return Received(None, b"")
        char = self.link.char_time()
        idle = max(self.settings.idle_timeout_ms / 1000.0, 3 * char)
        full = self.settings.full_timeout_ms / 1000.0
        full_deadline = self._tx_end + full if full else float("inf")
        while True:
            try:
                size = link.frame_length(bytes(buf))
            except DecodeError:
                return self._garbage(buf, idle)
            if size is not None and len(buf) >= size:
                break
            want = 2 if size is None else size - len(buf)
            # Take what has arrived; otherwise wait one character plus the idle time for the next byte.
            ready = min(want, self.link.in_waiting())
            left = full_deadline - self.clock.now()
            chunk = self.link.read(ready, 0.0) if ready else self.link.read(1, max(0.0, min(idle + char, left)))
            if not chunk:
                over = full_deadline - self.clock.now() <= 1e-6
                note = "MBUS_FULLTIMEOUT" if over else "truncated"
                self.recorder.append(f"RX {bytes(buf).hex(' ').upper()} ({note})")
                return Received(None, bytes(buf), truncated=True, full_timeout=over)
            buf += chunk
        raw = bytes(buf)
        try:
            frame, _ = link.decode_frame(raw)
        except NeedMoreData:  # pragma: no cover - size was known
            return Received(None, raw, truncated=True)
        except DecodeError as exc:
            got = self._garbage(buf, idle)
            # nothing after the frame: one slave sent it, and it is wrong (a checksum, say), not a collision
            return replace(got, bad=str(exc)) if got.raw == raw else got
        if raw == self._last_tx:
            # A level converter echoing our request: drop it and wait for the real answer.
            self._last_tx = None
            return self.receive(first_timeout)
        self.recorder.append(f"RX {raw.hex(' ').upper()}")
        # Bytes right behind a complete frame mean another slave talked too (collision).
        extra = self.link.read(64, self.link.char_time() * 2) if self.link.in_waiting() else b""
        if extra:
            self.recorder.append(f"RX {extra.hex(' ').upper()} (after frame)")
            return Received(None, raw + extra)
        return Received(frame, raw)

    def _garbage(self, buf: bytearray, idle: float) -> Received:
        """Collect garbage until the line is idle and every slave's answer window is over.

        A slow slave may start its answer 330 bit times after the request, long after a fast one's
        garbage ended: stopping early would leave its bytes to spoil the next request's answer.
        """
        quiet_from = self._tx_end + self.answer_window() + self.link.char_time()
        while True:
            chunk = self.link.read(256, max(idle, quiet_from - self.clock.now()))
            if not chunk:
                break
            buf += chunk
        raw = bytes(buf)
        self.recorder.append(f"RX {raw.hex(' ').upper()} (garbled)")
        return Received(None, raw)

    def transact(self, request: bytes, first_timeout: float | None = None, retries: int | None = None) -> Received:
        """Send ``request`` and wait for a valid frame, repeating up to MBUS_MAXRETRY times."""
        tries = 1 + (self.settings.max_retry if retries is None else retries)
        timeout = self.first_byte_timeout() if first_timeout is None else first_timeout
        last = Received(None, b"")
        for _ in range(tries):
            self.send(request)
            last = self.receive(timeout)
            if last.frame is not None:
                return last
        return last

    def broadcast(self, request: bytes) -> None:
        """A request nobody answers (address 0xFF): send it and leave the slaves a few characters' time."""
        self.send(request)
        self.clock.sleep_until(self.clock.now() + 33 * self.bit_time)

    def nke(self, address: int) -> bool:
        """SND_NKE; True when acknowledged (broadcasts and 0xFD without a selected slave are not)."""
        if address == link.ADDRESS_BROADCAST:
            self.broadcast(link.snd_nke(address))
            return True
        got = self.transact(link.snd_nke(address), self.answer_window(), retries=0)
        return isinstance(got.frame, link.Ack)

    def wakeup(self) -> None:
        """MBUS_WAKEUPENABLE: half a second of 0x55 characters, then the usual 33 bit times of quiet.

        Table 25 only says "Enables specific wake-up request". Battery-powered M-Bus meters duty-cycle
        their receiver and need a preamble of 0x55 (alternating bits, no frame start) long enough to hit
        one of their listening slots; it is sent before every readout and once before a scan (the bus
        traffic of a scan keeps them awake). The simulator's ``sleepy`` meters answer only after it.
        """
        count = max(1, int(WAKEUP_SECONDS / self.link.char_time()))
        self.send(b"\x55" * count)
        self.clock.sleep_until(self.clock.now() + 33 * self.bit_time)

    # ---- probing (scans) --------------------------------------------------------------------------------

    def settle(self) -> bytes:
        """Wait until the last request's answer window has closed; returns what other slaves sent late.

        Slaves answer anywhere in the 11..330 bit window, so after a first answer a second slave may still
        be coming: its bytes would spoil the next request's answer. Scans, where several slaves can share
        an address or a mask, call this before their next request.
        """
        late = self._tx_end + self.answer_window() + self.link.char_time() - self.clock.now()
        extra = self.link.read(1, late) if late > 0 else b""
        if not extra:
            return b""
        return self._garbage(bytearray(extra), self.link.char_time() * 3).raw

    def probe_primary(self, address: int) -> bool:
        """SND_NKE to ``address``: an E5 (or a garbled answer: someone is there) means a meter."""
        for _ in range(1 + self.settings.max_retry):
            self.send(link.snd_nke(address))
            got = self.receive(self.answer_window())
            if got.frame is not None or got.raw:
                self.settle()
                return True
        return False

    def select(self, mask_bytes: bytes) -> Outcome:
        """Select by secondary address (CI 52 to 0xFD); single, none or several slaves (garbled E5)."""
        request = link.snd_ud(link.ADDRESS_NETWORK, link.CI_SELECT, mask_bytes)
        for _ in range(1 + self.settings.max_retry):
            self.send(request)
            got = self.receive(self.answer_window())
            if isinstance(got.frame, link.Ack):
                # Slaves answer anywhere in the 11..330 bit window; their E5s need not overlap. Only a
                # quiet line until the window closes proves a single slave.
                return Outcome.COLLISION if self.settle() else Outcome.SINGLE
            if got.raw:
                return Outcome.COLLISION
        return Outcome.NOTHING

    def probe_secondary(self, mask_bytes: bytes) -> tuple[Outcome, Identity | None]:
        """Select, then REQ_UD2 to 0xFD to learn the full address; colliding answers mean several meters."""
        outcome, ident, _frame = self.identify(mask_bytes)
        return outcome, ident

    def identify(self, mask_bytes: bytes) -> tuple[Outcome, Identity | None, link.LongFrame | None]:
        """probe_secondary with the answer itself (its A field is the meter's primary address)."""
        self.last_bad = ""
        outcome = self.select(mask_bytes)
        if outcome is not Outcome.SINGLE:
            return outcome, None, None
        fcb = not self.settings.first_fcb_neg
        for _ in range(1 + self.settings.max_retry):
            self.send(link.req_ud2(link.ADDRESS_NETWORK, fcb))
            got = self.receive(self.first_byte_timeout())
            if isinstance(got.frame, link.LongFrame):
                ident = identity_of(got.frame)
                return (Outcome.SINGLE, ident, got.frame) if ident else (Outcome.UNREADABLE, None, got.frame)
            if got.raw and not got.truncated:
                self.last_bad = got.bad
                return Outcome.COLLISION, None, None
        # A meter is there (it acknowledged alone) but did not answer, or broke off: never drop it silently.
        return Outcome.UNREADABLE, None, None

    def verify(self, ident: Identity, frame: link.LongFrame) -> bool:
        """Is ``frame`` (read under a wildcard mask or a primary address) one meter's answer, ``ident``'s?

        Two meters answering in step (same response delay) are wired-AND'ed bit by bit: their E5s merge into
        one and their telegrams into a frame that may even have a valid checksum, naming an address that is
        neither's (87654321 and 87654322 make 87654320). So the meter is selected again by its own address
        and read: no answer, several answers or another address means the first answer was merged. The
        second telegram must also equal the first (access number aside); if it does not, a third read
        tells a meter whose values move (equal to neither: it is one meter) from a merged first answer.
        """
        if self.select(ident.select_bytes) is not Outcome.SINGLE:
            return False
        reads: list[link.LongFrame] = []
        fcb = not self.settings.first_fcb_neg
        for _attempt in range(2):
            got = self.transact(link.req_ud2(link.ADDRESS_NETWORK, fcb))
            if not isinstance(got.frame, link.LongFrame) or identity_of(got.frame) != ident:
                return False
            if _same_answer(got.frame, frame):
                return True
            if reads and not _same_answer(got.frame, reads[0]):
                return True  # its values change by themselves: one real meter
            reads.append(got.frame)
            fcb = not fcb
        return False

    # ---- readout -----------------------------------------------------------------------------------------

    def select_mask_for(self, meter: Meter) -> bytes:
        """Selection bytes for a meter, with MBUS_SELECTMASK parts replaced by wildcards."""
        mask = self.settings.select_mask
        serial = "FFFFFFFF" if mask & 1 else meter.serial.upper().zfill(8)
        man = 0xFFFF if mask & 2 or not meter.manufacturer else manufacturer_code(meter.manufacturer)
        version = 0xFF if mask & 4 or meter.version is None else meter.version
        medium = 0xFF if mask & 8 or meter.medium is None else meter.medium
        return bytes.fromhex(check_mask(serial))[::-1] + man.to_bytes(2, "little") + bytes((version, medium))

    def read_telegrams(self, meter: Meter) -> list[link.LongFrame]:
        """The RSP_UD telegrams of one meter, following Table 25's reset and request modes.

        MBUS_RESETMODE: 0 = SND_NKE after the select, 1 = SND_NKE before the select, 2 = none,
        3 = SND_NKE to FD then FF before anything else, 4 = SND_NKE to FD, application reset to FF,
        SND_NKE to FF. Modes 0/1 send the SND_NKE to the meter's primary address, or to FF for a meter
        addressed by secondary address (a SND_NKE to FD would end the selection, EN 13757-3).

        Raises TimeoutError_/ProtocolError with the flight recorder's frames when the meter fails.
        """
        s = self.settings
        secondary = meter.address_mode is AddressMode.SECONDARY
        address = link.ADDRESS_NETWORK if secondary else meter.primary_address
        nke_target = link.ADDRESS_BROADCAST if secondary else meter.primary_address
        label = meter.device_id if secondary else f"primary address {meter.primary_address}"
        try:
            if s.wakeup:
                self.wakeup()
            if s.reset_mode in (3, 4):
                # Table 25 is normative here: FD and FF for primary and secondary meters alike (the web
                # page's description of "Extended 1/2" names the meter's own address instead).
                self.nke(link.ADDRESS_NETWORK)
                if s.reset_mode == 4:
                    self.broadcast(link.application_reset(link.ADDRESS_BROADCAST))
                self.nke(link.ADDRESS_BROADCAST)
            elif s.reset_mode == 1:
                self.nke(nke_target)
            if secondary:
                got = self.transact(link.snd_ud(link.ADDRESS_NETWORK, link.CI_SELECT, self.select_mask_for(meter)))
                if not isinstance(got.frame, link.Ack):
                    raise self._fail(label, got, "select")
            if s.reset_mode == 0:
                self.nke(nke_target)
            if s.use_freeze and s.request_mode != "FREEZE":
                # MUC_USE_FREEZE (Table 25): the Freeze command into MBUS_FREEZESTORAGEENUM before the readout
                got = self.transact(link.freeze(address, s.freeze_storage))
                if not isinstance(got.frame, link.Ack):
                    raise self._fail(label, got, "Freeze (MUC_USE_FREEZE)")
            if s.request_mode != "DEFAULT":
                if s.request_mode == "FREEZE":
                    request = link.freeze(address, s.freeze_storage)
                else:
                    request = link.get_all_data(address, extended2=s.request_mode == "ONLY")
                got = self.transact(request)
                if not isinstance(got.frame, link.Ack):
                    raise self._fail(label, got, f"{s.request_mode} request")
            return self._pages(address, label)
        except (TimeoutError_, ProtocolError):
            raise

    def _pages(self, address: int, label: str) -> list[link.LongFrame]:
        fcb = not self.settings.first_fcb_neg
        telegrams: list[link.LongFrame] = []
        pages = max(1, self.settings.max_multipage)
        while len(telegrams) < pages:
            got = self.transact(link.req_ud2(address, fcb))
            if not isinstance(got.frame, link.LongFrame):
                raise self._fail(label, got, f"REQ_UD2 (telegram {len(telegrams) + 1})")
            telegrams.append(got.frame)
            fcb = not fcb
            if not more_records_follow(got.frame):
                break
        return telegrams

    def _fail(self, label: str, got: Received, step: str) -> TimeoutError_ | ProtocolError:
        frames = self.frames()
        if got.full_timeout:
            return ProtocolError(
                f"{label}: {step}: {len(got.raw)} bytes of a telegram in MBUS_FULLTIMEOUT "
                f"({self.settings.full_timeout_ms} ms), the rest did not come in time",
                frames=frames,
            )
        if got.truncated:
            return ProtocolError(
                f"{label}: {step}: the meter stopped after {len(got.raw)} bytes of a telegram", frames=frames
            )
        if got.bad:
            return ProtocolError(f"{label}: {step}: {got.bad} ({len(got.raw)} bytes)", frames=frames)
        if got.raw:
            return ProtocolError(f"{label}: {step}: garbled answer ({len(got.raw)} bytes)", frames=frames)
        tries = 1 + self.settings.max_retry
        return TimeoutError_(
            f"{label}: {step}: no answer after {tries} tries",
            hint="check wiring, baud rate and address; raise MBUS_MAXRETRY or MBUS_TIMEOUT",
            frames=frames,
        )

    def readout(self, meter: Meter) -> Reading:
        """Read one meter and decode its telegrams into a Reading with every record.

        METER_MAXVALUECOUNT and the meter's maxvaluecount limit its value entries in the meter list, not the
        records read: the engine's binding (sonocli.engine.values) applies them and marks the meter limited.
        """
        telegrams = self.read_telegrams(meter)
        values, ident = decode_telegrams(telegrams)
        if ident is not None and meter.manufacturer is None:
            found = meter_from_identity(ident)
            meter = replace(
                meter, serial=found.serial, manufacturer=found.manufacturer, version=found.version, medium=found.medium
            )
        raw = tuple(link.encode(t) for t in telegrams)
        return Reading(meter=meter, taken_at=datetime.now(UTC), values=tuple(values), raw_frames=raw)


def _same_answer(a: link.LongFrame, b: link.LongFrame) -> bool:
    """Two telegrams of one meter: equal but for the access number (long header byte 8, counts up)."""
    # the A field is left out: some meters answer a REQ_UD2 to FD with FD, others with their own address
    if (a.control, a.ci, len(a.data)) != (b.control, b.ci, len(b.data)):
        return False
    skip = 8 if a.ci in (0x72, 0x76) else 4 if a.ci in (0x73, 0x77) else -1
    return all(x == y for i, (x, y) in enumerate(zip(a.data, b.data, strict=True)) if i != skip)


def primary_of(frame: link.LongFrame) -> int:
    """The primary address an RSP_UD carries in its A field (0 when it is none of 0..250)."""
    return frame.address if 0 <= frame.address <= 250 else 0


def more_records_follow(frame: link.LongFrame) -> bool:
    """DIF 0x1F at record level: the meter has another telegram (EN 13757-3)."""
    try:
        from sonocli.codecs import mbus_app
    except ImportError:  # the application decoder lands separately; fall back to the last byte
        return frame.data[-1:] == b"\x1f"
    try:
        app = mbus_app.decode_application(frame.ci, frame.data)
    except Exception:  # a telegram the decoder rejects still ends the readout cleanly
        return frame.data[-1:] == b"\x1f"
    return bool(getattr(app, "more_records_follow", False))


def decode_telegrams(telegrams: list[link.LongFrame]) -> tuple[list[MeterValue], Identity | None]:
    """All records of a multi-telegram readout in order, re-indexed from 0."""
    from sonocli.codecs import mbus_app

    values: list[MeterValue] = []
    ident = identity_of(telegrams[0]) if telegrams else None
    for telegram in telegrams:
        app = mbus_app.decode_application(telegram.ci, telegram.data)
        for value in app.values:
            values.append(value._replace(index=len(values)))
    return values, ident


def meter_from_identity(ident: Identity, *, primary: int = 0, mode: AddressMode = AddressMode.SECONDARY) -> Meter:
    """A meter-list entry; a fixed-structure meter has no manufacturer or version (left unset)."""
    return Meter(
        interface=Interface.MBUS,
        serial=ident.id,
        manufacturer=ident.manufacturer or None,
        version=None if ident.fixed else ident.version,
        medium=ident.medium,
        primary_address=primary,
        address_mode=mode,
    )


ProgressCallback = Callable[[int, int | None, str], None]


@valueclass(frozen=True, slots=True)
class ReadResult:
    """One meter of a multi-meter readout: a Reading, or the error that stopped it."""

    meter: Meter
    reading: Reading | None
    error: Exception | None = None


def read_all(master: Master, meters: list[Meter], on_progress: ProgressCallback | None = None) -> list[ReadResult]:
    """Read meters one after another; a dead meter is recorded and the readout goes on with the next."""
    results: list[ReadResult] = []
    for index, meter in enumerate(meters):
        try:
            results.append(ReadResult(meter, master.readout(meter)))
        except (TimeoutError_, ProtocolError, DecodeError) as exc:
            results.append(ReadResult(meter, None, exc))
        if on_progress is not None:
            failed = sum(1 for r in results if r.reading is None)
            on_progress(index + 1, len(meters), f"{failed} failed" if failed else "")
    return results
