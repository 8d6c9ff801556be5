"""State shared by all commands: global flags and the root directory, resolved lazily.

A plain class rather than a dataclass: ``dataclasses`` pulls in ``inspect`` and ``re`` (~4 ms), and this
module is on the path of every ``sonocli --help``.
"""

from __future__ import annotations

from pathlib import Path


class CliContext:
    __slots__ = ("debug", "root_option", "verbosity")

    def __init__(self, debug: bool = False, verbosity: int = 0, root_option: Path | None = None) -> None:
        self.debug = debug
        self.verbosity = verbosity
        self.root_option = root_option

    def __repr__(self) -> str:
        return f"CliContext(debug={self.debug!r}, verbosity={self.verbosity!r}, root_option={self.root_option!r})"

    @property
    def root(self) -> Path:
        from sonocli.engine.configuration import resolve_root

        return resolve_root(self.root_option)
