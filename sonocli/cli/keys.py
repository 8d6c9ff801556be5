"""`sonocli keys import FILE` and `sonocli keys check`: the wM-Bus keys of the meter list.

Keys live in the meter list (device_handle.cfg ``encryptionkey``), as on the device. They are shown
masked unless the environment has SHOW_KEYS=1 and chip.ini does not say SHOW_KEYS=0 (``common.keys_visible``).
`check` tests each key against the newest raw telegram of its meter in the raw log (WMBUS_RAWLOGENABLE)
when there is one, else only its form.

An import is one locked read-modify-write of the meter list (``engine.update_meters``), so parallel
imports and ``meters edit`` runs never lose each other's changes.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sonocli.errors import EXIT_FAILURE, EXIT_PARTIAL, EXIT_USAGE, SonoError, UsageError

if TYPE_CHECKING:
    from sonocli.engine.core import Engine


@click.group("keys")
def keys() -> None:
    """Import and check wireless M-Bus decryption keys (stored in the meter list)."""


_HEADER_IDS = frozenset({"id", "meter", "meter_id", "meterid", "serial"})


def parse_key_file(text: str, source: str) -> tuple[list[tuple[str, bytes]], list[str]]:
    """``id,key`` lines -> (entries, one error line each).

    Accepted: ``#`` comments (whole line or after the key), blank lines, spaces around fields, ``;`` as
    separator, quoted fields and a UTF-8 BOM (spreadsheet exports), one header line before the first
    entry (``id,key``). A meter listed twice with the same key counts once; with different keys it is an
    error and neither key is used, since the file does not say which one is right.
    """
    from sonocli.engine.keys import parse_key

    parsed: dict[str, tuple[int, bytes]] = {}
    conflicting: set[str] = set()
    errors: list[str] = []
    seen_entry = False
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p.strip().strip("\"'").strip() for p in line.replace(";", ",").split(",")]
        if len(parts) != 2:
            errors.append(f"{source}:{number}: expected 'id,key', got {len(parts)} fields")
            continue
        meter_id, key_text = parts
        if not seen_entry and meter_id.lower() in _HEADER_IDS and key_text.lower() in ("key", "aes key", "aeskey"):
            seen_entry = True
            continue
        seen_entry = True
        meter_id = meter_id.upper().removeprefix("0X")
        if len(meter_id) != 8 or any(ch not in "0123456789ABCDEF" for ch in meter_id):
            errors.append(f"{source}:{number}: meter id {parts[0]!r} must be 8 hex/BCD digits")
            continue
        try:
            key = parse_key(key_text, name=f"key of meter {meter_id}")
        except UsageError as exc:
            errors.append(f"{source}:{number}: {exc}")
            continue
        earlier = parsed.get(meter_id)
        if earlier is None:
            parsed[meter_id] = (number, key)
        elif earlier[1] != key:
            errors.append(
                f"{source}:{number}: meter {meter_id} already has a different key on line {earlier[0]}; "
                "neither is imported"
            )
            conflicting.add(meter_id)
    entries = [(meter_id, key) for meter_id, (_, key) in parsed.items() if meter_id not in conflicting]
    return entries, errors


@keys.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def import_keys(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Set the keys of FILE (CSV 'id,key' per line) on the meter list; unknown meters are created."""
    from sonocli.cli.common import engine_for, mask_key
    from sonocli.cli.output import emit_json, print_table
    from sonocli.engine.keys import KeyImported, apply_keys

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{file}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    entries, errors = parse_key_file(text, str(file))
    engine = engine_for(ctx)
    visible = _visible(engine)
    for line in errors:
        click.echo(f"sonocli: error: {line}", err=True)
    done: list[KeyImported] = engine.update_meters(partial(apply_keys, entries=entries)) if entries else []
    results: list[dict[str, Any]] = [
        {"id": item.id, "action": item.action, "key": mask_key(item.key, visible)} for item in done
    ]
    if as_json:
        emit_json({"imported": results, "errors": errors})
    else:
        print_table(f"keys imported into {engine.layout.device_handle}", ("ID", "Action", "Key"),
                    [(r["id"], r["action"], r["key"]) for r in results])
    if errors:
        raise click.exceptions.Exit(EXIT_PARTIAL if entries else EXIT_USAGE)


def _visible(engine: Engine) -> bool:
    """SHOW_KEYS=1 in the environment, unless chip.ini switches it off (common.keys_visible)."""
    from sonocli.cli.common import keys_visible

    try:
        chip = engine.chip
    except SonoError:
        return False  # a broken chip.ini must not stop key handling; keys stay masked
    return keys_visible(chip)


@keys.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def check_keys(ctx: click.Context, as_json: bool) -> None:
    """Which wM-Bus meters lack a key, and which keys fail and why."""
    from sonocli.cli.common import engine_for, mask_key
    from sonocli.cli.output import emit_json, print_table
    from sonocli.engine.keys import check_key, latest_telegrams
    from sonocli.model import Interface

    engine = engine_for(ctx)
    meter_list = engine.meter_list()
    latest = latest_telegrams(engine)
    visible = _visible(engine)
    rows: list[dict[str, Any]] = []
    for meter in meter_list.meters:
        if meter.interface is not Interface.WMBUS:
            continue
        ident = meter.serial.upper()
        status, detail = check_key(ident, meter.key, latest.get(ident))
        rows.append({"id": ident, "manufacturer": meter.manufacturer, "key": mask_key(meter.key, visible),
                     "status": status, "detail": detail})
    if as_json:
        emit_json(rows)
    else:
        print_table("wM-Bus keys", ("ID", "MAN", "Key", "Status", "Detail"),
                    [(r["id"], r["manufacturer"] or "", r["key"], r["status"], r["detail"]) for r in rows])
    if any(r["status"] in ("wrong key", "mac mismatch", "unsupported") for r in rows):
        raise click.exceptions.Exit(EXIT_FAILURE)
