"""The SQLite database under ``ext/``: one connection recipe and the schema migrations.

Why WAL: the daemon writes readings while ``sonocli export`` (another process) streams a year of them; in
WAL mode readers never block the writer and the writer never blocks readers.

Why ``synchronous=FULL``: the concentrator writes one transaction per readout or telegram batch (every
few minutes), so the extra fsync of the WAL per commit costs nothing noticeable, while ``NORMAL`` could
lose the last committed readings on a power cut — and a readout that was lost cannot be repeated (the
meter has moved on). The DB stays consistent either way; FULL makes it durable too.

Migrations are plain SQL scripts applied in order inside one transaction each; ``PRAGMA user_version``
records how far a database has come, so an older database file copied from another install is upgraded in
place and a newer one is refused rather than misread. Other modules (e.g. the push outbox) add their tables
with :func:`register_migration`-free ``CREATE TABLE IF NOT EXISTS`` of their own through :func:`connect`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from sonocli.errors import SonoError

BUSY_TIMEOUT_MS: Final = 10_000

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
)

SCHEMA_VERSION: Final = len(MIGRATIONS)


class StoreError(SonoError):
    """The database cannot be opened or is from a newer sonocli (exit 1)."""


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` in WAL mode and bring its schema up to date.

    The connection is in autocommit mode (``isolation_level=None``): callers open transactions with
    ``BEGIN IMMEDIATE`` so that a writer waits for the lock up front instead of failing half-way.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open database {path}: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"database {path}: journal_mode WAL refused (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"database {path}: {exc}", hint="is it a sonocli database?") from exc
    except BaseException:
        conn.close()
        raise
    return conn


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
            conn.execute("ROLLBACK")
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
