"""``sonocli push``: deliver now (``--once``) or press the guide's Test button (``--test``).

``--test`` sends the latest reading of every meter (as the meter list configures it) now, as a normal
report on every enabled channel, and shows each step of each transmission; the outbox is not touched.
"""

from __future__ import annotations

from typing import Any

import click

from sonocli.cli.common import engine_for
from sonocli.cli.output import emit_json, print_table
from sonocli.errors import PushError, UsageError


@click.command("push")
@click.option("--test", "test_", is_flag=True,
              help="Send the latest reading of every meter now as a normal report (the guide's Test "
                   "button) and show each step.")
@click.option("--once", is_flag=True, help="Build a report of everything not yet delivered and send the outbox.")
@click.option("--accept-host-key", is_flag=True,
              help="SFTP: trust the server's host key once and store it in app/known_hosts.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def push(ctx: click.Context, test_: bool, once: bool, accept_host_key: bool, as_json: bool) -> None:
    """Deliver reports to the head-end now, or test the connection.

    Without options: send what waits in the outbox (no new report). Exit 1 when a channel failed; the
    reports stay in the outbox. --test sends the latest reading of every meter as a normal report, named
    like one, on every enabled channel, past the outbox (nothing is queued or marked delivered).
    """
    from sonocli.engine.outbox_ops import StepEvent

    if test_ and once:
        raise UsageError("--test and --once exclude each other")
    engine = engine_for(ctx)
    try:
        if test_:
            events: list[StepEvent] = []

            def show(event: StepEvent) -> None:
                events.append(event)
                if not as_json:
                    mark = "ok  " if event.ok else "FAIL"
                    click.echo(f"{mark} {event.channel:<6} {event.step:<8} {event.detail}")

            outcome = engine.test_push(observer=show, accept_host_key=accept_host_key)
            if as_json:
                emit_json({
                    "channels": [{"channel": c, "ok": e is None, "error": e and e.message} for c, e in outcome],
                    "steps": [{"channel": e.channel, "step": e.step, "ok": e.ok, "detail": e.detail}
                              for e in events],
                })
            failed = [(c, e) for c, e in outcome if e is not None]
            if failed:
                _channel, error = failed[0]
                assert error is not None
                raise PushError(f"test transmission failed: {error.message}", hint=error.hint)
            if not as_json:
                click.echo("test transmission delivered")
            return
        specs = engine.channel_specs()
        if not specs:
            raise UsageError("no push channel is enabled in chip.ini",
                             hint="set FTP_ENABLE, XMLTOTCP_ENABLE, TLS_ENABLE, SMTP_ENABLE or MQTT_ENABLE to 1")
        created = engine.build_reports() if once else []
        results = engine.deliver(force=True)
        rows: list[dict[str, Any]] = [
            {"channel": key, "sent": r.sent, "failed": r.failed, "waiting": r.waiting, "error": r.error}
            for key, r in results.items()
        ]
        if as_json:
            emit_json({"created": [i.name for i in created], "channels": rows})
        else:
            if created:
                click.echo(f"{len(created)} report(s) queued")
            print_table(None, ["channel", "sent", "waiting", "error"],
                        [[r["channel"], r["sent"], r["waiting"], r["error"] or ""] for r in rows])
        errors = [r for r in rows if r["error"]]
        if errors:
            raise PushError(f"{errors[0]['channel']}: {errors[0]['error']}",
                            hint="the reports stay in the outbox; see `sonocli outbox list`")
    finally:
        engine.close()
