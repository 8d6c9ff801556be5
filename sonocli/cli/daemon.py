"""``sonocli serve-daemon``: run the concentrator continuously (chip.ini), or once for cron.

Signals: SIGTERM/SIGINT finish the current step and exit 0; SIGHUP reloads chip.ini and device_handle.cfg
and reopens the wireless receivers whose port, dongle, mode, settings or wM-Bus meters changed; SIGUSR1
starts an M-Bus scan (MBUS_SCANMODE, bounded by WATCHDOG_SCAN) whose meters are added to the list.
A step that outlives its WATCHDOG_* timeout is aborted; a main loop stuck past WATCHDOG_IDLE (waiting) or
WATCHDOG_PROCESS (its own work) ends the process with status 70, for ``Restart=always`` to restart it.
Under systemd (NOTIFY_SOCKET) it sends READY=1, WATCHDOG=1 (WatchdogSec=) and STOPPING=1; with its stderr
on the journal (JOURNAL_STREAM) lines carry syslog priorities instead of a time and PID.

A systemd unit::

    [Unit]
    Description=sonocli data concentrator
    After=network-online.target
    Wants=network-online.target

    [Service]
    Type=notify
    NotifyAccess=main
    ExecStart=/usr/local/bin/sonocli serve-daemon --root /var/lib/sonocli
    ExecReload=/bin/kill -HUP $MAINPID
    WatchdogSec=60
    KillSignal=SIGTERM
    TimeoutStopSec=120
    Restart=always
    RestartSec=5
    User=sonocli
    SupplementaryGroups=dialout

    [Install]
    WantedBy=multi-user.target
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sonocli.cli.context import CliContext
from sonocli.errors import EXIT_FAILURE, EXIT_PARTIAL

if TYPE_CHECKING:
    from sonocli.engine.core import Engine

REPEAT_INTERVAL = 60.0  # seconds over which repeated log events are summarised
MUC_LOG_LEVELS = {"NONE": logging.CRITICAL + 10, "ERRORONLY": logging.ERROR, "DEFAULT": logging.INFO,
                  "ALL": logging.DEBUG}


def configure_daemon_logging(level_name: str, syslog: bool, verbosity: int,
                             syslog_address: str | tuple[str, int] | None = None) -> None:
    """MUC_LOG decides the level (-v forces ALL); lines go to stderr (journald adds its own time) and syslog.

    The guide says "STDOUT"; stderr keeps stdout free for data (``--once`` in a cron pipe) - journald and
    cron collect both alike. When stderr is the journal (JOURNAL_STREAM), lines have no time or PID of their
    own and a syslog priority prefix instead (sonocli.daemon.systemd), so ``journalctl -p err`` works.
    """
    from sonocli.daemon.systemd import JournalFormatter, RepeatSummary, journal_stream

    level = MUC_LOG_LEVELS.get(level_name.upper(), logging.INFO)
    if verbosity > 0:
        level = logging.DEBUG
    logger = logging.getLogger("sonocli")
    logger.setLevel(level)
    # one line per unknown or undecryptable telegram is debugging detail, not DEFAULT's daily log
    logging.getLogger("sonocli.receiver").setLevel(logging.WARNING if level == logging.INFO else logging.NOTSET)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    stderr = logging.StreamHandler(sys.stderr)
    if journal_stream():  # journald records time and PID itself; <N> gives each line its priority
        stderr.setFormatter(JournalFormatter())
    else:
        stderr.setFormatter(logging.Formatter("%(asctime)s sonocli[%(process)d] %(levelname)s %(name)s: %(message)s",
                                              "%Y-%m-%dT%H:%M:%S"))
    logger.addHandler(stderr)
    if syslog:
        from logging.handlers import SysLogHandler

        address = syslog_address or ("/dev/log" if Path("/dev/log").exists() else ("localhost", 514))
        handler = SysLogHandler(address=address, facility=SysLogHandler.LOG_DAEMON)
        handler.setFormatter(logging.Formatter("sonocli[%(process)d]: %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    # repeated events (undecryptable telegrams, CRC errors): the first of a kind, then one line a minute with
    # the count, instead of one line each
    for handler in logger.handlers:
        summary = RepeatSummary(handler, interval=REPEAT_INTERVAL)
        handler.addFilter(summary)
        summary.start()


def _flush_log_summaries() -> None:
    """At exit: the counts of repeated events not yet summarised (the last interval's)."""
    from sonocli.daemon.systemd import RepeatSummary

    for handler in logging.getLogger("sonocli").handlers:
        for summary in [f for f in handler.filters if isinstance(f, RepeatSummary)]:
            summary.close()


class RedactSecrets(logging.Filter):
    """Replaces the configured passwords and AES keys in every log line by ``***`` (defence in depth: no
    message is meant to carry one, but a server's reply or a library's text may echo what it was sent)."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        from sonocli.errors import redact

        if self.secrets:
            message = record.getMessage()
            cleaned = redact(message, self.secrets)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


def _secrets_of(engine: Engine) -> list[str]:
    from sonocli.engine.configuration import SECRETS

    found = [str(engine.get(name) or "") for name in sorted(SECRETS)]
    for meter in engine.meters:
        if meter.key:
            found += [meter.key.hex().upper(), meter.key.hex().lower()]
    return [s for s in found if s]


def _redact_logs(engine: Engine) -> None:
    """Install the redacting filter on the daemon's log handlers (stderr, syslog)."""
    secrets = _secrets_of(engine)
    for handler in logging.getLogger("sonocli").handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactSecrets)]:
            handler.removeFilter(old)
        handler.addFilter(RedactSecrets(secrets))


@click.command("serve-daemon")
@click.option("--root", "root_here", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="sonocli root directory (app/, ext/); same as the global --root.")
@click.option("--once", is_flag=True,
              help="One readout of the configured meters, one report of everything not yet delivered, then exit "
                   "(for cron). Exit 1 when a delivery failed, 3 when some meters failed.")
@click.option("--syslog", is_flag=True, help="Also log to syslog (facility daemon).")
@click.option("--no-wireless", is_flag=True, help="Do not open the wireless receivers (WMBUS_PORT).")
@click.option("--virtual-clock", type=float, default=None, hidden=True,
              help="Tests/benchmarks: run on a virtual UNIX clock starting here, jumping to each due time.")
@click.option("--until", type=float, default=None, hidden=True, help="Tests/benchmarks: stop at this clock time.")
@click.option("--status-every", type=click.FloatRange(0.1), default=None, hidden=True,
              help="Tests: seconds between status snapshot writes (default 120).")
@click.pass_context
def serve_daemon(ctx: click.Context, root_here: Path | None, once: bool, syslog: bool, no_wireless: bool,
                 virtual_clock: float | None, until: float | None, status_every: float | None) -> None:
    """Run the concentrator continuously with chip.ini's schedule.

    Readouts every METER_TIME s (+METER_DELAY), wireless reception all the time, CSV logging
    (MUC_CSVLOG_ENABLE), reports every REPORT_TIME min (+REPORT_DELAY, +REPORT_RANDOMDELAY) through the
    outbox. SIGTERM finishes the current step and exits; SIGHUP reloads chip.ini and device_handle.cfg and
    reopens the wireless receivers that changed. New wM-Bus meters wait in the temporary list (`sonocli
    meters heard`) until activated. The PID is in <root>/ext/sonocli-daemon.pid.
    """
    from sonocli.daemon.runner import EXIT_WATCHDOG, Daemon, WatchdogTripped, pid_file
    from sonocli.engine.configuration import RootLayout, require_usable_chip_ini, resolve_root
    from sonocli.engine.core import Engine

    obj = ctx.find_object(CliContext) or CliContext()
    root = resolve_root(root_here if root_here is not None else obj.root_option)
    # a directory, an empty or a cut-short chip.ini: exit 2 now, not "0 readings" for months
    require_usable_chip_ini(RootLayout(root).chip_ini)
    engine = Engine(root)
    engine.bus_purpose = "serve-daemon"
    configure_daemon_logging(str(engine.get("MUC_LOG")), syslog, obj.verbosity)
    _redact_logs(engine)
    log = logging.getLogger("sonocli.daemon")
    with pid_file(engine.layout.ext):
        from sonocli.daemon.schedule import FastClock

        clock = FastClock(virtual_clock) if virtual_clock is not None else None
        daemon = Daemon(engine, wireless=not no_wireless, clock=clock, until=until, status_every=status_every)
        daemon.install_signals()
        try:
            if once:
                stats = daemon.once()
                pending = [i for i in engine.outbox.items() if i.channel != "tcp-server"]
                log.info("once: %d reading(s), %d report(s) queued, %d delivered, %d waiting",
                         stats.readings, stats.reports, stats.delivered, len(pending))
                if pending and engine.channel_specs():
                    ctx.exit(EXIT_FAILURE)
                if stats.failures or stats.meter_failures:
                    ctx.exit(EXIT_PARTIAL)
                return
            import os
            import signal

            from sonocli.web.server import services  # WEB_ENABLE / FTPD_ENABLE; SIGHUP after a saved change

            with services(root, on_change=lambda: os.kill(os.getpid(), signal.SIGHUP)):
                daemon.run()
        except WatchdogTripped as exc:
            log.critical("%s", exc)
            sys.stderr.flush()
            import os

            os._exit(EXIT_WATCHDOG)
        finally:
            _flush_log_summaries()
            engine.close()
