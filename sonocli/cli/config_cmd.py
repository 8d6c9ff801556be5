"""``sonocli config``: show (the guide's print page), get, set and check chip.ini.

Everything listed comes from the one schema table (sonocli.config.chipini_schema.PARAMETERS).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sonocli.cli.common import engine_for
from sonocli.cli.output import emit_json, print_table
from sonocli.engine.configuration import TABS

SECRETS = frozenset({"FTP_PASS", "SMTP_PASSWORD"})
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


def _shown(name: str, text: str, secrets: bool) -> str:
    return "********" if name in SECRETS and text and not secrets else text


@click.group("config")
def config() -> None:
    """Show, check and change chip.ini (the device's system configuration, Table 25)."""


@config.command("show")
@click.option("--tab", type=click.Choice(TABS), help="Only the parameters of one web tab.")
@click.option("--secrets", is_flag=True, help="Show passwords instead of ********.")
@click.option("--meters", "with_meters", is_flag=True, help="Add the meter list, as the print page does.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def show(ctx: click.Context, tab: str | None, secrets: bool, with_meters: bool, as_json: bool) -> None:
    """All parameters with their values, grouped by web tab (the guide's print page, section 4.8)."""
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
                    }
                    for s in settings
                ],
                "unknown": [{"name": k, "value": v, "line": n} for k, v, n in ini.unknown()],
            }
        )
        return
    for tab_name in TABS:
        rows = [
            (s.param.name, _shown(s.param.name, s.text, secrets), "" if s.line is None else "*", s.param.help)
            for s in settings
            if s.param.tab == tab_name
        ]
        if rows:
            print_table(f"Tab {TAB_TITLES[tab_name]}  [{ini.file}]", ("Parameter", "Value", "Set", "Meaning"), rows)
    if tab is None and ini.unknown():
        print_table("Unknown keys (kept)", ("Key", "Value", "Line"), ini.unknown())
    if meter_list is not None:
        from sonocli.cli.common import meter_table

        columns, rows = meter_table(meter_list)
        print_table(f"Meter list: {len(rows)} meter(s)", columns, rows)


@config.command("get")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def get(ctx: click.Context, name: str, as_json: bool) -> None:
    """Print one parameter's value (its default when chip.ini does not set it)."""
    ini = _load(ctx)
    param = ini.param(name)
    value = ini.get(param.name)
    if as_json:
        emit_json({"name": param.name, "value": value, "default": param.default, "set_in_file": ini.is_set(name)})
    else:
        click.echo(param.format(value))


@config.command("set")
@click.argument("name")
@click.argument("value")
@click.pass_context
def set_(ctx: click.Context, name: str, value: str) -> None:
    """Change one parameter; the file is rewritten atomically with comments, order and unknown keys kept."""
    from sonocli.engine.configuration import set_parameter

    change = set_parameter(engine_for(ctx), name, value)  # locked load to save: a concurrent set loses nothing
    _warn(change.file, change.warnings)
    click.echo(f"{change.param.name}={change.after} (was {change.before})")


@config.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def check(ctx: click.Context, file: Path | None, as_json: bool) -> None:
    """Check a chip.ini (default: the root's): every invalid line with file:line, parameter, value and the
    allowed range (exit 2); unknown keys are warnings. A device_handle.cfg (*.cfg or XML) is checked too."""
    from sonocli.engine.configuration import check_file

    path = file if file is not None else engine_for(ctx).layout.chip_ini
    result = check_file(path)
    errors, warnings = result.errors, result.warnings
    if as_json:
        emit_json(
            {
                "file": str(path),
                "ok": not errors,
                "errors": [{"line": e.line, "message": e.message} for e in errors],
                "warnings": [{"line": line, "message": message} for line, message in warnings],
            }
        )
    else:
        for line, message in warnings:
            click.echo(f"{path}:{line}: warning: {message}", err=True)
        for error in errors:
            click.echo(error.message, err=True)
        if not errors:
            click.echo(f"{path}: ok ({len(warnings)} warning(s))")
    if errors:
        ctx.exit(2)
