"""S0 pulse meters (EN 62053-31): edges on a GPIO line counted into the meter's value.

An S0 output closes a contact for each unit of energy or volume (e.g. 1000 pulses per kWh). The guide's
S0 meter has one value entry with a "Set value" (Figure 21: the start value, its scale, unit and OBIS-ID);
here the scale is the pulse weight: every pulse adds one unit of the scale, so the meter reading is
``set value + pulses counted`` at that scale (set value 280.09 at scale 1e-4 kWh: each pulse adds 0.1 Wh).

* The line: the meter's ``<gpio>`` element in the meter list (offset or line name), else S0_LINES of
  chip.ini (``CHANNEL=LINE``, the channel being the meter's primary address, the guide's "S0-1"), on the
  chip S0_GPIOCHIP. Edges are read through libgpiod (the ``gpiod`` package, imported only when an S0 line
  is configured) with the kernel's debouncing (S0_DEBOUNCE) and the edge S0_EDGE.
* The count is kept in the store (sonocli.store.pulses), every batch of edges committed as it is seen,
  so a restart loses no counted pulse; the daemon's counter thread runs all the time, the readout cycle
  records ``set value + pulses`` like any other reading (``Engine.read_manual``).
* MUC_SETDEVICES (S0, ALL, NONE) governs writing the value: with S0 or ALL a new set value (``set_value``,
  or the meter list's set value edited) restarts counting from it; with NONE the value is not written and
  counting goes on from the old one (a warning says so).

A GPIO chip or line that does not exist is a UsageError (exit 2), a busy line a SonoError (exit 1), one
line each; the daemon logs it and goes on with the other meters.
"""

from __future__ import annotations

import errno
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol

from sonocli import logs
from sonocli.errors import SonoError, UsageError
from sonocli.model.valueclass import replace, valueclass
from sonocli.model.values import Interface, Meter, Reading

if TYPE_CHECKING:
    from sonocli.engine.core import Engine
    from sonocli.store.pulses import PulseCount

log = logs.logger("sonocli.engine")

_GPIO_TAG = re.compile(r"<gpio>\s*([^<]*?)\s*</gpio>")


class EdgeSource(Protocol):
    """Where edges come from: :class:`GpioEdges` on a Linux GPIO chip, a fake one in the tests."""

    def wait(self, timeout: float) -> list[str]:
        """The lines that saw an edge within ``timeout`` seconds, one item per edge (empty: none came)."""

    def close(self) -> None: ...


# -- configuration ----------------------------------------------------------------------------------------
def _channels(engine: Engine) -> dict[int, str]:
    text = str(engine.get("S0_LINES") or "").strip()
    out: dict[int, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        channel, sep, line = item.partition("=")
        if not sep or not channel.strip().isdigit() or not line.strip():
            raise UsageError(f"S0_LINES item {item!r} is not CHANNEL=LINE (e.g. 1=17 or 1=GPIO17)")
        out[int(channel)] = line.strip()
    return out


def line_of(engine: Engine, meter: Meter) -> str | None:
    """The GPIO line of an S0 meter: its ``<gpio>`` element, else S0_LINES for its channel; None: none."""
    for tag, raw in meter.extra:
        if tag == "gpio":
            found = _GPIO_TAG.search(raw)
            if found and found.group(1):
                return found.group(1)
    return _channels(engine).get(meter.primary_address)


def counted_meters(engine: Engine) -> dict[str, Meter]:
    """Line -> the active S0 meter counted on it (meters with a set value and a line)."""
    out: dict[str, Meter] = {}
    for meter in engine.meters:
        if meter.interface is not Interface.S0 or not meter.active or not meter.values:
            continue
        line = line_of(engine, meter)
        if line is not None:
            if line in out:
                raise UsageError(f"S0 line {line} is given to two meters: {out[line].device_id} and "
                                 f"{meter.device_id}")
            out[line] = meter
    return out


def base_text(meter: Meter) -> str:
    """The set value of the meter's (first) value entry as exact decimal text; 0 without one."""
    value = meter.values[0].value if meter.values else None
    if value is None:
        return "0"
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)  # repr: the shortest exact decimal


def writable(engine: Engine) -> bool:
    """MUC_SETDEVICES: whether values may be written to S0 meters (S0 or ALL)."""
    return str(engine.get("MUC_SETDEVICES")).upper() in ("S0", "ALL")


# -- counters in the store ----------------------------------------------------------------------------------
def _now(engine: Engine) -> datetime:
    return datetime.fromtimestamp(engine.now(), UTC)


def ensure_counters(engine: Engine, meters: Iterable[Meter]) -> dict[str, PulseCount]:
    """Start a counter for each meter that has none; a meter whose set value was changed in the list since
    counting started counts from the new value when MUC_SETDEVICES allows it (else a warning)."""
    store = engine.pulses
    out: dict[str, PulseCount] = {}
    for meter in meters:
        base = base_text(meter)
        count = store.get(meter.device_id)
        if count is None:
            count = store.start(meter.device_id, base, _now(engine))
        elif _differs(count.base, base) and not _written_elsewhere(engine, meter, count):
            if writable(engine):
                store.set_value(meter.device_id, base, _now(engine))
                log.info("S0 meter %s: set value %s written (%d pulses counted from %s before)",
                         meter.device_id, base, count.pulses, count.base)
                count = store.get(meter.device_id) or count
            else:
                log.warning("S0 meter %s: set value %s not written (MUC_SETDEVICES=NONE); counting on from %s",
                            meter.device_id, base, count.base)
        out[meter.device_id.upper()] = count
    return out


def _written_elsewhere(engine: Engine, meter: Meter, count: PulseCount) -> bool:
    """Whether the counter's set value is the one the meter list on disk has now: another process (``meters
    set-value`` while the daemon runs) wrote both, and this engine's list is older. Writing this engine's
    old set value back would undo it; the daemon takes the new list on SIGHUP."""
    for fresh in engine.meter_list().meters:
        if fresh.device_id.upper() == meter.device_id.upper():
            return not _differs(count.base, base_text(fresh))
    return False


def _differs(a: str, b: str) -> bool:
    try:
        return Decimal(a) != Decimal(b)
    except InvalidOperation:
        return a != b


@valueclass(frozen=True)
class ValueWritten:
    """What ``meters set-value`` did: the meter as now listed, the new set value (exact decimal text) and
    the counter before (None: it had not started counting)."""

    meter: Meter
    value: str
    previous: PulseCount | None


def parse_set_value(text: str) -> Decimal:
    """A set value as typed: decimal with a point or, as the device's dialog shows it, a comma (280,09);
    a meter reading is a finite number of at least 0. UsageError for anything else."""
    cleaned = text.strip().replace(",", ".")
    try:
        number = Decimal(cleaned)
    except InvalidOperation:
        raise UsageError(f"set value {text!r} is not a number (e.g. 280.09 or 280,09)") from None
    if not number.is_finite() or number < 0:
        raise UsageError(f"set value {text!r} must be a finite number of 0 or more (a meter reading)")
    return number


def set_value(engine: Engine, ref: str, value: float | Decimal | str) -> ValueWritten:
    """Write a new value to an S0 meter (the guide's "Set value"): the meter list's set value and the
    counter, which counts from it again. ``ref`` is a list position, serial or Device-ID. Refused
    (UsageError) unless MUC_SETDEVICES is S0 or ALL, for a meter that is not an S0 meter, and for one
    without a value entry."""
    from sonocli.engine.meterlist import find_meter

    if not writable(engine):
        raise UsageError(f"MUC_SETDEVICES={engine.get('MUC_SETDEVICES')}: writing values to meters is disabled",
                         hint="sonocli config set MUC_SETDEVICES S0")
    number = value if isinstance(value, Decimal) else parse_set_value(str(value))

    def change(meters: Any) -> tuple[Any, Meter]:
        index = find_meter(meters, ref)
        meter = meters.meters[index]
        if meter.interface is not Interface.S0:
            raise UsageError(f"meter {meter.device_id} is a {meter.interface.name} meter: only S0 meters take a "
                             f"set value", hint="a DLDE meter's manual value: sonocli meters edit METER/N --value")
        if not meter.values:
            raise UsageError(f"S0 meter {meter.device_id} has no value entry to set",
                             hint="add one: sonocli meters add --to METER --value V --unit U")
        first = replace(meter.values[0], value=float(number))
        items = list(meters.meters)
        items[index] = replace(meter, values=(first, *meter.values[1:]))
        return replace(meters, meters=tuple(items)), items[index]

    meter = engine.update_meters(change)
    previous = engine.pulses.get(meter.device_id)
    text = base_text(meter)
    engine.pulses.set_value(meter.device_id, text, _now(engine))
    return ValueWritten(meter, text, previous)


def with_counts(engine: Engine, readings: Sequence[Reading]) -> list[Reading]:
    """Readings of counted S0 meters with ``set value + pulses`` as their value (others as they are)."""
    try:
        meters = counted_meters(engine)
    except SonoError as exc:
        log.error("S0: %s", exc)
        return list(readings)
    if not meters:
        return list(readings)
    counted = {m.device_id.upper() for m in meters.values()}
    ensure_counters(engine, meters.values())  # a set value changed in the list (SIGHUP) is written now
    known = engine.pulses.all()
    out: list[Reading] = []
    for reading in readings:
        count = known.get(reading.meter.device_id.upper())
        if reading.meter.device_id.upper() not in counted or count is None or not reading.values:
            out.append(reading)
            continue
        total = Decimal(count.base) + count.pulses
        raw: int | float = int(total) if total == total.to_integral_value() else float(total)
        first = reading.values[0]._replace(raw=raw)
        out.append(replace(reading, values=(first, *reading.values[1:])))
    return out


# -- the edges ----------------------------------------------------------------------------------------------
def _line_id(line: str) -> int | str:
    return int(line) if line.isdigit() else line


def gpio_error(exc: BaseException, chip: str, line: str | None = None) -> SonoError:
    """An OSError/ValueError of libgpiod as one line: missing chip or line (exit 2), busy line (exit 1)."""
    where = f"GPIO line {line} of {chip}" if line is not None else f"GPIO chip {chip}"
    if isinstance(exc, FileNotFoundError) or (isinstance(exc, OSError) and exc.errno == errno.ENOENT):
        return UsageError(f"S0: {where} does not exist", hint="check S0_GPIOCHIP and S0_LINES (gpiodetect, gpioinfo)")
    if isinstance(exc, OSError) and exc.errno == errno.EBUSY:
        return SonoError(f"S0: {where} is busy (requested by another program)", hint="gpioinfo shows its consumer")
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM):
        return SonoError(f"S0: no permission to use {where}", hint="add the user to the gpio group")
    if isinstance(exc, ValueError | OSError):
        return UsageError(f"S0: {where} does not exist: {exc}", hint="gpioinfo lists the lines")
    return SonoError(f"S0: {where}: {exc}")


class GpioEdges:
    """Edges of S0 lines through libgpiod 2 (``gpiod``): one request for all lines, kernel debouncing."""

    def __init__(self, chip: str, lines: Sequence[str], *, edge: str = "falling", debounce_ms: int = 10) -> None:
        try:
            import gpiod
            from gpiod.line import Bias, Edge
        except ImportError as exc:
            raise SonoError("S0: the gpiod package (libgpiod) is not installed",
                            hint="pip install 'sonocli[s0]'") from exc
        from datetime import timedelta

        self.chip = chip
        self._by_offset: dict[int, str] = {}
        try:
            with gpiod.Chip(chip) as handle:
                for line in lines:
                    try:
                        self._by_offset[handle.line_offset_from_id(_line_id(line))] = line
                    except (OSError, ValueError) as exc:
                        raise gpio_error(exc, chip, line) from exc
                settings = gpiod.LineSettings(
                    edge_detection=Edge.RISING if edge == "rising" else Edge.FALLING, bias=Bias.PULL_UP,
                    debounce_period=timedelta(milliseconds=debounce_ms))
                try:
                    self._request: Any = handle.request_lines(config={tuple(self._by_offset): settings},
                                                              consumer="sonocli-s0")
                except OSError as exc:
                    raise gpio_error(exc, chip, ",".join(lines)) from exc
        except SonoError:
            raise
        except (OSError, ValueError) as exc:
            raise gpio_error(exc, chip) from exc

    def wait(self, timeout: float) -> list[str]:
        if not self._request.wait_edge_events(timeout):
            return []
        return [self._by_offset.get(event.line_offset, str(event.line_offset))
                for event in self._request.read_edge_events()]

    def close(self) -> None:
        self._request.release()


def open_edges(engine: Engine, lines: Sequence[str]) -> GpioEdges:
    return GpioEdges(str(engine.get("S0_GPIOCHIP")), lines, edge=str(engine.get("S0_EDGE")),
                     debounce_ms=int(engine.get("S0_DEBOUNCE")))


class PulseCounter:
    """Counts the edges of ``source`` into the S0 meters' counters, a committed batch per wait."""

    def __init__(self, engine: Engine, source: EdgeSource, meters: dict[str, Meter] | None = None) -> None:
        self.engine = engine
        self.source = source
        self.meters = meters if meters is not None else counted_meters(engine)
        ensure_counters(engine, self.meters.values())
        self.counted = 0
        self.ignored = 0

    def step(self, timeout: float) -> int:
        """Wait up to ``timeout`` for edges and store them; returns the pulses counted."""
        edges = self.source.wait(timeout)
        if not edges:
            return 0
        counts: Counter[str] = Counter()
        for line in edges:
            meter = self.meters.get(line)
            if meter is None:
                self.ignored += 1
                continue
            counts[meter.device_id] += 1
        self.engine.pulses.add(counts, _now(self.engine))
        n = sum(counts.values())
        self.counted += n
        return n

    def run(self, should_stop: Callable[[], bool], poll: float = 0.5) -> int:
        while not should_stop():
            self.step(poll)
        return self.counted


def run_counter(engine: Engine, should_stop: Callable[[], bool], source: EdgeSource | None = None) -> int:
    """The daemon's S0 thread: open the configured lines and count until ``should_stop()``."""
    meters = counted_meters(engine)
    if not meters:
        return 0
    edges = source if source is not None else open_edges(engine, list(meters))
    try:
        log.info("S0: counting %d meter(s) on %s", len(meters), ", ".join(sorted(meters)))
        return PulseCounter(engine, edges, meters).run(should_stop)
    finally:
        edges.close()
