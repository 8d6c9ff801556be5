"""``sonocli readout``: read meters on the wired M-Bus and print their records like ``sonocli decode``.

``--all`` reads every active M-Bus meter of the meter list (device_handle.cfg) with the addressing mode it
was found with. It does not scan implicitly when the list is empty (a scan can take an hour): it stops
with a hint to run ``sonocli scan --save`` first. A readout of many meters goes on past a dead meter;
each failure is one line on stderr and the exit code is 3 (partial) or 1 (all failed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from sonocli.cli.common import engine_for
from sonocli.cli.output import emit_json, print_records, progress
from sonocli.errors import PartialFailure, SonoError, TimeoutError_, UsageError
from sonocli.registry import baud_help

if TYPE_CHECKING:
    from sonocli.engine.core import Engine, Recorded
    from sonocli.model import Meter, Reading


def _target_meters(engine: Engine, address: int | None, ident: str | None, all_: bool) -> list[Meter]:
    from sonocli.model import AddressMode, Interface, Meter

    chosen = sum((address is not None, ident is not None, all_))
    if chosen != 1:
        raise UsageError("give exactly one of --address N, --id SECONDARY or --all")
    if address is not None:
        return [Meter(Interface.MBUS, primary_address=address, address_mode=AddressMode.PRIMARY)]
    if ident is not None:
        return [_meter_from_id(ident)]
    wired = engine.wired_meters()
    if not wired:
        raise UsageError(
            f"the meter list {engine.layout.device_handle} has no active M-Bus meters",
            hint="run 'sonocli scan --port URL --save' first",
        )
    return wired


def _meter_from_id(text: str) -> Meter:
    """8 digits (F = any) or a Device-ID ``MAN-SERIAL-VV-MM`` (version and medium in hex)."""
    from sonocli.engine.master import check_mask
    from sonocli.model import AddressMode, Interface, Meter

    parts = text.strip().split("-")
    try:
        if len(parts) == 1:
            return Meter(Interface.MBUS, serial=check_mask(parts[0]), address_mode=AddressMode.SECONDARY)
        if len(parts) == 4 and len(parts[0]) == 3 and parts[0].isalpha():
            return Meter(
                Interface.MBUS,
                serial=check_mask(parts[1]),
                manufacturer=parts[0].upper(),
                version=int(parts[2], 16),
                medium=int(parts[3], 16),
                address_mode=AddressMode.SECONDARY,
            )
    except (UsageError, ValueError):
        pass
    raise UsageError(
        f"--id {text!r} is not a secondary address: "
        "give 8 digits (F = any) or MAN-SERIAL-VV-MM, e.g. KAM-12345678-08-04"
    )


def reading_to_dict(reading: Reading, target: Meter, limited: bool = False) -> dict[str, Any]:
    """A recorded reading as ``--json`` prints it: the meter (the list's entry, with the addressing it was
    read by: ``target``), then time, telegrams, header and records (indexed to the meter list, from
    sonocli.engine.decoding) and whether its value list is limited (the "*" of ``meters list``)."""
    from sonocli.engine.messages import reading_message  # the shape MQTT messages carry too
    from sonocli.model.valueclass import replace

    meter = replace(reading.meter, primary_address=target.primary_address, address_mode=target.address_mode)
    return {**reading_message(reading, meter), "limited": limited}


def _warn_recorded(recorded: Recorded) -> None:
    """The "*" of the meters list and the layout-change notes, as warning lines on stderr."""
    if recorded.limited:
        ids = ", ".join(dict.fromkeys(recorded.limited))
        click.echo(
            "sonocli: warning: value list limited by maxvaluecount/METER_MAXVALUECOUNT for "
            f"{len(dict.fromkeys(recorded.limited))} meter(s): {ids} (marked * in meters list)",
            err=True,
        )
    for note in recorded.notes:
        click.echo(f"sonocli: warning: {note}", err=True)


def _print_reading(data: dict[str, Any]) -> None:
    meter = data["meter"]
    where = (
        f"primary address {meter['primary_address']}" if meter["address_mode"] == "primary" else "secondary addressing"
    )
    title = f"{meter['device_id']} ({where}), {data['telegrams']} telegram(s)"
    print_records(title, data["records"])


def _mbus_address(ctx: click.Context, text: str | None) -> int | None:
    """``--address`` as M-Bus takes it: a primary address 0..250 (DLDE takes a device address text)."""
    if text is None:
        return None
    option = next(p for p in ctx.command.params if p.name == "address")
    given: Any = text  # IntRange converts text, as it does on the command line
    return int(click.IntRange(0, 250).convert(given, option, ctx))


def _readout_dlde(ctx: click.Context, port: str | None, address: str | None, ident: str | None, all_: bool,
                  baud: int | None, store: bool, as_json: bool) -> None:
    """``readout --protocol dlde``: one IEC 62056-21 meter (point to point, or ``--address`` on RS-485)."""
    from sonocli.engine.dlde import DldeSettings, read_dlde, readout_to_dict

    if ident is not None or all_:
        raise UsageError("--protocol dlde reads one meter: give --port URL and, on a multi-drop line, --address A",
                         hint="the daemon reads every DLDE meter of the meter list on DLDE_PORT")
    engine = engine_for(ctx)
    try:
        settings = DldeSettings.from_engine(engine, max_baudrate=baud)
        result, recorded = read_dlde(engine, url=port, address=address, settings=settings, store=store)
    finally:
        engine.close()
    _warn_recorded(recorded)
    from sonocli.engine.messages import dlde_message

    data = dlde_message(result.reading, readout_to_dict(result))
    if as_json:
        emit_json([data])
    else:
        print_records(f"{data['meter']['device_id']} ({data['identification']}, mode {data['mode']}, "
                      f"{data['baudrate']} baud)", data["records"])


@click.command("readout")
@click.option("--port", "port", metavar="URL", help="Port URL [default: chip.ini MBUS_PORT; DLDE_PORT for dlde].")
@click.option(
    "--protocol",
    type=click.Choice(["mbus", "dlde"]),
    default="mbus",
    show_default=True,
    help="mbus: wired M-Bus; dlde: an IEC 62056-21 meter (optical head or RS-485; modes A, B, C).",
)
@click.option("--address", metavar="A", help="M-Bus: the primary address 0..250; DLDE: the device address.")
@click.option("--id", "ident", metavar="SECONDARY", help="Read by secondary address: 8 digits or MAN-SERIAL-VV-MM.")
@click.option("--all", "all_", is_flag=True, help="Read every active M-Bus meter of the meter list.")
@click.option("--baud", type=int, help=f"Baud rate: {baud_help()} [default: chip.ini MBUS_BAUDRATE, 2400].")
@click.option("--retries", type=click.IntRange(0, 255), help="Retries per request (MBUS_MAXRETRY).")
@click.option(
    "--store/--no-store",
    default=True,
    show_default=True,
    help="Keep the readings in the root's readings store (ext/sonocli.db) and CSV log, as the daemon does.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (see below).")
@click.pass_context
def readout(
    ctx: click.Context,
    port: str | None,
    protocol: str,
    address: str | None,
    ident: str | None,
    all_: bool,
    baud: int | None,
    retries: int | None,
    store: bool,
    as_json: bool,
) -> None:
    """Read meters on the wired M-Bus and print their records.

    The sequence follows chip.ini: MBUS_RESETMODE, MBUS_REQUESTMODE, MBUS_MAXMULTIPAGE (multi-telegram
    readouts are joined), MBUS_SELECTMASK, timeouts and retries.

    --json prints a list with one object per meter read: {"meter": {device_id, serial, manufacturer,
    version, medium: {code, text}, interface, primary_address, address_mode}, "time" (ISO 8601 UTC),
    "telegrams", "header": {...}, "records": [...], "limited"} where header and records are shaped as in
    `sonocli decode --json`, the records indexed to the meter list's value entries (0-based, -1: not in
    the list), and limited tells whether the meter has more records than maxvaluecount/METER_MAXVALUECOUNT
    allows. Meters that failed appear as {"meter": {...}, "error": {"message", "kind"}}, also with
    --address or --id (then the exit code is the error's). --all also records the active manual S0/DLDE
    meters' set values. The schema is in sonocli(1), JSON SCHEMA.

    --protocol dlde reads one IEC 62056-21 meter (sign-on /?!, or /?A! with --address A on RS-485; the baud
    switch of modes B and C up to --baud, default DLDE_BAUDRATE): --json prints [{"meter", "protocol",
    "identification", "mode", "baudrate", "time", "records"}], each record with "obis": "1-0:1.8.0*255".

    Exit codes: 0 all read, 1 none read, 3 some read (each failure is one line on stderr).
    """
    if protocol == "dlde":
        _readout_dlde(ctx, port, address, ident, all_, baud, store, as_json)
        return
    primary = _mbus_address(ctx, address)
    engine = engine_for(ctx)
    try:
        settings = engine.master_settings(baudrate=baud, max_retry=retries)
        targets = _target_meters(engine, primary, ident, all_)
        if len(targets) > 1:
            with progress("readout", len(targets)) as bar:
                results, recorded = engine.readout(targets, url=port, settings=settings, store=store, on_progress=bar)
        else:
            results, recorded = engine.readout(targets, url=port, settings=settings, store=store)
        if all_ and store:  # the manual S0/DLDE meters' set values go with a readout of the whole list
            engine.read_manual()
    finally:
        engine.close()
    from sonocli.engine.meterjson import failed_meter

    failures = [r for r in results if r.reading is None]
    if len(targets) == 1 and failures and isinstance(failures[0].error, SonoError):
        if as_json:  # a script still gets the meter, with what went wrong
            emit_json([failed_meter(failures[0].meter, failures[0].error)])
        raise failures[0].error
    _warn_recorded(recorded)
    limited = {device_id.upper() for device_id in recorded.limited}
    out: list[dict[str, Any]] = []
    for result in results:
        if result.reading is not None:
            out.append(reading_to_dict(result.reading, result.meter, result.reading.meter.device_id.upper() in limited))
        else:
            out.append(failed_meter(result.meter, result.error or "no answer"))
    if as_json:
        emit_json(out)
    else:
        for item in out:
            if "records" in item:
                _print_reading(item)
    for result in failures:
        click.echo(f"sonocli: error: {result.error}", err=True)
    if failures:
        frames = failures[-1].error.frames if isinstance(failures[-1].error, SonoError) else ()
        if len(failures) == len(results):
            raise TimeoutError_(f"none of {len(results)} meters answered", frames=frames)
        raise PartialFailure(f"{len(failures)} of {len(results)} meters failed", frames=frames)
