"""State shared by all commands: global flags and the root directory, resolved lazily.

A plain class rather than a dataclass: ``dataclasses`` pulls in ``inspect`` and ``re`` (~4 ms), and this
module is on the path of every ``sonocli --help``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


class CliContext:
    """``root_may_be_missing`` is for ``init``, the one command that creates a root: every other command
    refuses a ``--root``/SONOCLI_ROOT that does not exist (exit 2) instead of showing an empty one."""

    __slots__ = ("_root_option", "debug", "root_may_be_missing", "verbosity")

    def __init__(self, debug: bool = False, verbosity: int = 0, root_option: str | Path | None = None,
                 root_may_be_missing: bool = False) -> None:
        self.debug = debug
        self.verbosity = verbosity
        self._root_option = root_option
        self.root_may_be_missing = root_may_be_missing

    @property
    def root_option(self) -> Path | None:
        """``--root`` as given (click hands over a str: pathlib is imported when a command uses the root,
        which `decode` of a wired frame never does)."""
        if self._root_option is None:
            return None
        from pathlib import Path

        return Path(self._root_option)

    def __repr__(self) -> str:
        return f"CliContext(debug={self.debug!r}, verbosity={self.verbosity!r}, root_option={self.root_option!r})"

    @property
    def root(self) -> Path:
        import os

        from sonocli.engine.configuration import resolve_root

        root = resolve_root(self.root_option)
        chosen = self.root_option is not None or bool(os.environ.get("SONOCLI_ROOT"))
        if chosen and not self.root_may_be_missing and not root.is_dir():
            from sonocli.errors import UsageError

            what = "is not a directory" if root.exists() else "does not exist"
            raise UsageError(f"root directory {root} {what}; not a sonocli root",
                             hint=f"check --root/SONOCLI_ROOT, or create it with 'sonocli init' "
                             f"(sonocli --root {root} init)")
        return root
