"""``sonocli status [--json]``: is the daemon running, and how are its interfaces, channels and store doing.

Read from the snapshot the daemon keeps in ``ext/sonocli.db`` plus what the store knows by itself
(sonocli.engine.status), so it works over SSH, as any user who can read the root, without talking to the
process. Exit 0 only while the daemon runs and its snapshot is fresh; 1 when it is down, stopped, never ran,
or stale (alive but not writing: hung, or the disk is full) - so ``sonocli status >/dev/null`` is a health
check for monitoring.
"""

from __future__ import annotations

from typing import Any

import click

from sonocli.cli.common import engine_for
from sonocli.cli.output import emit_json
from sonocli.errors import EXIT_FAILURE


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _bytes(count: int | None) -> str:
    value = float(count or 0)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - the loop returns at GB


def render(report: dict[str, Any]) -> list[str]:
    """The human form: a few lines a person reads at a glance (the JSON has every field)."""
    d = report["daemon"]
    lines = [f"daemon: {d['state']} - {d['message']}"]
    if d["running"]:
        lines.append(f"  sonocli {d['version']}, up {_age(d['uptime'])}, status written {_age(d['age'])} ago; "
                     f"next readout {d['next_readout'] or '-'}, next report {d['next_report'] or '-'}")
    lines += [f"warning: {w}" for w in d["warnings"]]
    lines.append("interfaces:" if report["interfaces"] else "interfaces: none configured")
    for i in report["interfaces"]:
        result = "never yet" if i["last"] is None else f"{i['last']} {'ok' if i['ok'] else 'FAILED'}: {i['result']}"
        lines.append(f"  {i['interface']:<7} {i['kind']} on {i['port']}: {result}")
    lines.append("channels:" if report["channels"] else "channels: none configured")
    for c in report["channels"]:
        text = f"  {c['channel']:<10} last delivery {c['last_delivery'] or 'never'}, {c['pending']} pending"
        if c.get("listen"):
            text += f"; listening on {c['listen']}"
        if c["last_error"]:
            text += f"; last error ({c['error_state']}) {c['last_error_at'] or ''}: {c['last_error']}"
        lines.append(text)
    o = report["outbox"]
    lines.append(f"outbox: {o['depth']} report(s) pending" +
                 (f", the oldest {_age(o['oldest_age'])} old" if o["oldest"] else "") + f" (limit {o['limit']})")
    h = report["heard"]
    lines.append(f"heard: {h['count']} meter(s) in the last hour ({h['listed']} listed, {h['unlisted']} not in "
                 "the list: sonocli meters heard)")
    s = report["store"]
    used = f"{s['disk_used_percent']}% used" if s["disk_used_percent"] is not None else "use unknown"
    lines.append(f"store: {s['database']} {_bytes(s['database_bytes'])}, {s['readings']} reading(s), CSV logs "
                 f"{_bytes(s['csv_log_bytes'])}; disk {used}, {_bytes(s['disk_free'])} free")
    return lines


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (keys daemon, interfaces, channels, outbox, "
              "heard, store).")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show whether the daemon runs, its interfaces, channels, outbox, heard meters and store.

    Works without talking to the daemon (it keeps a status snapshot in the store). Exit 1 when the daemon is
    down, stopped or stale.
    """
    from sonocli.engine.status import collect

    engine = engine_for(ctx)
    try:
        report = collect(engine)
    finally:
        engine.close()
    if as_json:
        emit_json(report)
    else:
        for line in render(report):
            click.echo(line)
    if not report["daemon"]["running"]:
        ctx.exit(EXIT_FAILURE)
