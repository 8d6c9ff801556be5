"""Frames and telegrams as the JSON-ready dicts that ``decode``, ``readout`` and ``listen`` print.

The commands render; this module decodes. It is the one place where a command's bytes meet the codecs
(wired link and application layer, wireless telegrams, AES keys) and the records JSON shape of
:mod:`sonocli.outputs.records_json`, so the command layer imports neither (the dependency rule).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sonocli.errors import DecodeError, SonoError, UsageError
from sonocli.model.valueclass import field, valueclass
from sonocli.model.values import ExactNumber

if TYPE_CHECKING:
    from pathlib import Path

    from sonocli.codecs.wmbus import WmbusTelegram
    from sonocli.model.values import MeterValue, Reading

    Telegram = WmbusTelegram  # what ``telegram_to_dict`` takes (for type hints of callers)
else:
    Telegram = Any

# CI fields of a master's request: decoded as what it asks for, not as records
_MASTER_CI: dict[int, str] = {0x50: "application reset", 0x52: "select by secondary address"}


# -- exact JSON ---------------------------------------------------------------------------------------------
def json_text(obj: Any, *, indent: int | None = None, compact: bool = False) -> str:
    """JSON text of ``obj`` (records dicts and anything ``json.dumps`` takes; other types via ``str``) in
    which every :class:`~sonocli.model.values.ExactNumber` is written as its exact decimal, as a number.

    ``json.dumps`` writes a float subclass with ``float.__repr__`` (the nearest float: 17 digits at most),
    so those few values are swapped for marker strings first and the quoted markers replaced by the digits
    afterwards. The marker holds a per-process random token: no string a meter sends can look like one.
    """
    import json  # ~2 ms: only output that is JSON pays it

    separators = (",", ":") if compact else None
    found: list[bool] = []
    marked = _marked(obj, found)
    if not found:
        return json.dumps(obj, ensure_ascii=False, default=str, indent=indent, separators=separators)
    text = json.dumps(marked, ensure_ascii=False, default=str, indent=indent, separators=separators)
    return _marked_pattern().sub(lambda m: m.group(1), text)


def _marked(obj: Any, found: list[bool]) -> Any:
    """``obj`` with every ExactNumber swapped for its marker string (one walk); ``found`` gets an item
    when there was one."""
    kind = type(obj)
    if kind is str or kind is int or kind is bool or obj is None:  # most of the nodes: no isinstance chain
        return obj
    if isinstance(obj, ExactNumber):
        found.append(True)
        return f"{_TOKEN}{obj.text}{_TOKEN}"
    if kind is dict:
        return {k: _marked(v, found) for k, v in obj.items()}
    if isinstance(obj, dict):
        return {k: _marked(v, found) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_marked(v, found) for v in obj]
    return obj


# a control character (json.dumps escapes it) and a random part: a meter's text cannot hold the marker
_RANDOM = os.urandom(8).hex()
_TOKEN = "\u0001" + _RANDOM


@functools.cache
def _marked_pattern() -> re.Pattern[str]:
    """The quoted marker strings in json.dumps' text (compiled when a value beyond 15 digits is written)."""
    escaped = re.escape("\\u0001" + _RANDOM)  # the token as json.dumps writes it inside a JSON string
    return re.compile(f'"{escaped}(-?[0-9.]+){escaped}"')


# -- wired frames -----------------------------------------------------------------------------------------
def refuse_garbage_before_a_frame(data: bytes) -> None:
    """A whole valid long frame at the end of the input, after other bytes (a log line's prefix, an echo):
    raise a DecodeError saying where it starts instead of trying the bytes as a wireless telegram."""
    from sonocli.codecs import mbus_link

    for start in range(1, len(data) - 8):
        if data[start] == 0x68 and data[start + 3] == 0x68 and data[start + 1] == data[start + 2]:
            try:
                _frame, used = mbus_link.decode_frame(data[start:])
            except DecodeError:
                continue
            if start + used == len(data):
                raise DecodeError(
                    f"{start} byte{'s' if start > 1 else ''} before a valid wired frame that starts at byte {start}",
                    offset=0,
                )


def _decrypt_wired(ci: int, payload: bytes, key_text: str, warnings: list[str]) -> bytes:
    """Security mode 5 on a wired long-header frame (OMS vol. 2 Annex N.5.4): AES-CBC over the blocks the
    configuration field counts, IV = M, ID, version, medium as sent, then the access number eight times."""
    from sonocli.codecs import crypto
    from sonocli.codecs.mbus_app import decode_application, security_mode

    key = crypto.parse_key(key_text, name="--key")
    header = decode_application(ci, payload[:12] + b"\x2f\x2f").header if ci == 0x72 else None
    mode = security_mode(header) if header is not None else 0
    if header is None or mode == 0:
        warnings.append("--key given but the frame is not encrypted (no long header with a security mode)")
        return payload
    if mode != 5:
        raise UsageError(f"--key: wired frames are decrypted in security mode 5 only; this frame uses mode {mode}")
    iv = crypto.mode5_iv(payload[4:6] + payload[0:4] + payload[6:8], payload[8])
    blocks = (header.signature >> 4) & 0x0F
    return payload[:12] + crypto.decrypt_cbc_blocks(key, iv, payload[12:], blocks, what="wired frame (mode 5)")


def decode_wired(data: bytes, key: str | None = None) -> dict[str, Any]:
    """One wired frame (the whole input) to the dict ``decode --json`` prints.

    An acknowledgement, a short frame and a master's request (CI 50h/52h) are shown as frames; a meter's
    long frame as header and records, decrypted first when ``key`` is given (security mode 5). Bytes after
    the frame are an error naming their offset.
    """
    from sonocli.codecs import mbus_link
    from sonocli.codecs.mbus_app import decode_application
    from sonocli.outputs.records_json import app_to_dict

    frame, used = mbus_link.decode_frame(data)
    if used != len(data):
        extra = len(data) - used
        raise DecodeError(f"{extra} byte{'s' if extra > 1 else ''} after the end of the frame", offset=used)
    if key is not None and not isinstance(frame, mbus_link.LongFrame):
        kind = "an acknowledgement" if isinstance(frame, mbus_link.Ack) else "a frame without data"
        raise UsageError(f"--key applies to wireless telegrams and wired frames in security mode 5; this is {kind}")
    if isinstance(frame, mbus_link.Ack):
        return {"kind": "mbus", "frame": "ack"}
    if isinstance(frame, mbus_link.ShortFrame):
        return {"kind": "mbus", "frame": "short", "control": frame.control, "address": frame.address}
    payload = frame.data if isinstance(frame, mbus_link.LongFrame) else b""
    if frame.ci in _MASTER_CI:  # a master's request: no records, show what it asks for
        out: dict[str, Any] = {
            "kind": "mbus", "frame": _MASTER_CI[frame.ci], "control": frame.control, "address": frame.address,
        }
        out["ci"] = frame.ci
        out["data"] = payload.hex(" ").upper()
        return out
    key_warnings: list[str] = []
    if key is not None:
        payload = _decrypt_wired(frame.ci, payload, key, key_warnings)
    app = decode_application(frame.ci, payload, base_offset=7)
    out = app_to_dict(app)
    if app.manufacturer_data:  # after DIF 0x0F/0x1F: shown, as libmbus does, and only when present
        out["manufacturer_data"] = app.manufacturer_data.hex(" ").upper()
    if app.warnings or key_warnings:
        out["warnings"] = [*key_warnings, *app.warnings]
    return out


def records_to_dicts(values: Sequence[MeterValue]) -> list[dict[str, Any]]:
    """Records in the ``decode --json`` shape (index, function, ..., dif_vif)."""
    from sonocli.outputs.records_json import value_to_dict

    return [value_to_dict(v) for v in values]


def reading_header(reading: Reading) -> dict[str, Any] | None:
    """The application header of a wired reading's first telegram (``decode --json``'s header), or None."""
    from sonocli.codecs import mbus_link
    from sonocli.codecs.mbus_app import decode_application
    from sonocli.outputs.records_json import header_to_dict

    if not reading.raw_frames:
        return None
    frame, _ = mbus_link.decode_frame(reading.raw_frames[0])
    if not isinstance(frame, mbus_link.LongFrame):
        return None
    return header_to_dict(decode_application(frame.ci, frame.data).header)


# -- wireless telegrams -----------------------------------------------------------------------------------
def telegram_to_dict(telegram: Telegram) -> dict[str, Any]:
    """The `decode --json` shape for wireless telegrams: core shape plus ``security`` and link details."""
    from sonocli.codecs.wmbus_link import C_FIELD_NAMES
    from sonocli.model.tables import medium_text

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
    if link.quirk is not None:  # a manufacturer address layout was undone: the DLL's A-field as sent
        header["dll_address"] = {"id": link.dll_id, "version": link.dll_version,
                                 "device_type": link.dll_device_type, "quirk": link.quirk}
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
        "records": records_to_dicts(telegram.records),
        "more_records_follow": telegram.more_records_follow,
        "security": security,
    }
    if telegram.app_ci is not None and not telegram.records and telegram.payload and telegram.tpl is None:
        out["payload"] = telegram.payload.hex().upper()
    if telegram.compact_format:
        out["compact_format"] = telegram.compact_format  # learnt, built-in or given (--format)
    if telegram.driver:
        out["driver"] = telegram.driver
        out["fields"] = {name: value for name, value in telegram.fields}
    if telegram.warnings:
        out["warnings"] = list(telegram.warnings)
    return out


def attach_format_store(cache: Any, database: Path) -> None:
    """Back a receiver's or ``decode``'s FormatCache with the database: the formats stored there are
    loaded when the cache is first asked (a compact frame, a learnt format: see FormatCache.load_from),
    and every format it learns from now on is stored (a restarted daemon or a later ``decode`` knows it).
    A store that cannot be read or written does not stop decoding: the format stays in memory (built-in
    and learnt ones still work) and the failure is logged."""
    from sonocli import logs
    from sonocli.errors import SonoError

    def store() -> Any:
        from sonocli.store.formats import FormatStore

        return FormatStore(database)

    def stored() -> list[tuple[tuple[int, int, int, int], bytes]]:
        try:
            return [((row[0], row[1], row[2], row[3]), row.headers) for row in store().all()]
        except SonoError as exc:
            logs.logger("sonocli.formats").warning("stored compact-frame formats not read: %s", exc)
            return []

    def save(key: tuple[int, int, int, int], headers: bytes) -> None:
        try:
            store().save(key, headers)
        except SonoError as exc:
            logs.logger("sonocli.formats").warning("compact-frame format not stored: %s", exc)

    cache.load_from(stored)
    cache.on_learn = save


def load_drivers(app_dir: Path) -> list[str]:
    """Register the declarative drivers of ``app_dir/drivers/*.toml`` (at start: receivers, ``decode``);
    returns one line per file that is not a valid driver (it is skipped; ``config check FILE`` says why).

    No ``*.toml`` there (the usual case): nothing is imported — the driver registry and tomllib cost every
    ``decode`` and ``listen`` about 10 ms of start-up otherwise; built-in drivers load when a payload
    needs one."""
    try:
        if not any((app_dir / "drivers").glob("*.toml")):
            return []
    except OSError:
        return []
    from sonocli.codecs import drivers
    from sonocli.codecs.drivers.declarative import load_dir

    found, problems = load_dir(app_dir / "drivers")
    for driver in found:
        drivers.register(driver)
    return problems


def formats_database(root: Path) -> Path | None:
    """The database of the root whose learnt compact-frame formats ``decode`` uses; None when there is
    none yet (``decode`` never creates a root)."""
    from sonocli.config.layout import RootLayout

    layout = RootLayout(root)
    load_drivers(layout.app)
    path = layout.database
    return path if path.is_file() else None


def explain(telegram: Telegram) -> list[dict[str, Any]]:
    """``decode --explain``: how the telegram was read, byte by byte: offset, bytes (hex), meaning.

    Header fields by position (EN 13757-4 link layer, then the transport header up to the application
    data), then each record's DIF/VIF and data, then what the driver read (offsets into the bytes it
    reads: the frame, the payload after the CI or the manufacturer data after 0x0F, as it says)."""
    from sonocli.codecs.wmbus_link import C_FIELD_NAMES
    from sonocli.model.tables import medium_text

    raw = telegram.raw
    link = telegram.link.address
    rows: list[dict[str, Any]] = []

    def row(offset: int | str, data: bytes, meaning: str) -> None:
        rows.append({"offset": offset, "bytes": data.hex(" ").upper(), "meaning": meaning})

    row(0, raw[0:1], f"L-field: {raw[0]} bytes follow")
    row(1, raw[1:2], f"C-field: {C_FIELD_NAMES.get(raw[1], 'unknown')}")
    row(2, raw[2:4], f"M-field: manufacturer {link.manufacturer_text}")
    row(4, raw[4:8], f"A-field ID (BCD, little-endian): {link.id}")
    row(8, raw[8:9], f"version 0x{raw[8]:02X}")
    row(9, raw[9:10], f"device type 0x{raw[9]:02X} ({medium_text(raw[9])})")
    if telegram.meter.raw != raw[2:10]:
        meter = telegram.meter
        row("-", b"", f"meter: {meter.manufacturer_text}-{meter.id}, version 0x{meter.version:02X}, "
            f"device type 0x{meter.device_type:02X} (read from the header above)")
    if len(raw) > 10:
        ci = raw[10]
        row(10, raw[10:11], f"CI-field 0x{ci:02X}")
    apl = telegram.payload
    head_end = len(raw) - len(apl) if telegram.tpl is not None and not telegram.compact_format else None
    if head_end is not None and 11 <= head_end <= len(raw):
        tpl = telegram.tpl
        parts = []
        if telegram.access_number is not None:
            parts.append(f"access number {telegram.access_number}")
        if tpl is not None and tpl.status is not None:
            parts.append(f"status 0x{tpl.status:02X}")
        parts.append(f"security mode {telegram.security.mode} ({telegram.security.state})")
        row(11, raw[11:head_end], "transport header: " + ", ".join(parts))
    if telegram.compact_format:
        row("-", apl[:0], f"compact frame: expanded with a {telegram.compact_format} format; records below are"
            " shown with the format's DIF/VIF bytes")
    pos = 0
    base = head_end if head_end is not None else None
    for value in telegram.records:
        if value.text == "manufacturer data" and value.dif_vif == b"\x0f" and telegram.driver:
            row("-", value.data, "manufacturer data kept as a record (not read by the driver)")
            continue
        chunk = value.dif_vif + value.data
        at = apl.find(chunk, pos) if chunk else -1
        if at < 0:
            row("driver", chunk, f"record from driver {telegram.driver}: {value.described} {value.exact} {value.unit}")
            continue
        pos = at + len(chunk)
        offset: int | str = base + at if base is not None else f"+{at}"
        storage = f", storage {value.storage}" if value.storage else ""
        tariff = f", tariff {value.tariff}" if value.tariff else ""
        row(offset, value.dif_vif, f"DIF/VIF: {value.described}, {value.encoding}{storage}{tariff}")
        row(offset if isinstance(offset, str) else offset + len(value.dif_vif), value.data,
            f"data: {value.exact} {value.unit}".rstrip())
    if telegram.manufacturer_data and not telegram.driver:
        row("-", telegram.manufacturer_data, "manufacturer data after DIF 0F/1F (no driver for this meter)")
    for span in telegram.spans:
        source = getattr(span, "source", "")
        row(f"{telegram.driver}+{span.offset}", b"", f"{span.text} ({span.length} bytes{source})")
    return rows


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


@valueclass(frozen=True)
class DecodedTelegram:
    """One telegram of a wireless decode: its dict (``{"kind", "error", "raw"}`` when it did not decode),
    the error that stopped it, or the security error it decoded with (shown, then exit 1)."""

    result: dict[str, Any]
    error: SonoError | None = None
    security_error: SonoError | None = None


@valueclass(frozen=True)
class WirelessDecode:
    """What :func:`decode_wireless` found: one item per telegram, in order, and whether a given key was
    needed by any of them (an unencrypted telegram with ``--key`` deserves a warning)."""

    items: tuple[DecodedTelegram, ...] = field(default_factory=tuple)
    key_given: bool = False
    key_used: bool = False

    @property
    def failure(self) -> SonoError | None:
        """The first error or security error, in telegram order (what the command's exit code follows)."""
        for item in self.items:
            if item.error is not None or item.security_error is not None:
                return item.error or item.security_error
        return None


@valueclass(frozen=True)
class WirelessOptions:
    """What ``decode`` can add for wireless telegrams: record headers for one compact frame
    (``--format``), a driver by name (``--driver``), the byte-by-byte explanation (``--explain``) and the
    database whose learnt compact-frame formats are used and extended (None: none)."""

    compact_format: bytes | None = None
    driver: str | None = None
    explain: bool = False
    database: Path | None = None


def decode_wireless(
    data: bytes, key_text: str | None = None, options: WirelessOptions | None = None
) -> WirelessDecode:
    """Wireless telegram(s) for ``decode``: several in a row are decoded in order with one format cache,
    so a compact frame decodes after its full frame.

    A single telegram that does not decode raises its error (nothing to show); of several, each one that
    fails is an item with ``error`` and the others still decode. ``key_text`` (32 hex digits) is offered
    for both the meter's and the radio's address of each telegram.
    """
    from sonocli.codecs.crypto import parse_key
    from sonocli.codecs.wmbus import DecodeOptions, FormatCache, decode_telegram

    opts = options or WirelessOptions()
    key = parse_key(key_text, name="--key") if key_text is not None else None
    pieces = split_telegrams(data)
    cache = FormatCache()
    if opts.database is not None:
        attach_format_store(cache, opts.database)
    items: list[DecodedTelegram] = []
    used = False
    for piece in pieces:
        keys: dict[str, bytes] = {}
        if key is not None:
            probe = decode_telegram(piece, DecodeOptions(decode_application=False))
            keys = {probe.meter.id: key, probe.link.address.id: key}
        try:
            telegram = decode_telegram(piece, DecodeOptions(
                keys=keys, cache=cache, driver=opts.driver, compact_format=opts.compact_format,
            ))  # fmt: skip
        except SonoError as exc:
            if len(pieces) == 1:
                raise
            items.append(DecodedTelegram({"kind": "wmbus", "error": str(exc), "raw": piece.hex().upper()}, exc))
            continue
        used = used or telegram.security.state != "none"
        result = telegram_to_dict(telegram)
        if opts.explain:
            result["explain"] = explain(telegram)
        items.append(DecodedTelegram(result, security_error=telegram.security.error))
    return WirelessDecode(tuple(items), key_given=key is not None, key_used=used)
