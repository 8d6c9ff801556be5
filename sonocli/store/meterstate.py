"""What the engine knows about meters beyond the meter list: the temporary wM-Bus list and meter status.

Both live in the SQLite database under ``ext/`` (tables ``heard_meters`` and ``meter_status``, migration 2
of :mod:`sonocli.store.db`), so the daemon's temporary list and a readout's "value list limited" flag are
seen by every other command: ``sonocli meters heard`` and ``meters list`` read them while the daemon runs.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from sonocli.model.valueclass import valueclass
from sonocli.store.db import connect, mapped, reopened


@valueclass(frozen=True)
class HeardEntry:
    """One row of the temporary list (guide 5.1.2)."""

    id: str
    manufacturer: str
    version: int
    medium: int
    rssi: int | None
    first_seen: datetime
    last_seen: datetime
    telegrams: int
    security: str
    decrypts: bool


@valueclass(frozen=True)
class MeterStatus:
    device_id: str
    limited: bool
    note: str | None
    updated: datetime


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _moment(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


class MeterState:
    """The two tables on one connection (one instance per thread, like every sqlite3 connection)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection = connect(path)
        # The last values seen of a listed meter that were not stored (the commissioning look of scan --save,
        # an inactive wM-Bus meter): what `meters show` displays before the meter's first stored reading.
        # Created only when missing: an existing database on a read-only root is opened for reading.
        with mapped(self.path, "create the meter_look table"):
            if self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meter_look'").fetchone() is None:
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS meter_look (device_id TEXT PRIMARY KEY COLLATE NOCASE,"
                    " taken_at INTEGER NOT NULL, body TEXT NOT NULL)"
                )

    def close(self) -> None:
        self._conn.close()

    # --- the temporary wM-Bus list ---------------------------------------------------------------------
    def heard(self, entries: Iterable[HeardEntry]) -> None:
        """Insert or refresh heard meters (first_seen kept, telegram counts added)."""
        self._conn = reopened(self._conn, self.path)  # a receiver thread lives long: writable again?
        with mapped(self.path, "save the temporary wM-Bus list"):
            rows = [
                (e.id.upper(), e.manufacturer, e.version, e.medium, e.rssi, _micros(e.first_seen), _micros(e.last_seen),
                 e.telegrams, e.security, int(e.decrypts))
                for e in entries
            ]
            if not rows:
                return
            with self._conn:
                self._conn.executemany(
                    "INSERT INTO heard_meters (id, manufacturer, version, medium, rssi, first_seen, last_seen,"
                    " telegrams, security, decrypts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(id) DO UPDATE SET"
                    " manufacturer=excluded.manufacturer, version=excluded.version, medium=excluded.medium,"
                    " rssi=coalesce(excluded.rssi, rssi), last_seen=max(last_seen, excluded.last_seen),"
                    " first_seen=min(first_seen, excluded.first_seen), telegrams=telegrams + excluded.telegrams,"
                    " security=excluded.security, decrypts=excluded.decrypts",
                    rows,
                )

    def heard_list(self) -> list[HeardEntry]:
        with mapped(self.path, "read the temporary wM-Bus list"):
            rows = self._conn.execute(
                "SELECT id, manufacturer, version, medium, rssi, first_seen, last_seen, telegrams, security, decrypts"
                " FROM heard_meters ORDER BY first_seen, id"
            ).fetchall()
            return [
                HeardEntry(r[0], r[1], r[2], r[3], r[4], _moment(r[5]), _moment(r[6]), r[7], r[8], bool(r[9]))
                for r in rows
            ]

    def forget_heard(self, ids: Iterable[str]) -> None:
        """Meters that moved into the meter list leave the temporary list."""
        with mapped(self.path, "change the temporary wM-Bus list"), self._conn:
            self._conn.executemany("DELETE FROM heard_meters WHERE id = ?", [(i.upper(),) for i in ids])

    # --- meter status ----------------------------------------------------------------------------------
    def set_status(self, device_id: str, *, limited: bool, note: str | None, when: datetime) -> None:
        with mapped(self.path, "save a meter status"), self._conn:
            self._conn.execute(
                "INSERT INTO meter_status (device_id, limited, note, updated) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(device_id) DO UPDATE SET limited=excluded.limited, note=excluded.note,"
                " updated=excluded.updated",
                (device_id, int(limited), note, _micros(when)),
            )

    def set_look(self, device_id: str, when: datetime, values: dict[int, str]) -> None:
        """Keep the values (list index -> value as text) of a reading that was looked at, not stored."""
        self.set_looks([(device_id, when, values)])

    def set_looks(self, looks: Iterable[tuple[str, datetime, dict[int, str]]]) -> None:
        """:meth:`set_look` for many meters in one transaction."""
        with mapped(self.path, "save meters' values"):
            rows = [(device_id, _micros(when), json.dumps({str(k): v for k, v in values.items()},
                                                           ensure_ascii=False))
                    for device_id, when, values in looks]
            with self._conn:
                self._conn.executemany(
                    "INSERT INTO meter_look (device_id, taken_at, body) VALUES (?, ?, ?) ON CONFLICT(device_id)"
                    " DO UPDATE SET taken_at=excluded.taken_at, body=excluded.body",
                    rows,
                )

    def look(self, device_id: str) -> tuple[datetime, dict[int, str]] | None:
        with mapped(self.path, "read a meter's values"):
            row = self._conn.execute("SELECT taken_at, body FROM meter_look WHERE device_id = ?",
                                     (device_id,)).fetchone()
            if row is None:
                return None
            return _moment(row[0]), {int(k): str(v) for k, v in json.loads(row[1]).items()}

    def statuses(self) -> dict[str, MeterStatus]:
        with mapped(self.path, "read meter statuses"):
            rows = self._conn.execute("SELECT device_id, limited, note, updated FROM meter_status").fetchall()
            return {r[0].upper(): MeterStatus(r[0], bool(r[1]), r[2], _moment(r[3])) for r in rows}
