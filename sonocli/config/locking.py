"""An advisory lock around read-modify-write of a configuration file.

Atomic saves stop torn files, but two writers that both load, change and save would lose one change
(e.g. ``sonocli meters add`` while the daemon merges scan results). Writers hold this lock from load to
save; readers need none, since every save is an atomic rename.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``.NAME.lock`` next to ``path`` (flock; a no-op where there is no fcntl)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
