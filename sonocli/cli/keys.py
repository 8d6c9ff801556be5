"""`sonocli keys import FILE` and `sonocli keys check`: the wM-Bus keys of the meter list.

Keys live in the meter list (device_handle.cfg ``encryptionkey``), as on the device. They are shown
masked unless the environment has SHOW_KEYS=1 and chip.ini does not say SHOW_KEYS=0 (``listen.keys_visible``).
`check` tests each key against the newest raw telegram of its meter in the raw log (WMBUS_RAWLOGENABLE)
when there is one, else only its form.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from sonocli.cli.context import CliContext
from sonocli.errors import EXIT_FAILURE, EXIT_PARTIAL, EXIT_USAGE, SonoError, UsageError


@click.group("keys")
def keys() -> None:
    """Import and check wireless M-Bus decryption keys (stored in the meter list)."""


_HEADER_IDS = frozenset({"id", "meter", "meter_id", "meterid", "serial"})


def parse_key_file(text: str, source: str) -> tuple[list[tuple[str, bytes]], list[str]]:
    """``id,key`` lines -> (entries, one error line each).

    Accepted: ``#`` comments (whole line or after the key), blank lines, spaces around fields, ``;`` as
    separator, quoted fields and a UTF-8 BOM (spreadsheet exports), one header line before the first
    entry (``id,key``). A meter listed twice with the same key counts once; with different keys it is an
    error and neither key is used, since the file does not say which one is right.
    """
    from sonocli.codecs.crypto import parse_key

    parsed: dict[str, tuple[int, bytes]] = {}
    conflicting: set[str] = set()
    errors: list[str] = []
    seen_entry = False
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p.strip().strip("\"'").strip() for p in line.replace(";", ",").split(",")]
        if len(parts) != 2:
            errors.append(f"{source}:{number}: expected 'id,key', got {len(parts)} fields")
            continue
        meter_id, key_text = parts
        if not seen_entry and meter_id.lower() in _HEADER_IDS and key_text.lower() in ("key", "aes key", "aeskey"):
            seen_entry = True
            continue
        seen_entry = True
        meter_id = meter_id.upper().removeprefix("0X")
        if len(meter_id) != 8 or any(ch not in "0123456789ABCDEF" for ch in meter_id):
            errors.append(f"{source}:{number}: meter id {parts[0]!r} must be 8 hex/BCD digits")
            continue
        try:
            key = parse_key(key_text, name=f"key of meter {meter_id}")
        except UsageError as exc:
            errors.append(f"{source}:{number}: {exc}")
            continue
        earlier = parsed.get(meter_id)
        if earlier is None:
            parsed[meter_id] = (number, key)
        elif earlier[1] != key:
            errors.append(
                f"{source}:{number}: meter {meter_id} already has a different key on line {earlier[0]}; "
                "neither is imported"
            )
            conflicting.add(meter_id)
    entries = [(meter_id, key) for meter_id, (_, key) in parsed.items() if meter_id not in conflicting]
    return entries, errors


@keys.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def import_keys(obj: CliContext, file: Path, as_json: bool) -> None:
    """Set the keys of FILE (CSV 'id,key' per line) on the meter list; unknown meters are created."""
    from sonocli.cli.listen import mask_key
    from sonocli.cli.output import emit_json, print_table
    from sonocli.config.device_handle import load_meter_list, save_meter_list
    from sonocli.config.layout import RootLayout
    from sonocli.model import Interface, Meter

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{file}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    entries, errors = parse_key_file(text, str(file))
    visible = _visible(RootLayout(obj.root).chip_ini)
    for line in errors:
        click.echo(f"sonocli: error: {line}", err=True)
    path = RootLayout(obj.root).device_handle
    meter_list = load_meter_list(path)
    meters = list(meter_list.meters)
    index = {m.serial.upper(): i for i, m in enumerate(meters) if m.interface is Interface.WMBUS}
    results: list[dict[str, Any]] = []
    for meter_id, key in entries:
        position = index.get(meter_id)
        if position is None:
            meters.append(Meter(Interface.WMBUS, serial=meter_id, key=key))
            index[meter_id] = len(meters) - 1
            action = "created"
        else:
            meters[position] = replace(meters[position], key=key)
            action = "updated"
        results.append({"id": meter_id, "action": action, "key": mask_key(key, visible)})
    if entries:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_meter_list(path, replace(meter_list, meters=tuple(meters)))
        except OSError as exc:
            raise SonoError(f"cannot save the meter list {path}: {exc.strerror}") from exc
    if as_json:
        emit_json({"imported": results, "errors": errors})
    else:
        print_table(f"keys imported into {path}", ("ID", "Action", "Key"),
                    [(r["id"], r["action"], r["key"]) for r in results])
    if errors:
        raise click.exceptions.Exit(EXIT_PARTIAL if entries else EXIT_USAGE)


def _visible(chip_ini: Path) -> bool:
    """SHOW_KEYS=1 in the environment, unless chip.ini switches it off (see listen.keys_visible)."""
    from sonocli.cli.listen import _load_chip, keys_visible

    try:
        chip = _load_chip(chip_ini)
    except SonoError:
        return False  # a broken chip.ini must not stop key handling; keys stay masked
    return keys_visible(chip)


def _latest_telegrams(log_dir: Path) -> dict[str, bytes]:
    """The newest raw telegram per meter ID from the raw log (both DLL and meter IDs)."""
    from sonocli.codecs.wmbus import DecodeOptions, decode_telegram
    from sonocli.engine.receiver import RAW_LOG_NAME, parse_raw_log

    path = log_dir / RAW_LOG_NAME
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return {}
    latest: dict[str, bytes] = {}
    for _when, raw in parse_raw_log(text):
        try:
            head = decode_telegram(raw, DecodeOptions(decode_application=False))
        except SonoError:
            continue
        latest[head.meter.id] = raw
        latest.setdefault(head.link.address.id, raw)
    return latest


def check_key(meter_id: str, key: bytes | None, telegram: bytes | None) -> tuple[str, str]:
    """(status, detail): ok, missing, wrong key, mac mismatch, unsupported, not encrypted, unchecked."""
    from sonocli.codecs.wmbus import DecodeOptions, decode_telegram

    if key is None:
        if telegram is None:
            return "missing", "no key (no telegram stored to tell whether the meter encrypts)"
        try:
            head = decode_telegram(telegram, DecodeOptions(decode_application=False))
        except SonoError as exc:
            return "missing", f"no key; the stored telegram does not decode: {exc}"
        if head.security.error is None:
            return "not needed", "the stored telegram is not encrypted"
        return "missing", f"no key; the meter uses security mode {head.security.mode}"
    if len(key) != 16:
        return "wrong key", f"key has {len(key)} bytes, AES-128 needs 16"
    if telegram is None:
        if key == bytes(16):
            return "unchecked", "key is all zeros (a placeholder?); no telegram stored to test it"
        return "unchecked", "well-formed; no telegram stored to test it (enable WMBUS_RAWLOGENABLE and listen)"
    try:
        result = decode_telegram(telegram, DecodeOptions(keys={meter_id: key}))
    except SonoError as exc:
        return "unchecked", f"stored telegram does not decode: {exc}"
    if result.security.error is not None:
        return result.security.state, str(result.security.error)
    if result.security.state == "decrypted":
        return "ok", f"decrypts the stored telegram ({len(result.records)} values)"
    return "not encrypted", "the stored telegram is not encrypted; the key is not used"


@keys.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def check_keys(obj: CliContext, as_json: bool) -> None:
    """Which wM-Bus meters lack a key, and which keys fail and why."""
    from sonocli.cli.listen import mask_key
    from sonocli.cli.output import emit_json, print_table
    from sonocli.config.device_handle import load_meter_list
    from sonocli.config.layout import RootLayout
    from sonocli.model import Interface

    layout = RootLayout(obj.root)
    meter_list = load_meter_list(layout.device_handle)
    latest = _latest_telegrams(layout.log_dir)
    visible = _visible(layout.chip_ini)
    rows: list[dict[str, Any]] = []
    for meter in meter_list.meters:
        if meter.interface is not Interface.WMBUS:
            continue
        ident = meter.serial.upper()
        status, detail = check_key(ident, meter.key, latest.get(ident))
        rows.append({"id": ident, "manufacturer": meter.manufacturer, "key": mask_key(meter.key, visible),
                     "status": status, "detail": detail})
    if as_json:
        emit_json(rows)
    else:
        print_table("wM-Bus keys", ("ID", "MAN", "Key", "Status", "Detail"),
                    [(r["id"], r["manufacturer"] or "", r["key"], r["status"], r["detail"]) for r in rows])
    if any(r["status"] in ("wrong key", "mac mismatch", "unsupported") for r in rows):
        raise click.exceptions.Exit(EXIT_FAILURE)
