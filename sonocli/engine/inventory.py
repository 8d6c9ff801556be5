"""Scan as inventory: what a scan found against what should be there, and scans that survive interruption.

A commissioning engineer's question is not only "which meters answer" but "which of mine do not, which
are new, which were swapped": ``scan --save`` compares the scan with the meter list as it was before
(meters of the list that did not answer are *missing*, meters not in it are *new*, a listed ID answering
with another version or medium is *changed*); ``scan --against FILE`` compares it with an installation
list instead (see :func:`load_installation` for its columns). Only meters the scan could have seen are
expected: those matching the secondary mask, or for a primary scan the meters listed with a primary
address in the range; a scan stopped by METER_MAXDEVICECOUNT or by a noisy bus cannot tell what is
missing and says so.

A secondary scan of a big segment takes an hour at 2400 baud; a pulled cable or a Ctrl-C should not cost
it. Every scan journals its steps (sonocli.engine.scan.Journal) to ``ext/scan_state.json`` under the root
as it goes, written atomically (a new file renamed over the old), and removes the file when it completes.
``scan --resume`` replays the journal without a byte on the wire and goes on live from where the
interrupted scan stopped. The state is keyed by port, scan mode and masks (or the primary range): resuming
with another one would mix two scans, and is refused. A resumed scan trusts what the interrupted one
learned: a meter connected or removed meanwhile in a part already searched is seen by the next full scan.

The summary (found, missing, new, changed, unresolved, probes, wire time) goes to one INFO log line, for
cron jobs that keep the log rather than the output.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sonocli import logs
from sonocli.errors import UsageError
from sonocli.model.valueclass import valueclass
from sonocli.model.values import AddressMode, Interface, Meter

if TYPE_CHECKING:
    from sonocli.engine.core import Engine
    from sonocli.engine.master import MasterSettings
    from sonocli.engine.scan import Journal, ScanResult
    from sonocli.engine.wired import ScanOutcome

log = logs.logger("sonocli.engine.inventory")

STATE_FILE = "scan_state.json"
STATE_VERSION = 1
SAVE_EVERY = 0.2  # seconds of wall time between two writes of the scan state (and always at the end)
COLUMNS = ("id", "manufacturer", "version", "medium")
HEX = "0123456789ABCDEF"


@valueclass(frozen=True)
class Expected:
    """A meter that should answer: an installation-list line or a meter-list entry. Unset fields (None)
    match anything. ``source``: where it comes from (``plant.csv:4``, or the listed Device-ID)."""

    id: str
    manufacturer: str | None = None
    version: int | None = None
    medium: int | None = None
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "manufacturer": self.manufacturer, "version": self.version, "medium": self.medium,
                "source": self.source}


@valueclass(frozen=True)
class Change:
    """A listed meter that answered with another version or medium (a swapped meter, new firmware)."""

    expected: Expected
    meter: Meter
    what: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"device_id": self.meter.device_id, "source": self.expected.source, "changes": list(self.what)}


@valueclass(frozen=True)
class Diff:
    missing: tuple[Expected, ...] = ()
    new: tuple[Meter, ...] = ()
    changed: tuple[Change, ...] = ()


@valueclass
class Inventory:
    """A scan (``outcome``, as Engine.scan returns it) and what it means for the inventory.

    ``reference``: what was compared with ("meter list", the installation list's path, or None: nothing);
    ``missing_known``: False when the scan stopped early and cannot tell which meters are missing;
    ``unreadable``: (Device-ID, why) of meters that answered their selection but not their first readout;
    ``resumed``: steps replayed from the saved state."""

    outcome: ScanOutcome
    reference: str | None
    diff: Diff
    missing_known: bool
    unreadable: tuple[tuple[str, str], ...]
    resumed: int
    state_file: Path

    @property
    def result(self) -> ScanResult:
        return self.outcome.result

    @property
    def partial(self) -> bool:
        """Exit 3: an unexplained collision, an expected meter that did not answer, or a failed readout."""
        return self.result.partial or bool(self.diff.missing) or bool(self.unreadable)

    def summary(self) -> dict[str, Any]:
        result = self.result
        return {
            "found": len(result.meters),
            "missing": len(self.diff.missing) if self.missing_known else None,
            "new": len(self.diff.new),
            "changed": len(self.diff.changed),
            "unresolved": len(result.collisions_unresolved),
            "unreadable": len(self.unreadable),
            "probes": result.probes,
            "resumed_probes": self.resumed,
            "wire_seconds": round(result.elapsed, 3),
        }

    def log_line(self) -> str:
        s = self.summary()
        missing = "missing unknown (scan stopped early)" if s["missing"] is None else f"{s['missing']} missing"
        against = f" against {self.reference}" if self.reference else ""
        resumed = f", {s['resumed_probes']} of them from the saved state" if s["resumed_probes"] else ""
        return (
            f"scan {self.outcome.mode} on {self.outcome.port}{against}: {s['found']} found, {missing}, "
            f"{s['new']} new, {s['changed']} changed, {s['unresolved']} unresolved, {s['unreadable']} unreadable, "
            f"{s['probes']} probes{resumed}, {s['wire_seconds']:.1f} s on the wire"
        )


# -- the installation list ----------------------------------------------------------------------------------
def load_installation(path: Path) -> list[Expected]:
    """Read an installation list: CSV, one meter a line, columns ``id[,manufacturer[,version[,medium]]]``.

    - ``id``: the 8-digit secondary ID (0-9, A-F: hex IDs exist);
    - ``manufacturer``: the three letters (KAM, EMH, ...);
    - ``version``, ``medium``: one byte each in hex, as the Device-ID and the secondary address spell them
      (``KAM-06855817-08-04``: version 08, medium 04).

    Trailing columns and empty fields mean "any". A header line naming the columns (``id,medium``: any of
    the four, in any order) is optional; ``;`` separates as well as ``,``; ``#`` starts a comment; blank
    lines are skipped. A bad line is a UsageError naming ``file:line`` and what is wrong (exit 2), so a
    typo never turns into a "missing" meter.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"installation list {path}: no such file") from None
    except UnicodeDecodeError:
        raise UsageError(f"installation list {path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise UsageError(f"installation list {path}: cannot read it ({exc.strerror})") from None
    columns: tuple[str, ...] = COLUMNS
    entries: list[Expected] = []
    lines: dict[tuple[str, str | None, int | None, int | None], int] = {}
    header_allowed = True
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path}:{number}"
        delimiter = ";" if ";" in line and "," not in line else ","
        fields = [item.strip() for item in next(csv.reader([line], delimiter=delimiter))]
        if header_allowed and fields[0].lower() in COLUMNS:
            columns = _header(fields, where)
            header_allowed = False
            continue
        header_allowed = False
        if len(fields) > len(columns):
            raise UsageError(
                f"{where}: {len(fields)} fields, but the list has {len(columns)} columns ({','.join(columns)})"
            )
        values = dict(zip(columns, fields, strict=False))
        entry = Expected(
            id=_id(values.get("id", ""), where),
            manufacturer=_manufacturer(values.get("manufacturer", ""), where),
            version=_byte(values.get("version", ""), "version", where),
            medium=_byte(values.get("medium", ""), "medium", where),
            source=where,
        )
        key = (entry.id, entry.manufacturer, entry.version, entry.medium)
        if key in lines:
            raise UsageError(f"{where}: meter {entry.id} is listed twice (first on line {lines[key]})")
        lines[key] = number
        entries.append(entry)
    if not entries:
        raise UsageError(f"installation list {path}: names no meter (one ID a line: id[,manufacturer,version,medium])")
    return entries


def _header(fields: list[str], where: str) -> tuple[str, ...]:
    names = tuple(name.lower() for name in fields)
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        raise UsageError(f"{where}: unknown column {unknown[0]!r} in the header; columns: {', '.join(COLUMNS)}")
    if "id" not in names:
        raise UsageError(f"{where}: the header has no 'id' column")
    if len(set(names)) != len(names):
        raise UsageError(f"{where}: a column is named twice in the header")
    return names


def _id(text: str, where: str) -> str:
    ident = text.upper()
    if len(ident) != 8 or any(ch not in HEX for ch in ident):
        raise UsageError(f"{where}: id {text!r} is not a secondary ID (8 digits 0-9 or A-F)")
    return ident


def _manufacturer(text: str, where: str) -> str | None:
    if not text:
        return None
    letters = text.upper()
    if len(letters) != 3 or not all("A" <= ch <= "Z" for ch in letters):
        raise UsageError(f"{where}: manufacturer {text!r} is not three letters A-Z")
    return letters


def _byte(text: str, name: str, where: str) -> int | None:
    if not text:
        return None
    digits = text.upper()
    digits = digits[2:] if digits.startswith("0X") else digits
    if not 1 <= len(digits) <= 2 or any(ch not in HEX for ch in digits):
        raise UsageError(f"{where}: {name} {text!r} is not a hex byte 00-FF (as in the Device-ID)")
    return int(digits, 16)


def expected_from_list(meters: Sequence[Meter]) -> list[Expected]:
    return [Expected(m.serial.upper(), m.manufacturer, m.version, m.medium, m.device_id) for m in meters]


# -- the comparison ---------------------------------------------------------------------------------------
def _fits(want: object, have: object) -> bool:
    return want is None or have is None or want == have


def compare(reference: Sequence[Expected], found: Sequence[Meter]) -> Diff:
    """Match expected meters with found ones: first exactly (unset fields match anything), then by ID and
    manufacturer alone (a *changed* meter: another version or medium); the rest are missing or new."""
    unused = list(found)
    left: list[Expected] = []
    for want in reference:
        meter = next((m for m in unused if m.serial.upper() == want.id and _fits(want.manufacturer, m.manufacturer)
                      and _fits(want.version, m.version) and _fits(want.medium, m.medium)), None)
        if meter is None:
            left.append(want)
        else:
            unused.remove(meter)
    missing: list[Expected] = []
    changed: list[Change] = []
    for want in left:
        meter = next((m for m in unused if m.serial.upper() == want.id
                      and _fits(want.manufacturer, m.manufacturer)), None)
        if meter is None:
            missing.append(want)
            continue
        unused.remove(meter)
        what = tuple(
            f"{name} {old:02X} -> {new:02X}"
            for name, old, new in (("version", want.version, meter.version), ("medium", want.medium, meter.medium))
            if old is not None and new is not None and old != new
        )
        changed.append(Change(want, meter, what))
    return Diff(tuple(missing), tuple(unused), tuple(changed))


def _in_mask(want: Expected, mask: str) -> bool:
    """Would a meter ``want`` answer the 16-nibble secondary ``mask`` (F = any; unset fields may)?"""
    if any(m not in ("F", c) for m, c in zip(mask[:8], want.id, strict=True)):
        return False
    fields = [(mask[8:12], None if want.manufacturer is None else _manufacturer_hex(want.manufacturer)),
              (mask[12:14], None if want.version is None else f"{want.version:02X}"),
              (mask[14:16], None if want.medium is None else f"{want.medium:02X}")]
    return all(have is None or all(m in ("F", c) for m, c in zip(part, have, strict=True)) for part, have in fields)


def _manufacturer_hex(letters: str) -> str:
    from sonocli.engine.master import manufacturer_code

    return f"{manufacturer_code(letters):04X}"


# -- the saved state --------------------------------------------------------------------------------------
def state_path(engine: Engine) -> Path:
    return engine.layout.ext / STATE_FILE


def _scan_key(port: str, mode: str, settings: MasterSettings) -> dict[str, Any]:
    """What must be equal for a scan to be resumed: port, mode and masks (primary: the address range)."""
    from sonocli.engine.master import check_mask

    if mode == "PRIMARYSCAN":
        return {"port": port, "mode": mode, "range": [settings.min_primary, settings.max_primary]}
    mask = (check_mask(settings.secmask_serial) + f"{settings.secmask_manufacturer:04X}"
            f"{settings.secmask_version:02X}{settings.secmask_medium:02X}")
    return {"port": port, "mode": mode, "mask": mask}


def _describe(key: dict[str, Any]) -> str:
    where = f"addresses {key['range'][0]}..{key['range'][1]}" if "range" in key else f"mask {key.get('mask')}"
    return f"{key.get('mode')} on {key.get('port')} ({where})"


def load_state(path: Path) -> dict[str, Any]:
    """The saved state of an interrupted scan; a UsageError when there is none (or it is unreadable)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no interrupted scan to resume ({path} does not exist)",
                         hint="run the scan without --resume; a scan that completes leaves no state") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"the saved scan state {path} is unreadable ({exc})",
                         hint="remove it and run the scan again without --resume") from None
    if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION or not isinstance(doc.get("steps"), list):
        raise UsageError(f"the saved scan state {path} is not one this sonocli wrote",
                         hint="remove it and run the scan again without --resume")
    return doc


class _StateWriter:
    """Writes the journal to the state file atomically, at most every SAVE_EVERY seconds, and at the end."""

    def __init__(self, path: Path, key: dict[str, Any], started: str) -> None:
        self.path = path
        self.key = key
        self.started = started
        self.last = 0.0
        self.failed = False
        self.journal: Journal | None = None

    def __call__(self, journal: Journal) -> None:
        self.journal = journal
        if time.monotonic() - self.last >= SAVE_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.journal is None:
            return
        doc = {"version": STATE_VERSION, **self.key, "started": self.started, "steps": self.journal.steps}
        temp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temp.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
            os.replace(temp, self.path)
        except OSError as exc:  # a read-only root costs the resume, never the scan
            if not self.failed:
                log.warning("cannot save the scan's progress in %s (%s): it cannot be resumed", self.path,
                            exc.strerror or exc)
            self.failed = True
        self.last = time.monotonic()


# -- the scan ---------------------------------------------------------------------------------------------
def scan(
    engine: Engine,
    *,
    url: str | None = None,
    mode: str | None = None,
    settings: MasterSettings | None = None,
    save: bool = False,
    against: Path | None = None,
    resume: bool = False,
    on_progress: Callable[[int, int | None, str], None] | None = None,
) -> Inventory:
    """A scan (as Engine.scan) that journals its steps for ``resume``, and compares what it found with the
    meter list (``save``) or an installation list (``against``, read first: a bad line costs no scan)."""
    from datetime import UTC, datetime

    from sonocli.engine import wired
    from sonocli.engine.master import SCAN_MODES
    from sonocli.engine.scan import Journal

    installation = load_installation(against) if against is not None else None
    s = settings if settings is not None else engine.master_settings()
    scan_mode = (mode or s.scan_mode).upper().replace("-", "").replace(" ", "")
    if scan_mode not in SCAN_MODES:
        raise UsageError(f"MBUS_SCANMODE {scan_mode!r} is not one of {', '.join(SCAN_MODES)}")
    port = engine.wired_port(url)
    key = _scan_key(port, scan_mode, s)
    path = state_path(engine)
    steps: list[list[Any]] = []
    started = datetime.now(UTC).isoformat(timespec="seconds")
    if resume:
        state = load_state(path)
        saved = {name: state.get(name) for name in key}
        if saved != key:
            raise UsageError(
                f"the saved scan is {_describe(state)}, not {_describe(key)}: it cannot be resumed so",
                hint="give the saved scan's --port, --mode and --mask, or run a new scan without --resume",
            )
        steps, started = state["steps"], str(state.get("started", started))
    elif path.exists():
        log.warning("an interrupted scan was saved in %s; this scan replaces it (--resume continues one)", path)
    writer = _StateWriter(path, key, started)
    journal = Journal(steps, on_step=writer)
    listed = [m for m in engine.meter_list().meters if m.interface is Interface.MBUS]
    try:
        outcome = wired.scan(engine, url=url, mode=scan_mode, settings=s, save=save, on_progress=on_progress,
                             journal=journal, on_scanned=lambda _result: writer.flush())
    except BaseException:
        writer.flush()  # interrupted (Ctrl-C, a dead port): what was learned stays for --resume
        raise
    path.unlink(missing_ok=True)
    (path.with_name(path.name + ".tmp")).unlink(missing_ok=True)
    result, unreadable = outcome.result, outcome.unreadable
    if installation is not None:
        reference: list[Expected] | None = installation
        name: str | None = str(against)
    elif save:
        reference, name = expected_from_list(listed), "meter list"
    else:
        reference, name = None, None
    diff = Diff()
    if reference is not None:
        diff = compare(_in_scope(reference, scan_mode, s, listed if installation is None else None), result.meters)
    missing_known = not (result.stopped_at_limit or any("search stopped" in text
                                                        for text in result.collisions_unresolved))
    if not missing_known:
        diff = Diff((), diff.new, diff.changed)
    inventory = Inventory(outcome, name, diff, missing_known, unreadable, journal.replayed, path)
    log.info("%s", inventory.log_line())
    return inventory


def _in_scope(
    reference: list[Expected], mode: str, settings: MasterSettings, listed: list[Meter] | None
) -> list[Expected]:
    """The expected meters this scan could have seen: for a secondary scan those matching its mask; for a
    primary scan the listed meters with a primary address in its range (an installation list names no
    primary addresses: all of it is expected)."""
    if mode != "PRIMARYSCAN":
        key = _scan_key("", mode, settings)
        return [want for want in reference if _in_mask(want, str(key["mask"]))]
    if listed is None:
        return reference
    lo, hi = settings.min_primary, settings.max_primary
    inside = {m.device_id for m in listed
              if (m.address_mode is AddressMode.PRIMARY or m.primary_address) and lo <= m.primary_address <= hi}
    return [want for want in reference if want.source in inside]
