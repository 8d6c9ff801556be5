"""``sonocli meters``: the meter list (device_handle.cfg) as the web page's tab Meter shows and edits it.

The rules (what may be added, edited, deleted, activated) live in sonocli.engine.meterlist; this module
parses options, applies them to the file under the root directory and prints the result. A rejected
change leaves the file untouched; an accepted one is saved atomically.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sonocli.cli.context import CliContext
from sonocli.cli.output import emit_json, print_table

INTERFACES = ("S0", "DLDE", "M-Bus", "wM-Bus")


# ------------------------------------------------------------------------------------------ helpers
def _root(ctx: click.Context) -> Path:
    obj = ctx.find_object(CliContext) or CliContext()
    return obj.root


def _layout(ctx: click.Context) -> Any:
    from sonocli.config.layout import RootLayout

    return RootLayout(_root(ctx))


def _ini(ctx: click.Context) -> Any:
    from sonocli.config.chipini import ChipIni

    return ChipIni.load(_layout(ctx).chip_ini)


def _load(ctx: click.Context) -> Any:
    from sonocli.config.device_handle import load_meter_list

    return load_meter_list(_layout(ctx).device_handle)


def _save(ctx: click.Context, meters: Any) -> None:
    from sonocli.config.device_handle import save_meter_list

    save_meter_list(_layout(ctx).device_handle, meters)


def _lock(ctx: click.Context) -> None:
    """Hold the meter list's lock until the command ends (load to save), so concurrent writers lose nothing."""
    from sonocli.config.locking import locked

    ctx.with_resource(locked(_layout(ctx).device_handle))


def _limits(ctx: click.Context) -> Any:
    from sonocli.engine.meterlist import Limits

    return Limits.from_settings(_ini(ctx).get)


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
    from sonocli.config.device_handle import parse_hex_bytes

    return None if text.strip().lower() in ("none", "0", "") else parse_hex_bytes(text)


def _scale(text: str) -> int:
    from sonocli.config.device_handle import parse_scale

    return parse_scale(text)


def _medium(text: str) -> int:
    from sonocli.config.device_handle import parse_medium

    return parse_medium(text)


def _key_text(key: bytes | None, show: bool) -> str | None:
    if key is None:
        return None
    return " ".join(f"{b:02X}" for b in key) if show else "********"


def meter_dict(number: int, meter: Any, show_keys: bool) -> dict[str, Any]:
    return {
        "index": number,
        "device_id": meter.device_id,
        "interface": meter.interface.label,
        "serial": meter.serial,
        "manufacturer": meter.manufacturer,
        "version": meter.version,
        "medium": meter.medium,
        "medium_text": None if meter.medium is None else meter.identity.medium_text,
        "primary_address": meter.primary_address,
        "address_mode": meter.address_mode.name.lower(),
        "readout_cycle": meter.readout_cycle,
        "max_value_count": meter.max_value_count,
        "key": _key_text(meter.key, show_keys),
        "active": meter.active,
        "rssi": meter.rssi,
        "register": meter.register,
        "user": meter.user,
        "values": [_value_dict(i + 1, v) for i, v in enumerate(meter.values)],
    }


def _value_dict(number: int, value: Any) -> dict[str, Any]:
    return {
        "index": number,
        "description": value.description,
        "unit": value.unit,
        "scale": f"1e{value.exponent}",
        "encodetype": value.encodetype,
        "valuetype": str(value.valuetype.value),
        "storagenum": value.storagenum,
        "tariff": value.tariff,
        "obis": value.obis,
        "active": value.active,
        "register": value.register,
        "user": value.user,
        "value": value.value,
    }


def description_mode(flags: int) -> int:
    """MUC_METERDESCRIPTIONENABLEFLAGS (Table 25: bit 0 description, bit 1 storage/tariff/type, bit 2 DIF/VIF,
    bit 3 complete raw data) as the mode number of Table 10 (sonocli.model.description.MODES)."""
    words = bool(flags & 0b11)
    if flags & 8:
        return 4 if words else 6
    if flags & 4:
        return 3 if words else 5
    if flags & 2:
        return 2
    return 1 if flags & 1 else 0


def _description(value: Any, flags: int) -> str:
    """A configured value's description in the chip.ini's mode.

    The list keeps no raw DIF/VIF bytes (they come with a readout), so the raw-data parts stay empty here.
    """
    from sonocli.model.description import describe
    from sonocli.model.tables import measurement_index
    from sonocli.model.values import MeterValue

    try:
        measurement, text = measurement_index(value.description), None
    except KeyError:  # a meter's own plain-text description (VIF 7C): shown as the meter sent it
        measurement, text = 31, value.description
    shown = MeterValue(
        index=0,
        measurement=measurement,
        unit=value.unit,
        exponent=value.exponent,
        function=value.valuetype,
        storage=value.storagenum,
        tariff=value.tariff,
        text=text,
    )
    return describe(shown, description_mode(flags)).rstrip(" #")


def _active(flag: bool) -> str:
    return "yes" if flag else "no"


def meter_table(meter_list: Any) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """Columns and rows of the meter list as the tab Meter (and the print page) shows it."""
    rows = [
        (
            i + 1,
            m.interface.label,
            m.serial,
            m.manufacturer or "",
            "" if m.medium is None else m.identity.medium_text,
            "" if m.version is None else m.version,
            m.rssi if m.interface.label == "wM-Bus" else m.primary_address,
            len(m.values),
            m.readout_cycle or "",
            "yes" if m.key else "",
            _active(m.active),
            m.user or "",
        )
        for i, m in enumerate(meter_list.meters)
    ]
    columns = (
        "#",
        "Interface",
        "Serial",
        "MAN",
        "Medium",
        "Version",
        "Addr/RSSI",
        "Values",
        "Cycle",
        "Key",
        "Active",
        "User label",
    )
    return columns, rows


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
    """All meters, in list order."""
    from sonocli.cli.listen import keys_visible

    meter_list = _load(ctx)
    show_keys = keys_visible(_ini(ctx))
    if as_json:
        emit_json([meter_dict(i + 1, m, show_keys) for i, m in enumerate(meter_list.meters)])
        return
    columns, rows = meter_table(meter_list)
    print_table(f"{len(rows)} meter(s)", columns, rows)


@meters.command("show")
@click.argument("ref", metavar="METER")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """One meter with its values; descriptions follow MUC_METERDESCRIPTIONENABLEFLAGS (Table 10)."""
    from sonocli.engine.meterlist import find_meter

    meter_list = _load(ctx)
    index = find_meter(meter_list, ref)
    meter = meter_list.meters[index]
    ini = _ini(ctx)
    from sonocli.cli.listen import keys_visible

    data = meter_dict(index + 1, meter, keys_visible(ini))
    if as_json:
        emit_json(data)
        return
    for name in (
        "device_id",
        "interface",
        "serial",
        "manufacturer",
        "version",
        "medium_text",
        "primary_address",
        "address_mode",
        "readout_cycle",
        "max_value_count",
        "key",
        "active",
        "rssi",
        "user",
    ):
        shown = data[name]
        click.echo(f"{name.replace('_', ' '):16} {'' if shown is None else shown}")
    mode = int(ini.get("MUC_METERDESCRIPTIONENABLEFLAGS"))
    rows = [
        (
            i + 1,
            _description(v, mode),
            "" if v.value is None else v.value,
            f"1e{v.exponent}",
            v.unit,
            v.obis or "",
            _active(v.active),
            v.user or "",
        )
        for i, v in enumerate(meter.values)
    ]
    print_table(
        f"{len(rows)} value(s)", ("#", "Description", "Value", "Scale", "Unit", "OBIS-ID", "Active", "User label"), rows
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
@click.option("--medium", help="Medium: Table 16 text (e.g. 'Heat (outlet)') or number.")
@click.option("--version", "version_", help="Version number (0..255, 0x.. accepted).")
@click.option("--primary-address", help="Primary address (0..250) or S0 channel.")
@click.option("--address-mode", type=click.Choice(("secondary", "primary")), help="Addressing of an M-Bus meter.")
@click.option("--cycle", type=click.IntRange(0, 4294967295), help="Readout interval in s (0: METER_TIME).")
@click.option("--key", help="AES-128 key, '0x82 0xB0 ...' or 32 hex digits.")
@click.option("--user", help="User label (Table 9 characters).")
@click.option("--inactive", is_flag=True, help="Add as inactive.")
@click.option("--value", "value_", type=float, help="Value of a manual S0/DLDE value (with --to).")
@click.option("--scale", help="Scale, e.g. 1e-4 (with --to).")
@click.option("--unit", help="Unit, Table 18 text, e.g. kWh (with --to).")
@click.option("--obis", help="OBIS-ID A-B:C.D.E*F, each 0..255 (with --to).")
@click.option("--description", help="Description, Table 17 text, e.g. Energy (with --to).")
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
    """Add meters (section 5.1.3), or with --to add values to a manual S0/DLDE meter."""
    from sonocli.engine import meterlist
    from sonocli.errors import UsageError
    from sonocli.model.values import AddressMode, Interface, Meter, ValueConfig

    _lock(ctx)
    meter_list = _load(ctx)
    limits = _limits(ctx)
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
        updated, new_values = meterlist.add_values(meter_list, to, ValueConfig(**fields), count, limits)
        _save(ctx, updated)
        if as_json:
            emit_json([_value_dict(0, v) for v in new_values])
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
    updated, new_meters = meterlist.add_meters(meter_list, Meter(**meter_fields), count, limits)
    _save(ctx, updated)
    first = len(updated.meters) - len(new_meters) + 1
    if as_json:
        emit_json([meter_dict(first + i, m, True) for i, m in enumerate(new_meters)])
    else:
        for i, m in enumerate(new_meters):
            click.echo(f"added meter {first + i}: {m.device_id} ({m.interface.label})")


@meters.command("edit")
@click.argument("ref", metavar="METER|METER/N")
@click.option("--user", help="User label (Table 9 characters); '' removes it.")
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
@click.option("--description", help="Description of a value (Table 17 text).")
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
    """Change a meter or a value (Table 9: what each interface allows)."""
    from sonocli.engine import meterlist
    from sonocli.errors import UsageError
    from sonocli.model.values import AddressMode

    _lock(ctx)
    meter_list = _load(ctx)
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
        updated = meterlist.edit_meter(meter_list, ref, changes)
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
        updated = meterlist.edit_value(meter_list, ref, changes)
    _save(ctx, updated)
    click.echo(f"changed {ref}: {', '.join(sorted(changes))}")


@meters.command("delete")
@click.argument("refs", metavar="METER|METER/N...", nargs=-1, required=True)
@click.pass_context
def delete(ctx: click.Context, refs: tuple[str, ...]) -> None:
    """Delete meters and values of S0/DLDE meters (single M-Bus/wM-Bus values cannot be deleted)."""
    from sonocli.engine import meterlist

    _lock(ctx)
    updated, removed = meterlist.delete(_load(ctx), refs)
    _save(ctx, updated)
    for item in removed:
        click.echo(f"deleted {item}")


def _set_active(ctx: click.Context, refs: tuple[str, ...], active: bool) -> None:
    from sonocli.engine import meterlist

    _lock(ctx)
    meter_list = _load(ctx)
    for ref in refs:
        meter_list = meterlist.set_active(meter_list, ref, active)
    _save(ctx, meter_list)
    click.echo(f"{'activated' if active else 'deactivated'} {', '.join(refs)}")


@meters.command("activate")
@click.argument("refs", metavar="METER|METER/N...", nargs=-1, required=True)
@click.pass_context
def activate(ctx: click.Context, refs: tuple[str, ...]) -> None:
    """Activate meters (with all their values) or values (their meter too)."""
    _set_active(ctx, refs, True)


@meters.command("deactivate")
@click.argument("refs", metavar="METER|METER/N...", nargs=-1, required=True)
@click.pass_context
def deactivate(ctx: click.Context, refs: tuple[str, ...]) -> None:
    """Deactivate meters (with all their values) or single values."""
    _set_active(ctx, refs, False)
