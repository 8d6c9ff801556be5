"""The CSV log (MUC_CSVLOG_ENABLE): ``<log_dir>/<year>/<month>/Meter_<YYYYMMDD>.csv`` per UTC day.

Behaviour, and where it differs from the device on purpose:

* Rows go to the file of the reading's UTC day (guide section 5.2.2), in the protocol version's CSV format.
* A change that alters the columns (protocol version, or readings with more values than the file's header
  has room for) starts a new file for the day — ``Meter_<YYYYMMDD>_1.csv``, ``_2`` … — instead of deleting
  the day's data as the device does. Files without a header (versions 0–1) are told apart by a small state
  file (``.csvlog-state.json``); a file the state does not know is never appended to.
* REPORT_SIZELIMIT bounds one file: rows that would push a file past it go to the next file of the day (a
  single row larger than the limit gets a file of its own; rows are never split).
* When all log files together pass ``partition_limit`` bytes the oldest files are deleted first (guide: "if
  the log data partition is full, old log data gets deleted"); the newest file is always kept.
* Crash safety: each file is rewritten as a whole through temp + fsync + rename, so after a crash (even a
  power cut) a reader sees the file before or after the append — never a half row. The cost is copying the
  file per append, bounded by REPORT_SIZELIMIT (500 kB by default). Writers are serialised with ``flock``.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

from sonocli.fsutil import atomic_write_text
from sonocli.model.values import Reading
from sonocli.outputs.csv_writer import CsvWriter

STATE_FILE: Final = ".csvlog-state.json"
LOCK_FILE: Final = ".csvlog.lock"
_NAME_RE: Final = re.compile(r"^Meter_(\d{8})(?:_(\d+))?\.csv$")


def utc_day(moment: datetime) -> date:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).date()


def day_file(log_dir: Path, day: date, number: int) -> Path:
    suffix = f"_{number}" if number else ""
    return log_dir / f"{day:%Y}" / f"{day:%m}" / f"Meter_{day:%Y%m%d}{suffix}.csv"


def log_files(log_dir: Path) -> list[Path]:
    """All CSV log files below ``log_dir``, oldest first (by day, then by number)."""
    found: list[tuple[str, int, Path]] = []
    if not log_dir.is_dir():
        return []
    for path in log_dir.glob("[0-9][0-9][0-9][0-9]/[0-9][0-9]/Meter_*.csv"):
        match = _NAME_RE.match(path.name)
        if match and path.is_file():
            found.append((match.group(1), int(match.group(2) or 0), path))
    found.sort(key=lambda item: (item[0], item[1]))
    return [path for _day, _number, path in found]


class CsvLog:
    """Appends readings to the day files; one instance per writer process is enough (state is on disk)."""

    def __init__(
        self,
        log_dir: Path,
        protocol_version: int,
        *,
        size_limit: int,
        partition_limit: int,
        scale_values: bool = False,
        min_value_count: int = 0,
    ) -> None:
        if size_limit < 1:
            raise ValueError(f"REPORT_SIZELIMIT {size_limit} is below 1 byte")
        self.log_dir = Path(log_dir)
        self.protocol_version = protocol_version
        self.size_limit = size_limit
        self.partition_limit = partition_limit
        self.scale_values = scale_values
        self.min_value_count = min_value_count
        self._layout = ";".join(CsvWriter(protocol_version).columns(1))

    # --- public ------------------------------------------------------------------------------------------------

    def append(self, readings: Iterable[Reading]) -> None:
        """Append readings (one row each) to their days' files, then enforce the partition limit."""
        by_day: dict[date, list[Reading]] = {}
        for reading in readings:
            by_day.setdefault(utc_day(reading.taken_at), []).append(reading)
        if not by_day:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            state = self._load_state()
            for day in sorted(by_day):
                self._append_day(day, by_day[day], state)
            self._enforce_partition_limit(state)
            self._save_state(state)

    def files(self) -> list[Path]:
        return log_files(self.log_dir)

    # --- per day -----------------------------------------------------------------------------------------------

    def _append_day(self, day: date, readings: list[Reading], state: dict[str, Any]) -> None:
        width = max([self.min_value_count, *(len(r.values) for r in readings)])
        number, path = self._current_file(day)
        info = state["files"].get(self._key(path)) if path is not None else None
        usable = (
            path is not None
            and info is not None
            and info.get("layout") == self._layout
            and (self.protocol_version < 2 or int(info.get("width", -1)) >= width)
        )
        if not usable or path is None:
            number = number + 1 if path is not None else 0
            path = None
        pending = list(readings)
        while pending:
            if path is None:
                path = day_file(self.log_dir, day, number)
                existing = ""
                indices: dict[str, int] = {}
                header = CsvWriter(self.protocol_version).header(width)
                file_width = width
            else:
                existing = path.read_bytes().decode("utf-8")
                file_width = int(state["files"][self._key(path)].get("width", width))
                indices = self._indices(existing)
                header = ""
            writer = CsvWriter(self.protocol_version, scale_values=self.scale_values, meter_indices=indices)
            body = header
            size = len((existing + body).encode("utf-8"))
            rows_in_file = existing.count("\n") - (1 if existing and writer.has_header else 0)
            taken = 0
            for reading in pending:
                row = writer.row(reading)
                row_size = len(row.encode("utf-8"))
                if size + row_size > self.size_limit and (rows_in_file or taken):
                    break
                body += row
                size += row_size
                taken += 1
            if taken:
                key = self._key(path)
                if key not in state["files"]:
                    # Record a new file before creating it: a crash in between must not leave a file the state
                    # does not know (it would never be appended to again).
                    state["files"][key] = {"layout": self._layout, "width": file_width}
                    self._save_state(state)
                atomic_write_text(path, existing + body)
            pending = pending[taken:]
            if pending:
                number += 1
                path = None

    def _current_file(self, day: date) -> tuple[int, Path | None]:
        month = day_file(self.log_dir, day, 0).parent
        best: tuple[int, Path | None] = (0, None)
        if month.is_dir():
            prefix = f"Meter_{day:%Y%m%d}"
            for path in month.glob(f"{prefix}*.csv"):
                match = _NAME_RE.match(path.name)
                if match and match.group(1) == f"{day:%Y%m%d}":
                    number = int(match.group(2) or 0)
                    if best[1] is None or number > best[0]:
                        best = (number, path)
            for stale in month.glob(f".{prefix}*.tmp"):  # left by a crash inside atomic_write
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
        return best

    def _indices(self, text: str) -> dict[str, int]:
        """Device-ID → Index of the meters already in a file (version 6+ numbers meters per file)."""
        if self.protocol_version < 6 or not text:
            return {}
        indices: dict[str, int] = {}
        rows = csv.reader(io.StringIO(text, newline=""), delimiter=";")
        next(rows, None)  # header
        for row in rows:
            if len(row) > 2 and row[0].isdigit():
                indices.setdefault(row[2], int(row[0]))
        return indices

    # --- partition limit ---------------------------------------------------------------------------------------

    def _enforce_partition_limit(self, state: dict[str, Any]) -> None:
        files = log_files(self.log_dir)
        sizes = {path: path.stat().st_size for path in files}
        total = sum(sizes.values())
        for path in files[:-1]:
            if total <= self.partition_limit:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            total -= sizes[path]
            state["files"].pop(self._key(path), None)
            for directory in (path.parent, path.parent.parent):
                with contextlib.suppress(OSError):
                    directory.rmdir()  # only when empty

    # --- state and lock ----------------------------------------------------------------------------------------

    def _key(self, path: Path) -> str:
        return path.relative_to(self.log_dir).as_posix()

    def _load_state(self) -> dict[str, Any]:
        try:
            data = json.loads((self.log_dir / STATE_FILE).read_text("utf-8"))
        except (FileNotFoundError, ValueError):
            return {"files": {}}
        if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
            return {"files": {}}
        # forget files deleted meanwhile (e.g. by a user over FTP)
        data["files"] = {key: info for key, info in data["files"].items() if (self.log_dir / key).is_file()}
        return data

    def _save_state(self, state: dict[str, Any]) -> None:
        atomic_write_text(self.log_dir / STATE_FILE, json.dumps(state, sort_keys=True, indent=1))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.log_dir / LOCK_FILE, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
