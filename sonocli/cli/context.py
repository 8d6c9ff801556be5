"""State shared by all commands: global flags and the root directory, resolved lazily."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sonocli.config.layout import default_root, resolve_root

__all__ = ["CliContext", "default_root"]


@dataclass
class CliContext:
    debug: bool = False
    verbosity: int = 0
    root_option: Path | None = None

    @property
    def root(self) -> Path:
        return resolve_root(self.root_option)
