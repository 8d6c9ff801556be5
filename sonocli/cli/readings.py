"""``sonocli readings``: the stored readings, by meter, value and time range — the history view of the
device's web interface, on the terminal.

The command parses its options and renders; the query is sonocli.engine.readings_query. Piped output is
TSV (one line per record: time, Device-ID, value number, description, value, unit; exact values, the
guide's units); on a terminal a table, or with ``--plot`` (and by default when ``--value`` picks one value
of one meter) a chart of the value over time drawn by plotext, which is imported only to draw. ``--json``
prints the reading objects of ``readout --json`` (the one meter object, ``time``, records).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from sonocli.cli.common import engine_for
from sonocli.cli.output import stdout_is_tty
from sonocli.errors import UsageError

if TYPE_CHECKING:
    from sonocli.cli.output import Column
    from sonocli.engine.readings_query import Selected, Series

MAX_SERIES = 8  # lines one terminal chart stays readable with


@click.command("readings")
@click.option("--meter", metavar="ID", help="One meter: its serial number or Device-ID (MAN-SERIAL-VV-MM).")
@click.option("--value", metavar="N|LABEL",
              help="One value: its number in the meter (as 'meters show' lists it), user label or description.")
@click.option("--since", metavar="TIME", help="From this time: ISO 8601 (2026-12-01T06:00Z) or a time ago (7d, 12h).")
@click.option("--until", metavar="TIME", help="Up to this time (a bare date: the end of that day); as --since.")
@click.option("--plot/--no-plot", default=None,
              help="Draw the values over time on the terminal [default: when --value picks one value of one meter].")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list: the reading objects of readout --json.")
@click.pass_context
def readings(ctx: click.Context, meter: str | None, value: str | None, since: str | None, until: str | None,
             plot: bool | None, as_json: bool) -> None:
    """Show the stored readings (ext/sonocli.db) of a meter, a value and a time range.

    Readings are shown as they were stored, with the meter list as it was then. Times are ISO 8601 (no
    offset: UTC) or a time ago: 30m, 12h, 7d, 2w. Piped: TSV with exact values and the guide's units;
    on a terminal a table, or a chart of the values over time (--plot; the default when --value picks
    one value of one meter). --json prints the reading objects of readout --json (see sonocli(1), JSON
    SCHEMA), each with the chosen records only.
    """
    from sonocli.engine.readings_query import ReadingsQuery, parse_moment, select

    if plot and as_json:
        raise UsageError("give --plot or --json, not both")
    if plot and not stdout_is_tty():
        raise UsageError("--plot draws on a terminal; piped, readings are TSV (or give --json)")
    query = ReadingsQuery(
        meter=meter,
        value=value,
        since=None if since is None else parse_moment("--since", since),
        until=None if until is None else parse_moment("--until", until, end_of_day=True),
    )
    engine = engine_for(ctx)
    try:
        # JSON and TSV stream from the store (a year of readings needs no more memory than a day's); the
        # table and the chart need every reading first
        found = iter(select(engine, query))
        first = next(found, None)  # an unknown meter or a missing store is raised here, before any output
        if as_json:
            _print_json(first, found)
            return
        if first is None:
            click.echo("sonocli: note: no stored readings match (hint: widen --since, or check --meter and "
                       "--value with 'sonocli meters show ID')", err=True)
            return
        if not stdout_is_tty():
            click.echo("\t".join(c.header for c in _columns(False)))
            for item in itertools.chain([first], found):
                for row in _rows([item], False):
                    click.echo("\t".join(str(cell) for cell in row))
            return
        chosen = [first, *found]
    finally:
        engine.close()
    if plot is not False:
        from sonocli.engine.readings_query import series

        lines = series(chosen)
        if plot or (value is not None and len(lines) == 1):
            if not lines:
                raise UsageError("nothing to plot: the chosen values are not numbers")
            _plot(lines)
            return
    _print_table(chosen)


def _print_json(first: Selected | None, rest: Iterator[Selected]) -> None:
    """The JSON list ``emit_json`` would print, one reading at a time (the same text, indent 2)."""
    import textwrap

    from sonocli.engine.decoding import json_text
    from sonocli.engine.messages import reading_message

    if first is None:
        click.echo("[]")
        return

    def text(item: Selected) -> str:
        return textwrap.indent(json_text(reading_message(item.reading, values=item.values), indent=2), "  ")

    click.echo("[")
    previous = first
    for item in rest:
        click.echo(text(previous) + ",")
        previous = item
    click.echo(text(previous))
    click.echo("]")


def _rows(chosen: list[Selected], tty: bool) -> list[tuple[Any, ...]]:
    from sonocli.cli.output import display_value, format_record_value, record_description
    from sonocli.engine.decoding import records_to_dicts
    from sonocli.engine.meterjson import iso_time

    rows: list[tuple[Any, ...]] = []
    for item in chosen:
        reading = item.reading
        when = (reading.taken_at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if tty
                else iso_time(reading.taken_at))
        for record in records_to_dicts(item.values):
            if tty:
                shown, unit = display_value(record["value"], record["unit"])
            else:
                shown, unit = format_record_value(record["value"]), record["unit"]
            number = record["index"] + 1 if record["index"] >= 0 else ""
            rows.append((when, reading.meter.device_id, number, record_description(record), shown, unit))
    return rows


def _columns(tty: bool) -> tuple[Column, ...]:
    from sonocli.cli.output import FIXED, TEXT, Column

    return (Column("Time (local)" if tty else "time", FIXED), Column("Device-ID", FIXED), Column("#", FIXED),
            Column("Description", TEXT), Column("Value", FIXED), Column("Unit", FIXED))


def _print_table(chosen: list[Selected]) -> None:
    from sonocli.cli.output import print_table

    print_table(f"{len(chosen)} stored reading(s)", _columns(True), _rows(chosen, True))


def _plot(lines: list[Series]) -> None:
    """Draw the series on the terminal (plotext, imported here only), the terminal's width and up to 24 rows."""
    import shutil

    import plotext

    from sonocli.cli.output import display_unit

    if len(lines) > MAX_SERIES:
        click.echo(f"sonocli: warning: {len(lines)} values chosen; drawing the first {MAX_SERIES} "
                   "(choose one with --meter and --value)", err=True)
        lines = lines[:MAX_SERIES]
    size = shutil.get_terminal_size()
    figure = plotext.figure
    figure.clear()
    figure.date("x").activate(form="%m-%d %H:%M")
    for line in lines:
        times = [moment.astimezone() for moment, _ in line.points]
        signal = figure.signal(times, [number for _, number in line.points]).lines()
        if len(lines) > 1:
            signal.label(f"{line.device_id} #{line.number} {line.label}")
        figure.draw(signal)
    first = lines[0]
    unit = display_unit(first.unit)
    if len(lines) == 1:
        title = f"{first.device_id} value {first.number}: {first.label}" + (f" ({unit})" if unit else "")
    else:
        title = f"{len(lines)} stored values"
    figure.title(title)
    figure.label("local time", axis="x")
    figure.plot_size(max(40, size.columns), max(10, min(size.lines - 3, 24)))
    text = figure.build().string(colorless=bool(os.environ.get("NO_COLOR")))
    click.echo(text.rstrip("\n"))
    points = [number for line in lines for _, number in line.points]
    moments = [moment for line in lines for moment, _ in line.points]
    click.echo(f"{len(points)} point(s) from {min(moments).astimezone():%Y-%m-%d %H:%M} to "
               f"{max(moments).astimezone():%Y-%m-%d %H:%M}, min {min(points):g}, max {max(points):g}")
