"""``sonocli readout``: read meters on the wired M-Bus and print their records like ``sonocli decode``.

``--all`` reads every active M-Bus meter of the meter list (device_handle.cfg) with the addressing mode it
was found with. It does not scan implicitly when the list is empty (a scan can take an hour): it stops
with a hint to run ``sonocli scan --save`` first. A readout of many meters goes on past a dead meter;
each failure is one line on stderr and the exit code is 3 (partial) or 1 (all failed).
"""

from __future__ import annotations

from typing import Any

import click

from sonocli.cli.output import emit_json, print_records, progress
from sonocli.cli.scan import BAUD_HELP, bus_setup, meter_row, open_master
from sonocli.errors import PartialFailure, SonoError, TimeoutError_, UsageError


def _target_meters(ctx: click.Context, root: Any, address: int | None, ident: str | None, all_: bool) -> list[Any]:
    from sonocli.model import AddressMode, Interface, Meter

    chosen = sum((address is not None, ident is not None, all_))
    if chosen != 1:
        raise UsageError("give exactly one of --address N, --id SECONDARY or --all")
    if address is not None:
        return [Meter(Interface.MBUS, primary_address=address, address_mode=AddressMode.PRIMARY)]
    if ident is not None:
        return [_meter_from_id(ident)]
    from sonocli.config.device_handle import load_meter_list
    from sonocli.config.layout import RootLayout

    path = RootLayout(root).device_handle
    meters = load_meter_list(path).meters if path.exists() else ()
    wired = [m for m in meters if m.interface is Interface.MBUS and m.active]
    if not wired:
        raise UsageError(
            f"the meter list {path} has no active M-Bus meters",
            hint="run 'sonocli scan --port URL --save' first",
        )
    return wired


def _meter_from_id(text: str) -> Any:
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


def reading_to_dict(reading: Any) -> dict[str, Any]:
    from sonocli.codecs import mbus_link
    from sonocli.codecs.mbus_app import decode_application
    from sonocli.outputs.records_json import header_to_dict, value_to_dict

    header = None
    if reading.raw_frames:
        frame, _ = mbus_link.decode_frame(reading.raw_frames[0])
        if isinstance(frame, mbus_link.LongFrame):
            header = header_to_dict(decode_application(frame.ci, frame.data).header)
    return {
        "meter": meter_row(reading.meter),
        "taken_at": reading.taken_at.isoformat(),
        "telegrams": len(reading.raw_frames),
        "header": header,
        "records": [value_to_dict(v) for v in reading.values],
    }


def _print_reading(data: dict[str, Any]) -> None:
    meter = data["meter"]
    where = (
        f"primary address {meter['primary_address']}" if meter["address_mode"] == "primary" else "secondary addressing"
    )
    title = f"{meter['device_id']} ({where}), {data['telegrams']} telegram(s)"
    print_records(title, data["records"])


@click.command("readout")
@click.option("--port", "port", metavar="URL", help="Port URL [default: chip.ini MBUS_PORT].")
@click.option("--address", type=click.IntRange(0, 250), help="Read the meter at this primary address.")
@click.option("--id", "ident", metavar="SECONDARY", help="Read by secondary address: 8 digits or MAN-SERIAL-VV-MM.")
@click.option("--all", "all_", is_flag=True, help="Read every active M-Bus meter of the meter list.")
@click.option("--baud", type=int, help=f"Baud rate: {BAUD_HELP} [default: chip.ini MBUS_BAUDRATE, 2400].")
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
    address: int | None,
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
    version, medium, primary_address, address_mode}, "taken_at", "telegrams", "header": {...},
    "records": [...]} where header and records are shaped as in `sonocli decode --json`. Meters that
    failed appear as {"meter": {...}, "error": "..."}.

    Exit codes: 0 all read, 1 none read, 3 some read (each failure is one line on stderr).
    """
    from sonocli.engine.master import read_all

    setup = bus_setup(ctx, port, baud, max_retry=retries)
    targets = _target_meters(ctx, setup.root, address, ident, all_)
    master = open_master(setup)
    try:
        if len(targets) > 1:
            with progress("readout", len(targets)) as bar:
                results = read_all(master, targets, bar)
        else:
            results = read_all(master, targets)
    finally:
        master.link.close()
    from sonocli.cli.recording import ReadingRecorder

    with ReadingRecorder(setup.root, store) as recorder:
        recorder.record([r.reading for r in results if r.reading is not None])
    failures = [r for r in results if r.reading is None]
    if len(targets) == 1 and failures and isinstance(failures[0].error, SonoError):
        raise failures[0].error
    out: list[dict[str, Any]] = []
    for result in results:
        if result.reading is not None:
            out.append(reading_to_dict(result.reading))
        else:
            out.append({"meter": meter_row(result.meter), "error": str(result.error)})
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
