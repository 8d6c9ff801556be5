"""DLDE (IEC 62056-21) readouts as the engine drives them: sign-on, baud switch, data message, records.

The bytes are sonocli.codecs.dlde's; here they meet the port and its timing. A readout opens the port at
300 baud, 7E1 (IEC 62056-21 6.3), sends ``/?!`` or ``/?ADDRESS!`` (multi-drop RS-485), reads the
identification and switches the way its baud-rate letter says:

* mode C (0-6): the acknowledgement ``ACK 0 Z 0`` goes out at 300 baud; once it has left the wire the port
  switches to the rate Z (the meter's proposal, capped by DLDE_BAUDRATE) and the data message comes at it;
* mode B (A-F): the port switches right after the identification, the meter sends without being asked;
* mode A: the data message follows at 300 baud.

The BCC is checked, the data sets become records with their OBIS code (``record.text``), and the port goes
back to 300 baud for the next meter. A listed DLDE meter's value entries are learned on its first reading
(one per data set, with the OBIS-ID set) and matched by OBIS-ID ever after, so labels, activation and OBIS
edits in the meter list are what every output carries (sonocli.engine.values.deliverable).

Timing: the meter answers 200..1500 ms after a request (tr) and keeps at most 1500 ms between characters;
DLDE_TIMEOUT (ms) is how long sonocli waits for the first byte of an answer.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sonocli import logs
from sonocli.errors import NeedMoreData, ProtocolError, SonoError, TimeoutError_, UsageError
from sonocli.model.valueclass import replace, valueclass
from sonocli.model.values import Interface, Meter, MeterValue, Reading, ValueConfig

if TYPE_CHECKING:
    from sonocli.codecs.dlde import DataMessage, Identification
    from sonocli.engine.core import Engine
    from sonocli.engine.recording import Recorded
    from sonocli.transports import Link

log = logs.logger("sonocli.engine")

CHAR_TIMEOUT = 1.5  # IEC 62056-21: at most 1500 ms between two characters of a message
MAX_MESSAGE = 65536  # a data message longer than this is not a meter's (a line stuck on noise)
ELECTRICITY = 2  # Table 16: the usual DLDE medium
UNMATCHED = -1
# after the acknowledgement has been drained, wait this long before switching baud rate: well inside the
# meter's minimum reaction time (200 ms), and enough for USB adapters and ptys whose drain returns before the
# last character is out (a switch under the last character would garble it)
SWITCH_GUARD = 0.05


@valueclass(frozen=True)
class DldeSettings:
    """Line settings of a DLDE readout: the sign-on rate, the highest rate accepted, the answer timeout."""

    baudrate: int = 300
    max_baudrate: int = 19200
    timeout: float = 2.0
    databits: int = 7
    parity: str = "E"
    stopbits: int = 1

    @classmethod
    def from_engine(cls, engine: Engine, **overrides: Any) -> DldeSettings:
        """DLDE_BAUDRATE / DLDE_TIMEOUT of chip.ini, with command-line overrides (None: keep chip.ini's)."""
        values: dict[str, Any] = {
            "max_baudrate": int(engine.get("DLDE_BAUDRATE")),
            "timeout": int(engine.get("DLDE_TIMEOUT")) / 1000.0,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@valueclass(frozen=True)
class DldeReadout:
    """One meter read: the reading (records with OBIS), the identification, the mode and rate used."""

    reading: Reading
    identification: Identification
    mode: str
    baudrate: int


@valueclass(frozen=True)
class DldeResult:
    """A readout of one meter of the list (the daemon): the reading, or the error that stopped it."""

    meter: Meter
    readout: DldeReadout | None
    error: Exception | None = None


# -- the wire -----------------------------------------------------------------------------------------------
def dlde_port(engine: Engine, url: str | None = None) -> str:
    """The DLDE port: ``url``, else chip.ini's DLDE_PORT; neither is a UsageError."""
    port = (url or str(engine.get("DLDE_PORT") or "")).strip()
    if not port:
        raise UsageError(
            "no DLDE port given: use --port URL (/dev/ttyUSB0, socket://host:port, sim://dlde)",
            hint="or set DLDE_PORT in chip.ini (sonocli config set DLDE_PORT /dev/ttyUSB1)",
        )
    return port


def open_dlde_link(url: str, settings: DldeSettings) -> Link:
    from sonocli.transports import open_link

    return open_link(url, settings.baudrate, settings.parity, settings.databits, settings.stopbits,
                     timeout=settings.timeout, mbus_baud=False)


def _read_until(link: Link, done: Any, first_timeout: float, what: str, *, stop_at_lf: bool = False) -> bytes:
    """Bytes until ``done(buffer)`` is true; TimeoutError_ naming ``what`` when the line falls silent first."""
    buf = bytearray()
    timeout = first_timeout
    while len(buf) < MAX_MESSAGE:
        chunk = link.read(1 if stop_at_lf else max(1, min(link.in_waiting(), 512)), timeout)
        if not chunk:
            if not buf:
                raise TimeoutError_(f"DLDE: no {what} within {first_timeout:.1f} s",
                                    hint="check the port, the optical head's position and the meter address")
            shown = bytes(buf[:48]).hex(" ").upper()
            raise _Partial(f"DLDE: {what} stopped after {len(buf)} bytes (truncated): {shown}", bytes(buf))
        buf += chunk
        timeout = CHAR_TIMEOUT
        if done(buf):
            return bytes(buf)
    raise ProtocolError(f"DLDE: {what} longer than {MAX_MESSAGE} bytes (noise on the line?)")


class _Partial(TimeoutError_):
    """The line fell silent in the middle of a message; ``data`` is what came."""

    def __init__(self, message: str, data: bytes) -> None:
        super().__init__(message, frames=(data.hex().upper(),))
        self.data = data


def _message_complete(buf: bytearray) -> bool:
    end = buf.find(b"\x03")
    return end >= 0 and len(buf) > end + 1


def read_meter(link: Link, address: str = "", settings: DldeSettings | None = None) -> tuple[
        Identification, DataMessage, int]:
    """One IEC 62056-21 readout on an open link: (identification, data message, baud rate of the data).

    The link is left at the sign-on rate. A wrong BCC, a malformed data block or an identification that is
    none is a ProtocolError (exit 1), silence a TimeoutError_.
    """
    from sonocli.codecs import dlde

    s = settings if settings is not None else DldeSettings()
    request = dlde.sign_on(address)
    link.reset_input_buffer()
    link.write(request)
    link.drain()
    try:
        try:
            line = _read_until(link, lambda b: b.endswith(b"\n"), s.timeout, "identification", stop_at_lf=True)
            if line == request:  # a level converter that echoes: the meter's answer follows
                line = _read_until(link, lambda b: b.endswith(b"\n"), s.timeout, "identification",
                                   stop_at_lf=True)
        except _Partial as exc:
            raise ProtocolError(
                f"DLDE: not an identification message: {len(exc.data)} bytes of garbage"
                + ("" if address else " (several meters answering /?! on a multi-drop line? give the address)"),
                frames=exc.frames) from exc
        start = line.find(b"/")
        try:
            ident = dlde.parse_identification(line[start:] if start >= 0 else line)
        except SonoError as exc:
            raise ProtocolError(str(exc), frames=(line.hex().upper(),)) from exc
        rate = dlde.INITIAL_BAUD
        if ident.mode == "C":
            char = dlde.baud_char_for(ident, s.max_baudrate)
            link.write(dlde.ack_option_select(char))
            link.drain()
            link.clock.sleep_until(link.clock.now() + SWITCH_GUARD)
            rate = dlde.MODE_C_BAUDS[char]
        elif ident.mode == "B":
            rate = ident.baudrate
        if rate != link.baudrate:
            link.set_baudrate(rate)
        after = "acknowledgement" if ident.mode == "C" else "identification"
        try:
            raw = _read_until(link, _message_complete, s.timeout, f"data message at {rate} baud")
        except _Partial as exc:
            if b"\x02" in exc.data:
                raise
            raise ProtocolError(
                f"DLDE: no data message at {rate} baud after the {after}: {len(exc.data)} bytes that are none "
                f"(the meter did not switch to {rate} baud?)", frames=exc.frames) from exc
        try:
            message, _used = dlde.decode_data_message(raw)
        except NeedMoreData as exc:
            raise ProtocolError(
                f"DLDE: no data message at {rate} baud after the {after}: {len(raw)} bytes that are none "
                f"(the meter did not switch to {rate} baud?)", frames=(raw.hex().upper(),)) from exc
        except SonoError as exc:
            raise ProtocolError(str(exc), frames=(raw.hex().upper(),)) from exc
        return ident, message, rate
    finally:
        if link.baudrate != s.baudrate:
            link.set_baudrate(s.baudrate)


# -- the meter list -----------------------------------------------------------------------------------------
def _serial_of(address: str) -> str:
    """A meter-list serial (8 hex digits) for a device address, else the guide's default FFFFFFFF."""
    text = address.strip()
    if text and len(text) <= 8 and all(c in "0123456789abcdefABCDEF" for c in text):
        return text.upper().zfill(8)
    return "FFFFFFFF"


def dlde_meters(engine: Engine) -> list[Meter]:
    """The active DLDE meters of the list that are read over DLDE_PORT: those without manual set values
    (a DLDE meter whose entries carry set values, Figure 21, is a manual one and stays so)."""
    from sonocli.engine.sml import is_sml_meter  # SML meters push on SML_PORT: they are not signed on

    return [m for m in engine.meters if m.interface is Interface.DLDE and m.active and not is_sml_meter(m)
            and not any(v.value is not None for v in m.values)]


def meter_address(meter: Meter) -> str:
    """The address a listed DLDE meter is signed on with: its serial, or none for FFFFFFFF (point to point)."""
    serial = meter.serial.upper()
    return "" if serial in ("", "FFFFFFFF") else serial


def _target(engine: Engine, address: str, ident: Identification) -> Meter:
    """The list entry a readout belongs to, else a new DLDE meter named by address and identification."""
    serial = _serial_of(address)
    manufacturer = ident.manufacturer.upper()
    for meter in engine.meters:
        if meter.interface is not Interface.DLDE or meter.serial.upper().zfill(8) != serial:
            continue
        if meter.manufacturer in (None, "") or meter.manufacturer.upper() == manufacturer:
            return meter
    return Meter(Interface.DLDE, serial=serial, manufacturer=manufacturer, medium=ELECTRICITY)


def value_entry(value: MeterValue) -> ValueConfig:
    """The value entry a data set gets when its meter is first read: an M-Bus record's entry (the same
    Table 26 fields) with the OBIS-ID of the data set, and no DIF/VIF (a data set has none)."""
    from sonocli.codecs.dlde import parse_obis
    from sonocli.engine.values import entry_for

    obis = value.text if value.text and parse_obis(value.text) is not None else None
    return replace(entry_for(value), obis=obis, difvif="")


def _matches(config: ValueConfig, value: MeterValue) -> bool:
    if config.obis is not None and value.text:
        from sonocli.codecs.dlde import parse_obis

        return parse_obis(config.obis) == parse_obis(value.text) and config.subunit == value.subunit
    return config.description == value.description and config.subunit == value.subunit


def bind(engine: Engine, reading: Reading) -> Reading:
    """Index a DLDE/SML reading's records to its meter's value entries by OBIS-ID (learning them on the
    listed meter's first reading); a record no entry matches gets index -1 and is not delivered."""
    from sonocli.engine.meterlist import same_meter

    entry = engine.listed(reading.meter)
    if entry is None:
        return reading
    if not entry.values:
        learned = tuple(value_entry(v) for v in reading.values)
        listed: Meter = entry

        def change(meters: Any) -> tuple[Any, Meter]:
            items = list(meters.meters)
            for i, meter in enumerate(items):
                if same_meter(meter, listed):
                    if not meter.values:
                        items[i] = replace(meter, values=learned)
                        return replace(meters, meters=tuple(items)), items[i]
                    return meters, meter
            return meters, listed

        entry = engine.update_meters(change)
        if entry.values is not learned:
            return bind(engine, replace(reading, meter=entry))
        return replace(reading, meter=entry)
    used = [False] * len(entry.values)
    out: list[MeterValue] = []
    for value in reading.values:
        found = UNMATCHED
        for i, config in enumerate(entry.values):
            if not used[i] and _matches(config, value):
                found = i
                used[i] = True
                break
        out.append(value._replace(index=found))
    return replace(reading, meter=entry, values=tuple(out))


# -- commands and the daemon ------------------------------------------------------------------------------
def _reading(engine: Engine, address: str, ident: Identification, message: DataMessage,
             meter: Meter | None) -> Reading:
    from sonocli.codecs.dlde import data_set_values

    target = meter if meter is not None else _target(engine, address, ident)
    when = datetime.fromtimestamp(engine.now(), UTC)
    line = (ident.text + "\r\n").encode("ascii", "replace")
    return Reading(target, when, data_set_values(message.data_sets), raw_frames=(line, message.raw))


def read_dlde(
    engine: Engine,
    *,
    url: str | None = None,
    address: str | None = None,
    settings: DldeSettings | None = None,
    store: bool = True,
    meter: Meter | None = None,
) -> tuple[DldeReadout, Recorded]:
    """``sonocli readout --protocol dlde``: read the meter at ``address`` (none: point to point) once and
    record it like any reading (the list's entry learns its values; store and CSV log unless ``store``)."""
    from sonocli.codecs.dlde import check_address

    wanted = check_address((address or "").strip())
    s = settings if settings is not None else DldeSettings.from_engine(engine)
    with open_dlde_link(dlde_port(engine, url), s) as link:
        ident, message, rate = read_meter(link, wanted, s)
    reading = bind(engine, _reading(engine, wanted, ident, message, meter))
    recorded = engine.record([reading], store=store)
    return DldeReadout(recorded.readings[0], ident, ident.mode, rate), recorded


def read_due(
    engine: Engine,
    last_read: dict[str, float],
    now: float,
    *,
    general: bool,
    cancel: threading.Event | None = None,
) -> list[DldeResult]:
    """The daemon's DLDE step: every due DLDE meter of the list (own readout cycle run out, or the general
    cycle's tick) read over DLDE_PORT, each reading stored as it is taken; a failing meter is logged and
    the others are read. Nothing happens without DLDE_PORT."""
    port = str(engine.get("DLDE_PORT") or "").strip()
    if not port:
        return []
    due: list[Meter] = []
    for meter in dlde_meters(engine):
        cycle = meter.readout_cycle
        last = last_read.get(meter.device_id)
        if (cycle > 0 and (last is None or now - last >= cycle - 1.0)) or (cycle <= 0 and general):
            due.append(meter)
            last_read[meter.device_id] = now
    if not due:
        return []
    settings = DldeSettings.from_engine(engine)
    results: list[DldeResult] = []
    with open_dlde_link(port, settings) as link:
        for meter in due:
            if cancel is not None and cancel.is_set():
                break
            try:
                address = meter_address(meter)
                ident, message, rate = read_meter(link, address, settings)
                reading = bind(engine, _reading(engine, address, ident, message, meter))
                recorded = engine.record([reading])
                results.append(DldeResult(meter, DldeReadout(recorded.readings[0], ident, ident.mode, rate)))
            except SonoError as exc:
                log.error("DLDE meter %s: %s", meter.device_id, exc)
                results.append(DldeResult(meter, None, exc))
    read = sum(1 for r in results if r.readout is not None)
    log.info("dlde: %d of %d meter(s) read", read, len(due))
    return results


def record_dicts(values: Sequence[MeterValue]) -> list[dict[str, Any]]:
    """Records in the ``decode --json`` shape plus ``"obis": "A-B:C.D.E*F"`` (DLDE and SML records)."""
    from sonocli.outputs.records_json import value_to_dict

    return [{**value_to_dict(v), "obis": v.text} for v in values]


def readout_to_dict(readout: DldeReadout) -> dict[str, Any]:
    """``readout --protocol dlde --json`` less the ``meter`` and ``time`` (sonocli.engine.messages adds them)."""
    return {
        "protocol": "dlde",
        "identification": readout.identification.text,
        "mode": readout.mode,
        "baudrate": readout.baudrate,
        "records": record_dicts(readout.reading.values),
    }
