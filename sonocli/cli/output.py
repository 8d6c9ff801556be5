"""Rendering helpers: JSON for scripts, rich tables on a TTY, plain tab-separated text when piped.

rich is imported only inside the functions that draw, never at module import.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import click


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def emit_json(obj: Any, *, lines: bool = False) -> None:
    """Print one JSON document (or one JSON line when ``lines``); non-JSON types via ``str``."""
    text = json.dumps(obj, ensure_ascii=False, default=str, indent=None if lines else 2)
    click.echo(text)


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
    """Numbers with up to ten significant digits (no float noise), text and dates as they are."""
    if isinstance(value, float):
        return f"{value:.10g}"
    return "" if value is None else str(value)


def print_records(title: str | None, records: Sequence[dict[str, Any]]) -> None:
    """The record table shared by decode, readout and listen; ``records`` are records_json dicts."""
    rows = [
        (
            r["index"],
            r["function"],
            r["storage"],
            r["tariff"],
            r["subunit"],
            r["description"],
            format_record_value(r["value"]),
            r["unit"],
            r["dif_vif"],
        )
        for r in records
    ]
    print_table(title, RECORD_COLUMNS, rows)
