"""Examples for every command's ``--help`` and the man page's EXAMPLES, kept in one table.

A help text that says only "see Table 9" assumes the PDF is at hand; on a concentrator over SSH it is not.
So every command and subcommand shows a few lines an engineer can type, each with what it does. The root
group attaches them as the command's epilog when it loads the command (``attach``), ``scripts/gen_docs.py``
writes the same lines into the man page, and a test checks that every command has examples and that every
option an example uses exists — an example that no longer parses is worse than none.
"""

from __future__ import annotations

import click

# command path (without "sonocli") -> (command line after "sonocli", what it does)
EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "init": (
        ("init", "create app/ and ext/ below --root (or SONOCLI_ROOT) with a default chip.ini"),
        ("--root /var/lib/sonocli init --json", "the same, and print what was created as JSON"),
    ),
    "decode": (
        ("decode 683C3C680808727803491177040E16...", "a wired long frame, given as hex"),
        ("decode --file telegram.hex --key 000102030405060708090A0B0C0D0E0F", "an encrypted wM-Bus telegram"),
        ("decode - --json < frames.txt", "one frame per line from stdin, as JSON"),
    ),
    "scan": (
        ("scan --port /dev/ttyUSB0 --mode primary --first 0 --last 250", "probe every primary address"),
        ("scan --mode secondary --save", "find every meter by its ID (hex digits too) and add it to the list"),
        ("scan --mode secondary --mask 1234FFFF --json", "only IDs 1234xxxx; the summary as JSON for cron"),
    ),
    "readout": (
        ("readout --all", "every active wired meter of the meter list, on chip.ini's MBUS_PORT"),
        ("readout --port /dev/ttyUSB0 --address 5 --baud 2400", "one meter by its primary address"),
        ("readout --id 12345678 --json", "one meter by its secondary address, as JSON"),
        ("readout --protocol dlde --port /dev/ttyUSB1", "an IEC 62056-21 electricity meter (optical head)"),
    ),
    "simulate": (
        ("simulate demo --pty", "serve the demo meters on a pseudo-terminal for other M-Bus software"),
        ("simulate demo --pty --baud 9600 -v", "the same at 9600 baud, logging every request"),
    ),
    "listen": (
        ("listen --port /dev/ttyUSB1 --dongle im871a --mode t1 --count 20", "print the next 20 telegrams"),
        ("listen --duration 600 --save", "ten minutes on chip.ini's receiver; new meters join the list inactive"),
        ("listen --port sim://air --dongle hex --json", "the simulated meters, as JSON lines"),
    ),
    "keys": (
        ("keys import keys.csv", "set the AES keys of a CSV file (id,key per line) on the meter list"),
        ("keys check", "which wM-Bus meters lack a key, and which keys do not decrypt"),
    ),
    "keys import": (
        ("keys import keys.csv", "one 'id,key' per line: 8-digit meter ID, 32 hex digits"),
        ("keys import keys.csv --json", "what was set, refused and why, per meter"),
    ),
    "keys check": (
        ("keys check", "meters without a key, keys that fail and why"),
        ("keys check --json", "the same for a script"),
    ),
    "meters": (
        ("meters list", "the meter list (the device's Meter tab)"),
        ("meters show 1", "meter 1 and its values in telegram order"),
        ("meters edit 1/2 --obis 8-0:1.0.0 --user Main", "label value 2 of meter 1"),
    ),
    "meters list": (
        ("meters list", "one line per meter; '*' marks a meter whose value list is limited"),
        ("meters list --json", "the meter objects, as every other command prints them"),
    ),
    "meters show": (
        ("meters show 1", "meter 1, its values and their newest readings"),
        ("meters show 12345678 --json", "a meter by its ID, as JSON"),
    ),
    "meters heard": (
        ("meters heard", "wM-Bus meters heard but not yet in the list (they wait, inactive)"),
        ("meters heard --json", "the same for a script"),
    ),
    "meters activate": (
        ("meters activate 12345678", "a heard meter joins the list, active; or reactivate a listed one"),
        ("meters activate 1/3", "log and deliver value 3 of meter 1 again"),
    ),
    "meters deactivate": (
        ("meters deactivate 2", "meter 2 is no longer read, logged or delivered"),
        ("meters deactivate 1/2", "only value 2 of meter 1"),
    ),
    "meters add": (
        ("meters add --interface s0 --serial 00000001 --primary-address 1", "an S0 pulse meter on channel 1"),
        ("meters add --to 5 --value 1234.5 --unit kWh --description Energy --obis 1-0:1.8.0*255",
         "give S0 meter 5 its start value (the guide's Set value)"),
        ("meters add --interface m-bus --serial 12345678 --primary-address 5", "a wired meter by hand"),
    ),
    "meters edit": (
        ("meters edit 1 --user Boiler --cycle 900", "label meter 1 and read it every 15 minutes"),
        ("meters edit 3 --key 000102030405060708090A0B0C0D0E0F", "set the AES key of meter 3"),
        ("meters edit 1/1 --obis 8-0:1.0.0 --description Volume", "value 1 of meter 1"),
    ),
    "meters set-value": (
        ("meters set-value 5 280,09", "meter 5 (S0) counts on from 280.09, e.g. after a meter change"),
        ("meters set-value SLV-12345678-0C-02 1000 --json", "the same by Device-ID, what was written as JSON"),
    ),
    "meters delete": (
        ("meters delete 4", "remove meter 4 from the list"),
    ),
    "config": (
        ("config show --tab server", "the parameters of the Server tab with their values"),
        ("config set MBUS_PORT /dev/ttyUSB0", "change one parameter (checked before it is saved)"),
        ("config check", "check chip.ini; parameters without effect in sonocli are marked"),
    ),
    "config show": (
        ("config show", "every parameter, secrets masked"),
        ("config show --tab configuration --json", "one tab as JSON"),
    ),
    "config get": (
        ("config get MBUS_BAUDRATE", "one value"),
        ("config get FTP_PASS --secrets", "a secret in clear (only with --secrets or SHOW_KEYS=1)"),
    ),
    "config set": (
        ("config set METER_TIME 900", "read the meters every 15 minutes"),
        ("config set FTP_ENABLE 1", "switch the FTP channel on (then FTP_IP, FTP_USER, FTP_PASS)"),
    ),
    "config check": (
        ("config check", "one line per problem; exit 2 when chip.ini is not usable"),
        ("config check other/chip.ini --json", "check another file, as JSON"),
    ),
    "export": (
        ("export csv -o today.csv", "today's stored readings as the guide's CSV"),
        ("export xml --from 2026-12-01 --to 2026-12-02 -o day.xml", "one day as XML"),
        ("export csv --meter 12345678 --json", "one meter; say what was written as JSON"),
    ),
    "readings": (
        ("readings --meter 12345678 --since 7d", "a week of one meter's stored readings"),
        ("readings --meter 12345678 --value 1 --plot", "plot value 1 over time in the terminal"),
        ("readings --since 2026-12-01 --until 2026-12-02 --json", "one day, every meter, as JSON"),
    ),
    "push": (
        ("push --test", "send the latest readings now as a normal report to every enabled channel"),
        ("push --once", "deliver what waits in the outbox, then stop"),
        ("push --test --accept-host-key", "trust an SFTP server's host key on first use"),
    ),
    "outbox": (
        ("outbox list", "reports waiting for delivery, with the outbox's limit and use"),
        ("outbox retry --all", "try every waiting report again now"),
    ),
    "outbox list": (
        ("outbox list", "waiting reports"),
        ("outbox list --all --json", "delivered ones too, as JSON"),
    ),
    "outbox retry": (
        ("outbox retry 12", "report 12 now"),
        ("outbox retry --all", "every waiting report"),
    ),
    "outbox drop": (
        ("outbox drop 12", "give up report 12 (its readings stay stored)"),
    ),
    "serve-daemon": (
        ("serve-daemon", "run continuously on chip.ini's intervals (systemd: Type=notify)"),
        ("serve-daemon --once", "one readout and one report, then exit (cron)"),
        ("serve-daemon --no-wireless --syslog", "wired meters only, logging to syslog"),
    ),
    "update-system": (
        ("update-system --dry-run", "check the one image in ext/Upd/ without installing it"),
        ("update-system ext/Upd/sonocli-1.2.0.sonoimg", "verify and install an image"),
    ),
    "update-system make-image": (
        ("update-system make-image --generate-key --key signing.pem", "create a signing key pair"),
        ("update-system make-image --wheel dist/sonocli-1.2.0-py3-none-any.whl --key signing.pem",
         "sign a wheel as an update image"),
    ),
    "service": (
        ("service info", "versions, root, free space"),
        ("service restart-daemon --reload", "make the daemon reread chip.ini and the meter list"),
    ),
    "service info": (
        ("service info --json", "versions, paths and free space as JSON"),
    ),
    "service format-log": (
        ("service format-log -y", "delete the stored readings and logs (asks without -y)"),
    ),
    "service regenerate-keys": (
        ("service regenerate-keys -y", "new TLS/SFTP keys; prints the public key to redeploy"),
    ),
    "service restart-daemon": (
        ("service restart-daemon", "stop and start serve-daemon"),
        ("service restart-daemon --reload", "only reload its configuration (SIGHUP)"),
    ),
    "service stop-daemon": (
        ("service stop-daemon --timeout 30", "stop serve-daemon, waiting up to 30 s"),
    ),
    "service update-host-key": (
        ("service update-host-key --old SHA256:abc... --new SHA256:def...",
         "replace a changed SFTP host key, naming both fingerprints"),
    ),
    "users": (
        ("users list", "users and their rights"),
        ("users add alice --password S3cret --grant meter:read,config:write", "a user with two rights"),
    ),
    "users list": (
        ("users list --json", "users and rights as JSON (never passwords)"),
    ),
    "users add": (
        ("users add alice --password S3cret", "a user with no rights until granted"),
        ("users add logs --password S3cret --grant ftp", "a user who may fetch the CSV logs by FTP"),
    ),
    "users edit": (
        ("users edit alice --grant meter:write --revoke config:write", "change rights"),
    ),
    "users delete": (
        ("users delete alice", "remove a user (admin cannot be removed)"),
    ),
    "users passwd": (
        ("users passwd admin --current admin --password N3w-Secret", "change a password"),
    ),
    "status": (
        ("status", "whether the daemon runs, its interfaces, channels, outbox and store"),
        ("status --json", "the same for a script; exit 1 when the daemon is down or stale"),
    ),
}


def epilog(path: str) -> str | None:
    """The Examples section for ``path`` as click prints it verbatim (``\\b`` keeps the lines as they are):
    each command line, and below it, indented, what it does — two lines fit any 80-column terminal."""
    rows = EXAMPLES.get(path)
    if not rows:
        return None
    lines = ["\b", "Examples:"]
    for line, what in rows:
        lines += [f"  sonocli {line}", f"      {what[0].upper()}{what[1:]}."]
    return "\n".join(lines)


def attach(command: click.Command, path: str) -> None:
    """Give ``command`` (and, for a group, its subcommands) their examples, once."""
    if command.epilog is None:
        command.epilog = epilog(path)
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            attach(sub, f"{path} {name}")
