"""``sonocli service``: the Service tab (guide 4.7) and the solcmd maintenance commands (Table 24)."""

from __future__ import annotations

from pathlib import Path

import click

from sonocli.cli.context import CliContext


def _root(ctx: click.Context) -> Path:
    obj = ctx.find_object(CliContext)
    return (obj or CliContext()).root


@click.group("service", context_settings={"help_option_names": ["-h", "--help"]})
def service() -> None:
    """Service tab: versions and MUC-ID, device keys, log format, daemon control.

    \b
    solcmd (guide Table 24)      sonocli
    regenerate-server-keys       service regenerate-keys
    (sonocli's own)              service update-host-key
    format-partition-ext         service format-log
    start-solapp / stop-solapp   serve-daemon / service stop-daemon
    restart-server               service restart-daemon
    update-system                update-system
    """


@service.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print the information as JSON.")
@click.option(
    "--prefix",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SONOCLI_PREFIX",
    default=None,
    help="Installation prefix to report on [env: SONOCLI_PREFIX].",
)
@click.pass_context
def info_cmd(ctx: click.Context, as_json: bool, prefix: Path | None) -> None:
    """Show versions (sonocli, Python, OS, chip.ini, device_handle.cfg) and the MUC-ID (serial number).

    A configuration file that cannot be read shows "-" and a warning (JSON: "problems"); the command
    still exits 0, since this is where one looks when something is broken.

    The MUC-ID is chip.ini's MUC_ID where the schema has one, else derived from /etc/machine-id (first 4
    bytes of its SHA-256), else from the MAC address; it is what XML exports and mail subjects carry.
    """
    from sonocli.cli.output import emit_json, print_table
    from sonocli.service.info import collect

    info = collect(_root(ctx), prefix)
    data = info.as_dict()
    if as_json:
        emit_json(data)
        return
    del data["problems"]
    labels = {
        "software_version": "Software version (sonocli)",
        "python": "Python",
        "os": "RTOS / operating system",
        "hardware": "Hardware",
        "muc_id": "Serial number (MUC-ID, hex)",
        "muc_id_source": "MUC-ID source",
        "chip_ini_version": "chip.ini version (MUC_CONFIG_VER)",
        "device_handle_version": "device_handle.cfg version",
        "root": "Root directory",
        "install_prefix": "Installation prefix",
        "installed_version": "Installed version (prefix)",
    }
    print_table("Service", ["Field", "Value"], [(labels[k], "-" if v is None else v) for k, v in data.items()])
    for problem in info.problems:  # the other fields are still worth seeing, so this is no error exit
        click.echo(f"sonocli: warning: {problem}", err=True)


@service.command("regenerate-keys")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print files and fingerprints as JSON.")
@click.pass_context
def regenerate_keys_cmd(ctx: click.Context, yes: bool, as_json: bool) -> None:
    """Generate new device keys in app/ (solcmd regenerate-server-keys): every key sonocli uses.

    \b
    app/device.key, app/device.crt        EC P-256 TLS key, self-signed certificate (10 years)
    app/ssh_host_ed25519_key(.pub)        SSH host key (OpenSSH format)
    app/ssh_id_ed25519(.pub)              the SFTP login key (FTP_IP=sftp://...)

    Prints what to redeploy: the new SFTP public key for the server's authorized_keys (until it is there,
    SFTP logs in with FTP_PASS only), and the fingerprints clients that pinned the old keys must accept.
    """
    from sonocli.cli.output import emit_json
    from sonocli.engine.configuration import RootLayout
    from sonocli.engine.core import Engine
    from sonocli.engine.hostkeys import regenerate_keys
    from sonocli.service.devicekeys import require_app
    from sonocli.service.info import muc_id

    layout = RootLayout(_root(ctx))
    require_app(layout.app)
    if not yes:
        click.confirm(f"Replace the TLS, SSH and SFTP login keys in {layout.app}?", abort=True, err=True)
    number, _ = muc_id(layout)
    engine = Engine(layout.root)
    try:
        keys = regenerate_keys(engine, f"sonocli-{number:x}")
    finally:
        engine.close()
    if as_json:
        emit_json(
            {
                "files": [str(p) for p in keys.files],
                "tls_sha256": keys.tls_fingerprint,
                "ssh_fingerprint": keys.ssh_fingerprint,
                "sftp_public_key": keys.sftp_public_key,
                "sftp_fingerprint": keys.sftp_fingerprint,
            }
        )
        return
    for path in keys.files:
        click.echo(f"wrote {path}")
    click.echo(f"TLS certificate SHA-256: {keys.tls_fingerprint}")
    click.echo(f"SSH host key: {keys.ssh_fingerprint}")
    click.echo(f"SFTP login key: {keys.sftp_fingerprint}")
    click.echo("Redeploy: add this line to ~/.ssh/authorized_keys of FTP_USER on the SFTP server (and remove "
               "the old one):")
    click.echo(f"  {keys.sftp_public_key}")


@service.command("update-host-key")
@click.option("--old", "old", required=True, metavar="SHA256:...", help="Fingerprint of the host key on file.")
@click.option("--new", "new", required=True, metavar="SHA256:...",
              help="Fingerprint the server offers now (ask its admin: ssh-keygen -lf on the server's host key).")
@click.pass_context
def replace_host_key_cmd(ctx: click.Context, old: str, new: str) -> None:
    """Replace the SFTP server's known host key after it changed on purpose (a re-installed server).

    The only way a changed key is accepted: both fingerprints must be named, --old as in app/known_hosts and
    --new as the server offers it now (sonocli push --test prints both when it refuses). Any other key,
    or a mismatch, leaves app/known_hosts as it was (exit 2).
    """
    from sonocli.cli.common import engine_for
    from sonocli.engine.hostkeys import replace_sftp_host_key

    done = replace_sftp_host_key(engine_for(ctx), old, new)
    click.echo(f"replaced the host key of {done.name} in {done.file}: {done.old} -> {done.new}")


@service.command("format-log")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--include-updates", is_flag=True, help="Also empty ext/Upd/ (kept by default).")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
@click.pass_context
def format_log_cmd(ctx: click.Context, yes: bool, include_updates: bool, as_json: bool) -> None:
    """Empty ext/: readings database, logs, tmp/, outbox (solcmd format-partition-ext).

    ext/Upd/ is kept unless --include-updates, so an uploaded update image survives. Refused while the
    daemon runs (stop it first). log/, tmp/ and Upd/ are recreated empty; app/ is never touched.
    """
    from sonocli.cli.output import emit_json
    from sonocli.engine.configuration import RootLayout
    from sonocli.service.logformat import format_ext, plan

    layout = RootLayout(_root(ctx))
    entries = plan(layout, include_updates=include_updates)
    if not yes:
        names = ", ".join(p.name for p in entries) or "nothing"
        click.confirm(f"Delete everything in {layout.ext} ({names})?", abort=True, err=True)
    result = format_ext(layout, include_updates=include_updates)
    if as_json:
        emit_json(
            {"removed_entries": result.removed_entries, "freed_bytes": result.freed_bytes, "kept": list(result.kept)}
        )
        return
    kept = f"; kept {', '.join(result.kept)}" if result.kept else ""
    click.echo(f"removed {result.removed_entries} entries ({result.freed_bytes} bytes) from {layout.ext}{kept}")


@service.command("stop-daemon")
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 600),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the daemon to exit.",
)
@click.pass_context
def stop_daemon_cmd(ctx: click.Context, timeout: float) -> None:
    """Stop the running daemon (SIGTERM via ext/sonocli-daemon.pid) and wait until it has exited.

    Exit 1 with a clear message when no daemon runs or the PID file is stale, and when systemd runs the
    daemon (its unit would restart it): use systemctl stop then.
    """
    from sonocli.engine.configuration import RootLayout
    from sonocli.service.daemonctl import stop

    daemon = stop(RootLayout(_root(ctx)), timeout)
    click.echo(f"stopped the daemon (pid {daemon.pid})")


@service.command("restart-daemon")
@click.option(
    "--reload",
    "reload_only",
    is_flag=True,
    help="Only send SIGHUP: the daemon rereads chip.ini and device_handle.cfg without restarting.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 600),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the daemon to exit and for the new one to start.",
)
@click.pass_context
def restart_daemon_cmd(ctx: click.Context, reload_only: bool, timeout: float) -> None:
    """Restart the daemon: SIGTERM, wait for it to exit, start it again detached with the same command line.

    The new process writes its console output to ext/log/daemon-console.log. With --reload only SIGHUP
    is sent. Exit 1 when no daemon runs or the PID file is stale, and when systemd runs the daemon: use
    systemctl restart then (--reload still works).
    """
    from sonocli.engine.configuration import RootLayout
    from sonocli.service.daemonctl import reload, restart

    layout = RootLayout(_root(ctx))
    if reload_only:
        pid = reload(layout)
        click.echo(f"sent SIGHUP to the daemon (pid {pid}): reloading its configuration")
        return
    old, new = restart(layout, timeout)
    click.echo(f"restarted the daemon (pid {old} -> {new})")
