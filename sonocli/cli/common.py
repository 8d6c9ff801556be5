"""Helpers shared by several commands (DESIGN.md: shared helpers live in one CLI module, never in a sibling
command): the engine of the root a command runs on, the JSON shapes of meters, keys as they may be shown,
and the rendering of decoded wireless telegrams (``decode`` and ``listen``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

# the JSON shapes of meters are the engine's (the web API and MQTT use the same ones); re-exported here
from sonocli.engine.meterjson import key_text as key_text
from sonocli.engine.meterjson import meter_dict as meter_dict
from sonocli.engine.meterjson import value_dict as value_dict

if TYPE_CHECKING:
    from sonocli.cli.output import Column
    from sonocli.engine.core import Engine
    from sonocli.engine.decoding import Telegram


def engine_for(ctx: click.Context | None = None) -> Engine:
    """The Engine of the root this command runs on (``--root``, SONOCLI_ROOT or the default root)."""
    from sonocli.cli.context import CliContext
    from sonocli.engine.core import Engine

    current = ctx if ctx is not None else click.get_current_context()
    obj = current.find_object(CliContext) or CliContext()
    return Engine(obj.root)


def telegram_to_dict(telegram: Telegram) -> dict[str, Any]:
    """The `decode --json` shape for wireless telegrams: core shape plus ``security`` and link details."""
    from sonocli.engine.decoding import telegram_to_dict as to_dict

    return to_dict(telegram)


def split_telegrams(data: bytes) -> list[bytes]:
    """Several telegrams one after the other (a full frame, then its compact frames) -> each one
    (see sonocli.engine.decoding.split_telegrams)."""
    from sonocli.engine.decoding import split_telegrams as split

    return split(data)


def print_wireless_decode(data: bytes, key_text: str | None, as_json: bool, options: Any = None) -> None:
    """`decode` for wireless telegrams: print what can be shown, then fail (exit 1) on a security error.

    Several telegrams in a row are decoded in order with one format cache, so a compact frame decodes
    after its full frame; JSON is then a list with one object per telegram.
    """
    from sonocli.engine.decoding import decode_wireless

    decoded = decode_wireless(data, key_text, options)  # options: engine.decoding.WirelessOptions
    several = len(decoded.items) > 1
    for number, item in enumerate(decoded.items, 1):
        if item.error is not None:
            click.echo(f"sonocli: error: telegram {number}: {item.error}", err=True)
            continue
        for warning in item.result.get("warnings", ()):
            click.echo(f"sonocli: warning: {warning}", err=True)
        if item.security_error is not None and several:
            click.echo(f"sonocli: error: telegram {number}: {item.security_error}", err=True)
    if decoded.key_given and not decoded.key_used:
        click.echo("sonocli: warning: --key not used: the telegram is not encrypted", err=True)
    results = [item.result for item in decoded.items]
    if as_json:
        from sonocli.cli.output import emit_json

        emit_json(results if several else results[0])
    else:
        for result in results:
            if "error" in result:
                click.echo(f"telegram not decoded: {result['error']}")
            else:
                _print_wireless_text(result)
                for line in result.get("explain", ()):  # decode --explain
                    click.echo(f"{line['offset']!s:>10}  {line['bytes']:<24}  {line['meaning']}")
    failure = decoded.failure
    if failure is not None:
        if several:  # each failure was named above with its telegram number
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


def description_mode(flags: int) -> int:
    """MUC_METERDESCRIPTIONENABLEFLAGS (Table 25: bit 0 description, bit 1 storage/tariff/type, bit 2 DIF/VIF,
    bit 3 complete raw data) as the mode number of Table 10 (sonocli.model.description.MODES)."""
    words = bool(flags & 0b11)
    if flags & 8:
        return 4 if words else 6
    if flags & 4:
        return 3 if words else 5
    if flags & 2:
        return 2
    return 1 if flags & 1 else 0


def value_description(value: Any, flags: int) -> str:
    """A configured value's description in the chip.ini's mode.

    The list keeps no raw DIF/VIF bytes (they come with a readout), so the raw-data parts stay empty here.
    """
    from sonocli.model.description import describe
    from sonocli.model.tables import measurement_index
    from sonocli.model.values import MeterValue

    try:
        measurement, text = measurement_index(value.description), None
    except KeyError:  # a meter's own plain-text description (VIF 7C): shown as the meter sent it
        measurement, text = 31, value.description
    shown = MeterValue(
        index=0,
        measurement=measurement,
        unit=value.unit,
        exponent=value.exponent,
        function=value.valuetype,
        storage=value.storagenum,
        tariff=value.tariff,
        text=text,
    )
    return describe(shown, description_mode(flags)).rstrip(" #")


def active_mark(flag: bool) -> str:
    return "yes" if flag else "no"


def meter_table(
    meter_list: Any, statuses: dict[str, Any] | None = None
) -> tuple[tuple[Column, ...], list[tuple[Any, ...]]]:
    """Columns and rows of the meter list as the tab Meter (and the print page) shows it.

    ``statuses`` (``engine.meter_statuses()``) fills the State column: "*" when the meter's value list is
    limited by its maxvaluecount or METER_MAXVALUECOUNT, as the device marks it.
    """
    known = statuses or {}

    def state(meter: Any) -> str:
        status = known.get(meter.device_id.upper())
        return "*" if status is not None and status.limited else ""

    rows = [
        (
            i + 1,
            m.interface.label,
            m.serial,
            m.manufacturer or "",
            "" if m.medium is None else m.identity.medium_text,
            "" if m.version is None else m.version,
            m.rssi if m.interface.label == "wM-Bus" else m.primary_address,
            len(m.values),
            m.readout_cycle or "",
            "yes" if m.key else "",
            active_mark(m.active),
            state(m),
            m.user or "",
        )
        for i, m in enumerate(meter_list.meters)
    ]
    from sonocli.cli.output import FIXED, TEXT, Column

    # TSV keeps every column and header; a terminal shows short headers and drops columns that are all blank
    columns = (
        Column("#", FIXED),
        Column("Interface", FIXED, short="Bus"),
        Column("Serial", FIXED),
        Column("MAN", FIXED),
        Column("Medium", TEXT),
        Column("Version", FIXED, short="Ver"),
        Column("Addr/RSSI", FIXED, short="Addr"),
        Column("Values", FIXED, short="Vals"),
        Column("Cycle", FIXED, hide_blank=True),
        Column("Key", FIXED, hide_blank=True),
        Column("Active", FIXED, short="On"),
        Column("State", FIXED, hide_blank=True, short="St"),
        Column("User label", TEXT, hide_blank=True, short="User"),
    )
    return columns, rows


def meter_row(meter: Any) -> dict[str, Any]:
    """The ``meter`` object of scan/readout ``--json``: the engine's one shape (also MQTT's)."""
    from sonocli.engine.messages import meter_object

    return meter_object(meter)
