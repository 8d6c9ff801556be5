"""What ``sonocli readings`` asks of the store: stored readings by meter, value and time range.

The history view the device's web interface offers (its chart of a value), for the terminal and for
scripts. It reads the store through :meth:`sonocli.store.readings.ReadingStore.iter_readings` (streamed:
a year of readings needs no more memory than a day's) and shows the readings *as they were stored*, with
the meter configuration each one was stored under, so a value's history survives a later edit of the list.

A value is chosen by its number in the meter list (``3``: the third value entry, as ``meters show`` numbers
them; the record's JSON ``index`` is that number less one) or by a label: the value entry's user label or
its description, or the record's description (case-insensitive), so ``--value Volume`` works across meters.

Times are ISO 8601 (a bare date is midnight UTC, or the end of that day for ``until``; no offset means UTC)
or relative to now: ``30m``, ``12h``, ``7d``, ``2w``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from sonocli.errors import NotFoundError, UsageError
from sonocli.model.valueclass import valueclass

if TYPE_CHECKING:
    from typing import NamedTuple

    from sonocli.engine.core import Engine
    from sonocli.model.values import Meter, MeterValue, Reading
else:
    from sonocli.model.namedtuple import NamedTuple  # typing's syntax, not its cost (see there)

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_moment(option: str, text: str, *, end_of_day: bool = False, now: datetime | None = None) -> datetime:
    """``7d``/``12h``/``30m``/``2w`` before ``now``, or ISO 8601 (naive: UTC); a bare date given as the end
    of a range (``end_of_day``) means the end of that day, so ``--since D --until D`` is the whole day."""
    value = text.strip()
    relative = _RELATIVE.match(value)
    if relative:
        amount = float(relative.group(1))
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[relative.group(2).lower()]: amount})
    try:
        if len(value) == 10 and value[4] == "-":
            day = date.fromisoformat(value)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) - timedelta(microseconds=1) if end_of_day else start
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, OverflowError):
        raise UsageError(f"{option} {text!r} is not a time",
                         hint="give ISO 8601 (2026-12-01, 2026-12-01T06:00Z) or a time ago: 30m, 12h, 7d, 2w") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@valueclass(frozen=True)
class ReadingsQuery:
    """Which stored readings and values: ``since <= time <= until`` (None: open), one meter (serial or
    Device-ID) or all, one value (number or label) or all."""

    meter: str | None = None
    value: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise UsageError(f"--since {self.since.isoformat()} is after --until {self.until.isoformat()}")
        if self.value is not None and self.value.strip().isdigit() and int(self.value) < 1:
            raise UsageError(f"--value {self.value}: value numbers start at 1 (as in 'sonocli meters show')")


class Selected(NamedTuple):
    """One stored reading and the records of it that the query chose (all, without ``--value``)."""

    reading: Reading
    values: tuple[MeterValue, ...]


def _matches(wanted: str, meter: Meter, value: MeterValue) -> bool:
    if wanted.isdigit():
        return value.index == int(wanted) - 1
    label = wanted.casefold()
    if 0 <= value.index < len(meter.values):
        entry = meter.values[value.index]
        if label in ((entry.user or "").casefold(), entry.description.casefold()):
            return True
    return value.description.casefold() == label


def select(engine: Engine, query: ReadingsQuery) -> Iterator[Selected]:
    """The stored readings of the query in time order, each with its chosen records; readings where the
    chosen value is missing are left out. Raises NotFoundError without a store or an unknown meter."""
    database = engine.layout.database
    if not database.is_file():
        raise NotFoundError(f"no readings stored: {database} does not exist",
                            hint="readings are stored by 'sonocli readout', 'sonocli listen' and the daemon")
    store = engine.store
    if query.meter is not None and not store.meter_known(query.meter):
        raise NotFoundError(f"--meter {query.meter}: no readings of this meter are stored",
                            hint="give its serial number or Device-ID as 'sonocli meters list' shows them")
    wanted = None if query.value is None else query.value.strip()
    for reading in store.iter_readings(since=query.since, until=query.until, meter=query.meter):
        if wanted is None:
            yield Selected(reading, tuple(reading.values))
            continue
        chosen = tuple(v for v in reading.values if _matches(wanted, reading.meter, v))
        if chosen:
            yield Selected(reading, chosen)


class Series(NamedTuple):
    """One value of one meter over time (what the plot draws): its label and the numeric points."""

    device_id: str
    number: int  # the value's number in the meter list (1-based); 0: a record not in the list
    label: str
    unit: str
    points: list[tuple[datetime, float]]


def series(selected: list[Selected]) -> list[Series]:
    """The numeric values of a selection, one series per meter and value, in first-seen order (records not
    in the meter list, and non-numeric values such as dates, are not drawn)."""
    from sonocli.model.values import json_number

    found: dict[tuple[str, int], Series] = {}
    for item in selected:
        for value in item.values:
            number = json_number(value)
            if value.index < 0 or isinstance(number, bool) or not isinstance(number, int | float):
                continue
            key = (item.reading.meter.device_id, value.index + 1)
            if key not in found:
                found[key] = Series(key[0], key[1], value.description, value.unit, [])
            found[key].points.append((item.reading.taken_at, float(number)))
    return list(found.values())
