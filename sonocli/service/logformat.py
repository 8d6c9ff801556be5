"""format-log (guide Table 24 ``format-partition-ext``): empty ext/ without reformatting a partition.

What goes: everything below ``ext/`` (the readings database, CSV logs in ext/log/, ext/tmp/, the outbox)
except ``ext/Upd/``, which holds an uploaded update image the user may still want to install; pass
``include_updates`` to clear it too. The daemon writes to ext/, so formatting refuses while it runs.
The standard directories (log/, tmp/, Upd/) are recreated empty. Symbolic links are removed, never
followed, so a link pointing elsewhere cannot make this delete outside ext/.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sonocli.config.layout import RootLayout
from sonocli.errors import SonoError, UsageError
from sonocli.model.valueclass import valueclass


@valueclass(frozen=True)
class FormatResult:
    removed_entries: int
    freed_bytes: int
    kept: tuple[str, ...]


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(dirpath) / name).lstat().st_size
            except OSError:
                pass
    return total


def plan(layout: RootLayout, *, include_updates: bool = False) -> list[Path]:
    """The top-level entries of ext/ that formatting would remove (for the confirmation prompt)."""
    ext = layout.ext
    if ext.is_symlink():
        raise UsageError(f"{ext} is a symbolic link; refusing to format through it")
    if not ext.is_dir():
        raise UsageError(f"{ext} does not exist; nothing to format (is --root right?)")
    keep = set() if include_updates else {layout.upd_dir.name}
    return sorted(p for p in ext.iterdir() if p.name not in keep)


def format_ext(layout: RootLayout, *, include_updates: bool = False) -> FormatResult:
    from sonocli.service.daemonctl import running_pid

    pid = running_pid(layout)
    if pid is not None:
        raise SonoError(
            f"the daemon (pid {pid}) is running and writes to {layout.ext}",
            hint="stop it first: sonocli service stop-daemon",
        )
    entries = plan(layout, include_updates=include_updates)
    freed = 0
    for entry in entries:
        freed += _size(entry)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for directory in (layout.log_dir, layout.tmp_dir, layout.upd_dir):
        directory.mkdir(parents=True, exist_ok=True)
    kept = () if include_updates else (str(layout.upd_dir),)
    return FormatResult(len(entries), freed, kept)
