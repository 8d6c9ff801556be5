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


@keys.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["auto", "csv", "json", "wmbusmeters", "kem"]), default="auto",
              show_default=True, help="Key file format (auto: told by the content).")
@click.option("--password", default=None, help="Password of a Kamstrup KEM file (its content is encrypted).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def import_keys(ctx: click.Context, files: tuple[Path, ...], fmt: str, password: str | None, as_json: bool) -> None:
    """Set the keys of FILES on the meter list; unknown meters are created.

    Each FILE is CSV ('id,key' per line), JSON ({"id": "key"} or [{"id", "key"}]), a wmbusmeters meter
    file (id=, key= lines; several at once: /etc/wmbusmeters.d/*) or a Kamstrup KEM/KEM2 export (XML or
    zip, with --password). Every meter is reported: set, or refused and why. A meter given two different
    keys is not imported (exit 2); other refusals exit 3 when something was imported, else 2.
    """
    from sonocli.cli.common import engine_for, mask_key
    from sonocli.cli.output import emit_json, print_table
    from sonocli.engine.keys import KeyImported, apply_keys, check_key, latest_telegrams, merge_key_files, read_key_file

    parsed = []
    for file in files:
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise UsageError(f"{file}: cannot read it ({exc.strerror or exc})") from None
        parsed.append(read_key_file(data, str(file), fmt=fmt, password=password))
    result = merge_key_files(parsed)
    engine = engine_for(ctx)
    visible = _visible(engine)
    errors = [item.line for item in result.refused]
    for line in errors:
        click.echo(f"sonocli: error: {line}", err=True)
    entries = [(e.id, e.key) for e in result.entries]
    done: list[KeyImported] = engine.update_meters(partial(apply_keys, entries=entries)) if entries else []
    latest = latest_telegrams(engine) if done else {}
    where = {e.id: e.where for e in result.entries}
    results: list[dict[str, Any]] = []
    for item in done:
        status, detail = check_key(item.id, item.key, latest.get(item.id))
        if status == "unsupported":
            click.echo(f"sonocli: warning: meter {item.id}: key set, but {detail}", err=True)
        results.append({"id": item.id, "action": item.action, "key": mask_key(item.key, visible),
                        "source": where.get(item.id, ""), "check": status, "detail": detail})
    refused = [{"id": r.id, "source": r.where, "reason": r.reason} for r in result.refused]
    if as_json:
        emit_json({"format": result.format, "imported": results, "refused": refused, "errors": errors})
    else:
        rows = [(r["id"], r["action"], r["key"], f"{r['check']}: {r['detail']}") for r in results]
        rows += [(r["id"] or "?", "refused", "", f"{r['source']}: {r['reason']}") for r in refused]
        print_table(f"keys imported into {engine.layout.device_handle}", ("ID", "Action", "Key", "Detail"), rows)
    if result.conflicts or (errors and not entries):
        raise click.exceptions.Exit(EXIT_USAGE)
    if errors:
        raise click.exceptions.Exit(EXIT_PARTIAL)


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
