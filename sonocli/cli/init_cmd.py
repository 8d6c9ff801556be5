"""``sonocli init``: create a root directory laid out like the concentrator's."""

from __future__ import annotations

import click

from sonocli.cli.context import CliContext
from sonocli.cli.output import emit_json


@click.command("init")
@click.option("--json", "as_json", is_flag=True, help="Print the created paths as JSON.")
@click.pass_context
def init(ctx: click.Context, as_json: bool) -> None:
    """Create the root directory (app/, ext/log, ext/tmp, ext/Upd) with a default chip.ini and an empty
    meter list. Existing files are left as they are, so running it again is safe."""
    from sonocli.engine.configuration import RootLayout, init_root

    obj = ctx.find_object(CliContext) or CliContext()
    existed = RootLayout(obj.root).chip_ini.exists()
    layout = init_root(obj.root)
    if as_json:
        emit_json(
            {
                "root": str(layout.root),
                "chip_ini": str(layout.chip_ini),
                "device_handle": str(layout.device_handle),
                "log_dir": str(layout.log_dir),
                "created": not existed,
            }
        )
        return
    state = "already set up; nothing overwritten" if existed else "created"
    click.echo(f"sonocli root {layout.root}: {state}")
    click.echo(f"  configuration: {layout.chip_ini}")
    click.echo(f"  meter list:    {layout.device_handle}")
    click.echo(f"  logs:          {layout.log_dir}")
