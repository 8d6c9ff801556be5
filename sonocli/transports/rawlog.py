"""A tee for byte pipes: every write and read of a :class:`Link` also goes to sinks (a raw log, a logger).

This is what MBUS_RAWLOGENABLE ("raw data log to drive /ext") and MBUS_DEBUGOUT ("output of raw data")
of Table 25 need, and it knows nothing of M-Bus: a write is one ``TX`` chunk, the bytes read are collected
into one ``RX`` chunk until the line turns round (the next write), goes quiet (a read that returns
nothing) or closes. A master writes one request per write and reads an answer until it is complete, so
one chunk is one frame in practice; bytes that arrive together (an echo and the answer, a collision) stay
in one chunk, which is what was on the wire.

The raw log is a text file of lines ``TIME;DIR;HEX`` - TIME in UTC, ISO 8601 with milliseconds
(``2024-05-01T12:00:00.123Z``), DIR ``TX`` or ``RX``, HEX the bytes in upper-case hex without spaces - the
wireless raw log's ``TIME;RSSI;HEX`` shape. A full or read-only disk must not stop a readout: the first
error is logged once and the raw log stops, the link goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sonocli import logs
from sonocli.transports import Link, WrappedLink

log = logs.logger("sonocli.transports")

TX = "TX"
RX = "RX"

# (direction, bytes, UTC time of the chunk's first byte)
RawLogSink = Callable[[str, bytes, datetime], None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(when: datetime) -> str:
    """UTC ISO 8601 with milliseconds and ``Z``: ``2024-05-01T12:00:00.123Z``."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def format_line(direction: str, data: bytes, when: datetime) -> str:
    """One raw-log line (without the newline)."""
    return f"{format_time(when)};{direction};{data.hex().upper()}"


def parse_raw_log(text: str) -> list[tuple[datetime, str, bytes]]:
    """The lines of a raw log as (UTC time, direction, bytes); lines that do not parse are skipped."""
    out: list[tuple[datetime, str, bytes]] = []
    for line in text.splitlines():
        parts = line.strip().split(";")
        if len(parts) != 3 or parts[1] not in (TX, RX):
            continue
        try:
            when = datetime.fromisoformat(parts[0].replace("Z", "+00:00"))
            data = bytes.fromhex(parts[2])
        except ValueError:
            continue
        out.append((when, parts[1], data))
    return out


class RawLog:
    """An append-only raw log file (``TIME;DIR;HEX`` lines), opened on the first chunk.

    It is a sink for :class:`TeeLink`. Each line is flushed at once, so a crash loses nothing already
    logged. The first OSError (disk full, read-only, no permission) is logged once as a warning and ends
    raw logging for this file; the caller's work goes on.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.stopped = False
        self._file: IO[str] | None = None

    def __call__(self, direction: str, data: bytes, when: datetime) -> None:
        if self.stopped:
            return
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="ascii")
            self._file.write(format_line(direction, data, when) + "\n")
            self._file.flush()
        except OSError as exc:
            log.warning("raw log %s: %s; raw logging stopped", self.path, exc.strerror or exc)
            self.stopped = True
            self.close()

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:  # the data were flushed line by line; a failing close loses nothing
                pass
            self._file = None


class LogSink:
    """Each chunk as one DEBUG line ``TX 10 5B FE 59 16`` on ``logger`` (MBUS_DEBUGOUT, ``-vv``)."""

    def __init__(self, logger: logs.Logger) -> None:
        self.logger = logger

    def __call__(self, direction: str, data: bytes, when: datetime) -> None:
        if self.logger.isEnabledFor(logs.DEBUG):
            self.logger.debug("%s %s", direction, data.hex(" ").upper())


class TeeLink(WrappedLink):
    """``inner`` with every chunk written (``TX``) and read (``RX``, grouped) also given to ``sinks``.

    It is a :class:`~sonocli.transports.WrappedLink`, so whatever drives a link drives this one; the port,
    clock and URL are the inner link's, and every call it does not tee is the inner link's. A sink that
    raises does not stop the link: the error is logged once and that sink is dropped.
    """

    def __init__(self, inner: Link, sinks: Sequence[RawLogSink], now: Callable[[], datetime] = _utc_now) -> None:
        super().__init__(inner)
        self.sinks = list(sinks)
        self._now = now
        self._rx = bytearray()
        self._rx_since: datetime | None = None

    # ---- the tee --------------------------------------------------------------------------------------

    def _emit(self, direction: str, data: bytes, when: datetime) -> None:
        for sink in list(self.sinks):
            try:
                sink(direction, data, when)
            except Exception as exc:  # a sink is a side channel: it must never break the transfer
                log.warning("raw data sink %r failed (%s: %s); it is switched off", sink, type(exc).__name__, exc)
                self.sinks.remove(sink)

    def flush_rx(self) -> None:
        """Hand the bytes read since the last turn-round to the sinks as one RX chunk."""
        if self._rx:
            data, when = bytes(self._rx), self._rx_since or self._now()
            self._rx.clear()
            self._rx_since = None
            self._emit(RX, data, when)

    # ---- Link ----------------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.flush_rx()
        when = self._now()
        self.inner.write(data)
        if data:
            self._emit(TX, bytes(data), when)

    def read(self, size: int, timeout: float) -> bytes:
        data = self.inner.read(size, timeout)
        if data:
            if not self._rx:
                self._rx_since = self._now()
            self._rx += data
        else:
            self.flush_rx()  # the line went quiet: the answer (or the garbage) is complete
        return data

    def set_baudrate(self, baudrate: int) -> None:
        self.flush_rx()
        super().set_baudrate(baudrate)

    def close(self) -> None:
        try:
            self.flush_rx()
        finally:
            try:
                self.inner.close()
            finally:
                for sink in self.sinks:
                    closer = getattr(sink, "close", None)
                    if callable(closer):
                        closer()

    def __enter__(self) -> TeeLink:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
