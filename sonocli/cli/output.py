"""Rendering helpers: JSON for scripts, rich tables on a TTY, plain tab-separated text when piped.

rich is imported only inside the functions that draw, never at module import.
"""

from __future__ import annotations

import functools
import math
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, Protocol

import click

from sonocli.cli.jsonout import emit_json as emit_json  # re-exported: the commands' one JSON writer
from sonocli.cli.jsonout import stdout_is_tty as stdout_is_tty

if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from sonocli.model.namedtuple import NamedTuple  # typing's syntax, not its cost (see there)


class Column(NamedTuple):
    """A table column as the terminal shows it.

    ``kind`` is the one overflow policy of every sonocli table: ``"fixed"`` cells (ids, numbers, timestamps,
    hex) are never wrapped or shortened; ``"text"`` cells (descriptions, meanings, errors) are shortened
    with "…" when the terminal is too narrow, so that every row stays one line; ``"auto"`` decides from the
    cells (a cell with words is text). ``hide_blank`` drops the column on a terminal when every cell is blank;
    ``optional`` columns are dropped (the rightmost first) when the fixed columns would not fit otherwise; only
    then do the widest fixed cells end in "…". ``short`` is the header a terminal shows, ``tty`` how a
    terminal shows a cell (e.g. :func:`display_unit`).
    Piped output (TSV) always has every column, in full, with ``header`` and the cells as given.
    """

    header: str
    kind: str = "auto"
    hide_blank: bool = False
    short: str | None = None
    tty: Callable[[Any], str] | None = None
    optional: bool = False


FIXED: Final = "fixed"
TEXT: Final = "text"
_GAP: Final = 2  # characters between two columns (one padding, one divider)


@functools.cache
def _token() -> re.Pattern[str]:
    """A cell that is one token (never wrapped); compiled on first use: only a terminal's tables ask."""
    return re.compile(
        r"\S*"  # one word: an id, a number, a path, a URL
        r"|[0-9A-Fa-f]{2}( [0-9A-Fa-f]{2})*"  # hex bytes
        r"|\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?\S*"  # a timestamp
    )


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _column_widths(columns: Sequence[Column], cells: Sequence[Sequence[str]], width: int) -> list[int]:
    """Widths so that the table fits ``width``: fixed columns at their full width, text columns share the rest
    in proportion to their length (each at least its header, or 8)."""
    from rich.cells import cell_len

    natural = [max([cell_len(c.header), *(cell_len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    text = [i for i, c in enumerate(columns) if c.kind == TEXT]
    room = width - _GAP * (len(columns) - 1) - sum(w for i, w in enumerate(natural) if i not in text)
    if sum(natural[i] for i in text) <= room:
        return natural
    widths = list(natural)
    least = {i: min(natural[i], max(cell_len(columns[i].header), 8)) for i in text}
    spare = max(0, room - sum(least.values()))
    wanted = sum(natural[i] - least[i] for i in text) or 1
    for i in text:
        widths[i] = least[i] + (natural[i] - least[i]) * spare // wanted
    # Too narrow even for the fixed columns (a plain-text VIF's bytes, a long text value): the widest fixed
    # columns end in "…" rather than every column being cut; the other ids and numbers stay whole.
    excess = sum(widths) + _GAP * (len(columns) - 1) - width
    floors = [max(cell_len(c.header), 4) for c in columns]
    while excess > 0:
        shrinkable = [i for i in range(len(columns)) if i not in text and widths[i] > floors[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    return widths


def _fixed_need(columns: Sequence[Column], cells: Sequence[Sequence[str]]) -> int:
    """The width the columns need with every fixed column whole and each text column at its least."""
    from rich.cells import cell_len

    need = _GAP * (len(columns) - 1)
    for i, column in enumerate(columns):
        natural = max([cell_len(column.header), *(cell_len(row[i]) for row in cells)])
        need += min(natural, max(cell_len(column.header), 8)) if column.kind == TEXT else natural
    return need


def render_table(title: str | None, columns: Sequence[str | Column], rows: Sequence[Sequence[Any]],
                 width: int) -> Any:
    """The rich renderable of a table on a terminal ``width`` wide: one line per row (see :class:`Column`),
    the title on a line of its own. Shared by every table (``listen`` re-renders it live)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    specs = [c if isinstance(c, Column) else Column(c) for c in columns]
    padded = [[*row, *([None] * (len(specs) - len(row)))] for row in rows]  # a short row: blank cells
    cells = [[_cell(value if spec.tty is None else spec.tty(value)) for spec, value in zip(specs, row, strict=False)]
             for row in padded]
    specs = [spec._replace(header=spec.short or spec.header) for spec in specs]
    keep = [i for i, c in enumerate(specs) if not (c.hide_blank and all(not row[i] for row in cells))]
    specs = [specs[i] for i in keep]
    cells = [[row[i] for i in keep] for row in cells]
    resolved = []
    for i, spec in enumerate(specs):
        kind = spec.kind
        if kind not in (FIXED, TEXT):
            kind = FIXED if all(_token().fullmatch(row[i]) for row in cells) else TEXT
        resolved.append(spec._replace(kind=kind))
    while _fixed_need(resolved, cells) > width and any(c.optional for c in resolved):
        drop = max(i for i, c in enumerate(resolved) if c.optional)
        del resolved[drop]
        cells = [row[:drop] + row[drop + 1 :] for row in cells]
    widths = _column_widths(resolved, cells, width)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), expand=False,
                  header_style="bold")
    for spec, column_width in zip(resolved, widths, strict=True):
        table.add_column(spec.header, width=column_width, no_wrap=True, overflow="ellipsis")
    for row in cells:
        table.add_row(*row)
    if not title:
        return table
    heading = Text(title, style="bold", no_wrap=True, overflow="ellipsis")
    return Group(heading, table)


def print_table(title: str | None, columns: Sequence[str | Column], rows: Sequence[Sequence[Any]]) -> None:
    """A table on a TTY (one line per row, see :class:`Column`), tab-separated lines with a header row when
    piped (every column, in full)."""
    if stdout_is_tty():
        from rich.console import Console

        console = Console()
        console.print(render_table(title, columns, rows, console.width), no_wrap=True, crop=True)
        return
    if title:
        click.echo(f"# {title}")
    click.echo("\t".join(c.header if isinstance(c, Column) else c for c in columns))
    for row in rows:
        click.echo("\t".join(_cell(cell) for cell in row))


class ProgressSink(Protocol):
    def __call__(self, done: int, total: int | None, info: str = "") -> None: ...


@contextmanager
def progress(description: str, total: int | None) -> Iterator[ProgressSink]:
    """A rich progress bar on stderr when it is a TTY; a no-op callback when piped."""
    if not sys.stderr.isatty():

        def quiet(done: int, total: int | None, info: str = "") -> None:
            return None

        yield quiet
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total, info="")

        def update(done: int, total: int | None, info: str = "") -> None:
            bar.update(task, completed=done, total=total, info=info)

        yield update


RECORD_COLUMNS = ("#", "function", "storage", "tariff", "subunit", "description", "value", "unit", "DIF/VIF")


def format_record_value(value: Any) -> str:
    """A record's JSON ``value`` as its exact decimal in positional notation, never rounded: ``12.345``,
    ``123456789012``, ``0.00001`` (the JSON numbers are exact already: see
    sonocli.model.values.json_number); text and dates as they are."""
    from sonocli.model.values import ExactNumber, plain_float

    if isinstance(value, ExactNumber):
        return value.text
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)
        return plain_float(value)  # the repr is the exact decimal (json_number)
    return "" if value is None else str(value)


def record_description(record: dict[str, Any]) -> str:
    """The description with the record's qualifiers: ``Volume (backward flow)``."""
    qualifiers = record.get("qualifiers")
    if qualifiers:
        return f"{record['description']} ({', '.join(qualifiers)})"
    return str(record["description"])


def _record_value(record: dict[str, Any]) -> str:
    ident = record.get("identification")
    text = format_record_value(record["value"])
    if ident and ident.get("medium"):
        return f"{text} ({ident['medium']})"
    return text


def print_records(title: str | None, records: Sequence[dict[str, Any]]) -> None:
    """The record table shared by decode, readout and listen; ``records`` are records_json dicts.

    Piped: the TSV of RECORD_COLUMNS with the guide's units and exact values. On a terminal: the function
    abbreviated, storage/tariff/subunit as one ``S/T/U`` column shown only when one is not 0, the units as
    an engineer writes them (:func:`display_unit`) and whole values in a larger unit when that is exact
    (:func:`display_value`)."""
    if not stdout_is_tty():
        rows = [
            (r["index"], r["function"], r["storage"], r["tariff"], r["subunit"], record_description(r),
             _record_value(r), r["unit"], r["dif_vif"])
            for r in records
        ]
        print_table(title, RECORD_COLUMNS, rows)
        return
    registers = any(r["storage"] or r["tariff"] or r["subunit"] for r in records)
    tty_rows = []
    for r in records:
        value, unit = display_value(r["value"], r["unit"])
        ident = r.get("identification")
        if ident and ident.get("medium"):
            value = f"{value} ({ident['medium']})"
        tty_rows.append((
            r["index"],
            FUNCTION_ABBREVIATIONS.get(r["function"], r["function"]),
            f"{r['storage']}/{r['tariff']}/{r['subunit']}" if registers else "",
            record_description(r),
            value,
            unit,
            r["dif_vif"],
        ))
    columns = (
        Column("#", FIXED),
        Column("fn", FIXED),
        Column("S/T/U", FIXED, hide_blank=True),
        Column("description", TEXT),
        Column("value", FIXED),
        Column("unit", FIXED),
        Column("DIF/VIF", FIXED),
    )
    print_table(title, columns, tty_rows)


FUNCTION_ABBREVIATIONS: Final = {"instantaneous": "inst", "maximum": "max", "minimum": "min", "errorgate": "err"}

# The guide's unit strings (Table 18, kept in CSV, XML and JSON) as a terminal shows them.
_DISPLAY_UNITS: Final = {"None": "", "H": "h", "D": "d", "degree C": "°C", "Degree F": "°F", "Degree": "°",
                         "Bar": "bar"}
# Units a terminal shows with a decimal prefix when the value is a whole multiple of it.
_PREFIXED_UNITS: Final = frozenset({"Wh", "W", "J", "J/h", "VA", "VAR", "VARh"})
_PREFIXES: Final = ("k", "M", "G", "T")


def display_unit(unit: str, value: Any = None) -> str:
    """A Table 18 unit for the terminal: ``h``, ``d``, ``°C``, blank for "None"; flags ("Bin") as ``bin``,
    or ``hex`` when the value is binary data written in hex."""
    if unit == "Bin":
        return "hex" if isinstance(value, str) else "bin"
    return _DISPLAY_UNITS.get(unit, unit)


def display_value(value: Any, unit: str) -> tuple[str, str]:
    """A record value and its unit for the terminal: a whole energy or power value in the largest decimal
    prefix that divides it exactly (37351000 Wh -> 37351 kWh, 18511.912 W stays), never rounded; timestamps
    in UTC without the redundant offset (the unit column says UTC); everything else as format_record_value."""
    text = format_record_value(value)
    if unit == "UTC" and isinstance(value, str) and text.endswith("+00:00") and "T" in text:
        return text[: -len("+00:00")].replace("T", " ", 1), unit
    if unit in _PREFIXED_UNITS and isinstance(value, int | float) and not isinstance(value, bool):
        from decimal import Decimal  # only a terminal's energy/power cells: piped TSV never needs it

        try:
            exact = Decimal(text)
        except ArithmeticError:
            return text, display_unit(unit, value)
        if exact and exact == exact.to_integral_value():
            whole, steps = int(exact), 0  # integer arithmetic: no precision limit, nothing rounded
            while steps < len(_PREFIXES) and whole % 1000 == 0:
                whole //= 1000
                steps += 1
            if steps:
                return str(whole), _PREFIXES[steps - 1] + unit
    return text, display_unit(unit, value)

