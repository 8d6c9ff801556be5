"""Keys and the text forms of meter-list fields: what ``keys import``/``keys check`` and ``meters add/edit``
need from the codecs and the meter-list file format, behind the engine (the dependency rule keeps ``cli/``
away from codecs and config).

* :func:`apply_keys` is the pure rule of a key import: applied by ``engine.update_meters`` to the list as
  it is on disk at that moment, so parallel imports and edits never lose each other's changes.
* :func:`check_key` tests a key against a stored raw telegram (why a key fails: wrong key, MAC mismatch…).
* :func:`parse_key`, :func:`parse_key_field`, :func:`parse_scale`, :func:`parse_medium` read what a user
  types; they raise UsageError (exit 2) or ValueError with a message that names what is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sonocli.errors import SonoError
from sonocli.model.values import Interface, Meter

if TYPE_CHECKING:
    from sonocli.config.device_handle import MeterList
    from sonocli.engine.core import Engine


# ------------------------------------------------------------------------------------------- parsing
def parse_key(text: str, *, name: str = "key") -> bytes:
    """A 16-byte AES key from 32 hex digits (``0x82 0xB0 …``, ``82:B0…`` and one run of digits accepted)."""
    from sonocli.codecs.crypto import parse_key as parse

    return parse(text, name=name)


def parse_key_field(text: str) -> bytes | None:
    """``meters add/edit --key``: the device's ``0x82 0xB0 …`` spelling; ``none``, ``0`` or ``''`` remove it.

    The length is checked by the meter-list rules (:func:`sonocli.engine.meterlist.check_key`), so a short
    key is "encryption key has 2 bytes", not a parse error.
    """
    from sonocli.config.device_handle import parse_hex_bytes

    return None if text.strip().lower() in ("none", "0", "") else parse_hex_bytes(text)


def parse_scale(text: str) -> int:
    """``1e-3`` -> -3 (ValueError unless a power of ten)."""
    from sonocli.config.device_handle import parse_scale as parse

    return parse(text)


def parse_medium(text: str) -> int:
    """A Table 16 text (``Heat (outlet)``) or number -> the medium code (ValueError when neither)."""
    from sonocli.config.device_handle import parse_medium as parse

    return parse(text)


# ------------------------------------------------------------------------------------------- import
@dataclass(frozen=True)
class KeyImported:
    """One line of ``keys import``: the meter id, ``created`` or ``updated``, and the key set."""

    id: str
    action: str
    key: bytes


def apply_keys(meters: MeterList, entries: Sequence[tuple[str, bytes]]) -> tuple[MeterList, list[KeyImported]]:
    """Set each (meter id, key) on the wM-Bus meter with that serial; an unknown id becomes a new wM-Bus meter.

    Pure: ``engine.update_meters(lambda ml: apply_keys(ml, entries))`` runs it on the fresh list under the
    lock, so a meter another writer added meanwhile is updated, not created twice.
    """
    items = list(meters.meters)
    index = {m.serial.upper(): i for i, m in enumerate(items) if m.interface is Interface.WMBUS}
    done: list[KeyImported] = []
    for meter_id, key in entries:
        ident = meter_id.upper()
        position = index.get(ident)
        if position is None:
            items.append(Meter(Interface.WMBUS, serial=ident, key=key))
            index[ident] = len(items) - 1
            done.append(KeyImported(ident, "created", key))
        else:
            items[position] = replace(items[position], key=key)
            done.append(KeyImported(ident, "updated", key))
    return replace(meters, meters=tuple(items)), done


# -------------------------------------------------------------------------------------------- check
def latest_telegrams(engine: Engine) -> dict[str, bytes]:
    """The newest raw telegram per meter id in the raw log (WMBUS_RAWLOGENABLE), by meter and by radio id."""
    from sonocli.codecs.wmbus import DecodeOptions, decode_telegram
    from sonocli.engine.receiver import RAW_LOG_NAME, parse_raw_log

    try:
        text = (engine.layout.log_dir / RAW_LOG_NAME).read_text(encoding="ascii", errors="replace")
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
    """(status, detail): ok, missing, not needed, wrong key, mac mismatch, unsupported, not encrypted, unchecked."""
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
