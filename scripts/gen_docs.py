#!/usr/bin/env python3
"""Generate the man page and the bash/zsh/fish completions from sonocli's click command tree.

    python scripts/gen_docs.py                 # rewrite man/sonocli.1 and completions/* in the repo
    python scripts/gen_docs.py --out DIR       # write them below DIR instead
    python scripts/gen_docs.py --check         # exit 1 if the committed files are out of date

Every command module named in ``sonocli.cli.root.COMMANDS`` is imported. A module that does not exist
yet (a command still being written) is skipped with a warning; a module that exists but fails to import
is an error: the generator stops with its traceback.

The completions are static scripts (commands, subcommands, options, choice values, file/directory
arguments) rather than click's runtime ``_SONOCLI_COMPLETE`` protocol, which would start Python and
import sonocli on every TAB: on a slow ARM concentrator that is a noticeable pause per keypress. The
price is that completions must be regenerated when commands change; tests/cli/test_docs_uptodate.py
fails when they are stale.

The chip.ini section of the man page comes from the declarative table ``PARAMETERS`` of
``sonocli.config.chipini`` (re-exported from ``chipini_schema``), the same table that validates files.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = ("man/sonocli.1", "completions/sonocli.bash", "completions/_sonocli", "completions/sonocli.fish")

# Environment variables sonocli reads that are not click options (click options' envvars are found in
# the tree), with what they do.
EXTRA_ENV = {
    "XDG_DATA_HOME": "Base of the default root directory ($XDG_DATA_HOME/sonocli, else "
    "~/.local/share/sonocli) when /app/chip.ini does not exist and neither --root nor SONOCLI_ROOT is given.",
    "NO_COLOR": "When set, tables and progress bars on a terminal are drawn without colour (rich).",
    "SHOW_KEYS": "SHOW_KEYS=1 makes listen and keys print AES keys in clear (otherwise masked as 2F****3A); "
    "meters and config show follow chip.ini's SHOW_KEYS instead.",
    "CI": "Read by the test suite only: when set, tests fail instead of skipping when a system program "
    "they need (sshd, vsftpd, groff, man, zsh, fish) is missing.",
}

# The device's maintenance tool (guide 7.2.1, Table 24): (solcmd command, the sonocli command that does
# it or "", remark). A named sonocli command that does not exist stops the generator.
SOLCMD = (
    ("format-partition-app", "", "no equivalent: app/ is the configuration and sonocli never erases it; "
     "move app/ away and run sonocli init for factory defaults."),
    ("format-partition-ext", "sonocli service format-log", "empties ext/ after a confirmation; keeps ext/Upd/."),
    ("config-partitions", "", "no equivalent: permissions on app/ and ext/ are the host's (chown, chmod)."),
    ("restart-eth0", "", "no equivalent: the host's network tools (ip link, networkctl, nmcli)."),
    ("restart-server", "sonocli service restart-daemon", "restarts the daemon with its TCP server; FTPS and "
     "SSH servers are the host's services."),
    ("regenerate-server-keys", "sonocli service regenerate-keys", "TLS key and certificate, SSH host key."),
    ("start-solapp", "sonocli serve-daemon", "runs the concentrator; a systemd unit can start it at boot."),
    ("stop-solapp", "sonocli service stop-daemon", "SIGTERM through ext/sonocli-daemon.pid."),
    ("update-rtc", "", "no equivalent: the host's hwclock --systohc."),
    ("update-system", "sonocli update-system", "the image in ext/Upd/ or named on the command line."),
    ("reboot-system", "", "not needed after update-system: sonocli service restart-daemon starts the new "
     "version; reboot the host with its own tools."),
)

FILES = (
    ("app/chip.ini", "System configuration (guide 7.4.1, Table 25); see CHIP.INI PARAMETERS."),
    ("app/device_handle.cfg", "The meter list (guide 7.4.2, Table 26), XML, UTF-8."),
    ("app/update-pubkey.pem", "Ed25519 public key that update images must be signed with (update-system)."),
    (
        "app/device.key, app/device.crt",
        "The concentrator's TLS key and self-signed certificate (service regenerate-keys).",
    ),
    ("app/ssh_host_ed25519_key, app/ssh_host_ed25519_key.pub", "SSH host key (service regenerate-keys)."),
    (
        "app/cacert.pem, app/clicert.pem, app/clikey.pem",
        "CA certificate, client certificate and key for TCP/HTTP and SMTP delivery over TLS (default paths of "
        "TLS_ROOT_CERT_FILE, TLS_CLI_CERT_FILE, TLS_CLI_KEY_FILE; clcert.pem, Table 25's default, also works).",
    ),
    (
        "app/ftp-cacert.pem, app/ftp-clicert.pem, app/ftp-clikey.pem",
        "CA certificate, client certificate and key for FTPS delivery (FTP_IP ftps://...).",
    ),
    ("ext/sonocli.db", "Readings and the outbox of reports waiting for delivery (SQLite, WAL)."),
    ("ext/log/", "CSV log files (MUC_CSVLOG_ENABLE) and ext/log/daemon-console.log of a restarted daemon."),
    ("ext/log/wmbus_raw.log", "Every received wireless telegram in hex (WMBUS_RAWLOGENABLE)."),
    (
        "ext/log/mbus_raw.log",
        "Every wired M-Bus frame sent and received, as TIME;TX|RX;HEX lines, time in UTC (MBUS_RAWLOGENABLE).",
    ),
    ("ext/tmp/", "Temporary files; delete them after changing the meter list (guide 7.4.2)."),
    ("ext/Upd/", "Upload directory for update images; exactly one image may reside there (guide 7.1.1)."),
    ("ext/sonocli-daemon.pid", "PID file of the running daemon; SIGHUP reloads, SIGTERM stops."),
    (
        "PREFIX/current, PREFIX/versions/VERSION/, PREFIX/bin/sonocli",
        "The installation that update-system manages (see update-system --prefix).",
    ),
)

EXIT_CODES = (
    ("0", "Success."),
    (
        "1",
        "Operational failure: a meter or server did not answer, a port could not be opened, an update "
        "failed its self-check (and was rolled back), the daemon is not running.",
    ),
    (
        "2",
        "Usage error or bad input: unknown options, invalid values, malformed frames or files, a missing, "
        "tampered or wrongly signed update image, a refused downgrade.",
    ),
    ("3", "Partial success: some meters or reports failed while others succeeded."),
    (
        "70",
        "serve-daemon only: its watchdog found the main loop hung beyond its time limit and ended the process "
        "(the service manager starts it again; see serve-daemon).",
    ),
    ("130", "Interrupted (Ctrl-C)."),
    (
        "141",
        "The reader of standard output went away (e.g. sonocli ... | head): output stopped quietly, as a "
        "process killed by SIGPIPE would. listen ends with 0 instead, since stopping early is its normal use.",
    ),
)


# --- the command tree ------------------------------------------------------------------------------------


@dataclass
class Opt:
    names: list[str]
    help: str
    takes_value: bool
    metavar: str
    kind: str  # "file", "dir", "choice", "none"
    choices: list[str]
    envvars: list[str]
    default: str | None
    repeatable: bool


@dataclass
class Arg:
    name: str
    kind: str
    choices: list[str]
    many: bool
    required: bool


@dataclass
class Node:
    path: tuple[str, ...]
    usage: str
    help: str
    short: str
    options: list[Opt]
    args: list[Arg]
    subs: dict[str, Node] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return " ".join(self.path)

    def walk(self) -> Iterator[Node]:
        yield self
        for sub in self.subs.values():
            yield from sub.walk()


def _kind(ptype: click.ParamType) -> tuple[str, list[str]]:
    from sonocli.cli.helpoption import PathText  # click.Path without gettext (--root, decode --file)

    if isinstance(ptype, click.Choice):
        return "choice", [str(c) for c in ptype.choices]
    if isinstance(ptype, click.Path | PathText):
        return ("dir" if not ptype.file_okay else "file"), []
    if isinstance(ptype, click.File):
        return "file", []
    return "none", []


def _help_text(text: str | None) -> str:
    text = inspect.cleandoc(text or "")
    return text.split("\f", 1)[0].strip()


def _opt(param: click.Option, ctx: click.Context) -> Opt:
    kind, choices = _kind(param.type)
    takes_value = not param.is_flag and not param.count
    envvars = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
    default = None
    if param.show_default and not callable(param.default) and param.default not in (None, False, ()):
        default = param.show_default if isinstance(param.show_default, str) else str(param.default)
    metavar = param.metavar or (param.type.get_metavar(param, ctx) if takes_value else None) or param.type.name.upper()
    return Opt(
        names=sorted(param.opts + param.secondary_opts, key=lambda n: (n.startswith("--"), n)),
        help=_help_text(param.help),
        takes_value=takes_value,
        metavar=metavar if takes_value else "",
        kind=kind if takes_value else "none",
        choices=choices,
        envvars=envvars,
        default=default,
        repeatable=bool(param.multiple or param.count),
    )


def _static_choices() -> dict[tuple[str, str], list[str]]:
    """Values the completions offer where the option itself takes free text (checked later by the engine):
    (command path, option or argument name) -> choices. Static, from the same tables the code checks with."""
    from sonocli.config.chipini_schema import PARAMETERS
    from sonocli.registry import dongle_names

    keys = sorted(p.name for p in PARAMETERS)
    dongles = list(dongle_names())
    return {
        ("listen", "--dongle"): dongles,
        ("config get", "NAME"): keys,
        ("config set", "NAME"): keys,
        ("export", "--protocol-version"): [str(n) for n in range(8)],
    }


def _apply_static(node: Node) -> None:
    table = _static_choices()
    for tree_node in node.walk():
        where = " ".join(tree_node.path[1:])
        for opt in tree_node.options:
            for name in opt.names:
                if (where, name) in table and opt.takes_value:
                    opt.kind, opt.choices = "choice", table[(where, name)]
        for arg in tree_node.args:
            if (where, arg.name.upper()) in table:
                arg.kind, arg.choices = "choice", table[(where, arg.name.upper())]


def _node(cmd: click.Command, path: tuple[str, ...], ctx: click.Context, short: str) -> Node:
    options = [_opt(p, ctx) for p in cmd.get_params(ctx) if isinstance(p, click.Option) and not p.hidden]
    args = []
    for p in cmd.params:
        if isinstance(p, click.Argument):
            kind, choices = _kind(p.type)
            args.append(Arg(p.human_readable_name, kind, choices, p.nargs == -1, p.required))
    extra = getattr(cmd, "extra_positional", None)
    if extra:
        args.append(Arg(extra[0], extra[1], [], False, False))
    node = Node(
        path=path,
        usage=" ".join([*path, *cmd.collect_usage_pieces(ctx)]),
        help=_help_text(cmd.help),
        short=short or cmd.get_short_help_str(limit=90),
        options=options,
        args=args,
    )
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = click.Context(sub, info_name=name, parent=ctx)
            node.subs[name] = _node(sub, (*path, name), sub_ctx, "")
    return node


def build_tree() -> Node:
    root_module = importlib.import_module("sonocli.cli.root")
    group: click.Group = root_module.cli
    table: dict[str, tuple[str, str]] = root_module.COMMANDS
    ctx = click.Context(group, info_name="sonocli")
    node = _node(click.Command("sonocli", params=group.params, help=group.help), ("sonocli",), ctx, "")
    node.usage = "sonocli [OPTIONS] COMMAND [ARGS]..."
    for name in group.list_commands(ctx):
        module_name = table[name][0].partition(":")[0]
        try:
            cmd = group.get_command(ctx, name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            print(
                f"gen_docs: warning: command {name!r} skipped: module {module_name} does not exist yet", file=sys.stderr
            )
            continue
        assert cmd is not None
        sub_ctx = click.Context(cmd, info_name=name, parent=ctx)
        node.subs[name] = _node(cmd, ("sonocli", name), sub_ctx, table[name][1])
    _apply_static(node)
    return node


# --- man page --------------------------------------------------------------------------------------------


def _esc(text: str) -> str:
    out = []
    for ch in text.replace("\\", "\\e"):
        if ch == "-":
            out.append("\\-")
        elif ord(ch) > 126:
            out.append(f"\\[u{ord(ch):04X}]")
        else:
            out.append(ch)
    return "".join(out)


def _line(text: str) -> str:
    text = _esc(text)
    return "\\&" + text if text.startswith((".", "'")) else text


def _paragraphs(text: str) -> list[str]:
    lines: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        if not block.strip():
            continue
        if block.lstrip().startswith("\b"):
            body = block.lstrip()[1:].strip("\n")
            lines += [".PP", ".nf", *[_line(b) for b in body.splitlines()], ".fi"]
        else:
            lines += [".PP", _line(" ".join(part.strip() for part in block.splitlines()))]
    return lines


def _opt_heading(opt: Opt) -> str:
    names = ", ".join(f"\\fB{_esc(n)}\\fR" for n in opt.names)
    metavar = _esc(opt.metavar).replace("|", "|\\:")  # \: lets a long choice list break after a bar
    return f"{names} \\fI{metavar}\\fR" if opt.takes_value else names


def _opt_body(opt: Opt) -> str:
    text = opt.help
    if opt.choices and "one of" not in text.lower():
        text += f" One of: {', '.join(opt.choices)}."
    if opt.default is not None:
        text += f" [default: {opt.default}]"
    for env in opt.envvars:
        if env not in text:
            text += f" [env: {env}]"
    return _line(text.strip())


def _options(options: list[Opt]) -> list[str]:
    lines: list[str] = []
    for opt in options:
        lines += [".TP", _opt_heading(opt), _opt_body(opt)]
    return lines


def _chip_ini_section() -> list[str]:
    try:
        module = importlib.import_module("sonocli.config.chipini")
    except ModuleNotFoundError as exc:
        if exc.name != "sonocli.config.chipini":
            raise
        return []
    params = getattr(module, "PARAMETERS", ())
    lines = [
        ".SH CHIP.INI PARAMETERS",
        ".PP",
        _line(
            "app/chip.ini holds KEY=VALUE lines in [SECTION]s; a parameter not set takes its default "
            "(guide 7.4.1, Table 25). sonocli config check validates a file, config show lists the values. "
            "Parameters marked \"No effect in sonocli\" are kept and validated, for the device, but change "
            "nothing here; config set and config check warn about them."
        ),
    ]
    group = None
    for param in params:
        if getattr(param, "group", None) != group:
            group = getattr(param, "group", None)
            lines.append(f'.SS "[{_esc(str(group))}]"')
        allowed = param.allowed() if hasattr(param, "allowed") else ""
        default = getattr(param, "default_note", "") or (
            param.format(param.default) if hasattr(param, "format") else str(param.default)
        )
        lines += [
            ".TP",
            f"\\fB{_esc(param.name)}\\fR",
            _line(f"{param.help} Allowed: {allowed}. Default: {default if default != '' else '(empty)'}."),
        ]
        no_effect = getattr(param, "no_effect", None)
        if no_effect:
            lines.append(_line(f"No effect in sonocli: {no_effect}."))
    return lines


def _env_section(tree: Node) -> list[str]:
    env: dict[str, list[str]] = {}
    helps: dict[str, str] = {}
    for node in tree.walk():
        for opt in node.options:
            for var in opt.envvars:
                env.setdefault(var, []).append(f"{node.name} {opt.names[-1]}")
                text = re.sub(r"\s*\[env:[^\]]*\]", "", opt.help)
                if len(text) > len(helps.get(var, "")):
                    helps[var] = text
    lines = [".SH ENVIRONMENT"]
    for var in sorted(env):
        where = ", ".join(sorted(set(env[var])))
        lines += [".TP", f"\\fB{_esc(var)}\\fR", _line(f"{helps[var]} (Same as {where}.)")]
    for var, text in EXTRA_ENV.items():
        if var not in env:
            lines += [".TP", f"\\fB{_esc(var)}\\fR", _line(text)]
    return lines


def _solcmd_section(tree: Node) -> list[str]:
    """Table 24 of the guide mapped to sonocli; a mapping that names a missing command fails the build."""
    names = {node.name for node in tree.walk()}
    lines = [
        ".SH SOLCMD COMMANDS",
        ".PP",
        _line(
            "On the SonoCollect 111 the maintenance tasks run through solcmd (guide 7.2.1, Table 24). "
            "What a sonocli installation uses instead:"
        ),
    ]
    for solcmd, command, remark in SOLCMD:
        if command and command not in names:
            raise SystemExit(f"gen_docs: SOLCMD maps {solcmd} to {command!r}, which is not a command")
        text = f"\\fB{_esc(command)}\\fR: {_esc(remark)}" if command else _esc(remark[0].upper() + remark[1:])
        lines += [".TP", f"\\fBsolcmd {_esc(solcmd)}\\fR", text]
    return lines


# what each shape of the JSON schema is printed by (sonocli.engine.meter_schema SCHEMA["$defs"])
JSON_SHAPES = (
    ("meter", "The meter object, in every reading and in scan --json's meters."),
    ("medium", "The meter's medium: the EN 13757-3 device type and its text."),
    ("error", "Why a meter could not be read, beside its meter object."),
    ("reading", "One reading: readout --json, readings --json, MQTT messages, the web API's readings."),
    ("failed", "A meter that could not be read, in every selector mode (readout --all, --address, --id)."),
    ("record", "One record (decode --json shape); index is the 0-based meter-list value entry, -1: not listed."),
    ("header", "The wired application header of a reading's first telegram, or null."),
    ("dlde_reading", "readout --protocol dlde --json: records carry an OBIS id."),
    ("listen_line", "One JSON line of listen: the meter, time, rssi, then the telegram as decode --json has it."),
    ("sml_line", "One JSON line of listen --protocol sml: the meter, time, records with an OBIS id."),
    ("meter_entry", "meters list/show --json and the web API's meters: the meter's keys, then the list's own."),
    ("heard_entry", "meters heard --json: the meter's keys, then what was heard."),
    ("scan", "scan --json: the meters found are meter objects."),
)


def _schema_type(spec: dict[str, Any]) -> str:
    if "$ref" in spec:
        return spec["$ref"].rsplit("/", 1)[-1]
    if "enum" in spec:
        return " | ".join(json.dumps(v) for v in spec["enum"])
    if "const" in spec:
        return json.dumps(spec["const"])
    if "oneOf" in spec:
        return " or ".join(_schema_type(s) for s in spec["oneOf"])
    if "allOf" in spec:
        return " with ".join(_schema_type(s) for s in spec["allOf"])
    if spec.get("type") == "array" and "items" in spec:
        return f"array of {_schema_type(spec['items'])}"
    kind = spec.get("type", "any")
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


def _schema_keys(spec: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    parts = [defs[s["$ref"].rsplit("/", 1)[-1]] if "$ref" in s else s for s in spec.get("allOf", [])] or [spec]
    out: list[str] = []
    for part in parts:
        required = set(part.get("required", ()))
        for key, sub in part.get("properties", {}).items():
            note = f" \N{EM DASH} {sub['description']}" if sub.get("description") else ""
            out.append(f"{key}{'' if key in required else '?'}: {_schema_type(sub)}{note}")
    return out


def _json_schema_section() -> list[str]:
    """The JSON shapes of --json from the schema the tests hold every command to (meter_schema.SCHEMA)."""
    from sonocli.engine.meter_schema import SCHEMA

    defs = SCHEMA["$defs"]
    missing = set(defs) - {name for name, _ in JSON_SHAPES} - {"meter_keys", "value_entry"}
    if missing:
        raise SystemExit(f"gen_docs: JSON_SHAPES does not describe {', '.join(sorted(missing))}")
    example = {"device_id": "KAM-06855817-08-04", "serial": "06855817", "manufacturer": "KAM", "version": 8,
               "medium": {"code": 4, "text": "Heat (outlet)"}, "interface": "M-Bus", "primary_address": 1,
               "address_mode": "secondary"}
    lines = [
        ".SH JSON SCHEMA",
        ".PP",
        _line("Every command that prints a meter with --json prints the same meter object; a reading has it "
              "as \"meter\" and one time key, \"time\" (ISO 8601, UTC). A meter that failed is "
              "{\"meter\": {...}, \"error\": {\"message\", \"kind\"}}. The schema (JSON Schema draft "
              "2020-12) ships with the package: python3 -c 'import json; from sonocli.engine.meter_schema "
              "import SCHEMA; print(json.dumps(SCHEMA, indent=1))'. A key marked ? may be absent."),
        ".PP",
        "The meter object:",
        ".PP",
        ".nf",
        *[_line(text) for text in json.dumps(example, indent=2).splitlines()],
        ".fi",
    ]
    for name, text in JSON_SHAPES:
        lines += [".TP", f"\\fB{_esc(name)}\\fR", _line(text)]
        keys = _schema_keys(defs[name], defs)
        if keys:
            lines += [".RS", ".nf", *[_line(k) for k in keys], ".fi", ".RE"]
    return lines


WALKTHROUGH: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("A wired meter through a USB level converter: find the port (ls -l /dev/serial/by-id/; the user needs "
     "the dialout group), tell sonocli, scan, read.",
     ("sonocli init", "sonocli config set MBUS_PORT /dev/ttyUSB0", "sonocli scan --mode secondary --save",
      "sonocli meters list", "sonocli readout --all")),
    ("A wireless M-Bus stick: name the port and the stick, listen, import the keys, activate the meters heard.",
     ("sonocli config set WMBUS_PORT /dev/ttyUSB1", "sonocli config set WMBUS_DONGLE im871a",
      "sonocli listen --count 20 --save", "sonocli keys import keys.csv", "sonocli keys check",
      "sonocli meters heard", "sonocli meters activate 12345678")),
    ("Then deliver: configure a channel, test it, and run the daemon.",
     ("sonocli config set FTP_ENABLE 1", "sonocli push --test", "sonocli serve-daemon")),
)


def _examples_section(tree: Node) -> list[str]:
    """EXAMPLES: the walkthrough of a first real meter, then each command's examples from the table the
    help shows (sonocli.cli.examples), so the page and --help cannot drift apart."""
    from sonocli.cli.examples import EXAMPLES

    lines = [".SH EXAMPLES", '.SS "Your first real meter"']
    for text, commands in WALKTHROUGH:
        lines += [".PP", _line(text), ".PP", ".nf", ".RS 4", *(_esc(c) for c in commands), ".RE", ".fi"]
    lines.append('.SS "By command"')
    for node in tree.walk():
        if node is tree:
            continue
        for command, what in EXAMPLES.get(" ".join(node.path[1:]), ()):
            words = command.split()
            if len(words) > len(node.path) - 1 and words[len(node.path) - 1] in node.subs:
                continue  # a group's example of a subcommand: that subcommand lists its own
            lines += [".TP", f"\\fBsonocli {_esc(command)}\\fR", _line(what[0].upper() + what[1:] + ".")]
    return lines


def render_man(tree: Node) -> str:
    from sonocli import __version__

    root_help = tree.help.split("\n\n")
    lines = [
        '.\\" Generated by scripts/gen_docs.py from the click command tree; do not edit.',
        f'.TH SONOCLI 1 "" "sonocli {_esc(__version__)}" "User Commands"',
        ".\\\" no hyphenation, ragged right: option and command names stay whole and copyable",
        ".nh",
        ".ad l",
        ".SH NAME",
        "sonocli \\- " + _esc(root_help[0].split(" - ", 1)[-1].rstrip(".")),
        ".SH SYNOPSIS",
        ".B sonocli",
        "[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
        ".PP",
        _line(
            "sonocli does in software what a SonoCollect 111 data concentrator does: scan and read wired "
            "M-Bus meters, receive wireless M-Bus telegrams, keep the meter list, log readings, export them "
            "as CSV or XML and deliver them to a head-end. It keeps the device's layout below a root "
            "directory: app/ for configuration, ext/ for data (see FILES)."
        ),
        *_paragraphs("\n\n".join(root_help[1:])),
        ".PP",
        _line("Every command accepts -h/--help. Commands that print data accept --json."),
        ".SH OPTIONS",
        *_options(tree.options),
        ".SH COMMANDS",
    ]
    for node in tree.walk():
        if node is tree:
            continue
        lines += [f'.SS "{_esc(node.name)}"', ".PP", f"\\fB{_esc(node.usage)}\\fR", *_paragraphs(node.help)]
        if node.subs:
            lines += [".PP", "Subcommands: " + ", ".join(f"\\fB{_esc(s)}\\fR" for s in node.subs) + "."]
        lines += _options([o for o in node.options if "--help" not in o.names])
    lines += _solcmd_section(tree)
    lines += _chip_ini_section()
    lines += _env_section(tree)
    lines += _json_schema_section()
    lines.append(".SH FILES")
    lines.append(".PP")
    lines.append(_line("Paths are relative to the root directory (--root, SONOCLI_ROOT; / on a concentrator)."))
    for name, text in FILES:
        lines += [".TP", f"\\fI{_esc(name)}\\fR", _line(text)]
    lines.append(".SH EXIT STATUS")
    for code, text in EXIT_CODES:
        lines += [".TP", f"\\fB{code}\\fR", _line(text)]
    lines += _examples_section(tree)
    lines += [
        ".SH SEE ALSO",
        "\\fBpython3\\fR(1), EN 13757\\-2, EN 13757\\-3, EN 13757\\-4, OMS specification volume 2,",
        "SonoCollect 111 operating guide.",
    ]
    return "\n".join(lines) + "\n"


# --- completions -----------------------------------------------------------------------------------------


def _first_line(text: str, limit: int = 80) -> str:
    text = re.sub(r"\s*\[env:[^\]]*\]", "", text.replace("\b", "")).strip()
    line = " ".join(text.split("\n\n", 1)[0].split())
    sentence = re.split(r"(?<=\.)\s", line, maxsplit=1)[0]
    return sentence if len(sentence) <= limit else sentence[: limit - 3].rstrip() + "..."


def _header(comment: str) -> str:
    return f"{comment} Generated by scripts/gen_docs.py from sonocli's click command tree; do not edit.\n"


def render_bash(tree: Node) -> str:
    nodes, vals = [], []
    for node in tree.walk():
        opts = " ".join(n for o in node.options for n in o.names)
        valopts = " ".join(n for o in node.options if o.takes_value for n in o.names)
        nodes.append(
            f'        "{node.name}") _sn_subs="{" ".join(node.subs)}"; _sn_opts="{opts}"; '
            f'_sn_valopts="{valopts}"; _sn_npos={len(node.args)};;'
        )
        for opt in node.options:
            if opt.takes_value and opt.kind != "none":
                for n in opt.names:
                    vals.append(
                        f'        "{node.name}|{n}") _sv_kind={opt.kind}; _sv_choices="{" ".join(opt.choices)}";;'
                    )
        for index, arg in enumerate(node.args):
            if arg.kind != "none":
                vals.append(
                    f'        "{node.name}|#{index}") _sv_kind={arg.kind}; _sv_choices="{" ".join(arg.choices)}";;'
                )
                if arg.many:
                    vals.append(
                        f'        "{node.name}|#*") _sv_kind={arg.kind}; _sv_choices="{" ".join(arg.choices)}";;'
                    )
    body = "\n".join(nodes)
    values = "\n".join(vals)
    return (
        _header("#")
        + f"""# Install: source it from ~/.bashrc, or copy to /usr/share/bash-completion/completions/sonocli.

_sonocli_node() {{
    _sn_subs=""; _sn_opts=""; _sn_valopts=""; _sn_npos=0
    case "$1" in
{body}
    esac
}}

_sonocli_values() {{
    _sv_kind=none; _sv_choices=""
    case "$1|$2" in
{values}
    esac
}}

_sonocli_reply() {{
    local cur="$1"
    case "$_sv_kind" in
        choice) mapfile -t COMPREPLY < <(compgen -W "$_sv_choices" -- "$cur") ;;
        dir) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;
        file) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
        *) COMPREPLY=() ;;
    esac
}}

_sonocli() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" path="sonocli" w opt i skip=0 npos=0
    COMPREPLY=()
    [[ "$cur" == "=" ]] && cur=""
    _sonocli_node "$path"
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        if [[ "$w" == "=" ]]; then skip=1; continue; fi
        if ((skip)); then skip=0; continue; fi
        case "$w" in
            --*=*) continue ;;
            -*) [[ " $_sn_valopts " == *" $w "* ]] && skip=1; continue ;;
        esac
        if [[ " $_sn_subs " == *" $w "* ]] && ((npos == 0)); then
            path="$path $w"; _sonocli_node "$path"
        else
            npos=$((npos + 1))
        fi
    done
    if ((skip)); then
        opt="${{COMP_WORDS[COMP_CWORD-1]}}"
        [[ "$opt" == "=" ]] && opt="${{COMP_WORDS[COMP_CWORD-2]}}"
        _sonocli_values "$path" "$opt"
        _sonocli_reply "$cur"
        return 0
    fi
    if [[ "$cur" == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$_sn_opts" -- "$cur")
        return 0
    fi
    _sonocli_values "$path" "#$npos"
    [[ "$_sv_kind" == none ]] && _sonocli_values "$path" "#*"
    if [[ "$_sv_kind" != none ]]; then
        _sonocli_reply "$cur"
    fi
    if ((npos == 0)) && [[ -n "$_sn_subs" ]]; then
        mapfile -t -O "${{#COMPREPLY[@]}}" COMPREPLY < <(compgen -W "$_sn_subs" -- "$cur")
    fi
    return 0
}}

complete -F _sonocli sonocli
"""
    )


def _zq(text: str) -> str:
    """Inside a single-quoted zsh word."""
    return text.replace("'", "'\\''")


def _zdesc(text: str) -> str:
    return _zq(text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace(":", "\\:"))


def _zaction(kind: str, choices: list[str]) -> str:
    if kind == "choice":
        return "(" + " ".join(_zq(c) for c in choices) + ")"
    return {"file": "_files", "dir": "_files -/"}.get(kind, " ")


def _zfunc(node: Node) -> str:
    return "_" + "__".join(p.replace("-", "_") for p in node.path)


def render_zsh(tree: Node) -> str:
    functions = []
    for node in tree.walk():
        specs = []
        for opt in node.options:
            names = opt.names
            desc = _zdesc(_first_line(opt.help))
            star = "*" if opt.repeatable else ""
            excl = f"({' '.join(names)})" if len(names) > 1 and not opt.repeatable else ""
            for name in names:
                suffix = "=" if opt.takes_value and name.startswith("--") else ("+" if opt.takes_value else "")
                value = f":{_zq(opt.metavar)}:{_zaction(opt.kind, opt.choices)}" if opt.takes_value else ""
                specs.append(f"'{excl}{star}{name}{suffix}[{desc}]{value}'")
        if node.subs:
            specs += ["'1: :->cmd'", "'*:: :->args'"]
        else:
            for index, arg in enumerate(node.args):
                position = "*" if arg.many else str(index + 1)
                specs.append(f"'{position}:{_zq(arg.name)}:{_zaction(arg.kind, arg.choices)}'")
        lines = [
            f"{_zfunc(node)}() {{",
            '    local curcontext="$curcontext" state line ret=1',
            "    typeset -A opt_args",
        ]
        if node.subs:
            items = " ".join(f"'{_zq(name)}:{_zq(_first_line(sub.short))}'" for name, sub in node.subs.items())
            lines.append(f"    local -a commands=({items})")
        lines.append("    _arguments -C -s -S \\")
        lines += [f"        {spec} \\" for spec in specs]
        lines.append("        && ret=0")
        if node.subs:
            lines += [
                "    case $state in",
                "        cmd)",
                f"            _describe -t commands '{_zq(node.name)} command' commands && ret=0",
            ]
            if node.args:
                lines.append("            _files && ret=0")
            lines += ["            ;;", "        args)", "            case $words[1] in"]
            for name, sub in node.subs.items():
                lines.append(f"                {name}) {_zfunc(sub)} && ret=0 ;;")
            lines += ["            esac", "            ;;", "    esac"]
        lines += ["    return ret", "}"]
        functions.append("\n".join(lines))
    return (
        "#compdef sonocli\n"
        + _header("#")
        + "# Install: copy to a directory in $fpath as _sonocli (e.g. /usr/share/zsh/vendor-completions/).\n\n"
        + "\n\n".join(functions)
        + '\n\nif [[ "$funcstack[1]" == _sonocli ]]; then\n    _sonocli "$@"\nelse\n    compdef _sonocli sonocli\nfi\n'
    )


def _fq(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render_fish(tree: Node) -> str:
    paths = [node.name for node in tree.walk() if node is not tree]
    valopts = [f"{node.name} {n}" for node in tree.walk() for o in node.options if o.takes_value for n in o.names]
    lines = [
        _header("#").rstrip("\n"),
        "# Install: copy to ~/.config/fish/completions/sonocli.fish or /usr/share/fish/vendor_completions.d/.",
        "",
        "set -g __sonocli_paths " + " ".join(_fq(p) for p in paths),
        "set -g __sonocli_valopts " + " ".join(_fq(v) for v in valopts),
        "",
        "function __sonocli_path --description 'the sonocli (sub)command being completed'",
        "    set -l tokens (commandline -opc)",
        "    set -l path sonocli",
        "    set -l skip 0",
        "    set -l npos 0",
        "    for t in $tokens[2..-1]",
        "        if test $skip = 1",
        "            set skip 0",
        "            continue",
        "        end",
        "        switch $t",
        "            case '--*=*'",
        "                continue",
        "            case '-*'",
        '                if contains -- "$path $t" $__sonocli_valopts',
        "                    set skip 1",
        "                end",
        "                continue",
        "        end",
        '        if test $npos = 0; and contains -- "$path $t" $__sonocli_paths',
        '            set path "$path $t"',
        "        else",
        "            set npos (math $npos + 1)",
        "        end",
        "    end",
        "    echo $path",
        "end",
        "",
        "function __sonocli_is",
        '    test (__sonocli_path) = "$argv[1]"',
        "end",
        "",
        "complete -c sonocli -f",
    ]
    for node in tree.walk():
        cond = f"-n '__sonocli_is \"{node.name}\"'"
        for name, sub in node.subs.items():
            lines.append(f"complete -c sonocli {cond} -a {_fq(name)} -d {_fq(_first_line(sub.short))}")
        for opt in node.options:
            parts = []
            for name in opt.names:
                if name.startswith("--"):
                    parts.append(f"-l {name[2:]}")
                elif len(name) == 2:
                    parts.append(f"-s {name[1:]}")
                else:
                    parts.append(f"-o {name[1:]}")
            if opt.takes_value:
                if opt.kind == "choice":
                    parts.append(f"-x -a {_fq(' '.join(opt.choices))}")
                elif opt.kind == "dir":
                    parts.append("-x -a '(__fish_complete_directories)'")
                elif opt.kind == "file":
                    parts.append("-r -F")
                else:
                    parts.append("-x")
            lines.append(f"complete -c sonocli {cond} {' '.join(parts)} -d {_fq(_first_line(opt.help))}")
        for arg in node.args:
            if arg.kind == "file":
                lines.append(f"complete -c sonocli {cond} -F")
            elif arg.kind == "dir":
                lines.append(f"complete -c sonocli {cond} -a '(__fish_complete_directories)'")
            elif arg.kind == "choice":
                lines.append(f"complete -c sonocli {cond} -a {_fq(' '.join(arg.choices))}")
    return "\n".join(lines) + "\n"


# --- main ------------------------------------------------------------------------------------------------


def render_all() -> dict[str, str]:
    tree = build_tree()
    return {
        "man/sonocli.1": render_man(tree),
        "completions/sonocli.bash": render_bash(tree),
        "completions/_sonocli": render_zsh(tree),
        "completions/sonocli.fish": render_fish(tree),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=REPO, help="directory to write man/ and completions/ into")
    parser.add_argument("--check", action="store_true", help="only compare with the files in --out")
    options = parser.parse_args(argv)
    rendered = render_all()
    stale = []
    for rel, text in rendered.items():
        target = options.out / rel
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        stale.append(rel)
        if not options.check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    if options.check and stale:
        print(f"gen_docs: out of date: {', '.join(stale)} (run python scripts/gen_docs.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
