"""The daemon's status snapshot: one row in ``ext/sonocli.db`` (table ``daemon_status``, a migration of
:mod:`sonocli.store.db`).

Why in the store and not in the process: ``sonocli status`` must work over SSH, as another user, while the
daemon is busy or hung, without a control socket to talk to. The daemon writes what only it knows (its
start time, the last readout and reception per interface, the last delivery and error per channel, its
schedule) after every step and at least every heartbeat; ``status`` reads it and adds what the store knows
by itself (outbox, heard meters, disk use). One row, replaced whole: a reader never sees half a snapshot.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from sonocli.model.valueclass import valueclass
from sonocli.store.db import connect, mapped, write_transaction


@valueclass(frozen=True)
class Snapshot:
    """What the daemon wrote: ``body`` (JSON object) at wall-clock time ``written_at`` (UNIX seconds)."""

    body: dict[str, Any]
    written_at: float


class StatusStore:
    """The ``daemon_status`` table on a connection of its own (one instance per thread, like sqlite3)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection = connect(self.path)

    def close(self) -> None:
        self._conn.close()

    def save(self, body: dict[str, Any], written_at: float) -> None:
        """Replace the snapshot (StoreError on a full or read-only disk: the caller decides what that means)."""
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        with write_transaction(self._conn, self.path, "save the daemon status"):
            self._conn.execute(
                "INSERT INTO daemon_status (id, body, written_at) VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET body = excluded.body, written_at = excluded.written_at",
                (text, int(written_at * 1_000_000)),
            )

    def load(self) -> Snapshot | None:
        """The last snapshot, or None when no daemon ever ran on this root (or the row is unreadable)."""
        with mapped(self.path, "read the daemon status"):
            row = self._conn.execute("SELECT body, written_at FROM daemon_status WHERE id = 1").fetchone()
        if row is None:
            return None
        try:
            body = json.loads(str(row[0]))
        except ValueError:
            return None
        return Snapshot(body, int(row[1]) / 1_000_000) if isinstance(body, dict) else None
