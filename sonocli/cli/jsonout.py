"""JSON on stdout and the TTY test: what a piped command needs, without the table renderer.

``listen | jq`` prints a JSON line per telegram and never draws a table, so it imports this small module
instead of :mod:`sonocli.cli.output` (~1 ms before the first telegram); ``output`` re-exports both names.
"""

from __future__ import annotations

import sys
from typing import Any

import click


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def emit_json(obj: Any, *, lines: bool = False) -> None:
    """Print one JSON document (or one JSON line when ``lines``); non-JSON types via ``str``. Record
    values are written exactly (sonocli.engine.decoding.json_text), also beyond a float's 15 digits."""
    from sonocli.engine.decoding import json_text

    click.echo(json_text(obj, indent=None if lines else 2))
