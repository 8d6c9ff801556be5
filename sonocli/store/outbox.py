"""The durable outbox: every report is written here first, then sent, and marked done only when the
server confirmed it.

Guarantees (what the daemon and ``sonocli push`` rely on):
- a report's name (remote file name or mail subject) and bytes are fixed when it is created, so a retry -
  after a failure, a crash, kill -9 or a configuration save - sends the same bytes under the same name;
- creating a report and advancing the channel's reading cursor is one SQLite transaction, so a reading is
  in exactly one report per channel: none lost, none twice;
- reports of one channel go out oldest first; a failed one blocks the younger ones (order is kept) and is
  retried with exponential back-off;
- at worst (a crash after the server confirmed but before ``mark_done`` committed) the same report is sent
  again under the same name, which FTP/SFTP turn into an overwrite.

The tables live in the readings database (ext/sonocli.db), WAL mode, created here on first use.

Bounded (OUTBOX_MAXITEMS, issue 13): :meth:`Outbox.bound` deletes the oldest items beyond the limit —
delivered ones first, then dropped ones, then (loudly: the caller warns with the count) the oldest pending.
Every sqlite3 error leaves as a StoreError with a hint (a full disk, a read-only root), never as a bare
``OperationalError``.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from sonocli.model.valueclass import valueclass
from sonocli.store.db import (
    BUSY_TIMEOUT_MS,
    FallbackConnection,
    _connect_read_only,
    _nearly_full,
    _read_only,
    _to_wal,
    reopened,
    rollback,
    store_error,
)

F = TypeVar("F", bound=Callable[..., Any])

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    channel       TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    content_type  TEXT    NOT NULL,
    payload       BLOB    NOT NULL,
    created       INTEGER NOT NULL,
    first_reading INTEGER,
    last_reading  INTEGER,
    readings      INTEGER NOT NULL DEFAULT 0,
    state         TEXT    NOT NULL DEFAULT 'pending',
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_try      REAL    NOT NULL DEFAULT 0,
    last_error    TEXT,
    sent_at       REAL,
    UNIQUE (channel, name)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (channel, state, id);
CREATE TABLE IF NOT EXISTS outbox_cursor (
    channel      TEXT PRIMARY KEY,
    last_reading INTEGER NOT NULL
);
-- The payloads apart from the rows whose state changes: SQLite rewrites a whole row on UPDATE, overflow pages
-- and all, so marking a 500 kB report failed or done wrote 1 MB (WAL and checkpoint). outbox.payload is
-- empty for rows created since; older rows keep theirs there. Stored zlib-compressed (a CSV or XML report
-- shrinks five- to tenfold: less flash written, twice, by the WAL and its checkpoint); size: the real bytes.
CREATE TABLE IF NOT EXISTS outbox_payload (
    id      INTEGER PRIMARY KEY,
    payload BLOB NOT NULL,
    size    INTEGER NOT NULL,
    zlib    INTEGER NOT NULL DEFAULT 1
);
CREATE TRIGGER IF NOT EXISTS outbox_payload_gone AFTER DELETE ON outbox BEGIN
    DELETE FROM outbox_payload WHERE id = old.id;
END;
"""

PENDING, DONE, DROPPED = "pending", "done", "dropped"
BACKOFF_FIRST = 30.0
BACKOFF_MAX = 3600.0


def numbered(name: str, counter: int) -> str:
    """``report_1.csv`` -> ``report_1_2.csv``; a name without extension (a mail subject) gets `` #2``."""
    stem, dot, ext = name.rpartition(".")
    if dot and stem and "/" not in ext and " " not in ext and len(ext) <= 4:
        return f"{stem}_{counter}.{ext}"
    return f"{name} #{counter}"


@valueclass(frozen=True)
class OutboxItem:
    id: int
    channel: str
    name: str
    content_type: str
    size: int
    created: int
    first_reading: int | None
    last_reading: int | None
    readings: int
    state: str
    attempts: int
    next_try: float
    last_error: str | None
    sent_at: float | None

    def as_dict(self) -> dict[str, object]:
        return {field: getattr(self, field) for field in self.__dataclass_fields__}


@valueclass(frozen=True)
class NewReport:
    """A report about to be queued; ``index`` numbers the reports of one cycle (the SMTP subject's)."""

    payload: bytes
    content_type: str
    first_reading: int | None = None
    last_reading: int | None = None
    readings: int = 0


@valueclass(frozen=True)
class DeliveryResult:
    sent: int
    failed: int
    waiting: int  # still pending after this run
    error: str | None = None


_SIZE = ("(CASE WHEN length(payload) > 0 THEN length(payload) ELSE "
         "coalesce((SELECT p.size FROM outbox_payload AS p WHERE p.id = outbox.id), 0) END)")
_COLUMNS = (
    f"id, channel, name, content_type, {_SIZE}, created, first_reading, last_reading, readings, "
    "state, attempts, next_try, last_error, sent_at"
)


@valueclass(frozen=True)
class OutboxUse:
    """How full the outbox is: items by state and their payload bytes, against OUTBOX_MAXITEMS."""

    items: int
    pending: int
    done: int
    dropped: int
    payload_bytes: int

    def as_dict(self) -> dict[str, int]:
        return {field: getattr(self, field) for field in self.__dataclass_fields__}


def connect(path: Path) -> sqlite3.Connection:
    """A connection of the outbox's own to the shared database file (ext/sonocli.db), with its schema.

    Its own connection rather than the readings store's: the outbox needs autocommit with explicit
    ``BEGIN IMMEDIATE`` transactions and use from the daemon's delivery thread. WAL lets both coexist.
    On a read-only root an existing database is opened for reading (``outbox list`` works; changing
    fails with a read-only StoreError).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise store_error(exc, path, "create its directory") from exc
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        _to_wal(conn)  # a fresh database opened by two threads at once: wait, do not fail
        conn.execute("PRAGMA synchronous=FULL")
        _create(conn)
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        if path.is_file() and (_read_only(path) or _nearly_full(path)):
            fallback = _connect_read_only(path, exc)
            if fallback.execute("SELECT 1 FROM sqlite_master WHERE name = 'outbox'").fetchone() is not None:
                return fallback
            fallback.close()
        raise store_error(exc, path, "open the outbox") from exc
    return conn


def _create(conn: sqlite3.Connection) -> None:
    """The outbox tables, when missing; nothing is written when they exist (a read-only root opens)."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index', 'trigger')")
    have = {str(row[0]) for row in rows}
    if not {"outbox", "outbox_cursor", "outbox_pending", "outbox_payload", "outbox_payload_gone"} <= have:
        conn.executescript(SCHEMA)


def _mapped(what: str) -> Callable[[F], F]:
    """Method decorator: sqlite3 errors leave as StoreError (with a hint) naming ``what`` was tried."""

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def inner(self: Outbox, *args: Any, **kwargs: Any) -> Any:
            if isinstance(self._conn, FallbackConnection):  # read-only since a full disk: writable again?
                with self._lock:
                    self._conn = reopened(self._conn, self.path)
                    if not isinstance(self._conn, FallbackConnection):
                        _create(self._conn)
            try:
                return method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                with self._lock:
                    rollback(self._conn)
                raise store_error(exc, self.path, what) from exc

        return cast(F, inner)

    return wrap


def backoff(attempts: int) -> float:
    """30 s, 60 s, 120 s … capped at one hour."""
    return float(min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, attempts - 1)))


class Outbox:
    """The outbox tables of one database. Thread-safe (one lock around the connection)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn = connect(self.path)
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- creation ---------------------------------------------------------------------------------------
    @_mapped("read the outbox")
    def cursor(self, channel: str) -> int:
        """Id of the last reading already put into a report for ``channel`` (0: none yet)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT last_reading FROM outbox_cursor WHERE channel = ?", (channel,)
            ).fetchone()
        return int(row[0]) if row else 0

    @_mapped("queue reports")
    def enqueue(
        self,
        channel: str,
        reports: Sequence[NewReport],
        *,
        name: Callable[[int, int], str],
        now: float | None = None,
        cursor: int | None = None,
    ) -> list[OutboxItem]:
        """Queue ``reports`` (one cycle) and move the cursor to ``cursor``, atomically.

        ``name(created, index)`` gives each report its final name. When that name is already taken (two
        reports in one second, the parts of a report split at REPORT_SIZELIMIT on channels whose names carry
        only the time) a counter is added to the name (``…_1700000000_2.csv``); ``created`` stays the real
        time, so no part claims a time in the future.
        """
        created = int(now if now is not None else time.time())
        ids: list[int] = []
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                for index, report in enumerate(reports, start=1):
                    base = title = name(created, index)
                    counter = 1
                    while conn.execute(
                        "SELECT 1 FROM outbox WHERE channel = ? AND name = ?", (channel, title)
                    ).fetchone():
                        counter += 1
                        title = numbered(base, counter)
                    cur = conn.execute(
                        "INSERT INTO outbox (channel, name, content_type, payload, created, first_reading, "
                        "last_reading, readings) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (channel, title, report.content_type, b"", created,
                         report.first_reading, report.last_reading, report.readings),
                    )
                    assert cur.lastrowid is not None
                    conn.execute("INSERT INTO outbox_payload (id, payload, size, zlib) VALUES (?, ?, ?, 1)",
                                 (cur.lastrowid, zlib.compress(report.payload, 6), len(report.payload)))
                    ids.append(cur.lastrowid)
                if cursor is not None:
                    conn.execute(
                        "INSERT INTO outbox_cursor (channel, last_reading) VALUES (?, ?) "
                        "ON CONFLICT(channel) DO UPDATE SET last_reading = excluded.last_reading",
                        (channel, cursor),
                    )
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise
        return [self.get(item_id) for item_id in ids]

    # -- reading ----------------------------------------------------------------------------------------
    @_mapped("read the outbox")
    def get(self, item_id: int) -> OutboxItem:
        from sonocli.errors import NotFoundError

        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM outbox WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"outbox item {item_id} does not exist")
        return OutboxItem(*row)

    @_mapped("read the outbox")
    def payload(self, item_id: int) -> bytes:
        with self._lock:
            row = self._conn.execute("SELECT payload, zlib FROM outbox_payload WHERE id = ?",
                                     (item_id,)).fetchone()
            if row is None:  # a report queued before the payloads moved
                row = self._conn.execute("SELECT payload, 0 FROM outbox WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            return b""
        return zlib.decompress(row[0]) if row[1] else bytes(row[0])

    @_mapped("read the outbox")
    def items(self, *, states: Iterable[str] = (PENDING,), channel: str | None = None) -> list[OutboxItem]:
        wanted = tuple(states)
        query = f"SELECT {_COLUMNS} FROM outbox WHERE state IN ({','.join('?' * len(wanted))})"
        args: list[object] = list(wanted)
        if channel is not None:
            query += " AND channel = ?"
            args.append(channel)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY id", args).fetchall()
        return [OutboxItem(*row) for row in rows]

    @_mapped("read the outbox")
    def next_pending(self, channel: str) -> OutboxItem | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE channel = ? AND state = ? ORDER BY id LIMIT 1",
                (channel, PENDING),
            ).fetchone()
        return OutboxItem(*row) if row else None

    @_mapped("read the outbox")
    def channels_pending(self) -> list[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT channel FROM outbox WHERE state = ? ORDER BY channel", (PENDING,)
            ).fetchall()
        return [str(row[0]) for row in rows]

    # -- state changes ----------------------------------------------------------------------------------
    @_mapped("mark a report delivered")
    def mark_done(self, item_id: int, now: float | None = None) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE outbox SET state = ?, sent_at = ?, last_error = NULL WHERE id = ?",
                (DONE, now if now is not None else time.time(), item_id),
            )

    @_mapped("note a failed delivery")
    def mark_failed(self, item_id: int, error: str, now: float | None = None, *, cap: float = BACKOFF_MAX) -> float:
        """Count a failed attempt; returns when the next attempt is due."""
        at = now if now is not None else time.time()
        with self._lock:
            row = self._conn.execute("SELECT attempts FROM outbox WHERE id = ?", (item_id,)).fetchone()
            attempts = (int(row[0]) if row else 0) + 1
            due = at + min(cap, backoff(attempts))
            self._conn.execute(
                "UPDATE outbox SET attempts = ?, next_try = ?, last_error = ? WHERE id = ?",
                (attempts, due, error[:500], item_id),
            )
        return due

    @_mapped("change the outbox")
    def retry(self, ids: Iterable[int] | None = None) -> int:
        """Make pending (or dropped) items due now; all pending ones when ``ids`` is None."""
        with self._lock:
            if ids is None:
                cur = self._conn.execute("UPDATE outbox SET next_try = 0 WHERE state = ?", (PENDING,))
            else:
                wanted = list(ids)
                for item_id in wanted:
                    self.get(item_id)
                cur = self._conn.execute(
                    f"UPDATE outbox SET next_try = 0, state = ? WHERE state != ? AND id IN "
                    f"({','.join('?' * len(wanted))})",
                    (PENDING, DONE, *wanted),
                )
            return int(cur.rowcount)

    @_mapped("change the outbox")
    def drop(self, ids: Iterable[int] | None = None) -> int:
        """Give up on items (they stay in the table, state 'dropped'); all pending ones when ``ids`` is None."""
        with self._lock:
            if ids is None:
                cur = self._conn.execute("UPDATE outbox SET state = ? WHERE state = ?", (DROPPED, PENDING))
            else:
                wanted = list(ids)
                for item_id in wanted:
                    self.get(item_id)
                cur = self._conn.execute(
                    f"UPDATE outbox SET state = ? WHERE state = ? AND id IN ({','.join('?' * len(wanted))})",
                    (DROPPED, PENDING, *wanted),
                )
            return int(cur.rowcount)

    @_mapped("delete delivered reports")
    def prune(self, keep_seconds: float, now: float | None = None) -> int:
        """Forget delivered items older than ``keep_seconds`` (their payloads are the bulk of the file)."""
        limit = (now if now is not None else time.time()) - keep_seconds
        with self._lock:
            cur = self._conn.execute("DELETE FROM outbox WHERE state = ? AND sent_at < ?", (DONE, limit))
            return int(cur.rowcount)

    @_mapped("read the outbox")
    def use(self) -> OutboxUse:
        """Items by state and their payload bytes (``outbox list``: the use against OUTBOX_MAXITEMS)."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT state, count(*), coalesce(sum({_SIZE}), 0) FROM outbox GROUP BY state").fetchall()
        by_state = {str(row[0]): int(row[1]) for row in rows}
        return OutboxUse(items=sum(by_state.values()), pending=by_state.get(PENDING, 0),
                         done=by_state.get(DONE, 0), dropped=by_state.get(DROPPED, 0),
                         payload_bytes=sum(int(row[2]) for row in rows))

    @_mapped("delete the oldest reports")
    def bound(self, limit: int) -> dict[str, int]:
        """Keep at most ``limit`` items (OUTBOX_MAXITEMS): delete the oldest delivered, then dropped, then
        pending ones, in one transaction. Returns how many of each state were deleted (empty: none)."""
        deleted: dict[str, int] = {}
        with self._lock:
            conn = self._conn
            total = int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
            if total <= limit:
                return deleted
            excess = total - limit
            conn.execute("BEGIN IMMEDIATE")
            try:
                for state in (DONE, DROPPED, PENDING):
                    if excess <= 0:
                        break
                    cur = conn.execute(
                        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE state = ? ORDER BY id LIMIT ?)",
                        (state, excess))
                    if cur.rowcount:
                        deleted[state] = int(cur.rowcount)
                        excess -= int(cur.rowcount)
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise
        return deleted

    # -- delivery ---------------------------------------------------------------------------------------
    def deliver(
        self,
        channel: str,
        send: Callable[[OutboxItem, bytes], None],
        *,
        now: Callable[[], float] = time.time,
        force: bool = False,
        stop: threading.Event | None = None,
        cap: float = BACKOFF_MAX,
    ) -> DeliveryResult:
        """Send ``channel``'s pending items oldest first until one fails or none is left.

        An item waiting for its back-off stops the run unless ``force`` (a new report cycle, ``push --once``
        or ``outbox retry`` ignore the back-off). ``send`` raises on failure; the error text is kept.
        """
        sent = failed = 0
        error: str | None = None
        while stop is None or not stop.is_set():
            item = self.next_pending(channel)
            if item is None:
                break
            if not force and item.next_try > now():
                break
            try:
                send(item, self.payload(item.id))
            except Exception as exc:
                error = str(exc)
                self.mark_failed(item.id, error, now(), cap=cap)
                failed += 1
                break
            self.mark_done(item.id, now())
            sent += 1
        waiting = len(self.items(channel=channel))
        return DeliveryResult(sent, failed, waiting, error)
