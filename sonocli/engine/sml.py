"""SML meters as the engine hears them: files pushed on a serial port, and SML inside M-Bus/wM-Bus frames.

An eHZ/EDL21 meter pushes an SML file from its infrared interface every second or so, unasked; a USB IR
head makes it a serial port (SML_PORT, 9600 baud 8N1 for most meters, SML_BAUDRATE). The bytes are
sonocli.codecs.sml's; here they meet the port, the meter list and the recorder:

* ``sonocli listen --protocol sml`` shows (and stores) every file as it comes: :func:`listen_sml`;
* the daemon samples each SML meter once per readout cycle (:func:`read_due`): it listens until every
  listed SML meter has sent one good file, or SML_TIMEOUT ms have passed, and records the newest file of
  each meter - a reading per second would flood the store and every report with the same meter reading;
* with MBUS_SMLENEABLE / WMBUS_SMLENEBALE an SML file found inside an M-Bus or wM-Bus telegram (the
  manufacturer-specific data after DIF 0Fh, or the whole application data; of an encrypted wM-Bus
  telegram, its decrypted application data) adds its records to that telegram's reading
  (:func:`with_embedded`).

An SML meter of the meter list is a DLDE meter (the optical interface, XML INTERFACE 6) marked with
``<protocol>SML</protocol>``, so the DLDE readout on DLDE_PORT leaves it alone; its serial is the meter
number of the server ID. Its value entries are learned on the first file and matched by OBIS-ID ever
after (sonocli.engine.dlde.bind), like a DLDE meter's. A bad file (CRC, truncated, an unknown message) is
one line in the log (``listen``: on stderr) and the stream goes on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sonocli import logs
from sonocli.errors import SonoError, UsageError
from sonocli.model.valueclass import field, replace, valueclass
from sonocli.model.values import Interface, Meter, Reading

if TYPE_CHECKING:
    from sonocli.codecs.sml import SmlFile
    from sonocli.engine.core import Engine
    from sonocli.engine.values import Binding
    from sonocli.transports import Link

log = logs.logger("sonocli.engine")

ELECTRICITY = 2
MARKER = ("protocol", "<protocol>SML</protocol>")
READ_CHUNK = 512


def is_sml_meter(meter: Meter) -> bool:
    """A meter-list entry read over SML (a DLDE meter marked ``<protocol>SML</protocol>``)."""
    return meter.interface is Interface.DLDE and any(
        tag == "protocol" and "SML" in raw.upper() for tag, raw in meter.extra)


def sml_meter(serial: str, manufacturer: str | None = None, **fields: Any) -> Meter:
    """A meter-list entry for an SML meter (what ``meters add`` would need the marker for)."""
    return Meter(Interface.DLDE, serial=serial, manufacturer=manufacturer, medium=ELECTRICITY,
                 extra=(MARKER,), **fields)


@valueclass(frozen=True)
class SmlSettings:
    baudrate: int = 9600
    timeout: float = 10.0  # the daemon's listening window per readout

    @classmethod
    def from_engine(cls, engine: Engine, **overrides: Any) -> SmlSettings:
        values: dict[str, Any] = {"baudrate": int(engine.get("SML_BAUDRATE")),
                                  "timeout": int(engine.get("SML_TIMEOUT")) / 1000.0}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@valueclass
class SmlItem:
    """One file heard (``reading`` recorded, or ``error`` for a bad one) and the meter it came from."""

    when: datetime
    reading: Reading | None = None
    error: str | None = None
    raw: bytes = b""


@valueclass
class SmlStats:
    files: int = 0
    bad: int = 0
    stored: int = 0
    meters: set[str] = field(default_factory=set)
    unlisted: dict[str, Meter] = field(default_factory=dict)  # SML meters heard that are not in the list


def sml_port(engine: Engine, url: str | None = None) -> str:
    port = (url or str(engine.get("SML_PORT") or "")).strip()
    if not port:
        raise UsageError("no SML port given: use --port URL (/dev/ttyUSB0 with an IR head, sim://sml)",
                         hint="or set SML_PORT in chip.ini (sonocli config set SML_PORT /dev/ttyUSB0)")
    return port


def open_sml_link(url: str, settings: SmlSettings) -> Link:
    from sonocli.transports import open_link

    return open_link(url, settings.baudrate, "N", 8, 1, timeout=0.5, mbus_baud=False)


def _target(engine: Engine, file: SmlFile) -> Meter:
    """The list entry of the meter that sent ``file`` (by serial, and manufacturer where both have one),
    else a new SML meter named by the file's server ID."""
    serial = file.serial
    manufacturer = file.manufacturer
    for meter in engine.meters:
        if meter.interface is not Interface.DLDE or meter.serial.upper().zfill(8) != serial:
            continue
        if not meter.manufacturer or not manufacturer or meter.manufacturer.upper() == manufacturer:
            return meter
    return sml_meter(serial, manufacturer)


def file_reading(engine: Engine, file: SmlFile, when: datetime | None = None) -> Reading:
    """A file as a reading of its meter, records indexed to the meter's entries by OBIS-ID."""
    from sonocli.codecs.sml import file_values
    from sonocli.engine.dlde import bind

    moment = when if when is not None else datetime.fromtimestamp(engine.now(), UTC)
    reading = Reading(_target(engine, file), moment, file_values(file), raw_frames=(file.raw,))
    return bind(engine, reading)


def _pump(link: Link, stream: Any, timeout: float) -> list[Any]:
    chunk = link.read(max(1, min(link.in_waiting(), READ_CHUNK)), timeout)
    return list(stream.feed(chunk)) if chunk else []


def listen_sml(
    engine: Engine,
    url: str | None = None,
    *,
    settings: SmlSettings | None = None,
    duration: float | None = None,
    count: int | None = None,
    store: bool = True,
    on_item: Callable[[SmlItem], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> SmlStats:
    """``sonocli listen --protocol sml``: every file heard on the port, recorded as it comes (unless
    ``store`` is off), until ``duration`` (seconds on the port's clock), ``count`` good files, or
    ``should_stop()``. A bad file is an item with ``error``; the stream goes on."""
    from sonocli.codecs.sml import SmlStream

    s = settings if settings is not None else SmlSettings.from_engine(engine)
    stats = SmlStats()
    stream = SmlStream()
    with open_sml_link(sml_port(engine, url), s) as link:
        end = None if duration is None else link.clock.now() + duration
        while not should_stop():
            if end is not None and link.clock.now() >= end:
                break
            wait = 0.5 if end is None else max(0.0, min(0.5, end - link.clock.now()))
            for got in _pump(link, stream, wait):
                when = datetime.fromtimestamp(engine.now(), UTC)
                if isinstance(got, SonoError):
                    stats.bad += 1
                    item = SmlItem(when, error=str(got))
                else:
                    stats.files += 1
                    reading = file_reading(engine, got, when)
                    recorded = engine.record([reading], store=store)
                    reading = recorded.readings[0] if recorded.readings else reading
                    stats.stored += 1 if store else 0
                    stats.meters.add(reading.meter.device_id)
                    if engine.listed(reading.meter) is None:
                        stats.unlisted[reading.meter.device_id] = reading.meter
                    item = SmlItem(when, reading=reading, raw=got.raw)
                if on_item is not None:
                    on_item(item)
            if count is not None and stats.files >= count:
                break
    return stats


def read_due(engine: Engine, cancel: threading.Event | None = None) -> list[Reading]:
    """The daemon's SML step: listen on SML_PORT until each active listed SML meter has sent a good file
    (none listed: the first good file) or SML_TIMEOUT passes; record the newest file of each listed meter
    (a meter not in the list is named in the log, not reported). Bad files are logged, one line each.
    Nothing happens without SML_PORT."""
    from sonocli.codecs.sml import SmlStream

    port = str(engine.get("SML_PORT") or "").strip()
    if not port:
        return []
    settings = SmlSettings.from_engine(engine)
    wanted = {m.serial.upper().zfill(8) for m in engine.meters if is_sml_meter(m) and m.active}
    newest: dict[str, SmlFile] = {}
    stream = SmlStream()
    with open_sml_link(port, settings) as link:
        end = link.clock.now() + settings.timeout
        while link.clock.now() < end and not (cancel is not None and cancel.is_set()):
            for got in _pump(link, stream, min(0.5, max(0.0, end - link.clock.now()))):
                if isinstance(got, SonoError):
                    log.error("SML on %s: %s", port, got)
                    continue
                newest[got.serial] = got
            if newest and (set(newest) >= wanted if wanted else True):
                break
    if not newest:
        log.error("SML on %s: no valid SML file within %.1f s (SML_TIMEOUT)", port, settings.timeout)
        return []
    when = datetime.fromtimestamp(engine.now(), UTC)
    readings: list[Reading] = []
    for file in newest.values():
        reading = file_reading(engine, file, when)
        if engine.listed(reading.meter) is None:  # as on the device: a new meter is reported once listed
            log.warning("SML on %s: meter %s is not in the meter list (add it: sonocli listen --protocol sml "
                        "--save, then meters activate)", port, reading.meter.device_id)
            continue
        readings.append(reading)
    recorded = engine.record(readings)
    log.info("sml: %d meter(s) read", len(recorded.readings))
    return list(recorded.readings)


# -- SML inside M-Bus and wM-Bus telegrams ------------------------------------------------------------------
def _flag(engine: Engine, interface: Interface) -> bool:
    if interface is Interface.MBUS:
        return bool(engine.get("MBUS_SMLENEABLE"))
    if interface is Interface.WMBUS:
        return bool(engine.get("WMBUS_SMLENEBALE"))
    return False


def embedded_files(frames: Sequence[bytes]) -> list[SmlFile]:
    """The SML files inside a reading's frames (each frame, and the frames joined for a file across two)."""
    from sonocli.codecs.sml import START, find_files

    out: list[SmlFile] = []
    for frame in frames:
        if START in frame:
            out.extend(find_files(frame))
    if not out and len(frames) > 1:
        joined = b"".join(frames)
        if START in joined:
            out.extend(find_files(joined))
    return out


def with_embedded(engine: Engine, readings: Sequence[Reading]) -> list[Reading]:
    """Readings of M-Bus (MBUS_SMLENEABLE) and wM-Bus (WMBUS_SMLENEBALE) meters with the records of the SML
    files inside their telegrams appended (OBIS in ``text``); a bad SML file is logged and left out."""
    from sonocli.codecs.sml import file_values

    out: list[Reading] = []
    for reading in readings:
        if not reading.raw_frames or not _flag(engine, reading.meter.interface):
            out.append(reading)
            continue
        try:  # an encrypted telegram's SML is in its decrypted application data
            files = embedded_files(reading.plain or reading.raw_frames)
        except SonoError as exc:
            log.error("meter %s: SML data in its telegram: %s", reading.meter.device_id, exc)
            out.append(reading)
            continue
        extra = [v for file in files for v in file_values(file)]
        if not extra:
            out.append(reading)
            continue
        base = len(reading.values)
        values = (*reading.values, *(v._replace(index=base + i) for i, v in enumerate(extra)))
        out.append(replace(reading, values=values))
    return out


def learned_obis(binding: Binding) -> Binding:
    """A first reading's learned entries with the OBIS-ID of the SML records they were learned from."""
    learned = binding.learned
    if learned is None or not any(v.encoding == "SML" for v in binding.reading.values):
        return binding
    entries = list(learned)
    for value in binding.reading.values:
        if value.encoding == "SML" and value.text and 0 <= value.index < len(entries):
            entries[value.index] = replace(entries[value.index], obis=value.text)
    fixed = tuple(entries)
    reading = replace(binding.reading, meter=replace(binding.reading.meter, values=fixed))
    return replace(binding, reading=reading, learned=fixed)


def item_to_dict(item: SmlItem) -> dict[str, Any]:
    """``listen --protocol sml --json``: one line per file, records with ``"obis"``."""
    from sonocli.engine.dlde import record_dicts
    from sonocli.engine.messages import meter_object

    out: dict[str, Any] = {"time": item.when.isoformat(), "kind": "sml"}
    if item.reading is None:
        out["error"] = item.error
        return out
    out["meter"] = meter_object(item.reading.meter)
    out["records"] = record_dicts(item.reading.values)
    return out
