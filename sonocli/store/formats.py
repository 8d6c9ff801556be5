"""Compact-frame formats learnt from full frames, kept in the database (table ``compact_formats``).

Why: a meter that sends compact frames (CI 0x79/0x7B/0x73) sends its full frame rarely; the format a
receiver learnt from it would otherwise be lost with every daemon restart, and every reading until the next
full frame with it. The receiver's :class:`~sonocli.codecs.wmbus.FormatCache` reports each new or changed
format (``on_learn``) and is filled from here when it starts; ``decode`` reads the same table, so a compact
frame pasted from a log decodes when the daemon has seen its meter's full frame.

A connection is opened per call: formats change rarely (once per meter type and format), and the receiver
thread, the daemon and a ``decode`` process each use the store from their own thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sonocli.store.db import connect, mapped

if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from sonocli.model.namedtuple import NamedTuple  # typing's syntax, not its cost (see there)


class StoredFormat(NamedTuple):
    manufacturer: int
    version: int
    device_type: int
    signature: int
    headers: bytes


class FormatStore:
    """The ``compact_formats`` table of the database at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def save(self, key: tuple[int, int, int, int], headers: bytes) -> None:
        """Insert or replace the format ``key`` = (M, version, device type, signature)."""
        with mapped(self.path, "store a compact-frame format"):
            conn = connect(self.path)
            try:
                conn.execute(
                    "INSERT OR REPLACE INTO compact_formats"
                    " (manufacturer, version, device_type, signature, headers, learnt_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (*key, bytes(headers), time.time_ns() // 1000),
                )
            finally:
                conn.close()

    def all(self) -> Iterator[StoredFormat]:
        """Every stored format (none when the database does not exist yet: nothing was learnt)."""
        if not self.path.exists():
            return
        with mapped(self.path, "read the compact-frame formats"):
            conn = connect(self.path)
            try:
                rows = conn.execute(
                    "SELECT manufacturer, version, device_type, signature, headers FROM compact_formats"
                ).fetchall()
            finally:
                conn.close()
        for row in rows:
            yield StoredFormat(int(row[0]), int(row[1]), int(row[2]), int(row[3]), bytes(row[4]))

    def __len__(self) -> int:
        return sum(1 for _ in self.all())
