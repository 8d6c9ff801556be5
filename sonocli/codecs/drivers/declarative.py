"""Declarative drivers: a TOML file per meter type in ``app/drivers/``, for meters that need no Python.

Why: most meters nobody supports yet send standard records that only need names (``total_m3`` is the
volume record of storage 0), or a proprietary payload whose values sit at fixed offsets. A file says
which telegrams it matches and which record becomes which named field; fixed-offset values become
virtual records first. ``decode --explain`` shows the bytes to write one. Example::

    name = "mywater"
    [[match]]
    manufacturer = "ABC"
    device_type = 0x07
    version = 0x12          # optional, like ci = [0xA0]
    [[payload]]             # optional: bytes of the payload after the CI (or "manufacturer_data")
    offset = 3
    length = 2
    dif_vif = "4215"        # which record they are: volume, 0.1 m³, storage 1
    byteorder = "little"
    [[field]]
    name = "total_m3"
    dif_vif = "0413"        # the record's DIF/VIF (storage and tariff are in the DIF)
    factor = 1.0            # optional: field = record value (in its unit) × factor

Errors name the file and the key; :func:`check_file` lists every problem of a file (``config check``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sonocli.codecs.drivers import DriverOutput, Match, Span, virtual_records
from sonocli.errors import DecodeError, UsageError
from sonocli.model.valueclass import valueclass

if TYPE_CHECKING:
    from sonocli.codecs.wmbus import WmbusTelegram


@valueclass(frozen=True, slots=True)
class _Payload:
    source: str
    offset: int
    length: int
    dif_vif: str
    big_endian: bool


@valueclass(frozen=True, slots=True)
class _Field:
    name: str
    dif_vif: bytes
    factor: float


class DeclarativeDriver:
    """One TOML driver file, checked when loaded."""

    replaces_records = False

    def __init__(self, name: str, matches: tuple[Match, ...], payload: tuple[_Payload, ...], fields: tuple[_Field, ...],
                 path: Path | None = None) -> None:  # fmt: skip
        self.name = name
        self.matches = matches
        self.payload = payload
        self.fields = fields
        self.path = path

    def decode(self, telegram: WmbusTelegram, key: bytes | None = None) -> DriverOutput:
        spans: list[Span] = []
        items: list[tuple[str, bytes]] = []
        for part in self.payload:
            data = telegram.manufacturer_data if part.source == "manufacturer_data" else telegram.payload
            chunk = data[part.offset : part.offset + part.length]
            if len(chunk) < part.length:
                raise DecodeError(
                    f"driver {self.name}: {part.source} has {len(data)} bytes, the file reads up to "
                    f"{part.offset + part.length}"
                )
            items.append((part.dif_vif, chunk[::-1] if part.big_endian else chunk))
            spans.append(Span(part.offset, part.length, f"{part.source} → record {part.dif_vif}"))
        added = virtual_records(items) if items else ()
        fields: dict[str, Any] = {}
        for wanted in self.fields:
            record = next((v for v in (*telegram.records, *added) if v.dif_vif == wanted.dif_vif), None)
            if record is not None and isinstance(record.value, float):
                fields[wanted.name] = record.value * wanted.factor
        return DriverOutput(added, fields, tuple(spans))


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{where}: must be an integer (0x.. for hex)")
    return value


def _hex(value: Any, where: str) -> str:
    try:
        bytes.fromhex(str(value))
    except ValueError:
        raise UsageError(f"{where}: {value!r} is not hex (DIF/VIF bytes such as \"0413\")") from None
    return str(value).upper()


def _tables(doc: Mapping[str, Any], key: str, origin: str) -> list[Mapping[str, Any]]:
    """The ``[[key]]`` array of tables (none: empty); a ``[key]`` table or a plain value is a UsageError."""
    items = doc.get(key, [])
    if isinstance(items, Mapping):
        raise UsageError(f"{origin}: [{key}] must be written [[{key}]] (one table per {key}, an array of tables)")
    if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
        raise UsageError(f"{origin}: '{key}' must be [[{key}]] tables")
    return items


def parse(doc: Mapping[str, Any], origin: str) -> DeclarativeDriver:
    """A driver from a parsed TOML document; UsageError naming ``origin`` and the key for any mistake."""
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise UsageError(f"{origin}: 'name' missing (a driver needs a name)")
    matches = []
    for i, item in enumerate(_tables(doc, "match", origin)):
        where = f"{origin}: match[{i}]"
        mfct = item.get("manufacturer")
        if mfct is not None and (not isinstance(mfct, str) or len(mfct) != 3 or not mfct.isalpha()):
            raise UsageError(f"{where}.manufacturer: three letters such as \"KAM\"")
        cis = item.get("ci")
        if isinstance(cis, int) and not isinstance(cis, bool):
            cis = [cis]
        if cis is not None and not isinstance(cis, list):
            raise UsageError(f"{where}.ci: an integer or a list of them (0x7A or [0xA0, 0xA1])")
        matches.append(Match(
            mfct.upper() if mfct else None,
            _int(item["device_type"], f"{where}.device_type") if "device_type" in item else None,
            _int(item["version"], f"{where}.version") if "version" in item else None,
            frozenset(_int(c, f"{where}.ci") for c in cis) if cis is not None else None,
        ))  # fmt: skip
    if not matches or all(m.manufacturer is None for m in matches):
        raise UsageError(f"{origin}: at least one [[match]] with a manufacturer is needed")
    payload = []
    for i, item in enumerate(_tables(doc, "payload", origin)):
        where = f"{origin}: payload[{i}]"
        source = item.get("from", "payload")
        if source not in ("payload", "manufacturer_data"):
            raise UsageError(f"{where}.from: \"payload\" or \"manufacturer_data\"")
        order = item.get("byteorder", "little")
        if order not in ("little", "big"):
            raise UsageError(f"{where}.byteorder: \"little\" or \"big\"")
        offset, length = _int(item.get("offset"), f"{where}.offset"), _int(item.get("length"), f"{where}.length")
        part = _Payload(source, offset, length, _hex(item.get("dif_vif"), f"{where}.dif_vif"), order == "big")
        try:
            virtual_records([(part.dif_vif, bytes(part.length))])
        except DecodeError as exc:
            raise UsageError(f"{where}: record {part.dif_vif} with {length} data bytes does not read: {exc}") from None
        payload.append(part)
    fields = []
    for i, item in enumerate(_tables(doc, "field", origin)):
        where = f"{origin}: field[{i}]"
        fname = item.get("name")
        if not isinstance(fname, str) or not fname:
            raise UsageError(f"{where}.name missing")
        factor = item.get("factor", 1.0)
        if isinstance(factor, bool) or not isinstance(factor, int | float):
            raise UsageError(f"{where}.factor: a number")
        fields.append(_Field(fname, bytes.fromhex(_hex(item.get("dif_vif"), f"{where}.dif_vif")), float(factor)))
    if not fields and not payload:
        raise UsageError(f"{origin}: no [[field]] and no [[payload]]: the driver would do nothing")
    return DeclarativeDriver(name, tuple(matches), tuple(payload), tuple(fields))


def load_file(path: Path) -> DeclarativeDriver:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from exc
    driver = parse(doc, str(path))
    driver.path = path
    return driver


def check_file(path: Path) -> list[str]:
    """Every problem of a driver file as one line each (empty: the file is a valid driver)."""
    try:
        load_file(path)
    except UsageError as exc:
        return [exc.message]
    return []


def load_dir(directory: Path) -> tuple[list[DeclarativeDriver], list[str]]:
    """The valid drivers of ``directory/*.toml`` and one line per file that is not (skipped)."""
    drivers: list[DeclarativeDriver] = []
    problems: list[str] = []
    if not directory.is_dir():
        return drivers, problems
    for path in sorted(directory.glob("*.toml")):
        try:
            drivers.append(load_file(path))
        except UsageError as exc:
            problems.append(exc.message)
    return drivers, problems
