"""The root command: a lazy click group and the one place that turns errors into exit codes.

Commands are listed by name and imported only when invoked (or when --help needs their short help,
which click asks for via ``get_command``), so ``sonocli --help`` stays close to bare ``import click``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, NoReturn

import click

from sonocli import __version__
from sonocli.cli.context import CliContext
from sonocli.cli.helpoption import PathText, install
from sonocli.errors import EXIT_FAILURE, EXIT_USAGE, SonoError

# name -> (module:attribute, one-line help shown by `sonocli --help` without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("sonocli.cli.init_cmd:init", "Create a sonocli root directory (app/, ext/) with defaults."),
    "decode": ("sonocli.cli.decode:decode", "Decode a wired M-Bus frame or a wireless M-Bus telegram."),
    "scan": ("sonocli.cli.scan:scan", "Search the wired M-Bus for meters (primary or secondary scan)."),
    "readout": ("sonocli.cli.readout:readout", "Read meters on the wired M-Bus and print their values."),
    "simulate": ("sonocli.cli.simulate:simulate", "Serve simulated M-Bus meters on a pseudo-terminal."),
    "listen": ("sonocli.cli.listen:listen", "Receive wireless M-Bus telegrams through a receiver dongle."),
    "keys": ("sonocli.cli.keys:keys", "Import and check wireless M-Bus decryption keys."),
    "meters": ("sonocli.cli.meters:meters", "Show and edit the meter list (device_handle.cfg)."),
    "config": ("sonocli.cli.config_cmd:config", "Show, check and change chip.ini."),
    "export": ("sonocli.cli.export:export", "Export stored readings as CSV or XML."),
    "readings": ("sonocli.cli.readings:readings", "Show stored readings by meter, value and time; plot a value."),
    "push": ("sonocli.cli.push:push", "Deliver reports to the head-end now, or test the connection."),
    "outbox": ("sonocli.cli.outbox:outbox", "List, retry or drop reports waiting for delivery."),
    "serve-daemon": ("sonocli.cli.daemon:serve_daemon", "Run the concentrator continuously (chip.ini)."),
    "update-system": ("sonocli.cli.update:update_system", "Install a signed sonocli update image."),
    "service": ("sonocli.cli.service:service", "Service tab: info, keys, log format, daemon control."),
    "users": ("sonocli.cli.users:users", "Users and rights of the web interface and the FTP server."),
    "status": ("sonocli.cli.status:status", "Show whether the daemon runs, its interfaces, channels and store."),
}


EXIT_SIGPIPE = 141  # 128 + SIGPIPE, what a C filter's death by SIGPIPE looks like to the shell


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use; it also maps errors to exit codes."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, _, attr = entry[0].partition(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        from sonocli.cli.examples import attach  # a table, cheap: every --help ends with Examples

        attach(command, cmd_name)
        install(command)  # -h/--help without click's gettext (see sonocli.cli.helpoption)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from the table so that --help imports no command module.
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        # the root's own options (``sonocli --bogus``, ``sonocli --root``): the same one line as below
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.UsageError as exc:
            _usage_error(exc)
        except click.exceptions.ClickException as exc:
            _click_error(exc)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SonoError as exc:
            _report(ctx, exc, exc.exit_code, exc.hint, exc.frames)
        except click.exceptions.UsageError as exc:  # click's 3-line block would be a second error voice
            _usage_error(exc)
        except click.exceptions.ClickException as exc:
            _click_error(exc)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("sonocli: interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:
            # the reader went away (sonocli ... | head): stop quietly, as Unix filters do; stdout is pointed
            # at /dev/null so the flush at interpreter exit cannot complain either
            import os

            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            ctx.exit(EXIT_SIGPIPE)
        except OSError as exc:
            code, hint = _classify_os_error(exc)
            _report(ctx, exc, code, hint, ())
        except Exception as exc:
            if type(exc).__module__.startswith("serial"):
                code, hint = _classify_os_error(exc)
                _report(ctx, exc, code, hint, ())
            if type(exc).__name__ == "error" and type(exc).__module__ == "termios":
                _report(ctx, exc, EXIT_FAILURE, "the port rejected its settings (baud rate or parity)", ())
            # A bug, not bad input: still one line (DESIGN.md: no traceback without --debug), but it names
            # the exception type so a report can be matched to the code, and --debug shows where it was.
            obj = ctx.find_object(CliContext)
            if obj is not None and obj.debug:
                raise
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            click.echo(
                f"sonocli: internal error: {type(exc).__name__}"
                + (f": {message}" if message else "")
                + " (run again with --debug for the traceback, and please report it)",
                err=True,
            )
            ctx.exit(EXIT_FAILURE)


def _usage_error(exc: click.exceptions.UsageError) -> NoReturn:
    """click's usage errors in sonocli's voice: ``sonocli: error: no such option: --bogus (hint: sonocli
    readout --help)``, one line, exit 2."""
    if isinstance(exc, _NO_ARGS_IS_HELP):  # `sonocli meters`: the group's help is the answer (exit 2)
        raise exc
    click.echo(f"sonocli: error: {_one_line(exc.format_message())} (hint: {_command_path(exc.ctx)} --help)", err=True)
    raise click.exceptions.Exit(EXIT_USAGE)


def _command_path(ctx: click.Context | None) -> str:
    """``sonocli meters edit`` for the hint, whatever name the program was started by (``python -m``, tests)."""
    if ctx is None:
        return "sonocli"
    return " ".join(["sonocli", *ctx.command_path.split(" ")[1:]])


# click >= 8.2 shows a group's help for a bare `sonocli meters` through this UsageError subclass
_NO_ARGS_IS_HELP: type[Exception] = getattr(click.exceptions, "NoArgsIsHelpError", type("_Never", (Exception,), {}))


def _click_error(exc: click.exceptions.ClickException) -> NoReturn:
    """Other click errors (a file option that cannot be opened): one line with click's exit code."""
    click.echo(f"sonocli: error: {_one_line(exc.format_message())}", err=True)
    raise click.exceptions.Exit(exc.exit_code)


def _one_line(message: str) -> str:
    """click's message as one line in sonocli's style: lower-case start, no final full stop."""
    text = " ".join(message.split())
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        text = text[0].lower() + text[1:]
    return text.replace(". Did you mean", "; did you mean").removesuffix(".")


def _classify_os_error(exc: BaseException) -> tuple[int, str | None]:
    text = str(exc).lower()
    filename = getattr(exc, "filename", None)
    if isinstance(exc, PermissionError) and filename and not str(filename).startswith("/dev/"):
        # a file of the root (chip.ini, the database, a key), not a serial port: ownership, not dialout
        return EXIT_FAILURE, (f"check who owns {filename} (ls -l {filename}); run sonocli as that user, or give "
                              f"the file to the user running sonocli (sudo chown USER {filename})")
    if "permission denied" in text or getattr(exc, "errno", None) == 13:
        return EXIT_FAILURE, "add the user to the dialout group (sudo usermod -aG dialout $USER), then log in again"
    if "no such file" in text or "could not open port" in text or getattr(exc, "errno", None) == 2:
        return EXIT_FAILURE, "check the port name (ls /dev/ttyUSB* /dev/ttyACM*) or use sim://demo"
    return EXIT_FAILURE, None


def _report(ctx: click.Context, exc: BaseException, code: int, hint: str | None, frames: tuple[str, ...]) -> None:
    obj = ctx.find_object(CliContext)
    debug = bool(obj and obj.debug)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    line = f"sonocli: error: {message}"
    if hint:
        line += f" (hint: {hint})"
    click.echo(line, err=True)
    if debug:
        import traceback

        click.echo("".join(traceback.format_exception(exc)), err=True)
        for index, frame in enumerate(frames):
            click.echo(f"frame[-{len(frames) - index}]: {frame}", err=True)
    ctx.exit(code)


def _configure_logging(verbose: int, quiet: int) -> None:
    from sonocli import logs  # logging itself is imported when something logs (decode/listen: never)

    logs.configure(logs.WARNING - 10 * verbose + 10 * quiet)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``-V``/``--version``, printed as click.version_option prints it ("sonocli, version X"); an option of
    our own because click's runs its texts through gettext at definition, which imports locale (~1 ms)."""
    if value and not ctx.resilient_parsing:
        click.echo(f"sonocli, version {__version__}")
        ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-V", "--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and exit.")
@click.option("--debug", is_flag=True, help="Show tracebacks and the last frames on the wire on errors.")
@click.option("-v", "--verbose", count=True, help="More log output (repeat for more).")
@click.option("-q", "--quiet", count=True, help="Less log output.")
@click.option(
    "--root",
    type=PathText(file_okay=False),  # a str: pathlib (with urllib.parse, ~2 ms) only when the root is used
    envvar="SONOCLI_ROOT",
    default=None,
    help="sonocli root directory holding app/ and ext/ [env: SONOCLI_ROOT].",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int, quiet: int, root: str | None) -> None:
    """sonocli - a software data concentrator for wired and wireless M-Bus meters.

    Exit codes: 0 ok, 1 operational failure (a meter or server did not answer), 2 usage or bad input,
    3 partial success (some meters failed).
    """
    _configure_logging(verbose, quiet)
    ctx.obj = CliContext(debug=debug, verbosity=verbose - quiet, root_option=root,
                         root_may_be_missing=ctx.invoked_subcommand == "init")


install(cli)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="sonocli")
    except SonoError as exc:  # raised outside a command (e.g. while building the context)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        click.echo(f"sonocli: error: {message}" + (f" (hint: {exc.hint})" if exc.hint else ""), err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.UsageError as exc:  # only without standalone handling; still one line
        click.echo(f"sonocli: error: {_one_line(exc.format_message())} (hint: {_command_path(exc.ctx)} --help)",
                   err=True)
        sys.exit(EXIT_USAGE)
