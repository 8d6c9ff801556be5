"""Every command's -h/--help is sonocli's own option (no gettext), and behaves as click's did."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sonocli.cli.helpoption import HELP_TEXT, PathText
from sonocli.cli.root import COMMANDS, cli


def _tree() -> list[tuple[str, click.Command]]:
    ctx = click.Context(cli, info_name="sonocli")
    found: list[tuple[str, click.Command]] = [("", cli)]
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        stack = [(name, command)]
        while stack:
            path, cmd = stack.pop()
            found.append((path, cmd))
            if isinstance(cmd, click.Group):
                stack += [(f"{path} {sub}", child) for sub, child in cmd.commands.items()]
    return found


def test_every_command_has_one_help_option_last_and_none_from_click() -> None:
    for path, command in _tree():
        ctx = click.Context(command, info_name="sonocli", help_option_names=["-h", "--help"])
        assert command.get_help_option(ctx) is None, path  # click builds none (it would call gettext)
        helps = [p for p in command.get_params(ctx) if isinstance(p, click.Option) and "--help" in p.opts]
        assert len(helps) == 1 and command.get_params(ctx)[-1] is helps[0], path  # last, where click puts it
        assert helps[0].help == HELP_TEXT and not helps[0].expose_value and helps[0].is_eager, path


@pytest.mark.parametrize("path", ["", "listen", "meters list", "update-system", "service info"])
def test_h_and_help_print_the_same_help_and_exit_0(path: str, tmp_path: Path) -> None:
    runner = CliRunner()
    args = path.split()
    short = runner.invoke(cli, ["--root", str(tmp_path), *args, "-h"], prog_name="sonocli")
    long = runner.invoke(cli, ["--root", str(tmp_path), *args, "--help"], prog_name="sonocli")
    assert short.exit_code == long.exit_code == 0, short.output
    assert short.output == long.output and "Usage: sonocli" in long.output
    assert "-h, --help  " in long.output and HELP_TEXT in long.output


def test_path_text_checks_as_click_path_does(tmp_path: Path) -> None:
    plain = tmp_path / "f"
    plain.write_text("x")
    directory = PathText(file_okay=False)
    file = PathText(dir_okay=False)
    assert directory.name == "directory" and file.name == "file" and PathText().name == "path"
    assert directory.convert(str(tmp_path), None, None) == str(tmp_path)
    assert directory.convert(str(tmp_path / "new"), None, None) == str(tmp_path / "new")  # need not exist
    assert file.convert(str(plain), None, None) == str(plain)
    assert file.convert(b"/nope", None, None) == "/nope"
    with pytest.raises(click.BadParameter, match=r"Directory '.*f' is a file\."):
        directory.convert(str(plain), None, None)
    with pytest.raises(click.BadParameter, match=r"File '.*' is a directory\."):
        file.convert(str(tmp_path), None, None)
    # the same words as click.Path, so messages read as before
    for ours, theirs in ((directory, click.Path(file_okay=False)), (file, click.Path(dir_okay=False))):
        bad = str(plain) if ours is directory else str(tmp_path)
        with pytest.raises(click.BadParameter) as mine:
            ours.convert(bad, None, None)
        with pytest.raises(click.BadParameter) as clicks:
            theirs.convert(bad, None, None)
        assert mine.value.message == clicks.value.message
