"""``sonocli scan``: search the wired M-Bus for meters, print them, and add them to the meter list.

Settings come from chip.ini under the root (MBUS_* of Table 25); options override them for this run.
``--port`` defaults to chip.ini MBUS_PORT. With ``--save`` the meters found are merged into
device_handle.cfg the way the device does it: additively, meters already listed stay as configured, new
ones are added up to METER_MAXDEVICECOUNT (a missing root is created first).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from sonocli.cli.context import CliContext
from sonocli.cli.output import emit_json, print_table, progress
from sonocli.errors import UsageError

MODES = {
    "primary": "PRIMARYSCAN",
    "secondary": "SECONDARYSCAN",
    "secondary-reverse": "SECONDARYSCANREVERSE",
    "secondary-alloc": "SECONDARYSCANALLOC",
    "secondary-alloc-reverse": "SECONDARYSCANALLOCREVERSE",
}
BAUD_HELP = "300, 600, 1200, 2400, 4800, 9600, 19200 or 38400"


@dataclass
class BusSetup:
    """What scan and readout share: the root, chip.ini, the port URL and the master settings."""

    root: Path
    ini: Any
    port: str
    settings: Any


def bus_setup(ctx: click.Context, port: str | None, baud: int | None, **overrides: Any) -> BusSetup:
    from sonocli.config.chipini import ChipIni
    from sonocli.config.layout import RootLayout
    from sonocli.engine.master import MasterSettings

    obj = ctx.find_object(CliContext) or CliContext()
    root = obj.root
    ini = ChipIni.load(RootLayout(root).chip_ini)
    url = port or str(ini.get("MBUS_PORT") or "").strip()
    if not url:
        raise UsageError(
            "no port given: use --port URL (/dev/ttyUSB0, socket://host:port, sim://demo)",
            hint="or set MBUS_PORT in chip.ini (sonocli config set MBUS_PORT /dev/ttyUSB0)",
        )
    settings = MasterSettings.from_chip_ini(ini, baudrate=baud, **overrides)
    return BusSetup(root=root, ini=ini, port=url, settings=settings)


def open_master(setup: BusSetup) -> Any:
    from sonocli.engine.master import Master
    from sonocli.transports import open_link

    s = setup.settings
    port = open_link(setup.port, s.baudrate, s.parity, s.databits, s.stopbits)
    return Master(port, s)


def meter_row(meter: Any) -> dict[str, Any]:
    return {
        "device_id": meter.device_id,
        "serial": meter.serial,
        "manufacturer": meter.manufacturer,
        "version": meter.version,
        "medium": meter.medium,
        "primary_address": meter.primary_address,
        "address_mode": meter.address_mode.name.lower(),
    }


def listed_wired(root: Path) -> list[Any]:
    """The wired meters of device_handle.cfg (none when there is no list yet): ALLOC must not reuse or
    change their primary addresses."""
    from sonocli.config.device_handle import load_meter_list
    from sonocli.config.layout import RootLayout
    from sonocli.model import Interface

    path = RootLayout(root).device_handle
    if not path.exists():
        return []
    return [m for m in load_meter_list(path).meters if m.interface is Interface.MBUS]


def save_found(root: Path, found: list[Any], max_devices: int) -> list[Any]:
    """Merge into device_handle.cfg under the list's lock; returns the meters actually added."""
    from sonocli.config.device_handle import load_meter_list, save_meter_list
    from sonocli.config.layout import RootLayout, init_root
    from sonocli.config.locking import locked
    from sonocli.engine.meterlist import merge_found

    layout = RootLayout(root)
    if not layout.device_handle.exists():
        init_root(root)
    with locked(layout.device_handle):
        meters = load_meter_list(layout.device_handle)
        merged, added = merge_found(meters, found, max_devices)
        if added:
            save_meter_list(layout.device_handle, merged)
    return list(added)


def _list_status(device_id: str, added: set[str], listed: set[str]) -> str:
    if device_id in added:
        return "added"
    return "listed" if device_id in listed else "not added (list full: METER_MAXDEVICECOUNT)"


@click.command("scan")
@click.option("--port", "port", metavar="URL", help="Port URL [default: chip.ini MBUS_PORT].")
@click.option("--mode", type=click.Choice(tuple(MODES)), help="Scan mode [default: chip.ini MBUS_SCANMODE].")
@click.option("--baud", type=int, help=f"Baud rate: {BAUD_HELP} [default: chip.ini MBUS_BAUDRATE, 2400].")
@click.option("--mask", metavar="8 DIGITS", help="Secondary address mask, F = any digit (MBUS_SECMASK_SERIAL).")
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
    with --save, meters already in the list stay as they are. Exit 0 also when nothing was found.
    """
    from sonocli.engine.master import check_mask
    from sonocli.engine.scan import primary_scan, secondary_scan

    if mask is not None:
        mask = check_mask(mask)
    overrides: dict[str, Any] = {"max_retry": retries}
    if mask is not None:
        overrides["secmask_serial"] = mask
    if first is not None:
        overrides["min_primary"] = first
    if last is not None:
        overrides["max_primary"] = last
    setup = bus_setup(ctx, port, baud, **overrides)
    scan_mode = MODES[mode] if mode else setup.settings.scan_mode
    if scan_mode not in MODES.values():
        raise UsageError(f"MBUS_SCANMODE {scan_mode!r} is not one of {', '.join(MODES.values())}")
    alloc = "ALLOC" in scan_mode
    # The meter list counts against METER_MAXDEVICECOUNT when the scan adds to it; ALLOC must know it too.
    known = listed_wired(setup.root) if save or alloc else []
    master = open_master(setup)
    try:
        s = setup.settings
        if scan_mode == "PRIMARYSCAN":
            total = s.max_primary - s.min_primary + 1
            with progress("primary scan", total) as bar:
                result = primary_scan(master, known=known, on_progress=bar)
        else:
            with progress("secondary scan", None) as bar:
                result = secondary_scan(
                    master,
                    reverse=scan_mode.endswith("REVERSE"),
                    alloc=alloc,
                    known=known,
                    on_progress=bar,
                )
    finally:
        master.link.close()
    added = save_found(setup.root, result.meters, setup.settings.max_device_count) if save else []
    added_ids = {m.device_id for m in added}
    listed_ids = {m.device_id for m in known}
    if as_json:
        emit_json(
            {
                "mode": scan_mode,
                "port": setup.port,
                "probes": result.probes,
                "wire_seconds": round(result.elapsed, 3),
                "meters": [meter_row(m) for m in result.meters],
                "unresolved": result.collisions_unresolved,
                "added": [m.device_id for m in added],
                "limit_reached": result.stopped_at_limit,
            }
        )
        return
    rows = [
        (
            m.device_id,
            m.primary_address,
            m.address_mode.name.lower(),
            _list_status(m.device_id, added_ids, listed_ids) if save else "",
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
            f"sonocli: note: no meter answered at {setup.settings.baudrate} baud; check the wiring and the "
            "baud rate (--baud, MBUS_BAUDRATE)",
            err=True,
        )
    if result.stopped_at_limit:
        click.echo("sonocli: warning: stopped at METER_MAXDEVICECOUNT", err=True)
