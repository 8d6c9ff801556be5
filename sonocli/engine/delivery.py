"""Reports and their delivery: the channels chip.ini enables, readings rendered into payloads of at most
REPORT_SIZELIMIT bytes, report cycles queued in the outbox, and the outbox sent on every pushing channel.

What the meter list says is what every report carries (active meters, active values: ``Engine.configured``).
The outbox itself (sonocli.store.outbox) keeps the reports, their state and the delivery backoff; the
channels (sonocli.push) are looked up by name in the registry and imported only when one is built.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sonocli import logs
from sonocli.errors import PushError, UsageError
from sonocli.model.valueclass import valueclass
from sonocli.model.values import Reading
from sonocli.push.base import Channel, Report, StepObserver
from sonocli.store.outbox import DeliveryResult, NewReport, OutboxItem, numbered

if TYPE_CHECKING:
    from sonocli.engine.core import Engine

log = logs.logger("sonocli.engine")


@valueclass(frozen=True)
class ChannelSpec:
    """An outbox channel key and how to build its channel: registry name plus constructor options."""

    key: str
    registry: str
    options: tuple[tuple[str, Any], ...] = ()


def configured_channels(get: Callable[[str], Any]) -> list[ChannelSpec]:
    """The WAN channels chip.ini enables (guide 4.4 Mode; Table 25 *_ENABLE).

    Keys are stable across harmless edits (ftp ↔ ftps keeps the key ``ftp``) so pending reports survive a
    configuration save. XMLTOTCP with an empty XMLTOTCP_IP is ``tcp-server``: the head-end fetches.
    """
    specs: list[ChannelSpec] = []
    if get("FTP_ENABLE"):
        ip = str(get("FTP_IP") or "").strip().lower()
        specs.append(ChannelSpec("sftp", "sftp") if ip.startswith("sftp://") else ChannelSpec("ftp", "ftp"))
    if get("XMLTOTCP_ENABLE"):
        if not str(get("XMLTOTCP_IP") or "").strip():
            specs.append(ChannelSpec("tcp-server", "tcp"))
        elif str(get("XMLTOTCP_SITE") or "").strip():
            specs.append(ChannelSpec("http", "http"))
        else:
            specs.append(ChannelSpec("tcp", "tcp"))
    if get("TLS_ENABLE"):
        if str(get("TLS_SITE") or "").strip():
            specs.append(ChannelSpec("https", "http", (("tls", True),)))
        else:
            specs.append(ChannelSpec("tls", "tcp", (("tls", True),)))
    if get("SMTP_ENABLE"):
        specs.append(ChannelSpec("smtp", "smtp"))
    if get("MQTT_ENABLE"):  # sonocli's own: JSON messages into a broker (sonocli.push.mqtt)
        specs.append(ChannelSpec("mqtt", "mqtt"))
    return specs


def make_channel(
    engine: Engine, spec: ChannelSpec, *, observer: StepObserver | None = None, accept_host_key: bool = False
) -> Channel:
    """The channel of ``spec``, built from the registry with chip.ini's settings."""
    from sonocli.registry import CHANNELS, load

    cls = load(CHANNELS, spec.registry, "channel")
    options = dict(spec.options)
    if spec.registry == "smtp":
        options["muc_id"] = f"{engine.muc_id:x}"
    if spec.registry == "sftp":
        options["accept_host_key"] = accept_host_key
    if spec.registry == "mqtt":
        from functools import partial

        from sonocli.engine.ha_discovery import discovery

        options["muc_id"] = f"{engine.muc_id:x}"
        options["discovery"] = partial(discovery, engine)
    channel: Channel = cls(engine.get, engine.root, observer=observer, **options)
    return channel


def render(engine: Engine, fmt: str, readings: Sequence[Reading], timestamp: float) -> bytes:
    """``readings`` as one CSV or XML payload (MUC_PROTOCOL_VER, MUC_SCALEVALUES), or JSON Lines (MQTT)."""
    if fmt == "json":
        from sonocli.engine.messages import render_lines

        return render_lines(readings)
    version = int(engine.get("MUC_PROTOCOL_VER"))
    scale = bool(engine.get("MUC_SCALEVALUES"))
    if fmt == "csv":
        from sonocli.outputs.csv_writer import CsvWriter

        text = io.StringIO()
        CsvWriter(version, scale_values=scale).write(readings, text)
        return text.getvalue().encode("utf-8")
    from sonocli.outputs.xml_writer import XmlWriter

    out = io.BytesIO()
    XmlWriter(version, muc_id=engine.muc_id, scale_values=scale).write(
        readings, out, timestamp=datetime.fromtimestamp(timestamp, UTC)
    )
    return out.getvalue()


def split(engine: Engine, fmt: str, readings: list[Reading], timestamp: float, limit: int) -> list[tuple[bytes, int]]:
    """Payloads of at most ``limit`` bytes (REPORT_SIZELIMIT), in reading order; (payload, reading count).

    A single reading larger than the limit still goes out alone: dropping it would lose data.
    """
    payload = engine.render(fmt, readings, timestamp)
    if len(payload) <= limit or len(readings) <= 1:
        if len(payload) > limit:
            log.warning("a reading needs %d bytes, over REPORT_SIZELIMIT %d; sent alone", len(payload), limit)
        return [(payload, len(readings))]
    half = len(readings) // 2
    return engine.split(fmt, readings[:half], timestamp, limit) + engine.split(fmt, readings[half:], timestamp, limit)


def chunks(
    engine: Engine, fmt: str, readings: Iterable[Reading], timestamp: float, limit: int
) -> Iterator[tuple[bytes, int]]:
    """Stream readings into payloads of at most ``limit`` bytes, holding one payload's readings at a time.

    Memory stays bounded by REPORT_SIZELIMIT however many readings wait (a long outage, a big fleet).
    """
    if fmt == "csv":
        yield from _csv_chunks(engine, readings, limit)
        return
    if fmt == "json":
        from sonocli.engine.messages import line_chunks

        yield from line_chunks(readings, limit)
        return
    source = iter(readings)
    while True:
        batch: list[Reading] = []
        size = 0
        for reading in source:
            batch.append(reading)
            size += _xml_estimate(reading)
            if size >= limit:
                break
        if not batch:
            return
        yield from engine.split(fmt, batch, timestamp, limit)


def _csv_chunks(engine: Engine, readings: Iterable[Reading], limit: int) -> Iterator[tuple[bytes, int]]:
    from sonocli.outputs.csv_writer import CsvWriter

    version = int(engine.get("MUC_PROTOCOL_VER"))
    scale = bool(engine.get("MUC_SCALEVALUES"))
    writer = CsvWriter(version, scale_values=scale)
    rows: list[str] = []
    size = widest = 0
    for reading in readings:
        row = writer.row(reading)
        wide = max(widest, len(reading.values))
        if rows and size + len(row) + len(writer.header(wide)) > limit:
            yield (writer.header(widest) + "".join(rows)).encode("utf-8"), len(rows)
            writer = CsvWriter(version, scale_values=scale)
            row = writer.row(reading)
            rows, size, wide = [], 0, len(reading.values)
        rows.append(row)
        size += len(row)
        widest = wide
    if rows:
        yield (writer.header(widest) + "".join(rows)).encode("utf-8"), len(rows)


def content_type_of(fmt: str) -> str:
    """The outbox content type of a channel's format: CSV, XML or JSON Lines (MQTT)."""
    return {"csv": "text/csv", "json": "application/x-ndjson"}.get(fmt, "application/xml")


def _xml_estimate(reading: Reading) -> int:
    """Rough XML size of a reading (a <meter> element plus one <data> element per value, ~200 bytes each)."""
    return 250 + 200 * len(reading.values)


def build_reports(engine: Engine, specs: Iterable[ChannelSpec] | None = None) -> list[OutboxItem]:
    """Queue one report cycle per channel: every reading not yet in a report of that channel.

    The readings are read in one SQLite snapshot and the cursor is moved to that snapshot's newest id
    in the same transaction that queues the reports, so nothing is lost or reported twice.
    """
    created: list[OutboxItem] = []
    now = engine.now()
    limit = int(engine.get("REPORT_SIZELIMIT"))
    for spec in specs if specs is not None else engine.channel_specs():
        channel = engine.make_channel(spec)
        with engine._write_lock:
            cursor = engine.outbox.cursor(spec.key)
            conn = engine.store.connection
            content_type = content_type_of(channel.format)
            conn.execute("BEGIN")
            try:
                latest = int(engine.store.latest_id())
                if latest <= cursor:
                    continue
                # what the meter list says is delivered: active meters, active values (engine.values)
                stream = engine.iter_configured(engine.store.iter_readings(after_id=cursor))
                new = [NewReport(payload, content_type, readings=count)
                       for payload, count in engine.chunks(channel.format, stream, now, limit)]
            finally:
                conn.execute("COMMIT")
            if not new:  # nothing configured among the new readings: move on past them
                engine.outbox.enqueue(spec.key, [], name=channel.report_name, now=now, cursor=latest)
                continue
            items = engine.outbox.enqueue(spec.key, new, name=channel.report_name, now=now, cursor=latest)
        log.info("%s: %d report(s) queued with %d reading(s)", spec.key, len(items), sum(n.readings for n in new))
        created.extend(items)
    if created:
        bound_outbox(engine)
    return created


def bound_outbox(engine: Engine) -> dict[str, int]:
    """OUTBOX_MAXITEMS: delete the oldest reports beyond it - delivered first, then dropped, then pending -
    with a warning counting them (loudly when undelivered reports go). Returns the deleted by state."""
    limit = int(engine.get("OUTBOX_MAXITEMS"))
    with engine._write_lock:
        deleted = engine.outbox.bound(limit)
    if deleted:
        counts = ", ".join(f"{count} {state}" for state, count in deleted.items())
        if deleted.get("pending"):
            log.error("outbox over OUTBOX_MAXITEMS %d: deleted the oldest reports (%s); %d undelivered "
                      "report(s) are lost for their head-end", limit, counts, deleted["pending"])
        elif deleted.get("dropped"):
            log.warning("outbox over OUTBOX_MAXITEMS %d: deleted the oldest reports (%s)", limit, counts)
        else:  # delivered ones only: routine at a full outbox (they are kept for `outbox list --all` alone)
            log.info("outbox over OUTBOX_MAXITEMS %d: deleted the oldest reports (%s)", limit, counts)
    return deleted


def deliver(
    engine: Engine,
    specs: Iterable[ChannelSpec] | None = None,
    *,
    force: bool = False,
    stop: threading.Event | None = None,
    observer: StepObserver | None = None,
    on_channel: Callable[[Channel | None], None] | None = None,
) -> dict[str, DeliveryResult]:
    """Send the outbox of every pushing channel, oldest first; a failure is logged, never raised."""
    results: dict[str, DeliveryResult] = {}
    cap = float(max(60, int(engine.get("REPORT_TIME")) * 60))
    for spec in specs if specs is not None else engine.channel_specs():
        if spec.key == "tcp-server":
            continue  # the head-end fetches; see sonocli.daemon
        channel = engine.make_channel(spec, observer=observer)
        if on_channel is not None:
            on_channel(channel)

        def send(item: OutboxItem, payload: bytes, channel: Channel = channel) -> None:
            channel.send(Report(item.name, payload, item.content_type, float(item.created)))

        try:
            result = engine.outbox.deliver(spec.key, send, now=engine.now, force=force, stop=stop, cap=cap)
        finally:
            if on_channel is not None:
                on_channel(None)
        if result.error:
            log.error("%s: delivery failed, %d report(s) wait in the outbox: %s",
                      spec.key, result.waiting, result.error)
        elif result.sent:
            log.info("%s: %d report(s) delivered", spec.key, result.sent)
        results[spec.key] = result
    return results


def test_push(
    engine: Engine, *, observer: StepObserver, accept_host_key: bool = False
) -> list[tuple[str, PushError | None]]:
    """The Test button (guide 4.4: "Test allows the immediate transmission of data"): the latest reading
    of every meter, as configured, sent now as a normal report on every channel; (channel, error)."""
    specs = [s for s in engine.channel_specs() if s.key != "tcp-server"]
    if not specs:
        raise UsageError(
            "no push channel is enabled in chip.ini",
            hint="set FTP_ENABLE, XMLTOTCP_ENABLE, TLS_ENABLE, SMTP_ENABLE or MQTT_ENABLE to 1",
        )
    outcome: list[tuple[str, PushError | None]] = []
    now = int(engine.now())
    latest = engine.configured(engine.store.latest_readings())
    limit = int(engine.get("REPORT_SIZELIMIT"))
    for spec in specs:
        channel = engine.make_channel(spec, observer=observer, accept_host_key=accept_host_key)
        content_type = content_type_of(channel.format)
        parts = list(engine.chunks(channel.format, latest, now, limit)) or [(engine.render(channel.format, [], now), 0)]
        try:
            names: set[str] = set()
            for index, (payload, _count) in enumerate(parts, start=1):
                name = channel.report_name(now, index)
                if name in names:  # FTP/SFTP names carry only the time: parts must not overwrite each other
                    name = numbered(name, index)
                names.add(name)
                channel.test(Report(name, payload, content_type, now))
            outcome.append((spec.key, None))
        except PushError as exc:
            outcome.append((spec.key, exc))
    return outcome
