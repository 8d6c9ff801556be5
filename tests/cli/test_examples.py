"""Every command's --help ends with examples, and every example is a command line that parses.

The examples live in one table (sonocli.cli.examples) that the help and the man page share; an example
naming an option that was renamed, or a command that no longer exists, fails here rather than in front
of an engineer.
"""

from __future__ import annotations

import shlex

import click
import pytest
from click.testing import CliRunner

from sonocli.cli.examples import EXAMPLES
from sonocli.cli.root import COMMANDS, cli


def _tree() -> dict[str, click.Command]:
    ctx = click.Context(cli)
    out: dict[str, click.Command] = {}

    def walk(path: str, command: click.Command) -> None:
        out[path] = command
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(f"{path} {name}".strip(), sub)

    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        walk(name, command)
    return out


TREE = _tree()


@pytest.mark.parametrize("path", sorted(TREE))
def test_every_command_has_examples_in_its_help(path: str) -> None:
    assert EXAMPLES.get(path), f"no examples for 'sonocli {path}' in sonocli/cli/examples.py"
    result = CliRunner().invoke(cli, [*path.split(), "--help"])
    assert result.exit_code == 0, result.output
    help_text = result.output
    assert "Examples:" in help_text
    for line, _what in EXAMPLES[path]:
        assert f"sonocli {line}" in help_text


@pytest.mark.parametrize("path", sorted(EXAMPLES))
def test_every_example_parses(path: str) -> None:
    """Each option an example names exists on its command, a flag gets no value, an option its value."""
    assert path in TREE, f"examples for a command that does not exist: {path}"
    globals_ = {o for p in cli.params for o in getattr(p, "opts", [])}
    for line, what in EXAMPLES[path]:
        words = shlex.split(line)
        while words and words[0] in globals_:  # sonocli --root DIR init
            words = words[2:] if words[0] == "--root" else words[1:]
        assert " ".join(words[: len(path.split())]) == path, line
        depth = max(n for n in range(1, len(words) + 1) if " ".join(words[:n]) in TREE)  # a group's example
        command = TREE[" ".join(words[:depth])]  # may show one of its subcommands
        options = {o: p for p in command.params if isinstance(p, click.Option) for o in [*p.opts, *p.secondary_opts]}
        args = words[depth:]
        positional = 0
        i = 0
        while i < len(args):
            word = args[i]
            if word.startswith("-") and word != "-" and not word[1:2].isdigit():
                assert word in options, f"{line}: no option {word} on 'sonocli {command.name}'"
                option = options[word]
                if not (option.is_flag or option.count):
                    i += 1
                    assert i < len(args), f"{line}: {word} needs a value"
            else:
                positional += 1
            i += 1
        arguments = [p for p in command.params if isinstance(p, click.Argument)]
        unbounded = any(a.nargs == -1 for a in arguments)
        assert positional <= sum(max(a.nargs, 0) for a in arguments) or unbounded or isinstance(command, click.Group), \
            f"{line}: {positional} arguments for 'sonocli {path}'"
        assert what and what[0].islower() and not what.endswith("."), what
