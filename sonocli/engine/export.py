"""What ``sonocli export csv|xml`` does: a selection of stored readings, as every output delivers them,
through the CSV or XML writer to a stream or atomically to a file.

"What the meter list says is exactly what every output delivers" (DESIGN.md): an export carries the same
readings a report carries — those of active meters, with their active values only (``Engine.configured``,
sonocli.engine.values.deliverable), as each reading's meter was configured when it was stored. An inactive
meter is not exported, a deactivated value is not a column.

Readings stream from the store one chunk at a time, so a year of readings for hundreds of meters needs no
more memory than a day's. The CSV header must name as many value groups as the widest row, so a CSV export
walks the selection twice: once to measure the configured readings, once to write them.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sonocli.errors import NotFoundError
from sonocli.model.valueclass import valueclass

if TYPE_CHECKING:
    from sonocli.engine.core import Engine
    from sonocli.model.values import Reading

Progress = Callable[[int, int | None], None]

# the guide's defaults when a root has no chip.ini (Table 25: MUC_PROTOCOL_VER 3, MUC_SCALEVALUES off)
DEFAULT_VERSION = 3
DEFAULT_SCALE = False


@valueclass(frozen=True)
class Selection:
    """Which stored readings: ``since <= taken_at <= until`` (inclusive, None: open) of one meter (serial
    number or Device-ID) or all."""

    since: datetime | None = None
    until: datetime | None = None
    meter: str | None = None

    def query(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "meter": self.meter}


def export_defaults(engine: Engine) -> tuple[int, bool]:
    """(MUC_PROTOCOL_VER, MUC_SCALEVALUES) of the root's chip.ini; the guide's defaults without one."""
    if not engine.layout.chip_ini.is_file():
        return DEFAULT_VERSION, DEFAULT_SCALE
    return int(str(engine.get("MUC_PROTOCOL_VER"))), bool(engine.get("MUC_SCALEVALUES"))


class Export:
    """One export of one root's stored readings; :meth:`write` or :meth:`write_file` runs it.

    Built first so a command can check everything (format, database, meter) and learn :attr:`total` for a
    progress bar before any byte is written.
    """

    def __init__(
        self,
        engine: Engine,
        fmt: str,
        selection: Selection = Selection(),
        *,
        protocol_version: int | None = None,
        scale_values: bool | None = None,
        muc_id: int | None = None,
        obis_style: str = "figure22",
    ) -> None:
        from sonocli.registry import EXPORTERS, load

        self.engine = engine
        self.fmt = fmt.lower()
        self._writer_class = load(EXPORTERS, fmt, "export format")
        default_version, default_scale = export_defaults(engine)
        self.protocol_version = default_version if protocol_version is None else protocol_version
        self.scale_values = default_scale if scale_values is None else scale_values
        self.selection = selection
        self.obis_style = obis_style
        self._muc_id = muc_id
        database = engine.layout.database
        if not database.is_file():
            raise NotFoundError(f"no readings stored: {database} does not exist", hint="check --root")
        if selection.meter is not None and not engine.store.meter_known(selection.meter):
            raise NotFoundError(f"--meter {selection.meter}: no readings of this meter are stored")

    @cached_property
    def total(self) -> int:
        """Stored readings in the selection (what progress counts; those of inactive meters are skipped)."""
        return int(self.engine.store.count(**self.selection.query()))

    @property
    def muc_id(self) -> int:
        """The XML MUC_ID: the one given, else this machine's (``service info``)."""
        return self.engine.muc_id if self._muc_id is None else self._muc_id

    def _stored(self, order: str, on_progress: Progress | None) -> Iterator[Reading]:
        readings: Iterable[Reading] = self.engine.store.iter_readings(**self.selection.query(), order=order)
        if on_progress is not None:
            readings = _counted(readings, on_progress, self.total)
        return self.engine.iter_configured(readings)

    def value_count(self) -> int:
        """The widest configured reading of the selection: the CSV header's number of value groups."""
        return max((len(r.values) for r in self.engine.iter_configured(
            self.engine.store.iter_readings(**self.selection.query()))), default=0)

    def write(self, handle: IO[bytes], on_progress: Progress | None = None) -> int:
        """Write the export to ``handle``; returns the readings written (configured ones only)."""
        if self.fmt == "csv":
            writer = self._writer_class(
                self.protocol_version,
                scale_values=self.scale_values,
                value_count=self.value_count(),
                obis_style=self.obis_style,
            )
            text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=False)
            try:
                count = int(writer.write(self._stored("time", on_progress), text))
                text.flush()
            finally:
                text.detach()
        else:
            writer = self._writer_class(self.protocol_version, muc_id=self.muc_id, scale_values=self.scale_values)
            count = int(writer.write(self._stored("meter", on_progress), handle, timestamp=datetime.now(UTC)))
        handle.flush()
        return count

    def write_file(self, path: Path, on_progress: Progress | None = None) -> int:
        """Write the export to ``path`` atomically (temp file, fsync, rename): a reader never sees half of it,
        and a failed export leaves an older file as it was. A missing directory is NotFoundError."""
        with atomic_output(path) as handle:
            return self.write(handle, on_progress)


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[IO[bytes]]:
    """A binary file that appears at ``path`` only complete (sonocli.fsutil.atomic_open)."""
    from sonocli.fsutil import atomic_open

    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise NotFoundError(f"-o {path}: directory {directory} does not exist")
    with atomic_open(path) as handle:
        yield handle


def _counted(readings: Iterable[Reading], sink: Progress, total: int) -> Iterator[Reading]:
    done = 0
    for reading in readings:
        yield reading
        done += 1
        if done % 1000 == 0:
            sink(done, total)
    sink(done, total)
