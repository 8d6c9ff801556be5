"""``sonocli outbox list|retry|drop``: the reports waiting for delivery (sonocli.engine.outbox_ops)."""

from __future__ import annotations

import time

import click

from sonocli.cli.common import engine_for
from sonocli.cli.output import emit_json, print_table
from sonocli.errors import UsageError


@click.group("outbox")
def outbox() -> None:
    """List, retry or drop reports waiting for delivery."""


@outbox.command("list")
@click.option("--all", "all_", is_flag=True, help="Include delivered and dropped reports.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def list_cmd(ctx: click.Context, all_: bool, as_json: bool) -> None:
    """Show pending reports (oldest first), their attempts and last error, and the outbox's use against its
    limit (OUTBOX_MAXITEMS; beyond it the oldest reports are deleted, delivered ones first).

    --json prints {"limit": …, "use": {"items", "pending", "done", "dropped", "payload_bytes"}, "items": […]}.
    """
    from sonocli.engine.outbox_ops import PENDING, reports, usage

    engine = engine_for(ctx)
    try:
        items = reports(engine, all_states=all_)
        use = usage(engine)
    finally:
        engine.close()
    limit = use.pop("limit")
    if as_json:
        emit_json({"limit": limit, "use": use, "items": [item.as_dict() for item in items]})
        return
    now = time.time()
    rows = [[i.id, i.channel, i.name, i.size, i.readings, i.state, i.attempts,
             "" if i.state != PENDING or i.next_try <= now else f"in {int(i.next_try - now)} s",
             i.last_error or ""] for i in items]
    print_table("outbox", ["id", "channel", "name", "bytes", "readings", "state", "attempts", "next", "error"], rows)
    click.echo(f"outbox: {use['items']} of {limit} report(s) (OUTBOX_MAXITEMS): {use['pending']} pending, "
               f"{use['done']} delivered, {use['dropped']} dropped; {use['payload_bytes']} bytes")


def _ids(ids: tuple[int, ...], all_: bool) -> list[int] | None:
    if not ids and not all_:
        raise UsageError("name the report ids (see `sonocli outbox list`) or use --all")
    if ids and all_:
        raise UsageError("give report ids or --all, not both")
    return None if all_ else list(ids)


@outbox.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "all_", is_flag=True, help="All pending reports.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def retry_cmd(ctx: click.Context, ids: tuple[int, ...], all_: bool, as_json: bool) -> None:
    """Make reports due now (a dropped one becomes pending again); the daemon or `push` sends them."""
    from sonocli.engine.outbox_ops import retry

    wanted = _ids(ids, all_)
    engine = engine_for(ctx)
    try:
        count = retry(engine, wanted)
    finally:
        engine.close()
    emit_json({"retried": count}) if as_json else click.echo(f"{count} report(s) due now")


@outbox.command("drop")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "all_", is_flag=True, help="All pending reports.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def drop_cmd(ctx: click.Context, ids: tuple[int, ...], all_: bool, as_json: bool) -> None:
    """Give up on reports: they are kept (state dropped) but never sent; `retry ID` revives one."""
    from sonocli.engine.outbox_ops import drop

    wanted = _ids(ids, all_)
    engine = engine_for(ctx)
    try:
        count = drop(engine, wanted)
    finally:
        engine.close()
    emit_json({"dropped": count}) if as_json else click.echo(f"{count} report(s) dropped")
