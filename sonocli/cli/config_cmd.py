"""``sonocli config``: show (the guide's print page), get, set and check chip.ini.

Everything listed comes from the one schema table (sonocli.config.chipini_schema.PARAMETERS).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sonocli.cli.common import engine_for
from sonocli.cli.output import emit_json, print_table
from sonocli.engine.configuration import SECRETS, TABS
from sonocli.errors import looks_secret, shown_value

TAB_TITLES = {
    "general": "General",
    "configuration": "Configuration",
    "server": "Server",
    "security": "Security",
    "sonocli": "sonocli (interfaces of this computer)",
}


def _load(ctx: click.Context) -> Any:
    from sonocli.engine.configuration import load_chip_ini

    ini = load_chip_ini(engine_for(ctx))
    _warn(ini.file, ini.warnings())
    return ini


def _warn(file: str | None, warnings: Any) -> None:
    for line, message in warnings:
        click.echo(f"sonocli: warning: {file}:{line}: {message}", err=True)


def _shown(name: str, text: str, secrets: bool, *, unknown: bool = False) -> str:
    secret = name.upper() in SECRETS or (unknown and looks_secret(name))
    return "********" if secret and text and not secrets else text


def _cut(text: str) -> str:
    return text if len(text) <= 80 else shown_value(text, limit=80)


def _unknown(ini: Any, secrets: bool) -> list[tuple[str, str, int]]:
    """Unknown keys with the values of secret-looking ones (FTP_PASSWORD=...) masked, long ones cut."""
    return [
        (k, _shown(k, v, secrets, unknown=True) if looks_secret(k) else _cut(v), n) for k, v, n in ini.unknown()
    ]


def _meaning(param: Any) -> str:
    """The guide's meaning, and for a parameter sonocli keeps but does not act on, why it has no effect."""
    return param.help if param.no_effect is None else f"{param.help} [no effect in sonocli: {param.no_effect}]"


@click.group("config")
def config() -> None:
    """Show, check and change chip.ini (the device's system configuration, as on its web tabs)."""


@config.command("show")
@click.option("--tab", type=click.Choice(TABS), help="Only the parameters of one web tab.")
@click.option("--secrets", is_flag=True, help="Show passwords instead of ********.")
@click.option("--meters", "with_meters", is_flag=True, help="Add the meter list, as the print page does.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def show(ctx: click.Context, tab: str | None, secrets: bool, with_meters: bool, as_json: bool) -> None:
    """All parameters with their values, grouped by web tab (as the device's print page shows them).

    A parameter sonocli keeps but does not act on (a network setting of the device, its web server, ...)
    says so in its meaning: "[no effect in sonocli: why]"; --json has it as "no_effect" (null: it works).
    """
    from sonocli.engine.configuration import settings as settings_of

    ini = _load(ctx)
    settings = list(settings_of(ini, tab))
    meter_list = engine_for(ctx).meter_list() if with_meters else None
    if as_json:
        from sonocli.cli.common import keys_visible, meter_dict

        show_keys = keys_visible(ini)
        meters_json = (
            None if meter_list is None else [meter_dict(i + 1, m, show_keys) for i, m in enumerate(meter_list.meters)]
        )
        emit_json(
            {
                "meters": meters_json,
                "file": ini.file,
                "parameters": [
                    {
                        "name": s.param.name,
                        "group": s.param.group,
                        "tab": s.param.tab,
                        "value": _shown(s.param.name, s.text, secrets) if s.param.name in SECRETS else s.value,
                        "default": s.param.default,
                        "set_in_file": s.line is not None,
                        "line": s.line,
                        "allowed": s.param.allowed(),
                        "help": s.param.help,
                        "no_effect": s.param.no_effect,
                    }
                    for s in settings
                ],
                "unknown": [{"name": k, "value": v, "line": n} for k, v, n in _unknown(ini, secrets)],
            }
        )
        return
    for tab_name in TABS:
        rows = [
            (s.param.name, _shown(s.param.name, s.text, secrets), "" if s.line is None else "*", _meaning(s.param))
            for s in settings
            if s.param.tab == tab_name
        ]
        if rows:
            print_table(f"Tab {TAB_TITLES[tab_name]}  [{ini.file}]", ("Parameter", "Value", "Set", "Meaning"), rows)
    if tab is None and ini.unknown():
        print_table("Unknown keys (kept)", ("Key", "Value", "Line"), _unknown(ini, secrets))
    if meter_list is not None:
        from sonocli.cli.common import meter_table

        columns, rows = meter_table(meter_list)
        print_table(f"Meter list: {len(rows)} meter(s)", columns, rows)


@config.command("get")
@click.argument("name")
@click.option("--secrets", is_flag=True, envvar="SHOW_KEYS",
              help="Print a password instead of ******** [env: SHOW_KEYS=1].")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def get(ctx: click.Context, name: str, secrets: bool, as_json: bool) -> None:
    """Print one parameter's value (its default when chip.ini does not set it).

    A password (FTP_PASS, SMTP_PASSWORD) prints as ******** unless --secrets or SHOW_KEYS=1 in the
    environment. chip.ini's SHOW_KEYS (default 1, about the meters' AES keys) does not count: a password
    is shown only when someone asked for it on this command line.
    """
    ini = _load(ctx)
    param = ini.param(name)
    value = ini.get(param.name)
    if param.name in SECRETS:
        value = _shown(param.name, str(value), secrets)
    if as_json:
        emit_json({"name": param.name, "value": value, "default": param.default, "set_in_file": ini.is_set(name)})
    else:
        click.echo(param.format(value))


@config.command("set")
@click.argument("name")
@click.argument("value")
@click.pass_context
def set_(ctx: click.Context, name: str, value: str) -> None:
    """Change one parameter; the file is rewritten atomically with comments, order and unknown keys kept.

    Changing a parameter that has no effect in sonocli (see config show) is allowed, with a warning."""
    from sonocli.engine.configuration import set_parameter

    change = set_parameter(engine_for(ctx), name, value)  # locked load to save: a concurrent set loses nothing
    _warn(change.file, change.warnings)
    name = change.param.name
    click.echo(f"{name}={_shown(name, change.after, False)} (was {_shown(name, change.before, False)})")
    if change.no_effect is not None:
        click.echo(f"sonocli: warning: {change.param.name} has no effect in sonocli: {change.no_effect}", err=True)


@config.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def check(ctx: click.Context, file: Path | None, as_json: bool) -> None:
    """Check a chip.ini (default: the root's): every invalid line with file:line, parameter, value and the
    allowed range (exit 2); unknown keys are warnings, and so are parameters set away from their default
    that have no effect in sonocli. A device_handle.cfg (*.cfg or XML) or a driver file (*.toml) is checked
    too; without FILE the root's driver files (app/drivers/*.toml) are checked with its chip.ini."""
    from sonocli.engine.configuration import check_file, driver_files

    if file is not None:
        path, extra = file, []
    else:
        layout = engine_for(ctx).layout
        path, extra = layout.chip_ini, driver_files(layout.app)
    result = check_file(path)
    drivers = [check_file(driver) for driver in extra]
    errors, warnings = result.errors, result.warnings
    if as_json:
        out: dict[str, Any] = {
            "file": str(path),
            "ok": not errors,
            "errors": [{"line": e.line, "message": e.message} for e in errors],
            "warnings": [{"line": line, "message": message} for line, message in warnings],
        }
        if file is None:
            out["drivers"] = [{"file": str(d.file), "ok": d.ok, "errors": [{"line": e.line, "message": e.message}
                                                                            for e in d.errors]} for d in drivers]
        emit_json(out)
    else:
        for line, message in warnings:
            click.echo(f"{path}:{line}: warning: {message}", err=True)
        for error in errors:
            click.echo(error.message, err=True)
        if not errors:
            click.echo(f"{path}: ok ({len(warnings)} warning(s))")
        for checked in drivers:
            for error in checked.errors:
                click.echo(error.message, err=True)
            if checked.ok:
                click.echo(f"{checked.file}: ok (driver)")
    if errors or any(not d.ok for d in drivers):
        ctx.exit(2)
