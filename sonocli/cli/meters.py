"""``sonocli meters``: the meter list (device_handle.cfg) as the web page's tab Meter shows and edits it,
and the temporary list of heard wM-Bus meters (guide 5.1.2) that wait there for the engineer.

The rules (what may be added, edited, deleted, activated) live in sonocli.engine.meterlist; this module
parses options and hands each change to ``engine.update_meters``, which applies the rule to the list as it
is on disk under the file lock (references resolved there) and saves it atomically. A rejected change
leaves the file untouched; parallel writers (``keys import``, the daemon) never lose each other's changes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from sonocli.cli.common import active_mark, engine_for, meter_dict, meter_table, value_description, value_dict
from sonocli.cli.output import FIXED, TEXT, Column, display_unit, emit_json, print_table

if TYPE_CHECKING:
    from sonocli.engine.core import Engine

INTERFACES = ("S0", "DLDE", "M-Bus", "wM-Bus")


# ------------------------------------------------------------------------------------------ helpers
def _bad(option: str, exc: Exception) -> Exception:
    from sonocli.errors import UsageError

    return UsageError(f"{option}: {exc}")


def _parse(option: str, parser: Callable[[str], Any], text: str | None) -> Any:
    if text is None:
        return None
    try:
        return parser(text)
    except (ValueError, KeyError) as exc:
        raise _bad(option, exc) from None


def _key(text: str) -> bytes | None:
    from sonocli.engine.keys import parse_key_field

    return parse_key_field(text)


def _scale(text: str) -> int:
    from sonocli.engine.keys import parse_scale

    return parse_scale(text)


def _medium(text: str) -> int:
    from sonocli.engine.keys import parse_medium

    return parse_medium(text)


def _statuses(engine: Engine) -> dict[str, Any]:
    """The "*" flags and layout notes readouts left; none yet when nothing was ever recorded on this root.

    A root without a database is not given one by a command that only shows the list.
    """
    if not engine.layout.database.exists():
        return {}
    return engine.meter_statuses()


# ------------------------------------------------------------------------------------------ commands
@click.group("meters")
def meters() -> None:
    """Show and edit the meter list (device_handle.cfg, tab Meter).

    METER is a list position (3), a serial (30101198) or a Device-ID (DFS-30101198-01-04); a value is
    METER/N (N counts from 1 within the meter).
    """


@meters.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """All meters, in list order ("*" in State: the value list is limited by maxvaluecount/METER_MAXVALUECOUNT)."""
    from sonocli.cli.common import keys_visible

    engine = engine_for(ctx)
    meter_list = engine.meter_list()
    statuses = _statuses(engine)
    show_keys = keys_visible(engine.chip)
    if as_json:
        emit_json([
            meter_dict(i + 1, m, show_keys, statuses.get(m.device_id.upper()))
            for i, m in enumerate(meter_list.meters)
        ])
        return
    columns, rows = meter_table(meter_list, statuses)
    print_table(f"{len(rows)} meter(s)", columns, rows)


@meters.command("show")
@click.argument("ref", metavar="METER")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """One meter with its values; descriptions follow chip.ini MUC_METERDESCRIPTIONENABLEFLAGS.

    State "*": the last readout had more records than the meter's value limit; Note: how the last readout's
    records were matched to the values when the meter's record layout changed.
    """
    from sonocli.cli.common import keys_visible
    from sonocli.engine.meterlist import find_meter

    engine = engine_for(ctx)
    meter_list = engine.meter_list()
    index = find_meter(meter_list, ref)
    meter = meter_list.meters[index]
    ini = engine.chip
    status = _statuses(engine).get(meter.device_id.upper())
    data = meter_dict(index + 1, meter, keys_visible(ini), status)
    if as_json:
        latest = engine.latest_values(meter)
        data["values_of"] = None if latest is None else latest[0].isoformat()
        for number, value in enumerate(data["values"]):
            value["latest"] = None if latest is None else latest[1].get(number)
        emit_json(data)
        return
    for name in (
        "device_id",
        "interface",
        "serial",
        "manufacturer",
        "version",
        "medium",
        "primary_address",
        "address_mode",
        "readout_cycle",
        "max_value_count",
        "key",
        "active",
        "rssi",
        "user",
    ):
        shown = data[name]["text"] if name == "medium" and data[name] else data[name]
        click.echo(f"{name.replace('_', ' '):16} {'' if shown is None else shown}")
    if data["limited"]:
        click.echo(f"{'state':16} * (value list limited: more records than "
                   f"{'its maxvaluecount' if meter.max_value_count else 'METER_MAXVALUECOUNT'} allows)")
    if data["note"]:
        click.echo(f"{'note':16} {data['note']}")
    mode = int(ini.get("MUC_METERDESCRIPTIONENABLEFLAGS"))
    # the newest value known (stored or looked at) where there is one, else the list's own value (the set
    # value of a manual S0/DLDE meter, the value a read meter had when its entries were learned)
    latest = engine.latest_values(meter)
    if latest is not None:
        click.echo(f"{'values of':16} {latest[0].isoformat(timespec='seconds')}")
    seen = latest[1] if latest is not None else {}
    rows = [
        (
            i + 1,
            value_description(v, mode),
            _plain(seen.get(i, v.value)),
            f"1e{v.exponent}",
            v.unit,
            v.obis or "",
            active_mark(v.active),
            v.user or "",
        )
        for i, v in enumerate(meter.values)
    ]
    print_table(
        f"{len(rows)} value(s)",
        ("#", Column("Description", TEXT), Column("Value", FIXED), "Scale", Column("Unit", FIXED, tty=display_unit),
         Column("OBIS-ID", FIXED, hide_blank=True), Column("Active", FIXED, short="On"),
         Column("User label", TEXT, hide_blank=True, short="User")),
        rows,
    )


@meters.command("add")
@click.option("--to", "to", metavar="METER", help="Add values to this S0/DLDE meter instead of adding meters.")
@click.option(
    "--count",
    "-n",
    type=click.IntRange(1, 65535),
    default=1,
    show_default=True,
    help="Number of meters (or values) to add at once.",
)
@click.option("--interface", type=click.Choice(INTERFACES, case_sensitive=False), help="Meter interface.")
@click.option("--serial", help="Serial (8 digits); with --count, decimal serials count up.")
@click.option("--manufacturer", help="3-letter manufacturer code, e.g. DFS.")
@click.option("--medium", help="Medium: its name as `meters list` shows it (e.g. 'Heat (outlet)') or number.")
@click.option("--version", "version_", help="Version number (0..255, 0x.. accepted).")
@click.option("--primary-address", help="Primary address (0..250) or S0 channel.")
@click.option("--address-mode", type=click.Choice(("secondary", "primary")), help="Addressing of an M-Bus meter.")
@click.option("--cycle", type=click.IntRange(0, 4294967295), help="Readout interval in s (0: METER_TIME).")
@click.option("--key", help="AES-128 key, '0x82 0xB0 ...' or 32 hex digits.")
@click.option("--user", help="User label: letters, digits, space and ! $ % & / ( ) = ? + * , - . _")
@click.option("--inactive", is_flag=True, help="Add as inactive.")
@click.option("--value", "value_", type=float, help="Value of a manual S0/DLDE value (with --to).")
@click.option("--scale", help="Scale, e.g. 1e-4 (with --to).")
@click.option("--unit", help="Unit as the reports write it, e.g. kWh, m^3, degree C (with --to).")
@click.option("--obis", help="OBIS-ID A-B:C.D.E*F, each 0..255 (with --to).")
@click.option("--description", help="Description as the reports write it, e.g. Energy, Volume (with --to).")
@click.option("--json", "as_json", is_flag=True, help="Print what was added as JSON.")
@click.pass_context
def add(
    ctx: click.Context,
    to: str | None,
    count: int,
    interface: str | None,
    serial: str | None,
    manufacturer: str | None,
    medium: str | None,
    version_: str | None,
    primary_address: str | None,
    address_mode: str | None,
    cycle: int | None,
    key: str | None,
    user: str | None,
    inactive: bool,
    value_: float | None,
    scale: str | None,
    unit: str | None,
    obis: str | None,
    description: str | None,
    as_json: bool,
) -> None:
    """Add meters by hand (as on the device's Meter tab), or with --to add values to a manual S0/DLDE meter."""
    from sonocli.engine import meterlist
    from sonocli.errors import UsageError
    from sonocli.model.values import AddressMode, Interface, Meter, ValueConfig

    engine = engine_for(ctx)
    limits = engine.limits()
    if to is not None:
        meter_only = {
            "--interface": interface,
            "--serial": serial,
            "--manufacturer": manufacturer,
            "--medium": medium,
            "--version": version_,
            "--primary-address": primary_address,
            "--address-mode": address_mode,
            "--cycle": cycle,
            "--key": key,
        }
        used = [name for name, given in meter_only.items() if given is not None]
        if used:
            raise UsageError(f"{', '.join(used)} describe a meter, not a value; leave them out with --to")
        fields: dict[str, Any] = {"active": not inactive}
        if value_ is not None:
            fields["value"] = value_
        if scale is not None:
            fields["exponent"] = _parse("--scale", _scale, scale)
        for name, given in (("unit", unit), ("obis", obis), ("description", description), ("user", user)):
            if given is not None:
                fields[name] = given
        template = ValueConfig(**fields)
        new_values = engine.update_meters(lambda ml: meterlist.add_values(ml, to, template, count, limits))
        if as_json:
            emit_json([value_dict(0, v) for v in new_values])
        else:
            click.echo(f"added {len(new_values)} value(s) to meter {to}")
        return
    value_only = {"--value": value_, "--scale": scale, "--unit": unit, "--obis": obis, "--description": description}
    used = [name for name, given in value_only.items() if given is not None]
    if used:
        raise UsageError(f"{', '.join(used)} describe a value; add values with --to METER")
    if interface is None:
        raise UsageError("--interface is required to add a meter (S0, DLDE, M-Bus or wM-Bus)")
    meter_fields: dict[str, Any] = {"interface": Interface.from_label(interface), "active": not inactive}
    if serial is not None:
        meter_fields["serial"] = meterlist.check_serial(serial)
    if manufacturer is not None:
        meter_fields["manufacturer"] = meterlist.check_manufacturer(manufacturer)
    if medium is not None:
        meter_fields["medium"] = _parse("--medium", _medium, medium)
    if version_ is not None:
        meter_fields["version"] = _parse("--version", lambda t: int(t, 0), version_)
    if primary_address is not None:
        meter_fields["primary_address"] = _parse("--primary-address", lambda t: int(t, 0), primary_address)
    if address_mode is not None:
        meter_fields["address_mode"] = AddressMode[address_mode.upper()]
    if cycle is not None:
        meter_fields["readout_cycle"] = cycle
    if key is not None:
        meter_fields["key"] = _parse("--key", _key, key)
    if user is not None:
        meter_fields["user"] = user
    meter_template = Meter(**meter_fields)

    def add_to(meter_list: Any) -> tuple[Any, tuple[int, list[Meter]]]:
        updated, new_meters = meterlist.add_meters(meter_list, meter_template, count, limits)
        return updated, (len(updated.meters) - len(new_meters) + 1, new_meters)

    first, new_meters = engine.update_meters(add_to)
    if as_json:
        emit_json([meter_dict(first + i, m, True) for i, m in enumerate(new_meters)])
    else:
        for i, m in enumerate(new_meters):
            click.echo(f"added meter {first + i}: {m.device_id} ({m.interface.label})")


@meters.command("edit")
@click.argument("ref", metavar="METER|METER/N")
@click.option("--user", help="User label: letters, digits, space and ! $ % & / ( ) = ? + * , - . _; '' removes it.")
@click.option("--key", help="AES-128 key ('0x82 0xB0 ...' or 32 hex digits); 'none' removes it.")
@click.option("--cycle", type=click.IntRange(0, 4294967295), help="Readout interval in s (0: METER_TIME).")
@click.option("--primary-address", help="Primary address.")
@click.option("--address-mode", type=click.Choice(("secondary", "primary")), help="Addressing mode.")
@click.option("--max-values", type=click.IntRange(0, 65535), help="This meter's value limit (0: METER_MAXVALUECOUNT).")
@click.option("--serial", help="Serial (S0/DLDE meters only).")
@click.option("--manufacturer", help="Manufacturer (S0/DLDE meters only).")
@click.option("--medium", help="Medium (S0/DLDE meters only).")
@click.option("--version", "version_", help="Version (S0/DLDE meters only).")
@click.option("--obis", help="OBIS-ID of a value, A-B:C.D.E*F; '' removes it.")
@click.option("--description", help="Description of a value as the reports write it, e.g. Energy.")
@click.option("--value", "value_", type=float, help="Value (S0/DLDE values only).")
@click.option("--scale", help="Scale, e.g. 1e-3 (S0/DLDE values only).")
@click.option("--unit", help="Unit (S0/DLDE values only).")
@click.pass_context
def edit(
    ctx: click.Context,
    ref: str,
    user: str | None,
    key: str | None,
    cycle: int | None,
    primary_address: str | None,
    address_mode: str | None,
    max_values: int | None,
    serial: str | None,
    manufacturer: str | None,
    medium: str | None,
    version_: str | None,
    obis: str | None,
    description: str | None,
    value_: float | None,
    scale: str | None,
    unit: str | None,
) -> None:
    """Change a meter or a value (an M-Bus meter's own fields, such as its serial, come from the meter)."""
    from sonocli.engine import meterlist
    from sonocli.errors import UsageError
    from sonocli.model.values import AddressMode

    _meter_ref, value_number = meterlist.split_ref(ref)
    changes: dict[str, Any] = {}
    if user is not None:
        changes["user"] = user or None
    if value_number is None:
        if key is not None:
            changes["key"] = _parse("--key", _key, key)
        if cycle is not None:
            changes["readout_cycle"] = cycle
        if primary_address is not None:
            changes["primary_address"] = _parse("--primary-address", lambda t: int(t, 0), primary_address)
        if address_mode is not None:
            changes["address_mode"] = AddressMode[address_mode.upper()]
        if max_values is not None:
            changes["max_value_count"] = max_values
        if serial is not None:
            changes["serial"] = serial
        if manufacturer is not None:
            changes["manufacturer"] = meterlist.check_manufacturer(manufacturer)
        if medium is not None:
            changes["medium"] = _parse("--medium", _medium, medium)
        if version_ is not None:
            changes["version"] = _parse("--version", lambda t: int(t, 0), version_)
        wrong = [
            o
            for o, g in (
                ("--obis", obis),
                ("--description", description),
                ("--value", value_),
                ("--scale", scale),
                ("--unit", unit),
            )
            if g is not None
        ]
        if wrong:
            raise UsageError(f"{', '.join(wrong)} change a value; name it as METER/N")
        if not changes:
            raise UsageError("nothing to change; give at least one option (see --help)")
        rule = meterlist.edit_meter
    else:
        if obis is not None:
            changes["obis"] = obis or None
        if description is not None:
            changes["description"] = description
        if value_ is not None:
            changes["value"] = value_
        if scale is not None:
            changes["exponent"] = _parse("--scale", _scale, scale)
        if unit is not None:
            changes["unit"] = unit
        wrong = [
            o
            for o, g in (
                ("--key", key),
                ("--cycle", cycle),
                ("--primary-address", primary_address),
                ("--address-mode", address_mode),
                ("--max-values", max_values),
                ("--serial", serial),
                ("--manufacturer", manufacturer),
                ("--medium", medium),
                ("--version", version_),
            )
            if g is not None
        ]
        if wrong:
            raise UsageError(f"{', '.join(wrong)} change a meter; name it without /N")
        if not changes:
            raise UsageError("nothing to change; give at least one option (see --help)")
        rule = meterlist.edit_value
    engine_for(ctx).update_meters(lambda ml: (rule(ml, ref, changes), None))
    click.echo(f"changed {ref}: {', '.join(sorted(changes))}")


@meters.command("set-value")
@click.argument("ref", metavar="METER")
@click.argument("value")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@click.pass_context
def set_value(ctx: click.Context, ref: str, value: str, as_json: bool) -> None:
    """Write a new value to an S0 pulse meter (the device's "Set value"): it counts on from VALUE.

    VALUE is counted in the scale of the meter's value entry, as on the device (280.09 or 280,09; at scale
    1e-4 and unit kWh each pulse adds 1e-4 kWh); the meter list's set value and the pulse counter change
    together, so the next reading is (VALUE + pulses counted from now on) x scale. Allowed when chip.ini
    MUC_SETDEVICES is S0 or ALL (exit 2 otherwise). A running daemon reads on from the new value at once;
    send it SIGHUP (or restart it) so its copy of the meter list shows it too.
    """
    from sonocli.engine.meterjson import meter_object

    engine = engine_for(ctx)
    done = engine.set_s0_value(ref, value)
    previous = done.previous
    if as_json:
        emit_json({
            "meter": meter_object(done.meter),
            "set_value": done.value,
            "scale": f"1e{done.meter.values[0].exponent}",
            "unit": done.meter.values[0].unit,
            "previous": None if previous is None else {"set_value": previous.base, "pulses": previous.pulses},
        })
        return
    before = "" if previous is None else f" (before: {previous.pulses} pulse(s) counted from {previous.base})"
    unit = done.meter.values[0].unit or ""
    click.echo(f"S0 meter {done.meter.device_id}: set value {done.value}{' ' + unit if unit else ''} "
               f"written{before}")


@meters.command("delete")
@click.argument("refs", metavar="METER|METER/N...", nargs=-1, required=True)
@click.pass_context
def delete(ctx: click.Context, refs: tuple[str, ...]) -> None:
    """Delete meters and values of S0/DLDE meters (single M-Bus/wM-Bus values cannot be deleted)."""
    from sonocli.engine import meterlist

    removed = engine_for(ctx).update_meters(lambda ml: meterlist.delete(ml, refs))
    for item in removed:
        click.echo(f"deleted {item}")


def _set_active(ctx: click.Context, refs: tuple[str, ...], active: bool) -> None:
    """One ``engine.activate`` call for all refs (all or nothing); ids of the temporary list move into the list."""

    engine = engine_for(ctx)
    done = engine.activate(list(refs), active)
    verb = "activated" if active else "deactivated"
    for ref, item in zip(refs, done, strict=False):
        moved = item != ref
        click.echo(f"{verb} {item}" + (" (moved from the heard meters into the meter list)" if moved else ""))


@meters.command("activate")
@click.argument("refs", metavar="METER|METER/N|ID...", nargs=-1, required=True)
@click.pass_context
def activate(ctx: click.Context, refs: tuple[str, ...]) -> None:
    """Activate meters (with all their values) or values (their meter too); an ID of `meters heard` moves that
    heard wM-Bus meter into the meter list, active."""
    _set_active(ctx, refs, True)


@meters.command("deactivate")
@click.argument("refs", metavar="METER|METER/N...", nargs=-1, required=True)
@click.pass_context
def deactivate(ctx: click.Context, refs: tuple[str, ...]) -> None:
    """Deactivate meters (with all their values) or single values."""
    _set_active(ctx, refs, False)


@meters.command("heard")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def heard(ctx: click.Context, as_json: bool) -> None:
    """The temporary list: wM-Bus meters heard by `listen` or the daemon, not in the meter list.

    They wait there for the engineer: `sonocli meters activate ID` moves one into the meter list, active.
    """
    from sonocli.model.tables import medium_text

    engine = engine_for(ctx)
    entries = engine.heard_meters() if engine.layout.database.exists() else []
    if as_json:
        from sonocli.engine.meterjson import heard_dict  # the one meter object, then what was heard

        emit_json([heard_dict(e) for e in entries])
    else:
        rows = [
            (e.id, e.manufacturer, medium_text(e.medium), e.version, "" if e.rssi is None else e.rssi,
             _local(e.first_seen), _local(e.last_seen), e.telegrams, active_mark(e.decrypts))
            for e in entries
        ]
        if rows:
            print_table(f"{len(rows)} heard meter(s) not in the meter list", (
                Column("ID", FIXED), "MAN", Column("Medium", TEXT), Column("Version", FIXED, short="Ver"), "RSSI",
                Column("First seen", FIXED, optional=True), Column("Last seen", FIXED), "Telegrams", "Decrypts"),
                rows)
    if not entries:
        click.echo("sonocli: note: no heard wM-Bus meters outside the meter list "
                   "(hint: sonocli listen --port sim://air --dongle im871a, or run the daemon: sonocli serve-daemon)",
                   err=True)


def _local(moment: datetime) -> str:
    """First/last seen in the table: local time, to the second (JSON keeps ISO 8601 UTC)."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _plain(value: object) -> object:
    """A value as the meter list holds it, without a float's ``.0`` on whole numbers (4090, not 4090.0)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value
