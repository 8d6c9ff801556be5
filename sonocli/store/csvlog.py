"""The CSV log (MUC_CSVLOG_ENABLE): ``<log_dir>/<year>/<month>/Meter_<YYYYMMDD>.csv`` per UTC day.

Behaviour, and where it differs from the device on purpose:

* Rows go to the file of the reading's UTC day (guide section 5.2.2), in the protocol version's CSV format.
* A change that alters the columns (protocol version, or readings with more values than the file's header
  has room for) starts a new file for the day — ``Meter_<YYYYMMDD>_1.csv``, ``_2`` … — instead of deleting
  the day's data as the device does. Files without a header (versions 0–1) are told apart by a small state
  file (``.csvlog-state.json``); a file the state does not know is never appended to.
* REPORT_SIZELIMIT bounds one file: rows that would push a file past it go to the next file of the day (a
  single row larger than the limit gets a file of its own; rows are never split).
* When all log files together pass ``partition_limit`` bytes (CSVLOG_MAXSIZE) the oldest files are deleted
  first (guide: "if the log data partition is full, old log data gets deleted"), with a warning counting
  the files and bytes dropped; the newest file is always kept.
* Complete after any crash (issue 13): :meth:`CsvLog.catch_up` writes what the database holds and the log
  does not. The state file keeps the id of the last reading logged (``logged``) and, written before each
  append, an intent: the readings it is about to append (ids ``after``..``upto``) and where each day's rows
  will start (file and size). A crash before, during or after the append is resolved the next time by
  counting the complete rows past those positions: exactly the readings not yet there are appended — none
  lost, none twice. That costs one small state write per append (the intent also carries the previous
  append's ``logged``).
* Errors: a full disk or a read-only log directory raises :class:`CsvLogError` (a SonoError with a hint),
  never a bare OSError.
* Crash safety without copying: rows are appended in place with one ``O_APPEND`` write per batch, then
  fsync (and a directory fsync when the file is new), so an append costs O(rows appended), not O(file). A
  crash (SIGKILL, power cut) can leave a torn last line; the next writer truncates it to the end of the last
  complete row before anything else is written: the first append of a :class:`CsvLog` instance checks the
  log (any day's file, not only the one it appends to) and :meth:`CsvLog.repair` does so explicitly. So a
  repaired file never shows a half row and later rows never glue onto a torn one; between the crash and the
  next writer a reader can see the torn line (unlike the old rewrite-per-append, which cost O(file) each
  time). "Complete row" honours RFC 4180 quoting: a line break inside a quoted field is not a row end. The
  first open of a file scans it once (that scan also rebuilds the version-6+ meter indices); later appends
  of the same instance only read what other writers added meanwhile. Writers are serialised with
  ``flock``; the small state file is still written through temp + fsync + rename, and only when it changes.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import functools
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final, TypeVar, cast

from sonocli import logs
from sonocli.errors import SonoError
from sonocli.fsutil import atomic_write_text, fsync_directory
from sonocli.model.valueclass import field, valueclass
from sonocli.model.values import Reading
from sonocli.outputs.csv_writer import CsvWriter
from sonocli.store.db import free_space

log = logs.logger("sonocli.store")
F = TypeVar("F", bound=Callable[..., Any])
CATCH_UP_CHUNK: Final = 2000  # readings appended per intent when the log catches up on a long gap


class CsvLogError(SonoError):
    """The CSV log cannot be written: a full disk, a read-only log directory (exit 1).

    ``reason``: "full", "read-only" or "io" (see sonocli.store.db.classify)."""

    def __init__(self, message: str, *, hint: str | None = None, reason: str = "io") -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


def _os_errors(method: F) -> F:
    """Method decorator: an OSError while writing the log leaves as a CsvLogError with a hint."""

    @functools.wraps(method)
    def inner(self: CsvLog, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except OSError as exc:
            where = self.log_dir
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise CsvLogError(f"CSV log {where}: cannot write: disk full ({free_space(where)})",
                                  hint=f"free space on the disk holding {where}, or lower CSVLOG_MAXSIZE",
                                  reason="full") from exc
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise CsvLogError(f"CSV log {where}: cannot write: {exc.strerror or exc} (read-only)",
                                  hint=f"{where} is read-only (a read-only mount, or owned by another user); "
                                       "remount it read-write or run as the owner", reason="read-only") from exc
            raise CsvLogError(f"CSV log {where}: cannot write: {exc.strerror or exc}",
                              hint=f"check the disk holding {where} ({free_space(where)}; dmesg)") from exc

    return cast(F, inner)

STATE_FILE: Final = ".csvlog-state.json"
LOCK_FILE: Final = ".csvlog.lock"
_NAME_RE: Final = re.compile(r"^Meter_(\d{8})(?:_(\d+))?\.csv$")
_CHUNK: Final = 1 << 16


@valueclass
class _FileView:
    """What this writer knows of one log file: it ends, at ``size`` bytes, after a complete row."""

    inode: int
    size: int
    indices: dict[str, int] = field(default_factory=dict)


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
        self._views: dict[str, _FileView] = {}
        self._recovered = False
        self.dropped_files = 0  # deleted by the partition limit, over this instance's life
        self.dropped_bytes = 0

    # --- public ------------------------------------------------------------------------------------------------

    @_os_errors
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
            before = json.dumps(state, sort_keys=True)
            if not self._recovered:
                self._repair_files(state, thorough=False)
            for day in sorted(by_day):
                self._append_day(day, by_day[day], state)
            self._enforce_partition_limit(state)
            if json.dumps(state, sort_keys=True) != before:
                self._save_state(state)

    @_os_errors
    def catch_up(
        self,
        stored: Callable[[int, int], Iterable[tuple[int, Reading | None]]],
        latest: int,
        *,
        start: int | None = None,
    ) -> int:
        """Append what the database holds and the log does not; returns the rows appended.

        ``stored(after, upto)`` yields (id, reading as logged or None: not logged, e.g. an inactive meter) of
        the stored readings ``after < id <= upto`` in id order. ``latest`` is the newest stored id. A log
        that never recorded where it is starts after ``start`` (the newest id before the readings being
        stored now; None: after ``latest``, i.e. nothing old is copied into a log just switched on)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        appended = 0
        with self._locked():
            state = self._load_state()
            if not self._recovered:
                self._repair_files(state, thorough=False)
            logged = state.get("logged")
            if not isinstance(logged, int):
                logged = latest if start is None else start
                state["logged"] = logged
            intent = state.get("intent")
            if isinstance(intent, dict) and int(intent.get("after", -1)) == logged:
                # the last append's intent: which of its readings reached the log (all, after a clean append)
                upto_intent = int(intent.get("upto", logged))
                present = self._rows_present(intent)
                missing: list[tuple[int, Reading]] = []
                already: dict[str, int] = {}
                for reading_id, reading in stored(logged, upto_intent):
                    if reading is None:
                        continue
                    key = f"{utc_day(reading.taken_at):%Y%m%d}"
                    if present.get(key, 0) > 0:
                        present[key] -= 1
                        already[key] = already.get(key, 0) + 1
                    else:
                        missing.append((reading_id, reading))
                if missing:  # a crash cut that append short: write the rest, counting what is there
                    appended += self._append_logged(state, missing, upto_intent, already=already)
                logged = upto_intent
                state["logged"] = logged
                state.pop("intent", None)
            elif intent is not None:
                state.pop("intent", None)
            chunk: list[tuple[int, Reading]] = []
            upto = logged
            for reading_id, reading in stored(logged, latest) if latest > logged else ():
                upto = reading_id
                if reading is None:
                    continue
                chunk.append((reading_id, reading))
                if len(chunk) >= CATCH_UP_CHUNK:
                    appended += self._append_logged(state, chunk, upto)
                    chunk = []
            upto = max(upto, latest, logged)
            if chunk:
                appended += self._append_logged(state, chunk, upto)
            else:
                state["logged"] = upto
                state.pop("intent", None)
                self._save_if_changed(state)
        return appended

    def _save_if_changed(self, state: dict[str, Any]) -> None:
        if json.dumps(state, sort_keys=True) != json.dumps(self._load_state(), sort_keys=True):
            self._save_state(state)

    def _append_logged(self, state: dict[str, Any], chunk: list[tuple[int, Reading]], upto: int, *,
                       already: dict[str, int] | None = None) -> int:
        """Write the intent (what is appended where), append, and note the new high-water id in memory (the
        next intent or a final save carries it to disk).

        The intent says: of the readings ``after < id <= upto`` of each day, ``skip`` are in the log before the
        day's position (``already``: re-appending the rest of a cut-short append) and the others follow it,
        in id order."""
        by_day: dict[date, list[Reading]] = {}
        for _reading_id, reading in chunk:
            by_day.setdefault(utc_day(reading.taken_at), []).append(reading)
        known = dict(already or {})
        wanted = set(by_day) | {datetime.strptime(text, "%Y%m%d").date() for text in known}
        days: dict[str, list[Any]] = {}
        for day in wanted:
            _number, path = self._current_file(day)
            skip = known.get(f"{day:%Y%m%d}", 0)
            if path is None:
                days[f"{day:%Y%m%d}"] = [None, 0, skip]
            else:
                info = state["files"].get(self._key(path), {})
                header = b""
                if info.get("layout") == self._layout:
                    header = CsvWriter(self.protocol_version).header(int(info.get("width", 0))).encode("utf-8")
                days[f"{day:%Y%m%d}"] = [self._key(path), self._open_file(path, header)[0], skip]
        state["intent"] = {"after": int(state["logged"]), "upto": upto, "days": days}
        self._save_state(state)
        for day in sorted(by_day):
            self._append_day(day, by_day[day], state)
        self._enforce_partition_limit(state)
        # The append is complete. It is not written down now (a second state write per append): the next
        # intent carries it, and until then the intent on disk resolves to "all rows present".
        state["logged"] = upto
        state.pop("intent", None)
        return len(chunk)

    def _rows_present(self, intent: dict[str, Any]) -> dict[str, int]:
        """Per day (YYYYMMDD): the complete rows written past the intent's positions (a crash's leftovers)."""
        out: dict[str, int] = {}
        days = intent.get("days")
        if not isinstance(days, dict):
            return out
        for day_text, where in days.items():
            key, size, skip = [*where, None, 0, 0][:3] if isinstance(where, list) else (None, 0, 0)
            try:
                day = datetime.strptime(day_text, "%Y%m%d").date()
            except ValueError:
                continue
            month = day_file(self.log_dir, day, 0).parent
            count = 0
            for path in sorted(month.glob(f"Meter_{day_text}*.csv"), key=_number_of) if month.is_dir() else []:
                if key is not None and _number_of(path) < _number_of(self.log_dir / str(key)):
                    continue
                start = int(size) if key is not None and self._key(path) == key else 0
                count += _count_rows(path, start, header=start == 0 and self.protocol_version >= 2)
            out[day_text] = count + int(skip or 0)
        return out

    @_os_errors
    def repair(self) -> list[Path]:
        """Cut torn last lines (left by a crash mid-append) off every log file; returns the files cut."""
        if not self.log_dir.is_dir():
            return []
        with self._locked():
            return self._repair_files(self._load_state(), thorough=True)

    def files(self) -> list[Path]:
        return log_files(self.log_dir)

    def _repair_files(self, state: dict[str, Any], *, thorough: bool) -> list[Path]:
        """Cut torn tails; ``thorough`` scans every file, else only the newest (the one a crash can have hit
        mid-write: writers are serialised and write older days first) and those not ending in a line break."""
        self._recovered = True
        files = log_files(self.log_dir)
        newest = max(files, key=_mtime, default=None)
        cut: list[Path] = []
        for path in files:
            if not (thorough or path == newest or not _ends_with_newline(path)):
                continue
            info = state["files"].get(self._key(path), {})
            header = b""
            if info.get("layout") == self._layout:
                header = CsvWriter(self.protocol_version).header(int(info.get("width", 0))).encode("utf-8")
            with contextlib.suppress(FileNotFoundError):
                if self._open_file(path, header)[1]:
                    cut.append(path)
        return cut

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
                file_width = width
                header = CsvWriter(self.protocol_version).header(file_width).encode("utf-8")
                size = 0
                indices: dict[str, int] = {}
            else:
                file_width = int(state["files"][self._key(path)].get("width", width))
                header = CsvWriter(self.protocol_version).header(file_width).encode("utf-8")
                size = self._open_file(path, header)[0]
                indices = dict(self._views[self._key(path)].indices)
            writer = CsvWriter(self.protocol_version, scale_values=self.scale_values, meter_indices=indices)
            chunks: list[bytes] = [header] if size == 0 else []
            total = size + (len(header) if size == 0 else 0)
            has_rows = size > len(header)
            taken = 0
            for reading in pending:
                known = len(indices)
                row = writer.row(reading).encode("utf-8")
                if total + len(row) > self.size_limit and (has_rows or taken):
                    if len(indices) > known:  # the row goes to the next file: so does its meter's Index
                        indices.pop(reading.meter.device_id, None)
                    break
                chunks.append(row)
                total += len(row)
                taken += 1
            if taken:
                key = self._key(path)
                if key not in state["files"]:
                    # Record a new file before creating it: a crash in between must not leave a file the state
                    # does not know (it would never be appended to again).
                    state["files"][key] = {"layout": self._layout, "width": file_width}
                    self._save_state(state)
                inode = self._append_bytes(path, b"".join(chunks))
                self._views[key] = _FileView(inode, total, indices)
            pending = pending[taken:]
            if pending:
                number += 1
                path = None

    def _open_file(self, path: Path, header: bytes) -> tuple[int, bool]:
        """Make ``path`` end after a complete row (cutting a torn tail) and know its meter indices.

        Returns the file's size afterwards and whether a tail was cut. Only what was added since this instance
        last saw the file is read. A file whose header itself is torn is emptied (the caller writes it again)."""
        key = self._key(path)
        stat = path.stat()
        view = self._views.get(key)
        if view is not None and view.inode == stat.st_ino and view.size == stat.st_size:
            return view.size, False
        if view is not None and view.inode == stat.st_ino and stat.st_size > view.size:
            start, indices = view.size, dict(view.indices)
        else:
            start, indices = 0, {}
        end = self._scan(path, start, indices)
        if self.protocol_version >= 2 and 0 < end < len(header):
            end = 0  # only part of the header survived (cannot happen with one write per batch, but be sure)
        if end < stat.st_size:
            with open(path, "r+b") as handle:
                handle.truncate(end)
                handle.flush()
                os.fsync(handle.fileno())
            if end == 0:
                indices = {}
        self._views[key] = _FileView(stat.st_ino, end, indices)
        return end, end < stat.st_size

    def _scan(self, path: Path, start: int, indices: dict[str, int]) -> int:
        """The offset just after the last complete row at or after ``start`` (itself a row end).

        A line break ends a row only outside quotes, i.e. after an even number of ``"`` since the row began
        (RFC 4180 doubles quotes inside fields). Version 6+: notes each row's Device-ID → Index on the way."""
        want_indices = self.protocol_version >= 6
        skip_header = start == 0 and self.protocol_version >= 2
        end = position = start  # position: where ``carry`` begins
        parity = 0
        row_parts: list[bytes] = []
        carry = b""
        with open(path, "rb") as handle:
            handle.seek(start)
            while chunk := handle.read(_CHUNK):
                pieces = (carry + chunk).split(b"\n")
                carry = pieces.pop()
                for piece in pieces:
                    parity ^= piece.count(b'"') & 1
                    position += len(piece) + 1
                    if want_indices:
                        row_parts.append(piece)
                    if parity:
                        continue
                    end = position
                    if skip_header:
                        skip_header = False
                    elif want_indices:
                        _note_index(b"\n".join(row_parts), indices)
                    row_parts = []
        return end

    def _append_bytes(self, path: Path, data: bytes) -> int:
        """One O_APPEND write of whole rows, then fsync; returns the file's inode."""
        created = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
            inode = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        if created:
            fsync_directory(path.parent)
        return inode

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

    # --- partition limit ---------------------------------------------------------------------------------------

    def _enforce_partition_limit(self, state: dict[str, Any]) -> None:
        files = log_files(self.log_dir)
        sizes = {path: path.stat().st_size for path in files}
        total = sum(sizes.values())
        dropped = dropped_bytes = 0
        for path in files[:-1]:
            if total <= self.partition_limit:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            total -= sizes[path]
            dropped += 1
            dropped_bytes += sizes[path]
            state["files"].pop(self._key(path), None)
            self._views.pop(self._key(path), None)
            for directory in (path.parent, path.parent.parent):
                with contextlib.suppress(OSError):
                    directory.rmdir()  # only when empty
        if dropped:
            self.dropped_files += dropped
            self.dropped_bytes += dropped_bytes
            log.warning("CSV log over its limit (CSVLOG_MAXSIZE %d KiB): deleted the %d oldest file(s), %d "
                        "bytes; %d bytes kept", self.partition_limit // 1024, dropped, dropped_bytes, total)

    def use(self) -> tuple[int, int]:
        """(files, bytes) the CSV log takes now, against ``partition_limit``."""
        files = log_files(self.log_dir)
        return len(files), sum(_size(path) for path in files)

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


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _number_of(path: Path) -> int:
    match = _NAME_RE.match(path.name)
    return int(match.group(2) or 0) if match else -1


def _count_rows(path: Path, start: int, *, header: bool) -> int:
    """Complete rows (RFC 4180: a line break inside quotes does not end one) from ``start`` on; the first
    row is not counted when ``header``."""
    count = 0
    parity = 0
    carry = b""
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            while chunk := handle.read(_CHUNK):
                pieces = (carry + chunk).split(b"\n")
                carry = pieces.pop()
                for piece in pieces:
                    parity ^= piece.count(b'"') & 1
                    if not parity:
                        count += 1
    except FileNotFoundError:
        return 0
    return max(0, count - 1) if header else count


def _note_index(row: bytes, indices: dict[str, int]) -> None:
    text = row.decode("utf-8", "replace").rstrip("\r")
    fields = next(csv.reader([text], delimiter=";")) if '"' in text else text.split(";")
    if len(fields) > 2 and fields[0].isdigit():
        indices.setdefault(fields[2], int(fields[0]))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _ends_with_newline(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            if handle.seek(0, os.SEEK_END) == 0:
                return True
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"
    except FileNotFoundError:
        return True
