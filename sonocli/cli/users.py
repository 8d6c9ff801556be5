"""`sonocli users list|add|edit|delete|passwd`: the users of the web interface and the FTP server (guide 4.6).

Every rule (rights per tab, admin, at most two FTP users, default passwords) is in
:mod:`sonocli.engine.users`; this module parses options and renders. Passwords are read from ``--password``
or asked for (hidden, twice) and are never printed; ``--json`` output holds no hash either.
"""

from __future__ import annotations

import json
from typing import Any

import click

from sonocli.cli.common import engine_for

RIGHTS_HELP = ("Rights, comma-separated: TAB:read or TAB:write for general, meter, config, server, security, "
               "service; user:write; ftp (only when a user is created); 'all' for every tab.")


@click.group("users")
def users() -> None:
    """The users of the web interface and the FTP server, and their rights per web tab (read or write).

    A new root has admin/admin, web/web and ftp/ftp; change their passwords (`sonocli users passwd NAME`).
    """


def _warn_defaults(names: list[str]) -> None:
    if names:
        click.echo(f"sonocli: warning: the guide's default password is still set for {', '.join(names)}; "
                   "change it with `sonocli users passwd NAME`", err=True)


def _level_mark(level: str) -> str:
    return {"write": "rw", "read": "r", "none": "-"}[level]


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the users as JSON (no password hashes).")
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """List the users with their rights (r: read, rw: write) and MaxSessions."""
    from sonocli.engine.users import TABS, list_users

    found = list_users(engine_for(ctx))
    if as_json:
        click.echo(json.dumps([u.public() for u in found], indent=2))
    else:
        header = ["NAME", *(t.upper() for t in TABS), "FTP", "MAXSESSIONS", "PASSWORD"]
        rows = [[u.name, *(_level_mark(u.level(t)) for t in TABS), "yes" if u.ftp else "no",
                 str(u.max_sessions), "default" if u.default_password else "set"] for u in found]
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    _warn_defaults([u.name for u in found if u.default_password])


def _ask_password(password: str | None, prompt: str = "Password") -> str:
    if password is not None:
        return password
    value: Any = click.prompt(prompt, hide_input=True, confirmation_prompt=True)
    return str(value)


@users.command("add")
@click.argument("name")
@click.option("--password", default=None, help="The new user's password (asked for when not given).")
@click.option("--grant", default="", help=RIGHTS_HELP + " Default: no rights.")
@click.option("--max-sessions", type=int, default=-1, show_default=True,
              help="Simultaneous web sessions allowed (-1: unlimited).")
@click.option("--no-change-password", is_flag=True, help="The user may not change its own password.")
@click.option("--json", "as_json", is_flag=True, help="Print the new user as JSON.")
@click.pass_context
def add(ctx: click.Context, name: str, password: str | None, grant: str, max_sessions: int,
        no_change_password: bool, as_json: bool) -> None:
    """Create user NAME, with no rights until granted (`--grant meter:read,config:write`)."""
    from sonocli.engine.users import add_user

    user = add_user(engine_for(ctx), name, _ask_password(password), grants=grant, max_sessions=max_sessions,
                    change_password=not no_change_password)
    click.echo(json.dumps(user.public(), indent=2) if as_json else f"user {user.name} added")


@users.command("edit")
@click.argument("name")
@click.option("--grant", default="", help=RIGHTS_HELP)
@click.option("--revoke", default="", help="Rights to take away: TAB (all of it), TAB:write (keeps read), ftp.")
@click.option("--max-sessions", type=int, default=None, help="Simultaneous web sessions allowed (-1: unlimited).")
@click.option("--change-password/--no-change-password", default=None,
              help="Whether the user may change its own password on the web page.")
@click.option("--json", "as_json", is_flag=True, help="Print the changed user as JSON.")
@click.pass_context
def edit(ctx: click.Context, name: str, grant: str, revoke: str, max_sessions: int | None,
         change_password: bool | None, as_json: bool) -> None:
    """Change the rights of user NAME (admin cannot be changed)."""
    from sonocli.engine.users import edit_user
    from sonocli.errors import UsageError

    if not (grant or revoke or max_sessions is not None or change_password is not None):
        raise UsageError("nothing to change", hint="give --grant, --revoke, --max-sessions or --change-password")
    user = edit_user(engine_for(ctx), name, grant=grant, revoke=revoke, max_sessions=max_sessions,
                     change_password=change_password)
    click.echo(json.dumps(user.public(), indent=2) if as_json else f"user {user.name} changed")


@users.command("delete")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print {\"deleted\": NAME}.")
@click.pass_context
def delete(ctx: click.Context, name: str, as_json: bool) -> None:
    """Delete user NAME (admin cannot be deleted)."""
    from sonocli.engine.users import delete_user

    delete_user(engine_for(ctx), name)
    click.echo(json.dumps({"deleted": name}) if as_json else f"user {name} deleted")


@users.command("passwd")
@click.argument("name")
@click.option("--password", default=None, help="The new password (asked for when not given).")
@click.option("--current", default=None,
              help="admin only: admin's current password (asked for when not given) - only admin changes it.")
@click.option("--json", "as_json", is_flag=True, help="Print {\"changed\": NAME}.")
@click.pass_context
def passwd(ctx: click.Context, name: str, password: str | None, current: str | None, as_json: bool) -> None:
    """Set the password of user NAME (admin's needs its current password)."""
    from sonocli.engine.users import ADMIN, set_password

    if name == ADMIN and current is None:
        current = str(click.prompt("Current admin password", hide_input=True))
    set_password(engine_for(ctx), name, _ask_password(password, "New password"), current=current)
    click.echo(json.dumps({"changed": name}) if as_json else f"password of {name} changed")
