"""The Engine facade: one object that wires chip.ini, the meter list, the wired master, the wireless
receiver, the readings store, the CSV log, the exporters, the outbox and the push channels.

Every command and the daemon drive it; it never prints and never sleeps (time comes from ``now``, so the
daemon's scheduler can run it on a virtual clock). Heavy modules are imported where they are used.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sonocli.errors import PushError, UsageError
from sonocli.model.values import Interface, Meter, Reading
from sonocli.push.base import Channel, Report, StepObserver
from sonocli.store.outbox import DeliveryResult, NewReport, Outbox, OutboxItem

log = logging.getLogger("sonocli.engine")

CSV_PARTITION_LIMIT = 256 * 1024 * 1024
CSV_BATCH = 100  # the /ext partition's share for CSV logs (the guide gives no number)


@dataclass(frozen=True)
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
    return specs


@dataclass(frozen=True)
class ReadoutSummary:
    readings: int
    failed: tuple[tuple[str, str], ...]  # (device id, error)


class Engine:
    """Configuration and data of one sonocli root, and the operations on them."""

    def __init__(
        self,
        root: Path,
        *,
        now: Callable[[], float] = time.time,
        chip: Any = None,
        meters: Sequence[Meter] | None = None,
        muc_id: int | None = None,
    ) -> None:
        from sonocli.config.layout import RootLayout

        self.root = Path(root)
        self.layout = RootLayout(self.root)
        self.now = now
        self._chip = chip
        self._meters = tuple(meters) if meters is not None else None
        self._muc_id = muc_id
        self._local = threading.local()
        self._outbox: Outbox | None = None
        self._write_lock = threading.Lock()  # readings written and reports built never interleave
        self._csv_lock = threading.Lock()  # one CSV log writer at a time (it rewrites the day file)
        self._csvlog: Any = None

    # -- configuration ------------------------------------------------------------------------------------
    @property
    def chip(self) -> Any:
        if self._chip is None:
            from sonocli.config.chipini import ChipIni

            path = self.layout.chip_ini
            self._chip = ChipIni.load(path) if path.is_file() else ChipIni.from_text("")
        return self._chip

    def get(self, name: str) -> Any:
        return self.chip.get(name)

    @property
    def meters(self) -> tuple[Meter, ...]:
        if self._meters is None:
            from sonocli.config.device_handle import load_meter_list

            self._meters = tuple(load_meter_list(self.layout.device_handle).meters)
        return self._meters

    def reload(self) -> None:
        """Re-read chip.ini and device_handle.cfg (SIGHUP, a configuration save)."""
        self._chip = None
        self._meters = None
        self._csvlog = None
        _ = self.chip, self.meters

    @property
    def muc_id(self) -> int:
        if self._muc_id is None:
            from sonocli.service.info import muc_id

            self._muc_id = muc_id(self.layout)[0]
        return self._muc_id

    # -- storage ------------------------------------------------------------------------------------------
    @property
    def store(self) -> Any:
        """This thread's ReadingStore (sqlite3 connections belong to one thread)."""
        store = getattr(self._local, "store", None)
        if store is None:
            from sonocli.store.readings import ReadingStore

            self.layout.ext.mkdir(parents=True, exist_ok=True)
            store = ReadingStore(self.layout.database)
            self._local.store = store
        return store

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            self.layout.ext.mkdir(parents=True, exist_ok=True)
            self._outbox = Outbox(self.layout.database)
        return self._outbox

    def release_thread(self) -> None:
        """Close the calling thread's store connection (worker threads call this before they end)."""
        store = getattr(self._local, "store", None)
        if store is not None:
            store.close()
            self._local.store = None

    def close(self) -> None:
        store = getattr(self._local, "store", None)
        if store is not None:
            store.close()
            self._local.store = None
        if self._outbox is not None:
            self._outbox.close()
            self._outbox = None

    def csvlog(self) -> Any:
        if self._csvlog is None:
            from sonocli.store.csvlog import CsvLog

            self._csvlog = CsvLog(
                self.layout.log_dir,
                int(self.get("MUC_PROTOCOL_VER")),
                size_limit=int(self.get("REPORT_SIZELIMIT")),
                partition_limit=CSV_PARTITION_LIMIT,
                scale_values=bool(self.get("MUC_SCALEVALUES")),
            )
        return self._csvlog

    def record(self, readings: Sequence[Reading], *, csv: bool = True) -> None:
        """Store readings (and append them to the CSV log when MUC_CSVLOG_ENABLE and ``csv``)."""
        if not readings:
            return
        with self._write_lock:
            self.store.add_many(readings)
        if csv:
            self.log_csv(readings)

    def log_csv(self, readings: Sequence[Reading]) -> None:
        if readings and self.get("MUC_CSVLOG_ENABLE"):
            with self._csv_lock:
                self.csvlog().append(readings)

    # -- wired readout ------------------------------------------------------------------------------------
    def wired_meters(self) -> list[Meter]:
        return [m for m in self.meters if m.interface is Interface.MBUS and m.active]

    def open_master(self, url: str | None = None) -> Any:
        from sonocli.engine.master import Master, MasterSettings
        from sonocli.transports import open_link

        port = (url or str(self.get("MBUS_PORT") or "")).strip()
        if not port:
            raise UsageError("MBUS_PORT is empty; set the wired M-Bus port (e.g. /dev/ttyUSB0 or sim://demo)")
        settings = MasterSettings.from_chip_ini(self.chip)
        link = open_link(port, settings.baudrate, settings.parity, settings.databits, settings.stopbits)
        return Master(link, settings)

    def read_wired(
        self, meters: Sequence[Meter], *, master: Any = None, cancel: threading.Event | None = None
    ) -> ReadoutSummary:
        """Read ``meters`` one after the other, storing each reading as soon as it is taken."""
        from sonocli.engine.master import read_all

        if not meters:
            return ReadoutSummary(0, ())
        own = master is None
        if master is None:
            master = self.open_master()
        failed: list[tuple[str, str]] = []
        count = 0
        # each reading is in SQLite the moment it is taken; the CSV log (a file rewritten atomically per
        # append) gets them in batches, which keeps a 500-meter cycle from rewriting the day file 500 times
        batch: list[Reading] = []
        try:
            for meter in meters:
                if cancel is not None and cancel.is_set():
                    break
                for result in read_all(master, [meter]):
                    if result.reading is not None:
                        self.record([result.reading], csv=False)
                        batch.append(result.reading)
                        count += 1
                    else:
                        failed.append((meter.device_id, str(result.error)))
                        log.warning("readout of %s failed: %s", meter.device_id, result.error)
                if len(batch) >= CSV_BATCH:
                    self.log_csv(batch)
                    batch = []
        finally:
            self.log_csv(batch)
            if own:
                try:
                    master.link.close()
                except Exception:
                    pass
        return ReadoutSummary(count, tuple(failed))

    # -- wireless reception ---------------------------------------------------------------------------------
    def wireless_receivers(self) -> list[tuple[str, str]]:
        """(port URL, dongle name) of the configured wireless receivers."""
        out: list[tuple[str, str]] = []
        if not self.get("WMBUS_ENABLE"):
            return out
        for port_key, dongle_key in (("WMBUS_PORT", "WMBUS_DONGLE"), ("WMBUS2_PORT", "WMBUS2_DONGLE")):
            url = str(self.get(port_key) or "").strip()
            if url:
                out.append((url, str(self.get(dongle_key) or "im871a")))
        return out

    def listen(
        self,
        url: str,
        dongle: str,
        *,
        should_stop: Callable[[], bool],
        duration: float | None = None,
        on_reading: Callable[[Reading], None] | None = None,
    ) -> int:
        """Receive telegrams on one receiver until ``should_stop()``; readings of listed meters are recorded."""
        from sonocli.engine.receiver import Receiver, open_port, settings_from_chip
        from sonocli.registry import DONGLES, load

        driver = load(DONGLES, dongle, "dongle")()
        second = url == str(self.get("WMBUS2_PORT") or "").strip() != str(self.get("WMBUS_PORT") or "").strip()
        settings = settings_from_chip(self.chip, self.layout.log_dir, 2 if second else 1)  # WMBUS2_MODE
        receiver = Receiver(driver, settings, self.meters)
        port = open_port(url, driver)
        stored = 0
        try:
            receiver.setup(port)

            def heard(item: Any) -> None:
                nonlocal stored
                if item.reading is not None and not item.duplicate:
                    self.record([item.reading])
                    stored += 1
                    if on_reading is not None:
                        on_reading(item.reading)

            receiver.run(port, on_heard=heard, duration=duration, should_stop=should_stop)
        finally:
            receiver.close()
            port.close()
        return stored

    # -- reports and delivery -------------------------------------------------------------------------------
    def channel_specs(self) -> list[ChannelSpec]:
        return configured_channels(self.get)

    def make_channel(
        self, spec: ChannelSpec, *, observer: StepObserver | None = None, accept_host_key: bool = False
    ) -> Channel:
        from sonocli.registry import CHANNELS, load

        cls = load(CHANNELS, spec.registry, "channel")
        options = dict(spec.options)
        if spec.registry == "smtp":
            options["muc_id"] = f"{self.muc_id:x}"
        if spec.registry == "sftp":
            options["accept_host_key"] = accept_host_key
        channel: Channel = cls(self.get, self.root, observer=observer, **options)
        return channel

    def render(self, fmt: str, readings: Sequence[Reading], timestamp: float) -> bytes:
        version = int(self.get("MUC_PROTOCOL_VER"))
        scale = bool(self.get("MUC_SCALEVALUES"))
        if fmt == "csv":
            from sonocli.outputs.csv_writer import CsvWriter

            text = io.StringIO()
            CsvWriter(version, scale_values=scale).write(readings, text)
            return text.getvalue().encode("utf-8")
        from sonocli.outputs.xml_writer import XmlWriter

        out = io.BytesIO()
        XmlWriter(version, muc_id=self.muc_id, scale_values=scale).write(
            readings, out, timestamp=datetime.fromtimestamp(timestamp, UTC)
        )
        return out.getvalue()

    def split(self, fmt: str, readings: list[Reading], timestamp: float, limit: int) -> list[tuple[bytes, int]]:
        """Payloads of at most ``limit`` bytes (REPORT_SIZELIMIT), in reading order; (payload, reading count).

        A single reading larger than the limit still goes out alone: dropping it would lose data.
        """
        payload = self.render(fmt, readings, timestamp)
        if len(payload) <= limit or len(readings) <= 1:
            if len(payload) > limit:
                log.warning("a reading needs %d bytes, over REPORT_SIZELIMIT %d; sent alone", len(payload), limit)
            return [(payload, len(readings))]
        half = len(readings) // 2
        return self.split(fmt, readings[:half], timestamp, limit) + self.split(fmt, readings[half:], timestamp, limit)

    def chunks(
        self, fmt: str, readings: Iterable[Reading], timestamp: float, limit: int
    ) -> Iterator[tuple[bytes, int]]:
        """Stream readings into payloads of at most ``limit`` bytes, holding one payload's readings at a time.

        Memory stays bounded by REPORT_SIZELIMIT however many readings wait (a long outage, a big fleet).
        """
        if fmt == "csv":
            yield from self._csv_chunks(readings, limit)
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
            yield from self.split(fmt, batch, timestamp, limit)

    def _csv_chunks(self, readings: Iterable[Reading], limit: int) -> Iterator[tuple[bytes, int]]:
        from sonocli.outputs.csv_writer import CsvWriter

        version = int(self.get("MUC_PROTOCOL_VER"))
        scale = bool(self.get("MUC_SCALEVALUES"))
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

    def build_reports(self, specs: Iterable[ChannelSpec] | None = None) -> list[OutboxItem]:
        """Queue one report cycle per channel: every reading not yet in a report of that channel.

        The readings are read in one SQLite snapshot and the cursor is moved to that snapshot's newest id
        in the same transaction that queues the reports, so nothing is lost or reported twice.
        """
        created: list[OutboxItem] = []
        now = self.now()
        limit = int(self.get("REPORT_SIZELIMIT"))
        for spec in specs if specs is not None else self.channel_specs():
            channel = self.make_channel(spec)
            with self._write_lock:
                cursor = self.outbox.cursor(spec.key)
                conn = self.store.connection
                content_type = "text/csv" if channel.format == "csv" else "application/xml"
                conn.execute("BEGIN")
                try:
                    latest = int(self.store.latest_id())
                    if latest <= cursor:
                        continue
                    stream = self.store.iter_readings(after_id=cursor)
                    new = [NewReport(payload, content_type, readings=count)
                           for payload, count in self.chunks(channel.format, stream, now, limit)]
                finally:
                    conn.execute("COMMIT")
                if not new:
                    continue
                items = self.outbox.enqueue(spec.key, new, name=channel.report_name, now=now, cursor=latest)
            log.info("%s: %d report(s) queued with %d reading(s)", spec.key, len(items), sum(n.readings for n in new))
            created.extend(items)
        return created

    def deliver(
        self,
        specs: Iterable[ChannelSpec] | None = None,
        *,
        force: bool = False,
        stop: threading.Event | None = None,
        observer: StepObserver | None = None,
        on_channel: Callable[[Channel | None], None] | None = None,
    ) -> dict[str, DeliveryResult]:
        """Send the outbox of every pushing channel, oldest first; a failure is logged, never raised."""
        results: dict[str, DeliveryResult] = {}
        cap = float(max(60, int(self.get("REPORT_TIME")) * 60))
        for spec in specs if specs is not None else self.channel_specs():
            if spec.key == "tcp-server":
                continue  # the head-end fetches; see sonocli.daemon
            channel = self.make_channel(spec, observer=observer)
            if on_channel is not None:
                on_channel(channel)

            def send(item: OutboxItem, payload: bytes, channel: Channel = channel) -> None:
                channel.send(Report(item.name, payload, item.content_type, float(item.created)))

            try:
                result = self.outbox.deliver(spec.key, send, now=self.now, force=force, stop=stop, cap=cap)
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
        self, *, observer: StepObserver, accept_host_key: bool = False
    ) -> list[tuple[str, PushError | None]]:
        """The Test button: a small real transmission on every configured channel; (channel, error or None)."""
        specs = [s for s in self.channel_specs() if s.key != "tcp-server"]
        if not specs:
            raise UsageError(
                "no push channel is enabled in chip.ini",
                hint="set FTP_ENABLE, XMLTOTCP_ENABLE, TLS_ENABLE or SMTP_ENABLE to 1",
            )
        outcome: list[tuple[str, PushError | None]] = []
        now = int(self.now())
        for spec in specs:
            channel = self.make_channel(spec, observer=observer, accept_host_key=accept_host_key)
            payload = self.render(channel.format, [], now)
            name = channel.report_name(now, 1)
            if channel.format == "csv":
                name = name.replace(".csv", "_test.csv")
            try:
                channel.test(Report(name, payload, "text/csv" if channel.format == "csv" else "application/xml", now))
                outcome.append((spec.key, None))
            except PushError as exc:
                outcome.append((spec.key, exc))
        return outcome


def _xml_estimate(reading: Reading) -> int:
    """Rough XML size of a reading (a <meter> element plus one <data> element per value, ~200 bytes each)."""
    return 250 + 200 * len(reading.values)
