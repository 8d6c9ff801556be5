"""`sonocli listen`: hear every meter around through a receiver stick, decrypt what we have keys for.

On a TTY a live table (rich.live, imported on use) shows one row per meter; when piped, or with --json,
each telegram is one JSON line. Bad telegrams and line noise are one line each on stderr; the loop goes on.

Reception goes through the engine, as the daemon's does (guide 4.2, 5.1.2): readings of listed meters are
matched to the meter list (their value entries are learned on the first reception) and those of active
meters are stored; meters not in the list go to the temporary list in the store (``sonocli meters heard``).
``--save`` adds them to the meter list *inactive*: nothing is reported for them until the engineer activates
them (``sonocli meters activate ID``). With the "wM-Bus listen" switch off (chip.ini WMBUS_LISTEN=0, or
``--only-listed``) meters not in the list are not recognised at all: only counted.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from sonocli.cli.common import engine_for, telegram_to_dict
from sonocli.errors import SonoError, UsageError
from sonocli.registry import dongle_names

if TYPE_CHECKING:
    from sonocli.engine.core import Engine, Recorded
    from sonocli.engine.receiver import Heard, HeardMeter, Receiver

MODES = ("T1", "C1", "S1", "C1T1")


def _heard_to_dict(item: Heard) -> dict[str, Any]:
    """One JSON line: the one meter object (the list's entry for a listed meter), ``time`` (ISO 8601 UTC),
    rssi, then the telegram as `decode --json` shows it; a telegram that failed adds ``error``
    ``{"message", "kind"}`` (as a failed readout does)."""
    from sonocli.engine.meterjson import error_object, iso_time, meter_object

    out: dict[str, Any] = {}
    if item.reading is not None:
        out["meter"] = meter_object(item.reading.meter)
    elif item.meter is not None:
        out["meter"] = meter_object(item.meter.as_meter())
    out.update({"time": iso_time(item.when), "rssi": item.rssi, "link_mode": item.link_mode})
    if item.rssi_rel is not None:  # rtl-wmbus's relative level: not dBm, so never in "rssi"
        out["rssi_rel"] = item.rssi_rel
    if item.meter is not None:
        out["in_list"] = item.meter.in_list
        out["new"] = item.new_meter
    if item.telegram is not None:
        out.update(telegram_to_dict(item.telegram))
    else:
        out["kind"] = "wmbus"
        out["raw"] = item.raw.hex().upper()
    if item.error:
        out["error"] = error_object(item.error, item.error_kind or None)
    return out


def _row(meter: HeardMeter) -> tuple[Any, ...]:
    from sonocli.model.tables import medium_text

    seen = meter.last_seen.astimezone().strftime("%H:%M:%S") if meter.last_seen else ""
    state = meter.security if meter.security_mode else "plain"
    if meter.last_error:
        state = f"{meter.security}"
    return (
        meter.id,
        meter.manufacturer,
        medium_text(meter.medium),
        "" if meter.rssi is None else meter.rssi,
        meter.telegrams,
        seen,
        state,
        "yes" if meter.in_list else "no",
    )


COLUMNS = ("ID", "MAN", "Medium", "RSSI", "Telegrams", "Last seen", "Decryption", "In list")


class _LiveTable:
    def __init__(self, receiver: Receiver) -> None:
        from rich.console import Console
        from rich.live import Live

        self.receiver = receiver
        self.console = Console()
        self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)

    def _render(self) -> Any:
        from sonocli.cli.output import render_table  # the one table layout (one line per row)

        rows = [_row(meter) for meter in sorted(self.receiver.heard.values(), key=lambda m: m.id)]
        return render_table("wireless M-Bus meters heard", COLUMNS, rows, self.console.width)

    def update(self, item: Heard) -> None:
        self.live.update(self._render())


@click.command("listen")
@click.option(
    "--protocol",
    type=click.Choice(["wmbus", "sml"]),
    default="wmbus",
    show_default=True,
    help="wmbus: a wireless M-Bus receiver; sml: SML files pushed by a meter (IR head) [chip.ini SML_PORT].",
)
@click.option(
    "--port",
    "port_url",
    default=None,
    help="Port URL (/dev/ttyUSB0, socket://h:p, sim://air, sim://sml, -, file:PATH) [chip.ini WMBUS_PORT].",
)
@click.option(
    "--dongle", default=None, help=f"Receiver type: {', '.join(dongle_names())} [chip.ini WMBUS_DONGLE]."
)
@click.option(
    "--mode", type=click.Choice(MODES, case_sensitive=False), default=None, help="Radio mode [chip.ini WMBUS_MODE]."
)
@click.option(
    "--interface",
    type=click.IntRange(1, 2),
    default=1,
    show_default=True,
    help="Which receiver of chip.ini: 1 = WMBUS_PORT/WMBUS_DONGLE/WMBUS_MODE, 2 = WMBUS2_PORT/..._DONGLE/..._MODE.",
)
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None, help="Stop after S seconds.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after N telegrams (repeats not counted).")
@click.option(
    "--save",
    is_flag=True,
    help="Add every heard meter not in the meter list to it (device_handle.cfg), inactive: "
    "activate with 'sonocli meters activate ID'.",
)
@click.option(
    "--only-listed",
    is_flag=True,
    help="Ignore meters not in the meter list (the guide's switch 'wM-Bus listen' off, as chip.ini "
    "WMBUS_LISTEN=0); they are counted only.",
)
@click.option(
    "--store/--no-store",
    default=True,
    show_default=True,
    help="Keep readings of active listed meters in the readings store (ext/sonocli.db), as the daemon does.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per telegram (also the default when piped).")
@click.pass_context
def listen(
    ctx: click.Context,
    protocol: str,
    port_url: str | None,
    dongle: str | None,
    mode: str | None,
    interface: int,
    duration: float | None,
    count: int | None,
    save: bool,
    only_listed: bool,
    store: bool,
    as_json: bool,
) -> None:
    """Receive wireless M-Bus telegrams, decrypt them with the meter list's keys, and show the meters.

    --protocol sml hears SML files pushed by a meter (eHZ/EDL21 through an IR head; SML_PORT, SML_BAUDRATE):
    one line per file, with --json {"time", "kind": "sml", "meter", "records": [... "obis": "1-0:1.8.0*255"]};
    a bad file (CRC, truncated, unknown message) is one line on stderr and the stream goes on.
    """
    if duration is not None and count is not None:
        raise UsageError("give --duration or --count, not both")
    engine = engine_for(ctx)
    if protocol == "sml":
        wireless_only = [name for name, given in (("--dongle", dongle), ("--mode", mode),
                                                  ("--only-listed", only_listed)) if given]
        if wireless_only:
            engine.close()
            raise UsageError(f"{', '.join(wireless_only)}: for --protocol wmbus only")
        try:
            _listen_sml(engine, port_url, duration, count, store, as_json, save)
        finally:
            engine.close()
        return
    try:
        _listen(engine, port_url, dongle, mode, interface, duration, count, save, only_listed, store, as_json)
    finally:
        engine.close()


def _listen(
    engine: Engine,
    port_url: str | None,
    dongle: str | None,
    mode: str | None,
    interface: int,
    duration: float | None,
    count: int | None,
    save: bool,
    only_listed: bool,
    store: bool,
    as_json: bool,
) -> None:
    from sonocli.cli.jsonout import emit_json, stdout_is_tty  # not the table renderer: piped, none is drawn
    from sonocli.engine.receiver import IGNORED

    prefix = "WMBUS2" if interface == 2 else "WMBUS"
    port_url = port_url or str(engine.get(f"{prefix}_PORT") or "").strip()
    dongle = dongle or str(engine.get(f"{prefix}_DONGLE") or "").strip()
    if not port_url:
        raise UsageError(f"no port: give --port URL (or set {prefix}_PORT in chip.ini); try --port sim://air")
    if not dongle:
        raise UsageError(f"no dongle type: give --dongle NAME (or set {prefix}_DONGLE in chip.ini); allowed: "
                         + ", ".join(sorted(dongle_names())))
    listen_new = False if only_listed else None
    receiver = engine.receiver(dongle, interface=interface, mode=mode, listen_new=listen_new)
    if mode is None and receiver.settings.mode not in receiver.driver.modes:  # chip.ini's mode may not suit
        allowed = receiver.driver.modes
        fallback = "T1" if "T1" in allowed else allowed[0]
        click.echo(f"sonocli: warning: {receiver.driver.name} has no {receiver.settings.mode} mode; "
                   f"listening in {fallback}", err=True)
        receiver = engine.receiver(dongle, interface=interface, mode=fallback, listen_new=listen_new)
    chip_mode = str(engine.get(f"{prefix}_MODE") or "")
    if mode is None and chip_mode.upper().startswith("R"):
        click.echo(f"sonocli: warning: {prefix}_MODE={chip_mode}: R2 is not supported by the receiver drivers; "
                   f"listening in {receiver.settings.mode} (give --mode to choose)", err=True)
    receiver.on_problem = lambda text: click.echo(f"sonocli: warning: {text}", err=True)

    port = engine.open_receiver_port(port_url, receiver)
    live = None
    json_lines = as_json or not stdout_is_tty()
    stored = 0
    try:
        if not json_lines:
            live = _LiveTable(receiver)
            live.live.start()

        def on_heard(item: Heard, recorded: Recorded | None) -> None:
            if item.duplicate:
                return
            if live is not None:
                live.update(item)
            elif item.meter is not None:  # not: bad telegrams (a stderr line each), unlisted with listen off
                emit_json(_heard_to_dict(item), lines=True)

        try:
            stored = engine.run_receiver(receiver, port, duration=duration, count=count, on_heard=on_heard,
                                         store=store)
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:
            # The reader (head, jq -n ...) went away: a normal end like --count, not an error. Point stdout
            # at /dev/null so the interpreter's final flush does not fail either.
            import sys

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except BaseException:
            if live is not None and not receiver.heard:  # e.g. the stick did not answer: no empty table
                live.live.transient = True
            raise
    finally:
        if live is not None:
            live.live.stop()
        close = getattr(port, "close", None)
        if close is not None:
            close()
    stats = receiver.stats
    ignored = stats.bad.pop(IGNORED, 0)
    bad = sum(stats.bad.values())
    click.echo(
        f"sonocli: heard {len(receiver.heard)} meters, {stats.telegrams} telegrams "
        f"({stats.duplicates} repeats), {bad} bad or undecryptable"
        + (f", {ignored} from meters not in the list ignored" if not receiver.settings.listen_new else "")
        + (f", {stored} readings stored" if stored else ""),
        err=True,
    )
    if save:
        _save(engine, receiver)


def _listen_sml(engine: Engine, port_url: str | None, duration: float | None, count: int | None, store: bool,
                as_json: bool, save: bool = False) -> None:
    """``listen --protocol sml``: every SML file on the port, a line each (JSON when piped or --json)."""
    from sonocli.cli.jsonout import emit_json, stdout_is_tty  # not the table renderer: piped, none is drawn
    from sonocli.engine.sml import SmlItem, item_to_dict, listen_sml
    from sonocli.errors import ProtocolError

    json_lines = as_json or not stdout_is_tty()

    def on_item(item: SmlItem) -> None:
        if item.reading is None:
            reason = (item.error or "").removeprefix("SML file: ").removeprefix("SML: ")  # the codec names SML
            click.echo(f"sonocli: bad SML file: {reason}", err=True)
            return
        if json_lines:
            data = item_to_dict(item)  # the meter object first, as in every line of listen and readout
            emit_json({"meter": data.pop("meter"), **data}, lines=True)
            return
        shown = ", ".join(f"{v.text}={v.exact}{' ' + v.unit if v.unit else ''}" for v in item.reading.values
                          if v.is_numeric)
        click.echo(f"{item.when.astimezone().strftime('%H:%M:%S')} {item.reading.meter.device_id} {shown}")

    try:
        stats = listen_sml(engine, port_url, duration=duration, count=count, store=store, on_item=on_item)
    except KeyboardInterrupt:
        return
    click.echo(f"sonocli: heard {len(stats.meters)} SML meter(s), {stats.files} files, {stats.bad} bad"
               + (f", {stats.stored} readings stored" if stats.stored else ""), err=True)
    if save and stats.unlisted:
        from sonocli.model.valueclass import replace

        added = engine.save_heard([replace(m, active=False) for m in stats.unlisted.values()])
        click.echo(f"sonocli: meter list {engine.layout.device_handle}: {len(added)} SML meter(s) added (inactive: "
                   f"activate with 'sonocli meters activate ID')", err=True)
    if stats.bad and not stats.files:
        raise ProtocolError(f"no valid SML file: {stats.bad} bad", hint="check the baud rate (SML_BAUDRATE) "
                            "and the IR head's position")


def _save(engine: Engine, receiver: Receiver) -> None:
    """Add the heard meters that are not in the list, inactive (guide 5.1.2: a new meter is reported only
    once the engineer activates it). The engine adds them to the list as it is on disk now, under its lock,
    so value entries learned during the run (or edits made meanwhile) are kept."""
    from sonocli.model.valueclass import replace

    heard = [replace(m.as_meter(receiver.keys.get(m.id)), active=False) for m in receiver.temporary()]
    path = engine.layout.device_handle
    try:
        added = engine.save_heard(heard)
        total = len(engine.meter_list().meters)
    except OSError as exc:
        raise SonoError(f"cannot save the meter list {path}: {exc.strerror or exc}") from exc
    click.echo(f"sonocli: meter list {path}: {len(added)} meters added (inactive: activate with "
               f"'sonocli meters activate ID'), {total} in total", err=True)
