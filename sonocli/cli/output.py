"""Rendering helpers: JSON for scripts, rich tables on a TTY, plain tab-separated text when piped.

rich is imported only inside the functions that draw, never at module import.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Protocol

import click


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def emit_json(obj: Any, *, lines: bool = False) -> None:
    """Print one JSON document (or one JSON line when ``lines``); non-JSON types via ``str``. Record
    values are written exactly (sonocli.engine.decoding.json_text), also beyond a float's 15 digits."""
    from sonocli.engine.decoding import json_text

    click.echo(json_text(obj, indent=None if lines else 2))


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A rich table on a TTY, tab-separated lines with a header row when piped."""
    if stdout_is_tty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for column in columns:
            table.add_column(column, overflow="fold")  # a narrow terminal wraps values, never cuts them
        for row in rows:
            table.add_row(*("" if cell is None else str(cell) for cell in row))
        Console().print(table)
        return
    if title:
        click.echo(f"# {title}")
    click.echo("\t".join(columns))
    for row in rows:
        click.echo("\t".join("" if cell is None else str(cell) for cell in row))


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
    from sonocli.model.values import ExactNumber, plain_decimal

    if isinstance(value, ExactNumber):
        return value.text
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)
        return plain_decimal(Decimal(repr(value)))  # the repr is the exact decimal (json_number)
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
    """The record table shared by decode, readout and listen; ``records`` are records_json dicts."""
    rows = [
        (
            r["index"],
            r["function"],
            r["storage"],
            r["tariff"],
            r["subunit"],
            record_description(r),
            _record_value(r),
            r["unit"],
            r["dif_vif"],
        )
        for r in records
    ]
    print_table(title, RECORD_COLUMNS, rows)
