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
from typing import TYPE_CHECKING

from sonocli.errors import SonoError
from sonocli.model.valueclass import replace, valueclass
from sonocli.model.values import Interface, Meter

if TYPE_CHECKING:
    from sonocli.config.device_handle import MeterList
    from sonocli.engine.core import Engine


# ------------------------------------------------------------------------------------------- parsing
def parse_key(text: str, *, name: str = "key") -> bytes:
    """A 16-byte AES key from 32 hex digits (``0x82 0xB0 …``, ``82:B0…`` and one run of digits accepted)."""
    from sonocli.codecs.crypto import parse_key as parse

    return parse(text, name=name)


def parse_key_field(text: str, *, name: str = "--key") -> bytes | None:
    """``meters add/edit --key``: a key as :func:`parse_key` reads it (the one key parser of every ``--key``:
    the device's ``0x82 0xB0 …`` spelling or 32 hex digits); ``none``, ``0`` or ``''`` remove it."""
    return None if text.strip().lower() in ("none", "0", "") else parse_key(text, name=name)


def parse_scale(text: str) -> int:
    """``1e-3`` -> -3 (ValueError unless a power of ten)."""
    from sonocli.config.device_handle import parse_scale as parse

    return parse(text)


def parse_medium(text: str) -> int:
    """A Table 16 text (``Heat (outlet)``) or number -> the medium code (ValueError when neither)."""
    from sonocli.config.device_handle import parse_medium as parse

    return parse(text)


# ------------------------------------------------------------------------------------------- import
@valueclass(frozen=True)
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


# ------------------------------------------------------------------------------------------ key files
# ``keys import`` reads every form installers receive. Formats (``detect_format`` by content, or --format):
# * csv: ``id,key`` per line (``;`` too, quotes, a header line, ``#`` comments, a BOM: spreadsheet exports);
# * json: ``{"12345678": "<key>"}``, ``[{"id": ..., "key": ...}]`` or ``{"meters": [...]}``;
# * wmbusmeters: a meter file of /etc/wmbusmeters.d (``name=``, ``driver=``, ``id=``, ``key=`` lines);
# * kem: Kamstrup's KEM/KEM2 export, an XML file (optionally in a zip archive) whose ``CipherValue`` holds
#   the meter list encrypted per XML-Enc with AES-128-CBC; key and IV are both the password's UTF-8 bytes
#   padded with zero bytes to 16 (the construction wmbusmeters' utils/kem-import.py and kem-extract.sh
#   describe, read at wmbusmeters@4dedd717; re-implemented here). The plaintext is ``MetersInOrder/Meter``
#   (SerialNo, DEK) in KEM files or ``Devices/Device`` (SerialNumber, Name=DEK/Value) in KEM2 files.

KEY_FILE_FORMATS = ("auto", "csv", "json", "wmbusmeters", "kem")
_HEADER_IDS = frozenset({"id", "meter", "meter_id", "meterid", "serial"})
_JSON_ID_FIELDS = ("id", "meter_id", "meterid", "serial", "serial_number", "meter")
_JSON_KEY_FIELDS = ("key", "aes_key", "aeskey", "dek")


@valueclass(frozen=True)
class KeyEntry:
    """One meter's key as a file gives it; ``where`` is ``file:line`` (or ``file: meter N``)."""

    id: str
    key: bytes
    where: str


@valueclass(frozen=True)
class KeyRefused:
    """A meter (or line) of a key file that is not imported, and why (one line naming the meter)."""

    id: str | None
    where: str
    reason: str

    @property
    def line(self) -> str:
        return f"{self.where}: {self.reason}"


@valueclass
class KeyFile:
    """What a key file yields: the entries to import, what is refused, and the meters given two keys."""

    format: str
    entries: list[KeyEntry]
    refused: list[KeyRefused]
    conflicts: set[str]


def detect_format(data: bytes) -> str:
    """Which key-file format ``data`` is: a zip archive or XML with a ``CipherValue`` is a KEM file; JSON
    starts with ``{``/``[``; ``id=`` and ``key=`` lines make a wmbusmeters meter file; anything else is CSV."""
    text = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if data[:4] == b"PK\x03\x04" or (text.startswith(b"<") and b"CipherValue" in data):
        return "kem"
    if text[:1] in (b"{", b"["):
        return "json"
    lines = {line.split(b"=", 1)[0].strip().lower() for line in text.splitlines() if b"=" in line}
    if b"id" in lines and b"key" in lines:
        return "wmbusmeters"
    return "csv"


def read_key_file(data: bytes, source: str, *, fmt: str = "auto", password: str | None = None) -> KeyFile:
    """Parse one key file (bytes as read) into entries and refusals; a file that cannot be read at all (wrong
    KEM password, damaged archive, not JSON) raises UsageError with one line naming the file."""
    from sonocli.errors import UsageError

    kind = detect_format(data) if fmt == "auto" else fmt
    if kind not in KEY_FILE_FORMATS:
        raise UsageError(f"key file format {fmt!r} unknown; allowed: {', '.join(KEY_FILE_FORMATS)}")
    if kind == "kem":
        if password is None:
            raise UsageError(f"{source}: a Kamstrup KEM file is encrypted: give its --password")
        raw = _kem_meters(_kem_plaintext(data, password, source), source)
    else:
        try:
            text = data.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError:
            raise UsageError(f"{source}: not UTF-8 text (a KEM file? give --format kem --password)") from None
        if kind == "json":
            raw = _json_meters(text, source)
        elif kind == "wmbusmeters":
            raw = _wmbusmeters_meters(text, source)
        else:
            raw, bad = _csv_meters(text, source)
            result = _collect(raw, kind)
            result.refused[:0] = bad
            result.refused.sort(key=_where_order)
            return result
    return _collect(raw, kind)


def merge_key_files(files: Sequence[KeyFile]) -> KeyFile:
    """Several files imported at once: a meter given different keys by two files is a conflict too."""
    raw: list[tuple[str, str | bytes, str]] = []
    refused: list[KeyRefused] = []
    conflicts: set[str] = set()
    for item in files:
        raw += [(e.id, e.key, e.where) for e in item.entries]
        refused += item.refused
        conflicts |= item.conflicts
    merged = _collect(raw, "+".join(sorted({f.format for f in files})))
    merged.refused[:0] = refused
    merged.conflicts |= conflicts
    return merged


def _where_order(item: KeyRefused) -> tuple[str, int]:
    head, _, tail = item.where.rpartition(":")
    return (head, int(tail)) if tail.isdigit() else (item.where, 0)


def _normalise_id(text: str) -> str | None:
    """8 hex/BCD digits (``0x`` and spaces dropped); a shorter decimal serial (KEM, wmbusmeters) is padded."""
    ident = text.strip().strip("\"'").strip().upper().removeprefix("0X").replace(" ", "")
    if ident.isdigit() and len(ident) < 8:
        ident = ident.zfill(8)
    if len(ident) != 8 or any(ch not in "0123456789ABCDEF" for ch in ident):
        return None
    return ident


def _collect(raw: Sequence[tuple[str, str | bytes, str]], kind: str) -> KeyFile:
    """Check ids and keys, and the repeats: the same key twice counts once; two different keys for one meter
    are a conflict and neither is imported (the file does not say which one is right)."""
    from sonocli.errors import UsageError

    parsed: dict[str, KeyEntry] = {}
    refused: list[KeyRefused] = []
    conflicts: set[str] = set()
    for ident_text, key_text, where in raw:
        ident = _normalise_id(ident_text)
        if ident is None:
            refused.append(KeyRefused(None, where, f"meter id {ident_text!r} must be 8 hex/BCD digits"))
            continue
        if isinstance(key_text, bytes):
            key = key_text
        else:
            try:
                key = parse_key(key_text, name=f"key of meter {ident}")
            except UsageError as exc:
                refused.append(KeyRefused(ident, where, str(exc)))
                continue
        earlier = parsed.get(ident)
        if earlier is None:
            parsed[ident] = KeyEntry(ident, key, where)
        elif earlier.key != key:
            refused.append(KeyRefused(ident, where, f"meter {ident} already has a different key on "
                                                    f"{_short(earlier.where, where)}; neither is imported"))
            conflicts.add(ident)
    entries = [e for e in parsed.values() if e.id not in conflicts]
    return KeyFile(kind, entries, refused, conflicts)


def _short(earlier: str, now: str) -> str:
    """``line 3`` when both places are in one file, else the whole ``file:line``."""
    file_a, _, line_a = earlier.rpartition(":")
    file_b, _, _ = now.rpartition(":")
    return f"line {line_a}" if file_a == file_b and line_a.isdigit() else earlier


def _csv_meters(text: str, source: str) -> tuple[list[tuple[str, str | bytes, str]], list[KeyRefused]]:
    raw: list[tuple[str, str | bytes, str]] = []
    bad: list[KeyRefused] = []
    seen_entry = False
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p.strip().strip("\"'").strip() for p in line.replace(";", ",").split(",")]
        where = f"{source}:{number}"
        if len(parts) != 2:
            bad.append(KeyRefused(None, where, f"expected 'id,key', got {len(parts)} fields"))
            continue
        ident, key_text = parts
        if not seen_entry and ident.lower() in _HEADER_IDS and key_text.lower() in ("key", "aes key", "aeskey"):
            seen_entry = True
            continue
        seen_entry = True
        raw.append((ident, key_text, where))
    return raw, bad


def _json_meters(text: str, source: str) -> list[tuple[str, str | bytes, str]]:
    import json

    from sonocli.errors import UsageError

    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source}:{exc.lineno}: not JSON ({exc.msg})") from None
    if isinstance(doc, dict) and isinstance(doc.get("meters"), list):
        doc = doc["meters"]
    raw: list[tuple[str, str | bytes, str]] = []
    if isinstance(doc, dict):
        for ident, key in doc.items():
            raw.append((str(ident), str(key) if key is not None else "", f"{source}: meter {ident}"))
        return raw
    if not isinstance(doc, list):
        raise UsageError(f"{source}: JSON must be an object id -> key, or a list of {{\"id\", \"key\"}} objects")
    for number, item in enumerate(doc, 1):
        where = f"{source}: entry {number}"
        if not isinstance(item, dict):
            raise UsageError(f"{where}: expected an object with \"id\" and \"key\"")
        lower = {str(k).lower(): v for k, v in item.items()}
        ident = next((str(lower[f]) for f in _JSON_ID_FIELDS if lower.get(f) is not None), "")
        key = next((str(lower[f]) for f in _JSON_KEY_FIELDS if lower.get(f) is not None), "")
        raw.append((ident, key, where))
    return raw


def _wmbusmeters_meters(text: str, source: str) -> list[tuple[str, str | bytes, str]]:
    """A wmbusmeters meter file: ``id=`` (one id, or a comma list) and ``key=`` (``NOKEY`` = no key)."""
    from sonocli.errors import UsageError

    ids: list[tuple[str, int]] = []
    key: tuple[str, int] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        name, sep, value = line.partition("=")
        if not sep or line.lstrip().startswith("#"):
            continue
        name, value = name.strip().lower(), value.strip()
        if name == "id":
            ids += [(part.strip(), number) for part in value.split(",") if part.strip()]
        elif name == "key":
            key = (value, number)
    if not ids:
        raise UsageError(f"{source}: wmbusmeters meter file without an id= line")
    if key is None or key[0].upper() in ("", "NOKEY"):
        raise UsageError(f"{source}: wmbusmeters meter file with key=NOKEY (or none): no key to import")
    raw: list[tuple[str, str | bytes, str]] = []
    for ident, number in ids:
        if any(ch in ident for ch in "*!"):
            raise UsageError(f"{source}:{number}: id {ident!r} is a wmbusmeters pattern, not one meter: "
                             "a key is set per meter id")
        raw.append((ident, key[0], f"{source}:{key[1]}"))
    return raw


def _kem_plaintext(data: bytes, password: str, source: str) -> bytes:
    """Decrypt a KEM/KEM2 file (or the first .kem/.kem2 member of a zip archive) with its password."""
    import base64
    import binascii
    import io
    import re
    import zipfile

    from sonocli.codecs.crypto import aes_cbc_decrypt
    from sonocli.errors import UsageError

    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = [n for n in archive.namelist() if n.lower().endswith((".kem", ".kem2"))]
                if not members:
                    raise UsageError(f"{source}: the zip archive holds no .kem or .kem2 file")
                data = archive.read(members[0])
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise UsageError(f"{source}: damaged zip archive ({exc})") from None
    found = re.search(rb"<(?:\w+:)?CipherValue[^>]*>([^<]*)</", data)
    if found is None:
        raise UsageError(f"{source}: not a KEM file: no encrypted CipherValue")
    try:
        cipher = base64.b64decode(b"".join(found.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(f"{source}: damaged KEM file: CipherValue is not base64") from None
    key = password.encode("utf-8")
    if len(key) > 16:
        raise UsageError(f"{source}: the KEM password has {len(key)} bytes; KEM passwords have at most 16")
    if not cipher or len(cipher) % 16:
        raise UsageError(f"{source}: damaged KEM file: {len(cipher)} encrypted bytes, not whole AES blocks")
    key = key.ljust(16, b"\0")
    return aes_cbc_decrypt(key, key, cipher)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _kem_meters(plain: bytes, source: str) -> list[tuple[str, str | bytes, str]]:
    """The (serial, DEK) pairs of a decrypted KEM (``Meter``: SerialNo, DEK) or KEM2 (``Device``:
    SerialNumber, the ``Value`` next to ``Name`` DEK) meter list; a wrong password gives no XML."""
    import re
    import xml.etree.ElementTree as ET

    from sonocli.errors import UsageError

    text = plain.decode("utf-8", "replace")
    start = text.find("<")
    cleaned = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]", "", text[start:] if start >= 0 else "")
    try:
        if start < 0 or "\ufffd" in text[: max(start, 0) + 64]:
            raise ET.ParseError("no XML")
        root = ET.fromstring(cleaned.strip())
    except ET.ParseError:
        raise UsageError(f"{source}: wrong KEM password (the decrypted content is not XML)") from None
    raw: list[tuple[str, str | bytes, str]] = []
    for number, item in enumerate((e for e in root.iter() if _local(e.tag) in ("Meter", "Device")), 1):
        fields = {_local(child.tag): (child.text or "").strip() for child in item.iter()}
        ident = fields.get("SerialNo") or fields.get("SerialNumber") or ""
        key = fields.get("DEK", "")
        if not key:
            for holder in item.iter():
                names = {_local(c.tag): (c.text or "").strip() for c in holder}
                if names.get("Name") == "DEK":
                    key = names.get("Value", "")
                    break
        label = fields.get("MeterName") or fields.get("ShortName") or ""
        raw.append((ident, key, f"{source}: meter {number}{' (' + label + ')' if label else ''}"))
    if not raw:
        raise UsageError(f"{source}: the decrypted KEM file lists no Meter or Device")
    return raw
