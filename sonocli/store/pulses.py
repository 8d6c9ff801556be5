"""S0 pulse counters in the SQLite database under ``ext/`` (table ``s0_counters``, migration 4 of
:mod:`sonocli.store.db`).

Why in the database and not in memory: a pulse is an event, not a state - a pulse lost is energy lost from
the meter reading for good, and it cannot be read again from the meter. Every batch of edges the counter
thread sees is added in one committed transaction (WAL, synchronous=FULL), so a restart or a power cut
loses no pulse that was counted. ``base`` is the set value (Figure 21, "Set value") the pulses count from:
the meter reading is ``base + pulses`` in units of the entry's scale; setting a new value resets the pulses
in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from sonocli.model.valueclass import valueclass
from sonocli.store.db import connect, mapped, write_transaction


@valueclass(frozen=True)
class PulseCount:
    device_id: str
    base: str
    pulses: int
    set_at: datetime
    updated: datetime


def _us(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


class PulseStore:
    """The counters of one database; one connection, for one thread (as sqlite3 wants)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn = connect(self.path)

    def close(self) -> None:
        self._conn.close()

    def get(self, device_id: str) -> PulseCount | None:
        with mapped(self.path, "reading the S0 counters"):
            row = self._conn.execute(
                "SELECT device_id, base, pulses, set_at, updated FROM s0_counters WHERE device_id = ?",
                (device_id,)).fetchone()
        if row is None:
            return None
        return PulseCount(row[0], row[1], int(row[2]), _dt(row[3]), _dt(row[4]))

    def all(self) -> dict[str, PulseCount]:
        with mapped(self.path, "reading the S0 counters"):
            rows = self._conn.execute("SELECT device_id, base, pulses, set_at, updated FROM s0_counters").fetchall()
        return {row[0].upper(): PulseCount(row[0], row[1], int(row[2]), _dt(row[3]), _dt(row[4])) for row in rows}

    def start(self, device_id: str, base: str, when: datetime) -> PulseCount:
        """The counter of ``device_id``, created from ``base`` with no pulses if it has none yet."""
        with write_transaction(self._conn, self.path, "starting an S0 counter"):
            self._conn.execute(
                "INSERT OR IGNORE INTO s0_counters (device_id, base, pulses, set_at, updated) VALUES (?, ?, 0, ?, ?)",
                (device_id, base, _us(when), _us(when)))
        found = self.get(device_id)
        assert found is not None
        return found

    def add(self, counts: Mapping[str, int], when: datetime) -> None:
        """Add pulses to started counters, all in one committed transaction."""
        if not counts:
            return
        with write_transaction(self._conn, self.path, "counting S0 pulses"):
            for device_id, n in counts.items():
                self._conn.execute("UPDATE s0_counters SET pulses = pulses + ?, updated = ? WHERE device_id = ?",
                                   (int(n), _us(when), device_id))

    def set_value(self, device_id: str, base: str, when: datetime) -> None:
        """A new set value: counting starts from it again (pulses 0), in one transaction."""
        with write_transaction(self._conn, self.path, "setting an S0 value"):
            self._conn.execute(
                "INSERT INTO s0_counters (device_id, base, pulses, set_at, updated) VALUES (?, ?, 0, ?, ?) "
                "ON CONFLICT(device_id) DO UPDATE SET base = excluded.base, pulses = 0, set_at = excluded.set_at, "
                "updated = excluded.updated",
                (device_id, base, _us(when), _us(when)))
