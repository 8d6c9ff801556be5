"""Put what a command read into the readings store, as the daemon would (issue: every readout and every
received telegram becomes rows). Shared by ``readout`` and ``listen``; ``--no-store`` skips it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


class ReadingRecorder:
    """Opens the root's store on first use; records readings (and the CSV log when MUC_CSVLOG_ENABLE)."""

    def __init__(self, root: Path, enabled: bool = True) -> None:
        self.root = root
        self.enabled = enabled
        self.count = 0
        self._engine: Any = None

    def record(self, readings: Sequence[Any]) -> None:
        if not self.enabled or not readings:
            return
        if self._engine is None:
            from sonocli.config.layout import init_root
            from sonocli.engine.core import Engine

            init_root(self.root)
            self._engine = Engine(self.root)
        self._engine.record(list(readings))
        self.count += len(readings)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def __enter__(self) -> ReadingRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
