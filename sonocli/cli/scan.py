"""``sonocli scan``: search the wired M-Bus for meters, print them, and add them to the meter list.

Settings come from chip.ini under the root (MBUS_* of Table 25); options override them for this run.
``--port`` defaults to chip.ini MBUS_PORT. With ``--save`` the meters found are merged into
device_handle.cfg the way the device does it: additively, meters already listed stay as configured, new
ones are added up to METER_MAXDEVICECOUNT (a missing root is created first).
"""

from __future__ import annotations

import click

from sonocli.cli.common import engine_for, meter_row
from sonocli.cli.output import emit_json, print_table, progress
from sonocli.engine.scan import ScanResult
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
@click.option("--save", is_flag=True, help="Add the meters found to the meter list (device_handle.cfg).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: mode, probes, wire time, meters, added.")
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
    as_json: bool,
) -> None:
    """Search the wired M-Bus for meters.

    Modes: primary (SND_NKE to each address of the range), secondary (wildcard tree search over the
    secondary address), secondary-reverse (ID digits from last to first: best for consecutive serial
    numbers), and the -alloc variants (give each meter found a free primary address). Scans are additive:
    with --save, meters already in the list stay as they are, and each meter added is read once so its
    value entries are in the list. Exit 0 also when nothing was found; exit 3 when a collision could not
    be explained (meters may be missing: each is named in a warning, with its mask or address).
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
        with progress(bar_title, total) as bar:
            outcome = engine.scan(url=port, mode=scan_mode, settings=settings, save=save, on_progress=bar)
    finally:
        engine.close()
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
            }
        )
        _finish(ctx, result)
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
    print_table(title, ("Device-ID", "primary", "addressing", "list"), rows)
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
    _finish(ctx, result)


def _finish(ctx: click.Context, result: ScanResult) -> None:
    """The diagnosis of a noisy bus as a warning; exit 3 (partial) while a collision is unexplained."""
    if result.diagnosis:
        click.echo(f"sonocli: warning: {result.diagnosis}", err=True)
    if result.partial:
        ctx.exit(EXIT_PARTIAL)
