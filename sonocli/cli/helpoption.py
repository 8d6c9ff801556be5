"""The ``-h/--help`` option of every command, and the path types of ``--root`` and ``--file``, without gettext.

click builds a command's help option on first use through ``click.help_option``, which evaluates
``gettext("Show this message and exit.")``, and ``click.Path`` names itself through gettext too. The first
gettext call imports ``locale`` and looks for message catalogues: about 1 ms before the first output of every
command (measured with ``-X importtime``, regular install), and sonocli ships no translations. So sonocli
gives each command the same option, with the same English text, as a regular parameter placed last (where
click puts its own), and types ``--root``/``--file`` with :class:`PathText`. ``--help`` prints the same
bytes as before.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    _TextParam = click.ParamType[str]
else:
    _TextParam = click.ParamType  # generic from click 8.5 on; sonocli supports click >= 8.1

HELP_NAMES: tuple[str, ...] = ("-h", "--help")  # the root's context_settings; subcommands inherit them
HELP_TEXT = "Show this message and exit."


def _show_help(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(ctx.get_help(), color=ctx.color)
    ctx.exit()


def install(command: click.Command) -> None:
    """Replace click's lazily built help option of ``command`` (and of a group's subcommands) by ours, once.

    Names a parameter of the command already uses (a ``-h`` of its own) are left to it, as click does.
    """
    if command.add_help_option:
        command.add_help_option = False
        taken = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
        names = [name for name in HELP_NAMES if name not in taken]
        if names:
            # "sonocli_help" is the storage name: no command parameter can clash with it (click 8.5 chose
            # "_click_default_help" for the same reason); the value is never passed on (expose_value=False)
            command.params.append(click.Option([*names, "sonocli_help"], is_flag=True, expose_value=False,
                                               is_eager=True, help=HELP_TEXT, callback=_show_help))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            install(sub)


class PathText(_TextParam):
    """A file or directory name as ``str`` (no pathlib on the way to the first output), checked as
    ``click.Path(file_okay=..., dir_okay=...)`` checks a path that need not exist yet."""

    def __init__(self, *, file_okay: bool = True, dir_okay: bool = True) -> None:
        self.file_okay = file_okay
        self.dir_okay = dir_okay
        self.name = "directory" if not file_okay else "file" if not dir_okay else "path"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = os.fsdecode(value) if isinstance(value, bytes) else str(value)
        if text == "-" or not os.path.exists(text):
            return text  # made, or refused with its own message, by the command that uses it
        name = self.name.title()  # click's wording, so a message reads the same as before
        if not self.file_okay and not os.path.isdir(text):
            self.fail(f"{name} {text!r} is a file.", param, ctx)
        if not self.dir_okay and os.path.isdir(text):
            self.fail(f"{name} {text!r} is a directory.", param, ctx)
        if not os.access(text, os.R_OK):
            self.fail(f"{name} {text!r} is not readable.", param, ctx)
        return text

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        from click.shell_completion import CompletionItem

        return [CompletionItem(incomplete, type="dir" if not self.file_okay else "file")]
