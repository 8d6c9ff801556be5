"""State shared by all commands: global flags and the root directory, resolved lazily."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_root() -> Path:
    """The device's layout is rooted at ``/`` on the concentrator; elsewhere a per-user directory.

    On a concentrator (``/app/chip.ini`` exists) the root is ``/``; otherwise ``$XDG_DATA_HOME/sonocli``
    (``~/.local/share/sonocli``).
    """
    if Path("/app/chip.ini").is_file():
        return Path("/")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sonocli"


@dataclass
class CliContext:
    debug: bool = False
    verbosity: int = 0
    root_option: Path | None = None

    @property
    def root(self) -> Path:
        return self.root_option if self.root_option is not None else default_root()
