"""The wireless receiver: dongle bytes -> telegrams -> meters heard, readings for the meter list.

Follows the guide (4.2, 5.1.2): meters that are not in the meter list are kept in a temporary list,
inactive, and are only added when activated and saved (or when the user asks for it, ``listen --save``);
with "wM-Bus listen" off they are ignored. Repeated telegrams (same meter, access number and content,
e.g. via a repeater) are counted once, using a frame cache bounded by WMBUS_CACHESIZE entries and
WMBUS_CACHETIMEOUT seconds. A bad telegram is counted and logged, never fatal.

Everything is keyed by meter ID in dicts, so the cost per telegram does not grow with the meter list.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sonocli import logs
from sonocli.codecs.dongles import DongleDriver, Garbage, Received, Reply
from sonocli.codecs.wmbus import DecodeOptions, FormatCache, WmbusTelegram, decode_telegram
from sonocli.errors import DecodeError, ProtocolError, SonoError
from sonocli.model import Interface, Meter, Reading
from sonocli.model.valueclass import field, replace, valueclass

log = logs.logger("sonocli.receiver")

IGNORED = "ignored (wM-Bus listen off)"  # stats.bad key: telegrams of unlisted meters with listen_new off
LINK_MODE = "link mode"  # stats.bad key: telegrams heard in another link mode than the one listened in


class Port(Protocol):
    """What the receiver needs from a port: pyserial's read/write (a Link's .port, or a RadioPort)."""

    timeout: float | None

    def write(self, data: bytes) -> int | None: ...

    def read(self, size: int = 1) -> bytes: ...


@valueclass(frozen=True, slots=True)
class ReceiverSettings:
    """The receiver's part of chip.ini (the daemon maps Table 25 onto it)."""

    mode: str = "T1"  # WMBUS_MODE (T1_OTHER_REQ/T2_OTHER_REQ -> T1, S2_REQ -> S1, C1_OTHER_REQ -> C1)
    listen_new: bool = True  # "wM-Bus listen" (tab Configuration): recognise meters not in the list
    cache_size: int = 500  # WMBUS_CACHESIZE: frames remembered for duplicate detection
    cache_timeout: float = 0.0  # WMBUS_CACHETIMEOUT in s, 0 = no timeout
    raw_log: Path | None = None  # WMBUS_RAWLOGENABLE: append every raw telegram here (hex, one a line)
    fast_rescan: float = 60.0  # FASTRESCAN_TIME: how often the temporary list is published, in s
    setup_timeout: float = 2.0  # seconds to wait for each set-up answer of the stick
    recorder: int = 20  # raw frames kept for --debug (flight recorder)


@valueclass
class HeardMeter:
    """What the receiver knows about one meter it heard (mutable: updated per telegram)."""

    id: str
    manufacturer: str
    version: int
    medium: int
    in_list: bool
    active: bool
    rssi: int | None = None
    telegrams: int = 0
    duplicates: int = 0
    failures: int = 0
    last_seen: datetime | None = None
    security: str = "none"
    security_mode: int = 0
    last_error: str = ""
    last_counter: int | None = None

    def as_meter(self, key: bytes | None = None) -> Meter:
        return Meter(
            interface=Interface.WMBUS,
            serial=self.id,
            manufacturer=self.manufacturer,
            version=self.version,
            medium=self.medium,
            key=key,
            active=True,
            rssi=self.rssi or 0,
        )


@valueclass(frozen=True, slots=True)
class Heard:
    """One received telegram, after decoding; ``reading`` is set for meters of the meter list (the engine
    stores those of active meters and learns the value entries of every listed one)."""

    when: datetime
    meter: HeardMeter | None
    raw: bytes
    rssi: int | None
    telegram: WmbusTelegram | None = None
    duplicate: bool = False
    new_meter: bool = False
    error: str = ""
    error_kind: str = ""
    reading: Reading | None = None
    rssi_rel: int | None = None  # a level that is not dBm (rtl-wmbus PACKET_RSSI); ``rssi`` is dBm only
    link_mode: str | None = None  # T1, C1, S1 as heard (the stick's word, else the one mode listened in)


@valueclass
class ReceiverStats:
    telegrams: int = 0
    duplicates: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    garbage_bytes: int = 0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Receiver:
    def __init__(
        self,
        driver: DongleDriver,
        settings: ReceiverSettings | None = None,
        meters: Iterable[Meter] = (),
        *,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.driver = driver
        self.settings = settings or ReceiverSettings()
        self.now = now
        self.meters: dict[str, Meter] = {}
        self.keys: dict[str, bytes] = {}
        self.set_meters(meters)
        self.heard: dict[str, HeardMeter] = {}
        self.stats = ReceiverStats()
        self.formats = FormatCache()
        self._options = DecodeOptions(keys=self.keys.get, cache=self.formats)
        self._frames: OrderedDict[tuple[bytes, int | None, int], float] = OrderedDict()
        self.recorder: deque[str] = deque(maxlen=max(1, self.settings.recorder))
        self._raw_log: Any = None
        self._early: list[Heard] = []  # telegrams that arrived while waiting for set-up answers
        self._published: float | None = None
        self.on_problem: Callable[[str], None] | None = None  # one line per bad telegram or garbage

    # --- meter list ----------------------------------------------------------------------------

    def set_meters(self, meters: Iterable[Meter]) -> None:
        """Index the wireless meters of the list by ID (their keys too); other interfaces are ignored."""
        self.meters = {}
        self.keys.clear()
        for meter in meters:
            if meter.interface is not Interface.WMBUS:
                continue
            ident = meter.serial.upper()
            self.meters[ident] = meter
            if meter.key:
                self.keys[ident] = meter.key

    def add_key(self, meter_id: str, key: bytes) -> None:
        """A key not (yet) in the meter list, e.g. from a telegram file; used for decryption only."""
        self.keys[meter_id.upper()] = key

    def temporary(self) -> list[HeardMeter]:
        """Meters heard that are not in the meter list (the guide's temporary list)."""
        return [m for m in self.heard.values() if not m.in_list]

    def temporary_due(self, now: float) -> bool:
        """Whether FASTRESCAN_TIME has passed since the temporary list was last published (``now`` in s)."""
        if self._published is not None and now - self._published < self.settings.fast_rescan:
            return False
        self._published = now
        return True

    def activate(self, meter_id: str, active: bool = True) -> None:
        self.heard[meter_id.upper()].active = active

    def merged_meters(self, existing: Iterable[Meter], *, all_heard: bool = False) -> list[Meter]:
        """The meter list with the activated (or, with ``all_heard``, every) temporary meter appended.

        Heard meters already in the list get their RSSI refreshed; nothing is removed (guide 4.2).
        """
        out: list[Meter] = []
        present: set[str] = set()
        for meter in existing:
            ident = meter.serial.upper()
            heard = self.heard.get(ident) if meter.interface is Interface.WMBUS else None
            if heard is not None and heard.rssi is not None:
                meter = replace(meter, rssi=heard.rssi)
            out.append(meter)
            if meter.interface is Interface.WMBUS:
                present.add(ident)
        for heard in self.heard.values():
            if heard.id in present or not (all_heard or heard.active):
                continue
            out.append(heard.as_meter(self.keys.get(heard.id)))
        return out

    # --- set-up --------------------------------------------------------------------------------

    def setup(self, port: Port) -> list[str]:
        """Send the stick's set-up commands; a missing answer is an error naming the command."""
        done: list[str] = []
        for step in self.driver.setup(self.settings.mode):
            port.write(step.command)
            if step.expect is None:
                done.append(step.what)
                continue
            if not self._await_reply(port, step.expect):
                raise ProtocolError(
                    f"{self.driver.name}: no answer to the set-up command '{step.what}' "
                    f"({step.command.hex(' ').upper()}) within {self.settings.setup_timeout:g} s",
                    hint="check --dongle (the stick's type), the port, and that nothing else uses the stick",
                )
            done.append(step.what)
        return done

    def _await_reply(self, port: Port, expect: str) -> bool:
        clock = getattr(port, "clock", None)
        timeout = self.settings.setup_timeout
        port.timeout = min(0.1, timeout)
        if clock is not None:
            deadline = clock.now() + timeout
            expired: Callable[[], bool] = lambda: clock.now() >= deadline  # noqa: E731
        else:
            import time

            wall = time.monotonic() + timeout
            expired = lambda: time.monotonic() >= wall  # noqa: E731
        while not expired():
            data = port.read(256)
            if not data:
                continue
            answered = False
            for event in self.driver.feed(data):
                if isinstance(event, Reply) and event.code.startswith(expect):
                    answered = True
                elif isinstance(event, Received):
                    self._early.append(self.handle(event))
            if answered:
                return True
        return False

    # --- the hot path --------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Heard]:
        """Bytes from the stick -> what was heard (garbage is counted and logged)."""
        out: list[Heard] = []
        for event in self.driver.feed(data):
            if isinstance(event, Received):
                out.append(self.handle(event))
            elif isinstance(event, Garbage):
                self.stats.garbage_bytes += len(event.data)
                self.stats.bad["garbage"] += 1
                text = f"{event.reason} ({len(event.data)} bytes: {event.data[:24].hex(' ').upper()})"
                log.info("%s", text)
                if self.on_problem is not None:
                    self.on_problem(text)
        return out

    def handle(self, event: Received) -> Heard:
        """Decode one received telegram and update what is known of its meter; never raises."""
        heard = self._handle(event)
        mode = self.link_mode(event)
        if mode is None and event.rssi_rel is None:
            return heard
        return replace(heard, rssi_rel=event.rssi_rel, link_mode=mode)

    def link_mode(self, event: Received) -> str | None:
        """The link mode a telegram was heard in: the stick's own word (rtl-wmbus's MODE field, CUL's format
        B line = C mode), else the one mode listened in; None when listening in C1T1 to a stick that does
        not say which (iM871A, AMB8465 strip the CRCs, so the frame format is not seen)."""
        if event.link_mode is not None:
            return event.link_mode
        return None if self.settings.mode == "C1T1" else self.settings.mode

    def _wrong_mode(self, event: Received) -> str | None:
        """Why a telegram heard in another link mode than the one listened in is not taken (None: it fits).

        rtl-wmbus demodulates T and C mode at once, whatever WMBUS_MODE says: taking a C1 telegram while
        listening in T1 would make the outcome depend on the stick, so every dongle refuses it the same way.
        """
        heard = event.link_mode
        listening = self.settings.mode
        if heard is None or heard == listening or (listening == "C1T1" and heard in ("C1", "T1")):
            return None
        return f"{heard} telegram heard while listening in {listening}: not taken (WMBUS_MODE)"

    def _handle(self, event: Received) -> Heard:
        when = self.now()
        raw = event.telegram
        self.recorder.append(raw.hex().upper())
        if self.settings.raw_log is not None:
            self._log_raw(when, raw, event.rssi)
        try:
            telegram = decode_telegram(raw, self._decode_options(event))
        except DecodeError as exc:
            return self._bad(when, raw, event.rssi, "decode", str(exc))
        except SonoError as exc:  # never fatal: a bad telegram is one line in the log
            return self._bad(when, raw, event.rssi, "error", str(exc))
        except Exception as exc:  # a decoder bug must not stop the receiver either; keep the evidence
            log.debug("decoder failure on %s", raw.hex().upper(), exc_info=True)
            return self._bad(when, raw, event.rssi, "internal", f"decoder failure ({type(exc).__name__}: {exc})")
        wrong_mode = self._wrong_mode(event)
        if wrong_mode is not None:
            self.stats.bad[LINK_MODE] += 1
            text = f"meter {telegram.meter.id} ({telegram.meter.manufacturer_text}): {wrong_mode}"
            log.info("%s", text)
            hint = "C1T1" if self.settings.mode in ("T1", "C1") else event.link_mode
            return Heard(when, None, raw, event.rssi, telegram,
                         error=f"{text}; listen in {hint} (--mode) to take it", error_kind=LINK_MODE)
        self.stats.telegrams += 1
        address = telegram.meter
        ident = address.id
        meter = self.heard.get(ident)
        new = False
        if meter is None:
            in_list = ident in self.meters
            if not in_list and not self.settings.listen_new:
                self.stats.bad[IGNORED] += 1
                return Heard(when, None, raw, event.rssi, telegram, error="not in the meter list (listen off)")
            listed = self.meters.get(ident)
            meter = HeardMeter(
                ident,
                address.manufacturer_text,
                address.version,
                address.device_type,
                in_list=in_list,
                active=bool(listed.active) if listed is not None else False,
            )
            self.heard[ident] = meter
            new = not in_list
        duplicate = self._seen(address.raw, telegram.access_number, _content(telegram), when.timestamp())
        meter.rssi = event.rssi if event.rssi is not None else meter.rssi
        meter.last_seen = when
        if duplicate:
            meter.duplicates += 1
            self.stats.duplicates += 1
            return Heard(when, meter, raw, event.rssi, telegram, duplicate=True, new_meter=new)
        meter.telegrams += 1
        security = telegram.security
        meter.security = security.state
        meter.security_mode = security.mode
        if security.error is not None:
            meter.failures += 1
            meter.last_error = str(security.error)
            self.stats.bad[security.state] += 1
            log.info("meter %s: %s", ident, security.error)
            return Heard(when, meter, raw, event.rssi, telegram, new_meter=new, error=str(security.error),
                         error_kind=security.state)
        meter.last_error = ""
        if telegram.afl is not None and telegram.afl.counter is not None:
            if meter.last_counter is not None and telegram.afl.counter <= meter.last_counter:
                log.warning("meter %s: message counter %d not above %d (replayed?)", ident,
                            telegram.afl.counter, meter.last_counter)
            meter.last_counter = telegram.afl.counter
        reading = None
        listed = self.meters.get(ident)
        if listed is not None:  # also inactive ones: the engine learns their values, stores active ones only
            plain = (telegram.payload,) if security.state == "decrypted" and telegram.payload else ()
            reading = Reading(replace(listed, rssi=event.rssi if event.rssi is not None else listed.rssi), when,
                              telegram.records, event.rssi, (raw,), plain=plain)
        return Heard(when, meter, raw, event.rssi, telegram, new_meter=new, reading=reading)

    def _decode_options(self, event: Received) -> DecodeOptions:
        if event.frame_format == self._options.frame_format:
            return self._options
        return DecodeOptions(keys=self._options.keys, cache=self.formats, frame_format=event.frame_format)

    def _bad(self, when: datetime, raw: bytes, rssi: int | None, kind: str, text: str) -> Heard:
        self.stats.bad[kind] += 1
        log.info("bad telegram (%s): %s: %s", kind, text, raw[:64].hex().upper())
        if self.on_problem is not None:
            self.on_problem(f"bad telegram: {text} [{raw[:32].hex().upper()}]")
        return Heard(when, None, raw, rssi, error=text, error_kind=kind)

    def _seen(self, address: bytes, acc: int | None, content: bytes, stamp: float) -> bool:
        """Whether this telegram is a repeat (repeater, two receive modes) of one in the frame cache."""
        key = (address, acc, hash(content))
        frames = self._frames
        timeout = self.settings.cache_timeout
        if timeout > 0:
            while frames:
                oldest = next(iter(frames.values()))
                if stamp - oldest <= timeout:
                    break
                frames.popitem(last=False)
        if key in frames:
            return True
        frames[key] = stamp
        while len(frames) > max(1, self.settings.cache_size):
            frames.popitem(last=False)
        return False

    def _log_raw(self, when: datetime, raw: bytes, rssi: int | None) -> None:
        path = self.settings.raw_log
        assert path is not None
        try:
            if self._raw_log is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._raw_log = path.open("a", encoding="ascii")
            level = "" if rssi is None else str(rssi)
            self._raw_log.write(f"{when.strftime('%Y-%m-%dT%H:%M:%SZ')};{level};{raw.hex().upper()}\n")
            self._raw_log.flush()
        except OSError as exc:
            log.warning("raw log %s: %s; raw logging stopped", path, exc.strerror)
            self.settings = replace(self.settings, raw_log=None)

    def close(self) -> None:
        if self._raw_log is not None:
            self._raw_log.close()
            self._raw_log = None

    # --- the loop ------------------------------------------------------------------------------

    def run(
        self,
        port: Port,
        *,
        on_heard: Callable[[Heard], None],
        duration: float | None = None,
        count: int | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        clock: Any = None,
    ) -> None:
        """Read until ``duration`` seconds passed (on the port's clock), ``count`` telegrams were heard
        (repeats not counted), or ``should_stop()``; each result goes to ``on_heard``."""
        import time

        clock = clock if clock is not None else getattr(port, "clock", None)
        now: Callable[[], float] = clock.now if clock is not None else time.monotonic
        end = None if duration is None else now() + duration
        port.timeout = 0.1 if end is None else max(0.0, min(0.1, end - now()))
        heard = 0
        early, self._early = self._early, []
        for item in early:
            on_heard(item)
            if _counts(item):
                heard += 1
        if count is not None and heard >= count:
            return
        while not should_stop():
            if end is not None:
                left = end - now()
                if left <= 0:
                    break
                port.timeout = min(0.1, left)
            data = port.read(4096)
            if not data:
                if getattr(port, "at_eof", False):
                    break
                continue
            for item in self.feed(data):
                on_heard(item)
                if _counts(item):
                    heard += 1
                if count is not None and heard >= count:
                    return


def _counts(item: Heard) -> bool:
    """Whether a telegram counts for ``count``: every decoded telegram but repeats, also one of a meter
    ignored because "wM-Bus listen" is off (else ``listen --count N --only-listed`` could wait forever)."""
    return not item.duplicate and (item.meter is not None or item.telegram is not None)


def _content(telegram: WmbusTelegram) -> bytes:
    """What makes two receptions the same telegram: the bytes after the link header, without DLL CRCs
    (format A and B of one telegram, heard in C and T mode, compare equal) and without the ELL's H and R
    bits, which a repeater sets on the copy it sends again."""
    body = telegram.raw
    if telegram.ell is not None and len(body) > 11:
        return body[10:11] + bytes([body[11] & ~0x12 & 0xFF]) + body[12:]
    return body[10:]


def parse_raw_log(text: str) -> list[tuple[str, bytes]]:
    """Lines of the raw log: (UTC time text, telegram); lines that do not parse are skipped."""
    out: list[tuple[str, bytes]] = []
    for line in text.splitlines():
        parts = line.strip().split(";")
        if len(parts) != 3:
            continue
        try:
            out.append((parts[0], bytes.fromhex(parts[2])))
        except ValueError:
            continue
    return out


def mode_from_chip(value: str) -> str:
    """WMBUS_MODE (Table 25) -> receiver mode: T1/T2 other -> T1, S2 -> S1, C1 other -> C1."""
    text = value.upper()
    if text.startswith("S"):
        return "S1"
    if text.startswith("C"):
        return "C1"
    return "T1"


class StreamPort:
    """A read-only "port" over a byte stream (stdin from rtl_wmbus, a capture file): EOF ends the loop."""

    def __init__(self, stream: Any, name: str) -> None:
        self.stream = stream
        self.name = name
        self.timeout: float | None = None
        self.at_eof = False

    def write(self, data: bytes) -> int:
        return len(data)  # nothing to configure on a stream

    def read(self, size: int = 1) -> bytes:
        reader = getattr(self.stream, "read1", None)
        data = reader(size) if reader is not None else self.stream.read(size)
        if not data:
            self.at_eof = True
        return bytes(data)

    def close(self) -> None:
        if self.stream is not None and self.name != "-":
            self.stream.close()


def open_port(url: str, driver: DongleDriver) -> Any:
    """``-`` (stdin), ``file:PATH``, or any pyserial URL (device, socket://, rfc2217://, sim://air).

    For ``sim://air`` without a ``dongle=`` parameter the simulated stick speaks the chosen driver's framing.
    """
    import sys

    if url == "-":
        return StreamPort(sys.stdin.buffer, "-")
    if url.startswith("file:"):
        path = Path(url[5:])
        try:
            return StreamPort(path.open("rb"), str(path))
        except OSError as exc:
            from sonocli.errors import TransportError

            raise TransportError(f"cannot open {path}: {exc.strerror}") from None
    if url.startswith("sim://air") and "dongle=" not in url:
        url += ("&" if "?" in url else "?") + f"dongle={driver.name}"
    import serial

    from sonocli.errors import TransportError, UsageError
    from sonocli.registry import check_port_url
    from sonocli.transports import register_sim_handler

    check_port_url(url, also=("- (stdin)", "file:PATH"))
    register_sim_handler()
    try:
        return serial.serial_for_url(url, baudrate=driver.baudrate or 9600, timeout=0.1)
    except UsageError:
        raise
    except ValueError as exc:
        raise UsageError(f"port {url!r}: {exc}") from exc
    except (serial.SerialException, OSError) as exc:
        text = str(exc)
        hint = None
        if "ermission" in text:
            hint = "add the user to the dialout group (sudo usermod -aG dialout $USER), then log in again"
        elif "No such file" in text or "could not open" in text:
            hint = "check the port name (ls /dev/ttyUSB* /dev/ttyACM*) or use sim://air"
        first = text.splitlines()[0] if text else type(exc).__name__
        raise TransportError(f"port {url!r}: {first}", hint=hint) from exc


RAW_LOG_NAME = "wmbus_raw.log"


def settings_from_chip(chip: Any, log_dir: Path | None = None, interface: int = 1) -> ReceiverSettings:
    """ReceiverSettings from chip.ini (Table 25): WMBUS_MODE (WMBUS2_MODE for ``interface`` 2),
    WMBUS_CACHESIZE, WMBUS_CACHETIMEOUT, WMBUS_RAWLOGENABLE (log under ``log_dir``), FASTRESCAN_TIME.
    "wM-Bus listen" has no chip.ini row in Table 25 (it is a tab Configuration switch), so it stays on
    unless the caller says otherwise.

    ``chip`` is a ``ChipIni`` or anything with ``get(NAME)``; every value passes the chip.ini schema's check
    (``check_setting``), so a bad one is a ConfigError naming the parameter, never a silent default."""
    from sonocli.config.chipini_schema import check_setting

    def get(name: str) -> Any:
        return check_setting(name, chip.get(name))

    raw_log = None
    if get("WMBUS_RAWLOGENABLE") and log_dir is not None:
        raw_log = log_dir / RAW_LOG_NAME
    return ReceiverSettings(
        mode=mode_from_chip(str(get("WMBUS2_MODE" if interface == 2 else "WMBUS_MODE"))),
        cache_size=int(get("WMBUS_CACHESIZE")),
        cache_timeout=float(get("WMBUS_CACHETIMEOUT")),
        raw_log=raw_log,
        fast_rescan=float(get("FASTRESCAN_TIME")),
    )
