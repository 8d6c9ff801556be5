"""The SQLite database under ``ext/``: one connection recipe and the schema migrations.

Why WAL: the daemon writes readings while ``sonocli export`` (another process) streams a year of them; in
WAL mode readers never block the writer and the writer never blocks readers.

Why ``synchronous=FULL``: the concentrator writes one transaction per readout cycle or telegram batch
(sonocli.engine.recording batches them), so the extra fsync of the WAL per commit costs nothing noticeable,
while ``NORMAL`` could lose the last committed readings on a power cut — and a readout that was lost cannot
be repeated (the meter has moved on). The DB stays consistent either way; FULL makes it durable too: a
reading acknowledged as stored survives kill -9 and power loss.

Flash wear (issue 13): every page a transaction changes is written twice, once to the WAL and once more by
the checkpoint, and a page is written whole (4 KiB) however little of it changed. So the bytes written per
reading are governed by how many readings share a transaction (batching), not by these settings; the
checkpoint is left at SQLite's default of 1000 pages (4 MB of WAL: a 500-meter cycle or so, so that pages
changed by several transactions are copied once), and ``journal_size_limit`` truncates the WAL back to that
size afterwards, so that a long reader (an export) that held the WAL open does not leave a big file on a
small disk.

Errors: every sqlite3 error becomes a :class:`StoreError` with a hint (:func:`store_error`): a full disk
and a read-only root are operating conditions the daemon rides out, not bugs. A ROLLBACK after SQLite
already rolled back by itself (it does so on SQLITE_FULL) would fail with "cannot rollback - no transaction
is active" and hide the real cause; :func:`write_transaction` rolls back only an open transaction.

Migrations are plain SQL scripts applied in order inside one transaction each; ``PRAGMA user_version``
records how far a database has come, so an older database file copied from another install is upgraded in
place and a newer one is refused rather than misread. Other modules (e.g. the push outbox) add their tables
with :func:`register_migration`-free ``CREATE TABLE IF NOT EXISTS`` of their own through :func:`connect`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from sonocli.errors import SonoError

BUSY_TIMEOUT_MS: Final = 10_000
JOURNAL_SIZE_LIMIT: Final = 4 * 1024 * 1024

# Index i holds the script that takes a database from user_version i to i + 1.
MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE meters (
        id           INTEGER PRIMARY KEY,
        device_key   TEXT NOT NULL UNIQUE,
        interface    INTEGER NOT NULL,
        serial       TEXT NOT NULL,
        manufacturer TEXT,
        version      INTEGER,
        medium       INTEGER,
        device_id    TEXT NOT NULL
    );
    CREATE INDEX meters_serial ON meters(serial);
    CREATE INDEX meters_device_id ON meters(device_id);

    -- Every meter-list configuration a reading was taken with, deduplicated by content: a changed
    -- configuration adds a row and never rewrites history.
    CREATE TABLE meter_configs (
        id       INTEGER PRIMARY KEY,
        meter_id INTEGER NOT NULL REFERENCES meters(id),
        digest   BLOB NOT NULL UNIQUE,
        body     TEXT NOT NULL
    );

    CREATE TABLE readings (
        id         INTEGER PRIMARY KEY,
        meter_id   INTEGER NOT NULL REFERENCES meters(id),
        config_id  INTEGER NOT NULL REFERENCES meter_configs(id),
        taken_at   INTEGER NOT NULL,           -- concentrator time, microseconds since the epoch, UTC
        rssi       INTEGER,                    -- Reading.rssi (this telegram)
        meter_rssi INTEGER NOT NULL,           -- Meter.rssi at the time (the Link column of wM-Bus meters)
        n_values   INTEGER NOT NULL,           -- number of values (the CSV header's width without a join)
        frames     BLOB                        -- Reading.raw_frames, length-prefixed
    );
    CREATE INDEX readings_time ON readings(taken_at, id);
    CREATE INDEX readings_meter_time ON readings(meter_id, taken_at, id);

    CREATE TABLE reading_values (
        reading_id  INTEGER NOT NULL REFERENCES readings(id) ON DELETE CASCADE,
        position    INTEGER NOT NULL,
        idx         INTEGER NOT NULL,
        measurement INTEGER NOT NULL,
        unit        TEXT NOT NULL,
        exponent    INTEGER NOT NULL,
        raw_type    INTEGER NOT NULL,          -- see readings.RawType
        raw,                                   -- no affinity: stored exactly as given
        function    INTEGER NOT NULL,          -- index into ValueType (instantaneous, maximum, minimum, errorgate)
        storage     INTEGER NOT NULL,
        tariff      INTEGER NOT NULL,
        subunit     INTEGER NOT NULL,
        ts          INTEGER,                   -- meter timestamp, microseconds since the epoch
        flags       INTEGER NOT NULL,          -- bit 0: ts naive, bit 1: raw datetime naive
        dif_vif     BLOB NOT NULL,
        data        BLOB NOT NULL,
        encoding    TEXT NOT NULL,
        text        TEXT,
        PRIMARY KEY (reading_id, position)
    ) WITHOUT ROWID;
    """,
    """
    -- The guide's temporary wM-Bus list (5.1.2): meters heard that are not (yet) in the meter list, kept
    -- here so the daemon's list is visible to every command (sonocli meters heard).
    CREATE TABLE heard_meters (
        id           TEXT PRIMARY KEY,          -- the meter's ID, 8 digits
        manufacturer TEXT NOT NULL,
        version      INTEGER NOT NULL,
        medium       INTEGER NOT NULL,
        rssi         INTEGER,
        first_seen   INTEGER NOT NULL,          -- microseconds since the epoch, UTC
        last_seen    INTEGER NOT NULL,
        telegrams    INTEGER NOT NULL,
        security     TEXT NOT NULL,             -- none, decrypted, no key, wrong key, ...
        decrypts     INTEGER NOT NULL           -- 1: plain or decrypted, 0: cannot be read
    );

    -- What a readout learned about a listed meter that the meter list cannot hold: the value list was
    -- limited (Table 9 "*"), or the record layout changed.
    CREATE TABLE meter_status (
        device_id TEXT PRIMARY KEY COLLATE NOCASE,
        limited   INTEGER NOT NULL,
        note      TEXT,
        updated   INTEGER NOT NULL
    );
    """,
    """
    -- What a value's combinable VIFEs change in its meaning (MeterValue.qualifiers: "backward flow",
    -- "per hour", ...) as a JSON array, '' for none. NULL in rows stored before this migration: the store
    -- derives them from dif_vif when it reads such a row (codecs.mbus_app.qualifiers_of).
    ALTER TABLE reading_values ADD COLUMN qualifiers TEXT;
    """,
    """
    -- S0 pulse counters (sonocli.store.pulses): the pulses counted per S0 meter since its value was set, and
    -- the set value they count from, so a restart loses no pulse already counted.
    CREATE TABLE s0_counters (
        device_id TEXT PRIMARY KEY COLLATE NOCASE,
        base      TEXT NOT NULL,                -- the set value (Figure 21) counting started from, exact text
        pulses    INTEGER NOT NULL,
        set_at    INTEGER NOT NULL,             -- microseconds since the epoch, UTC
        updated   INTEGER NOT NULL
    );
    """,
    """
    -- The daemon's status snapshot (sonocli.store.status): one row, replaced whole after every step and at
    -- least every heartbeat, read by `sonocli status` without talking to the process.
    CREATE TABLE daemon_status (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        body       TEXT NOT NULL,               -- JSON object (sonocli.engine.status)
        written_at INTEGER NOT NULL             -- wall clock, microseconds since the epoch, UTC
    );
    """,
    """
    -- Compact-frame formats learnt from full frames and format frames (sonocli.store.formats): the record
    -- headers per meter type and format signature, so a restarted daemon or a later `decode` expands a
    -- compact frame at once instead of waiting for the meter's next full frame.
    CREATE TABLE IF NOT EXISTS compact_formats (
        manufacturer INTEGER NOT NULL,
        version      INTEGER NOT NULL,
        device_type  INTEGER NOT NULL,
        signature    INTEGER NOT NULL,          -- EN 13757-3 Annex G: CRC of the record headers
        headers      BLOB NOT NULL,             -- DIF/VIF bytes without data
        learnt_at    INTEGER NOT NULL,          -- microseconds since the epoch, UTC
        PRIMARY KEY (manufacturer, version, device_type, signature)
    ) WITHOUT ROWID;
    """,
    """
    -- Flash wear (issue 13): the (meter_id, taken_at, id) index put each reading of a cycle into another
    -- leaf (one per meter), so every cycle rewrote a page per meter, twice (WAL, checkpoint): 7.5 KB per
    -- reading after three days at 200 meters, growing with the database (benchmarks/daemon.py). Time order
    -- is append-only; a time index that also carries the meter answers per-meter queries from the index
    -- alone, and the newest reading of each meter is kept on its row (a handful of pages per cycle).
    ALTER TABLE meters ADD COLUMN last_reading INTEGER;
    UPDATE meters SET last_reading = (SELECT max(id) FROM readings WHERE readings.meter_id = meters.id);
    DROP INDEX IF EXISTS readings_meter_time;
    DROP INDEX IF EXISTS readings_time;
    CREATE INDEX readings_time ON readings(taken_at, meter_id, id);
    """,
)

SCHEMA_VERSION: Final = len(MIGRATIONS)


class StoreError(SonoError):
    """The database cannot be opened, read or written, or is from a newer sonocli (exit 1).

    ``reason`` names the condition for callers that react to it: "full", "read-only", "locked", "io",
    "corrupt" or "other"."""

    def __init__(self, message: str, *, hint: str | None = None, reason: str = "other") -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


def _free_bytes(path: Path) -> int | None:
    """Bytes free to an unprivileged writer on the file system holding ``path`` (or its nearest existing
    parent); None when it cannot be told."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def free_space(path: Path) -> str:
    """Free space of the file system holding ``path`` (or its nearest existing parent), for messages."""
    free = _free_bytes(path)
    if free is None:
        return "free space unknown"
    return f"{free / 1e6:.1f} MB free" if free >= 100_000 else f"{free / 1e3:.0f} kB free"


_FULL_CODES: Final = {"SQLITE_FULL"}
_READONLY_CODES: Final = {"SQLITE_READONLY", "SQLITE_READONLY_DBMOVED", "SQLITE_READONLY_RECOVERY",
                          "SQLITE_READONLY_CANTLOCK", "SQLITE_READONLY_ROLLBACK", "SQLITE_READONLY_DIRECTORY",
                          "SQLITE_READONLY_CANTINIT", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH"}


def _nearly_full(path: Path) -> bool:
    """Less free space than SQLite needs to open a WAL database (its 32 KiB -shm file) or grow a page."""
    free = _free_bytes(path)
    return free is not None and free < 64 * 1024


def _read_only(path: Path) -> bool:
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return bool(os.statvfs(probe).f_flag & os.ST_RDONLY) or not os.access(probe, os.W_OK)
    except OSError:
        return False


def classify(exc: BaseException, path: Path) -> str:
    """The condition behind a sqlite3 error or OSError: full, read-only, locked, io, corrupt or other."""
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return "full"
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return "read-only"
        return "io"
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    text = str(exc).lower()
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return "full"
    if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED") or "is locked" in text:
        return "locked"
    if name in _READONLY_CODES or "readonly" in text or "read-only" in text or "unable to open" in text:
        if not _read_only(path) and _nearly_full(path):
            return "full"  # opened read-only because the disk was full (no room for the -shm file)
        return "read-only" if _read_only(path) or "readonly" in text else "other"
    if name.startswith("SQLITE_IOERR") or "i/o error" in text:
        # a full disk can surface as an I/O error (a WAL that cannot grow, a shm that cannot be mapped)
        return "full" if _nearly_full(path) else "io"
    if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or "not a database" in text or "malformed" in text:
        return "corrupt"
    return "other"


def store_error(exc: BaseException, path: Path, what: str) -> StoreError:
    """``exc`` (a sqlite3 error or OSError met while doing ``what`` to the database at ``path``) as a
    StoreError with a hint an administrator can act on."""
    if isinstance(exc, StoreError):
        return exc
    path = Path(path)
    reason = classify(exc, path)
    detail = str(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)
    where = path.parent
    hints = {
        "full": f"the disk holding {where} is full ({free_space(where)}); free space there, or lower "
                "STORE_MAXREADINGS, OUTBOX_MAXITEMS or CSVLOG_MAXSIZE",
        "read-only": f"{where} is read-only (a read-only mount, or files owned by another user); remount it "
                     "read-write or run as the owner of the files",
        "locked": "another sonocli process holds the database; try again when it is done",
        "io": f"the disk holding {where} reported an I/O error ({free_space(where)}); check it (dmesg)",
        "corrupt": "is it a sonocli database? (sonocli keeps its data in ext/sonocli.db)",
        "other": f"{free_space(where)} on {where}",
    }
    condition = {"full": "disk full", "read-only": "read-only"}.get(reason)
    message = f"database {path}: cannot {what}: {detail}" + (f" ({condition})" if condition and
                                                             condition not in detail else "")
    return StoreError(message, hint=hints[reason], reason=reason)


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if any: on SQLITE_FULL SQLite has already rolled back itself, and a
    second ROLLBACK would raise "cannot rollback - no transaction is active" over the real error."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection, path: Path, what: str) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``; on any error roll back what is open and raise sqlite3 errors as
    :class:`StoreError` (see :func:`store_error`)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("COMMIT")
    except BaseException as exc:
        rollback(conn)
        if isinstance(exc, sqlite3.Error | OSError) and not isinstance(exc, StoreError):
            raise store_error(exc, path, what) from exc
        raise


@contextlib.contextmanager
def mapped(path: Path, what: str) -> Iterator[None]:
    """Raise sqlite3 errors (and OSError) met inside as :class:`StoreError` with a hint."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        if isinstance(exc, StoreError):
            raise
        raise store_error(exc, path, what) from exc


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` in WAL mode and bring its schema up to date.

    The connection is in autocommit mode (``isolation_level=None``): callers open transactions with
    ``BEGIN IMMEDIATE`` so that a writer waits for the lock up front instead of failing half-way.
    On a read-only root, or a disk too full for SQLite's ``-shm`` file, an existing database is opened
    read-only, so the commands that only read (export, outbox list, meters show) still work; writing then
    fails with a StoreError naming the condition.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise store_error(exc, path, "create its directory") from exc
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except sqlite3.Error as exc:
        if path.is_file() and (_read_only(path) or _nearly_full(path)):
            return _connect_read_only(path, exc)
        raise store_error(exc, path, "open it") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = _to_wal(conn)
        if str(mode).lower() != "wal":
            raise StoreError(f"database {path}: journal_mode WAL refused (got {mode})",
                             hint=f"{free_space(path.parent)} on {path.parent}")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn, path)
    except (sqlite3.Error, OSError) as exc:
        conn.close()
        if path.is_file() and classify(exc, path) in ("read-only", "full") and (
                _read_only(path) or _nearly_full(path)):
            return _connect_read_only(path, exc)  # reading still works; writing fails with the reason
        raise store_error(exc, path, "open it") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _to_wal(conn: sqlite3.Connection) -> str:
    """Switch to WAL, waiting out another connection that creates or switches the same new database.

    Changing the journal mode needs an exclusive lock, and SQLite answers "database is locked" at once
    instead of calling the busy handler when another connection holds a lock on a database that is not yet
    in WAL mode: two threads of the daemon (the S0 counter, a receiver) opening a fresh root at the same
    moment would fail. A database already in WAL mode answers at once; a fresh one is retried until the
    busy timeout."""
    import time

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


class FallbackConnection(sqlite3.Connection):
    """A connection opened read-only because the root could not be written (read-only, or full): the
    holders of long-lived connections reopen it (:func:`reopened`) once the root can be written again."""


def reopened(conn: sqlite3.Connection, path: Path) -> sqlite3.Connection:
    """``conn``, or a read-write connection replacing it when ``conn`` is a fallback and the root can be
    written again (the full disk got space, the root was remounted read-write)."""
    if not isinstance(conn, FallbackConnection):
        return conn
    try:
        fresh = connect(path)
    except SonoError:
        return conn
    if isinstance(fresh, FallbackConnection):
        fresh.close()
        return conn
    with contextlib.suppress(sqlite3.Error):
        conn.close()
    return fresh


def _connect_read_only(path: Path, cause: BaseException) -> sqlite3.Connection:
    """The database on a read-only root, for reading: ``mode=ro`` (sees a WAL left behind when its
    ``-shm`` exists), else ``immutable=1`` (a cleanly closed database, whose WAL was checkpointed away)."""
    last: BaseException = cause
    for query in ("mode=ro", "immutable=1"):
        try:
            conn = sqlite3.connect(f"file:{path}?{query}", uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None, check_same_thread=False, factory=FallbackConnection)
            current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as exc:
            last = exc
            continue
        if current > SCHEMA_VERSION:
            conn.close()
            raise StoreError(f"database {path} has schema version {current}; this sonocli knows up to "
                             f"{SCHEMA_VERSION}", hint="upgrade sonocli")
        if current < SCHEMA_VERSION:  # empty or not yet migrated: nothing to read, say why it cannot be made
            conn.close()
            break
        return conn
    raise store_error(last, path, "open it") from last


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"database {path} has schema version {current}; this sonocli knows up to {SCHEMA_VERSION}",
            hint="upgrade sonocli",
        )
    while current < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have migrated meanwhile.
            current = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if current < SCHEMA_VERSION:
                for statement in _statements(MIGRATIONS[current]):
                    conn.execute(statement)
                current += 1
                conn.execute(f"PRAGMA user_version = {current}")
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit our transaction)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        code = line.split("--", 1)[0]
        buffer += code
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
