"""``sonocli scan``: search the wired M-Bus for meters, print them, and add them to the meter list.

Settings come from chip.ini under the root (MBUS_* of Table 25); options override them for this run.
``--port`` defaults to chip.ini MBUS_PORT. With ``--save`` the meters found are merged into
device_handle.cfg the way the device does it: additively, meters already listed stay as configured, new
ones are added up to METER_MAXDEVICECOUNT (a missing root is created first).

The scan is an inventory (sonocli.engine.inventory): with ``--save`` or ``--against FILE`` it reports the
expected meters that did not answer, the new ones and the changed ones; ``--resume`` continues a scan
that was interrupted. This module only parses, calls the engine and prints.
"""

from __future__ import annotations

from pathlib import Path

import click

from sonocli.cli.common import engine_for, meter_row
from sonocli.cli.output import emit_json, print_table, progress
from sonocli.engine.inventory import Inventory, state_path
from sonocli.errors import EXIT_PARTIAL
from sonocli.registry import baud_help

# the command's mode names -> MBUS_SCANMODE (chip.ini, Table 25)
MODES = {
    "primary": "PRIMARYSCAN",
    "secondary": "SECONDARYSCAN",
    "secondary-reverse": "SECONDARYSCANREVERSE",
    "secondary-alloc": "SECONDARYSCANALLOC",
    "secondary-alloc-reverse": "SECONDARYSCANALLOCREVERSE",
}


def _list_status(device_id: str, added: set[str], listed: set[str], values: dict[str, int]) -> str:
    if device_id in added:
        count = values.get(device_id)
        return "added" if count is None else f"added, {count} values"
    return "listed" if device_id in listed else "not added (list full: METER_MAXDEVICECOUNT)"


@click.command("scan")
@click.option("--port", "port", metavar="URL", help="Port URL [default: chip.ini MBUS_PORT].")
@click.option("--mode", type=click.Choice(tuple(MODES)), help="Scan mode [default: chip.ini MBUS_SCANMODE].")
@click.option("--baud", type=int, help=f"Baud rate: {baud_help()} [default: chip.ini MBUS_BAUDRATE, 2400].")
@click.option("--mask", metavar="8 DIGITS", help="Secondary address mask, F = any digit (MBUS_SECMASKSERIAL).")
@click.option("--first", type=click.IntRange(0, 250), help="First primary address (MBUS_MINPRIMARYADDRESS).")
@click.option("--last", type=click.IntRange(0, 250), help="Last primary address (MBUS_MAXPRIMARYADDRESS).")
@click.option("--retries", type=click.IntRange(0, 255), help="Retries per probe (MBUS_MAXRETRY).")
@click.option("--save", is_flag=True, help="Add the meters found to the meter list and report the listed ones "
              "that did not answer, the new and the changed ones.")
@click.option("--against", "against", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path),
              help="Compare with an installation list: CSV id[,manufacturer,version,medium], header optional.")
@click.option("--resume", is_flag=True, help="Continue the interrupted scan saved under the root (same port, "
              "mode and mask).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: mode, probes, wire time, meters, added, "
              "summary, missing, new, changed.")
@click.pass_context
def scan(
    ctx: click.Context,
    port: str | None,
    mode: str | None,
    baud: int | None,
    mask: str | None,
    first: int | None,
    last: int | None,
    retries: int | None,
    save: bool,
    against: Path | None,
    resume: bool,
    as_json: bool,
) -> None:
    """Search the wired M-Bus for meters.

    Modes: primary (SND_NKE to each address of the range), secondary (wildcard tree search over the
    secondary address), secondary-reverse (ID digits from last to first: best for consecutive serial
    numbers), and the -alloc variants (give each meter found a free primary address). Scans are additive:
    with --save, meters already in the list stay as they are, and each meter added is read once so its
    value entries are in the list.

    Inventory: --save compares the scan with the meter list as it was, --against FILE with an installation
    list (CSV, one meter a line: id[,manufacturer[,version[,medium]]], version and medium in hex as in the
    Device-ID; an optional header names the columns; '#' starts a comment). Reported: missing (expected,
    did not answer), new (not expected), changed (same ID, another version or medium). Only meters the scan
    could see are expected: those matching --mask; for a primary scan the listed meters in the range (an
    installation list names no primary addresses: all of it is expected).

    Every scan saves its progress under the root (ext/scan_state.json) as it goes and removes it when
    done; --resume continues an interrupted scan with the same port, mode and mask without probing again
    what it already learned. The summary (found, missing, unresolved, probes, wire time) is logged as one
    INFO line (-v) for cron.

    Exit 0 also when nothing was found; exit 3 when a collision could not be explained (each is named in
    a warning, with its mask or address), an expected meter is missing, or a meter answered the scan but
    not its first readout; exit 2 for a bad installation list line or nothing to resume.
    """
    engine = engine_for(ctx)
    try:
        # every option is checked by the chip.ini schema's rule, as `config set` checks the parameter
        settings = engine.master_settings(
            baudrate=baud, max_retry=retries, secmask_serial=mask, min_primary=first, max_primary=last
        )
        scan_mode = MODES[mode] if mode else settings.scan_mode
        if scan_mode == "PRIMARYSCAN":
            bar_title, total = "primary scan", settings.max_primary - settings.min_primary + 1
        else:
            bar_title, total = "secondary scan", None
        try:
            with progress(bar_title, total) as bar:
                inventory = engine.scan_inventory(url=port, mode=scan_mode, settings=settings, save=save,
                                                  against=against, resume=resume, on_progress=bar)
        except KeyboardInterrupt:
            click.echo(
                f"sonocli: scan interrupted; its progress is saved in {state_path(engine)}: continue it with "
                "`sonocli scan --resume` (same --port, --mode and --mask)",
                err=True,
            )
            ctx.exit(130)
    finally:
        engine.close()
    outcome = inventory.outcome
    result = outcome.result
    added_ids = {m.device_id for m in outcome.added}
    listed_ids = {m.device_id for m in outcome.known}
    values = {r.meter.device_id: len(r.meter.values) for r in outcome.recorded.readings}
    if as_json:
        emit_json(
            {
                "mode": outcome.mode,
                "port": outcome.port,
                "probes": result.probes,
                "wire_seconds": round(result.elapsed, 3),
                "meters": [meter_row(m) for m in result.meters],
                "unresolved": result.collisions_unresolved,
                "added": [m.device_id for m in outcome.added],
                "limit_reached": result.stopped_at_limit,
                "diagnosis": result.diagnosis,
                "values": values,
                "reference": inventory.reference,
                "missing": [e.to_json() for e in inventory.diff.missing] if inventory.missing_known else None,
                "new": [m.device_id for m in inventory.diff.new] if inventory.reference else [],
                "changed": [c.to_json() for c in inventory.diff.changed],
                "unreadable": [{"device_id": d, "error": why} for d, why in inventory.unreadable],
                "resumed_probes": inventory.resumed,
                "summary": inventory.summary(),
            }
        )
        _finish(ctx, inventory, as_json=True)
        return
    rows = [
        (
            m.device_id,
            m.primary_address,
            m.address_mode.name.lower(),
            _list_status(m.device_id, added_ids, listed_ids, values) if save else "",
        )
        for m in result.meters
    ]
    title = f"{len(result.meters)} meters, {result.probes} probes, {result.elapsed:.1f} s on the wire"
    if inventory.resumed:
        title += f" ({inventory.resumed} probes from the saved scan)"
    print_table(title, ("Device-ID", "primary", "addressing", "list"), rows)
    if inventory.reference:
        _print_inventory(inventory)
    for text in result.collisions_unresolved:
        if ":" in text:  # an unreadable meter, with its own explanation
            click.echo(f"sonocli: warning: {'' if text.startswith('primary') else 'mask '}{text}", err=True)
            continue
        click.echo(
            f"sonocli: warning: unresolved collision at {text} (duplicate addresses, or a wrong baud rate?)",
            err=True,
        )
    if not result.meters and not result.collisions_unresolved:
        click.echo(
            f"sonocli: note: no meter answered at {settings.baudrate} baud; check the wiring and the "
            "baud rate (--baud, MBUS_BAUDRATE)",
            err=True,
        )
    if result.stopped_at_limit:
        click.echo("sonocli: warning: stopped at METER_MAXDEVICECOUNT", err=True)
    _finish(ctx, inventory, as_json=False)


def _print_inventory(inventory: Inventory) -> None:
    """The comparison as a table: one row per missing, new and changed meter."""
    diff = inventory.diff
    rows: list[tuple[str, str, str, str]] = []
    for want in diff.missing:
        label = "-".join(part for part in (want.manufacturer, want.id) if part)
        rows.append(("missing", label, want.source, "expected, did not answer"))
    for meter in diff.new:
        rows.append(("new", meter.device_id, "", f"not in the {_reference_name(inventory)}"))
    for change in diff.changed:
        rows.append(("changed", change.meter.device_id, change.expected.source, ", ".join(change.what)))
    missing = f"{len(diff.missing)} missing" if inventory.missing_known else "missing unknown (scan stopped early)"
    title = (f"against the {_reference_name(inventory)}: {missing}, {len(diff.new)} new, "
             f"{len(diff.changed)} changed")
    print_table(title, ("status", "meter", "expected as", "detail"), rows)


def _reference_name(inventory: Inventory) -> str:
    return "meter list" if inventory.reference == "meter list" else f"installation list {inventory.reference}"


def _finish(ctx: click.Context, inventory: Inventory, *, as_json: bool) -> None:
    """The diagnosis of a noisy bus and failed first readouts as warnings; exit 3 (partial) while a
    collision is unexplained, an expected meter is missing or a meter answered but could not be read."""
    result = inventory.result
    if result.diagnosis:
        click.echo(f"sonocli: warning: {result.diagnosis}", err=True)
    for device_id, why in inventory.unreadable:
        why = why.removeprefix(f"{device_id}: ")
        click.echo(f"sonocli: warning: {device_id} answered its selection but not its readout: {why}", err=True)
    if inventory.diff.missing and as_json:  # the table lists them otherwise
        click.echo(f"sonocli: warning: {len(inventory.diff.missing)} expected meter(s) did not answer", err=True)
    if inventory.partial:
        ctx.exit(EXIT_PARTIAL)
