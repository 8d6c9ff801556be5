"""`sonocli listen`: hear every meter around through a receiver stick, decrypt what we have keys for.

On a TTY a live table (rich.live, imported on use) shows one row per meter; when piped, or with --json,
each telegram is one JSON line. Bad telegrams and line noise are one line each on stderr; the loop goes on.
``--save`` adds every heard meter to the meter list (guide 5.1.2: only saved meters are reported).
The JSON helpers here are shared with `decode` for wireless telegrams.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sonocli.cli.context import CliContext
from sonocli.errors import SonoError, UsageError

if TYPE_CHECKING:
    from sonocli.codecs.wmbus import WmbusTelegram
    from sonocli.engine.receiver import Heard, HeardMeter, Receiver

MODES = ("T1", "C1", "S1", "C1T1")


# --- shared JSON shapes ----------------------------------------------------------------------------


def telegram_to_dict(telegram: WmbusTelegram) -> dict[str, Any]:
    """The `decode --json` shape for wireless telegrams: core shape plus ``security`` and link details."""
    from sonocli.codecs.wmbus_link import C_FIELD_NAMES
    from sonocli.model.tables import medium_text
    from sonocli.outputs.records_json import value_to_dict

    meter = telegram.meter
    link = telegram.link.address
    tpl = telegram.tpl
    header: dict[str, Any] = {
        "id": meter.id,
        "manufacturer": meter.manufacturer_text,
        "version": meter.version,
        "medium": medium_text(meter.device_type),
        "access_number": telegram.access_number,
        "status": tpl.status if tpl is not None else None,
        "c_field": f"0x{telegram.link.c_field:02X} {C_FIELD_NAMES.get(telegram.link.c_field, '')}".strip(),
        "ci": None if telegram.app_ci is None else f"0x{telegram.app_ci:02X}",
    }
    if link.raw != meter.raw:
        header["radio"] = {
            "id": link.id,
            "manufacturer": link.manufacturer_text,
            "version": link.version,
            "medium": medium_text(link.device_type),
        }
    security: dict[str, Any] = {
        "mode": telegram.security.mode,
        "decrypted": telegram.security.decrypted,
        "state": telegram.security.state,
    }
    if telegram.security.layer != "tpl":
        security["layer"] = telegram.security.layer  # ELL AES-CTR: "mode" is the ELL encryption field
    if telegram.security.error is not None:
        security["error"] = str(telegram.security.error)
    out: dict[str, Any] = {
        "kind": "wmbus",
        "header": header,
        "records": [value_to_dict(v) for v in telegram.records],
        "more_records_follow": telegram.more_records_follow,
        "security": security,
    }
    if telegram.app_ci is not None and not telegram.records and telegram.payload and telegram.tpl is None:
        out["payload"] = telegram.payload.hex().upper()
    if telegram.warnings:
        out["warnings"] = list(telegram.warnings)
    return out


def split_telegrams(data: bytes) -> list[bytes]:
    """Several telegrams one after the other (a full frame, then its compact frames) -> each one.

    Only when every piece is a whole telegram (plausible C-field, L-field within the bytes) and nothing is
    left over; otherwise the bytes are one telegram, and the decoder judges any bytes beyond its L-field.
    """
    from sonocli.codecs.wmbus_link import C_FIELD_NAMES, normalise_frame

    pieces: list[bytes] = []
    rest = data
    try:
        while rest:
            if len(rest) < 11 or rest[1] not in C_FIELD_NAMES:
                return [data]
            _telegram, trailing = normalise_frame(rest)
            pieces.append(rest[: len(rest) - len(trailing)])
            rest = trailing
    except SonoError:
        return [data]
    return pieces if len(pieces) > 1 else [data]


def print_wireless_decode(data: bytes, key_text: str | None, as_json: bool) -> None:
    """`decode` for wireless telegrams: print what can be shown, then fail (exit 1) on a security error.

    Several telegrams in a row are decoded in order with one format cache, so a compact frame decodes
    after its full frame; JSON is then a list with one object per telegram.
    """
    from sonocli.codecs.crypto import parse_key
    from sonocli.codecs.wmbus import DecodeOptions, FormatCache, decode_telegram

    key = parse_key(key_text, name="--key") if key_text is not None else None
    pieces = split_telegrams(data)
    cache = FormatCache()
    results: list[dict[str, Any]] = []
    failure: SonoError | None = None
    used = False
    for piece in pieces:
        keys: dict[str, bytes] = {}
        if key is not None:
            probe = decode_telegram(piece, DecodeOptions(decode_application=False))
            keys = {probe.meter.id: key, probe.link.address.id: key}
        try:
            telegram = decode_telegram(piece, DecodeOptions(keys=keys, cache=cache))
        except SonoError as exc:
            if len(pieces) == 1:
                raise
            results.append({"kind": "wmbus", "error": str(exc), "raw": piece.hex().upper()})
            click.echo(f"sonocli: error: telegram {len(results)}: {exc}", err=True)
            failure = failure or exc
            continue
        used = used or telegram.security.state != "none"
        result = telegram_to_dict(telegram)
        results.append(result)
        for warning in result.get("warnings", ()):
            click.echo(f"sonocli: warning: {warning}", err=True)
        if telegram.security.error is not None:
            failure = failure or telegram.security.error
            if len(pieces) > 1:
                click.echo(f"sonocli: error: telegram {len(results)}: {telegram.security.error}", err=True)
    if key is not None and not used:
        click.echo("sonocli: warning: --key not used: the telegram is not encrypted", err=True)
    if as_json:
        from sonocli.cli.output import emit_json

        emit_json(results[0] if len(pieces) == 1 else results)
    else:
        for result in results:
            if "error" in result:
                click.echo(f"telegram not decoded: {result['error']}")
            else:
                _print_wireless_text(result)
    if failure is not None:
        if len(pieces) > 1:  # each failure was named above with its telegram number
            raise click.exceptions.Exit(failure.exit_code)
        raise failure


def _print_wireless_text(result: dict[str, Any]) -> None:
    from sonocli.cli.output import print_records

    head = result["header"]
    sec = result["security"]
    parts = [f"{head['manufacturer']}-{head['id']}-{head['version']:02X} {head['medium']}"]
    if head["access_number"] is not None:  # no TPL/ELL header (e.g. a manufacturer CI): there is none
        parts.append(f"access number {head['access_number']}")
    parts.append(head["c_field"])
    if head["ci"] is not None:
        parts.append(f"CI {head['ci']}")
    parts.append(f"security mode {sec['mode']} ({sec['state']})")
    title = ", ".join(parts)
    if "radio" in head:
        radio = head["radio"]
        title += f", via {radio['manufacturer']}-{radio['id']}"
    if result["records"]:
        print_records(title, result["records"])
    else:
        click.echo(title)
    if "payload" in result:
        click.echo(f"payload (CI {head['ci']}): {result['payload']}")


def looks_wireless(data: bytes) -> bool:
    """A wired frame starts E5, 10 … 16 or 68 L L 68; anything else with a plausible L is wireless."""
    if not data:
        return False
    if data[0] == 0xE5 and len(data) == 1:
        return False
    if data[0] == 0x10 and len(data) == 5 and data[-1] == 0x16:
        return False
    if len(data) >= 6 and data[0] == 0x68 and data[3] == 0x68 and data[1] == data[2] and data[-1] == 0x16:
        return False
    return len(data) >= 11 and data[0] >= 10


# --- listen ----------------------------------------------------------------------------------------


def keys_visible(chip: Any = None) -> bool:
    """Whether keys are printed in clear: one rule for every command that prints a key.

    Only with the environment variable SHOW_KEYS=1, and never when chip.ini sets SHOW_KEYS=0 (the
    administrator's "Show encryption keys" switch off). chip.ini's SHOW_KEYS=1, the guide's default that
    `init` writes, is for the device's password-protected web page and does not unmask keys on a terminal
    or in a pasted log.
    """
    if os.environ.get("SHOW_KEYS", "").strip() != "1":
        return False
    return chip is None or bool(chip.get("SHOW_KEYS"))


def mask_key(key: bytes | None, visible: bool | None = None) -> str:
    """A key as 32 hex digits, masked but for its first and last byte unless keys are visible."""
    if key is None:
        return ""
    text = key.hex().upper()
    if keys_visible() if visible is None else visible:
        return text
    return text[:2] + "*" * (len(text) - 4) + text[-2:]


def _heard_to_dict(item: Heard) -> dict[str, Any]:
    out: dict[str, Any] = {"time": item.when.isoformat(), "rssi": item.rssi}
    if item.meter is not None:
        out["in_list"] = item.meter.in_list
        out["new"] = item.new_meter
    if item.telegram is not None:
        out.update(telegram_to_dict(item.telegram))
    else:
        out["kind"] = "wmbus"
        out["error"] = item.error
        out["raw"] = item.raw.hex().upper()
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
        from rich.live import Live

        self.receiver = receiver
        self.live = Live(self._render(), refresh_per_second=4, transient=False)

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(title="wireless M-Bus meters heard")
        for column in COLUMNS:
            table.add_column(column)
        for meter in sorted(self.receiver.heard.values(), key=lambda m: m.id):
            table.add_row(*(str(cell) for cell in _row(meter)))
        return table

    def update(self, item: Heard) -> None:
        self.live.update(self._render())


@click.command("listen")
@click.option(
    "--port",
    "port_url",
    default=None,
    help="Port URL (/dev/ttyUSB0, socket://h:p, sim://air, -, file:PATH) [chip.ini WMBUS_PORT].",
)
@click.option(
    "--dongle", default=None, help="Receiver type: im871a, amb8465, cul, rtlwmbus, hex [chip.ini WMBUS_DONGLE]."
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
@click.option("--save", is_flag=True, help="Add every heard meter to the meter list (device_handle.cfg).")
@click.option(
    "--only-listed",
    is_flag=True,
    help="Ignore meters not in the meter list (the guide's switch 'wM-Bus listen' off); they are counted only.",
)
@click.option(
    "--store/--no-store",
    default=True,
    show_default=True,
    help="Keep readings of active listed meters in the readings store (ext/sonocli.db), as the daemon does.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per telegram (also the default when piped).")
@click.pass_obj
def listen(
    obj: CliContext,
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
    """Receive wireless M-Bus telegrams, decrypt them with the meter list's keys, and show the meters."""
    from sonocli.cli.output import emit_json, stdout_is_tty
    from sonocli.config.layout import RootLayout
    from sonocli.engine.receiver import IGNORED, Receiver, ReceiverSettings, open_port, settings_from_chip
    from sonocli.registry import DONGLES, load

    if duration is not None and count is not None:
        raise UsageError("give --duration or --count, not both")
    layout = RootLayout(obj.root)
    chip = _load_chip(layout.chip_ini)
    prefix = "WMBUS2" if interface == 2 else "WMBUS"
    port_url = port_url or (str(chip.get(f"{prefix}_PORT")) if chip is not None else "")
    dongle = dongle or (str(chip.get(f"{prefix}_DONGLE")) if chip is not None else "")
    if not port_url:
        raise UsageError(f"no port: give --port URL (or set {prefix}_PORT in chip.ini); try --port sim://air")
    if not dongle:
        raise UsageError(f"no dongle type: give --dongle NAME (or set {prefix}_DONGLE in chip.ini); allowed: "
                         + ", ".join(sorted(DONGLES)))
    driver = load(DONGLES, dongle, "dongle")()
    settings = settings_from_chip(chip, layout.log_dir, interface) if chip is not None else ReceiverSettings()
    if mode is not None:
        from dataclasses import replace

        settings = replace(settings, mode=mode.upper())
    if only_listed:
        from dataclasses import replace

        settings = replace(settings, listen_new=False)
    if mode is None and settings.mode not in driver.modes:  # chip.ini's mode may not suit this stick
        fallback = _fallback_mode(settings, driver.modes)
        click.echo(f"sonocli: warning: {driver.name} has no {settings.mode} mode; listening in {fallback.mode}",
                   err=True)
        settings = fallback
    chip_mode = str(chip.get(f"{prefix}_MODE")) if chip is not None else ""
    if mode is None and chip_mode.upper().startswith("R"):
        click.echo(f"sonocli: warning: {prefix}_MODE={chip_mode}: R2 is not supported by the receiver drivers; "
                   f"listening in {settings.mode} (give --mode to choose)", err=True)
    meter_list = _load_meters(layout.device_handle)
    receiver = Receiver(driver, settings, meter_list.meters if meter_list is not None else ())
    receiver.on_problem = lambda text: click.echo(f"sonocli: warning: {text}", err=True)

    from sonocli.cli.recording import ReadingRecorder

    recorder = ReadingRecorder(obj.root, store)
    port = open_port(port_url, driver)
    live = None
    json_lines = as_json or not stdout_is_tty()
    try:
        receiver.setup(port)
        if not json_lines:
            live = _LiveTable(receiver)
            live.live.start()

        def on_heard(item: Heard) -> None:
            if item.duplicate:
                return
            if item.reading is not None:
                recorder.record([item.reading])
            if live is not None:
                live.update(item)
            elif item.meter is not None:  # not: bad telegrams (a stderr line each), unlisted with --only-listed
                emit_json(_heard_to_dict(item), lines=True)

        try:
            receiver.run(port, on_heard=on_heard, duration=duration, count=count)
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:
            # The reader (head, jq -n ...) went away: a normal end like --count, not an error. Point stdout
            # at /dev/null so the interpreter's final flush does not fail either.
            import sys

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        if live is not None:
            live.live.stop()
        recorder.close()
        receiver.close()
        close = getattr(port, "close", None)
        if close is not None:
            close()
    stats = receiver.stats
    ignored = stats.bad.pop(IGNORED, 0)
    bad = sum(stats.bad.values())
    click.echo(
        f"sonocli: heard {len(receiver.heard)} meters, {stats.telegrams} telegrams "
        f"({stats.duplicates} repeats), {bad} bad or undecryptable"
        + (f", {ignored} from meters not in the list ignored" if only_listed else ""),
        err=True,
    )
    if save:
        _save(layout.device_handle, receiver, meter_list)


def _fallback_mode(settings: Any, allowed: tuple[str, ...]) -> Any:
    from dataclasses import replace

    return replace(settings, mode=allowed[0] if "T1" not in allowed else "T1")


def _load_chip(path: Path) -> Any:
    if not path.is_file():
        return None
    from sonocli.config.chipini import ChipIni

    return ChipIni.load(path)


def _load_meters(path: Path) -> Any:
    from sonocli.config.device_handle import load_meter_list

    return load_meter_list(path)


def _save(path: Path, receiver: Receiver, meter_list: Any) -> None:
    from dataclasses import replace

    from sonocli.config.device_handle import save_meter_list

    before = len(meter_list.meters)
    merged = receiver.merged_meters(meter_list.meters, all_heard=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_meter_list(path, replace(meter_list, meters=tuple(merged)))
    except OSError as exc:
        raise SonoError(f"cannot save the meter list {path}: {exc.strerror}") from exc
    click.echo(f"sonocli: meter list {path}: {len(merged) - before} meters added, {len(merged)} in total", err=True)
