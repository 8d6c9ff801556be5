"""Drivers for manufacturer-proprietary payloads: the part of a telegram EN 13757-3 does not describe.

Why drivers: the meters installers meet most (Diehl IZAR, Techem, Apator, Qundis, Zenner, ...) put their
readings in manufacturer CIs (0xA0-0xB7) or after DIF 0x0F, where a standard decoder sees only bytes. A
driver turns those bytes into ordinary records (a virtual DIF/VIF record per value, decoded by the same
record decoder as standard content: description, unit, storage, tariff, qualifiers), so CSV, XML, the meter
list and every push channel carry them with no special case, and it also names its values the way
wmbusmeters users know them (``total_m3``, ``target_m3``, ``current_hca``) for ``--json``.

Choosing a driver works like python-can's interfaces: the built-in table below maps a name to
"module:attribute" and the (manufacturer, device type, version, CI) it matches; the module is imported only
when a telegram needs it. Third-party drivers register through the entry point group ``sonocli.drivers``
(an object with ``name``, ``matches`` and ``decode``); declarative TOML drivers (see :mod:`.declarative`)
are added with :func:`register`.

A driver never drops bytes: whatever it did not read stays in a manufacturer-data record.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sonocli.errors import DecodeError
from sonocli.model.valueclass import field, valueclass

if TYPE_CHECKING:
    from sonocli.codecs.wmbus import WmbusTelegram
    from sonocli.codecs.wmbus_link import Address
    from sonocli.model import MeterValue

ENTRY_POINT_GROUP = "sonocli.drivers"


@valueclass(frozen=True, slots=True)
class Match:
    """Which telegrams a driver reads; None matches anything. ``manufacturer`` is the three-letter code."""

    manufacturer: str | None = None
    device_type: int | None = None
    version: int | None = None
    ci: frozenset[int] | None = None

    def accepts(self, manufacturer: str, device_type: int, version: int, ci: int | None) -> bool:
        return (
            (self.manufacturer is None or self.manufacturer == manufacturer)
            and (self.device_type is None or self.device_type == device_type)
            and (self.version is None or self.version == version)
            and (self.ci is None or ci in self.ci)
        )

    def specificity(self) -> int:
        return sum(x is not None for x in (self.manufacturer, self.device_type, self.version, self.ci))


@valueclass(frozen=True, slots=True)
class Span:
    """``decode --explain``: ``length`` bytes at ``offset`` of the driver's input meant ``text``."""

    offset: int
    length: int
    text: str


@valueclass(frozen=True, slots=True)
class DriverOutput:
    """What a driver read: records (MeterValues, indexed after the standard ones by the pipeline), named
    fields for ``--json``, the explanation spans and the bytes it did not understand (kept, never dropped)."""

    records: tuple[MeterValue, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)
    spans: tuple[Span, ...] = ()
    unread: bytes = b""
    warnings: tuple[str, ...] = ()
    # The meter behind a radio module as the payload names it (Qundis: a VIF 79 record), taken as the
    # telegram's meter the way a long TPL header's address is; None: the header's address stands.
    address: Address | None = None


@runtime_checkable
class Driver(Protocol):
    """The driver interface: a name, what it matches and a decode that reads one telegram.

    ``decode`` raises :class:`~sonocli.errors.DecodeError` with one line naming what failed (unknown
    version, too short, check byte wrong); the pipeline then keeps the standard records and the raw bytes.
    ``key`` is the meter's key from the meter list (or ``--key``), for drivers of encrypted payloads.
    ``replaces_records``: the payload is not EN 13757-3 records at all (the standard decoder read noise
    from it), so the driver's records replace the standard ones.
    """

    name: str
    matches: tuple[Match, ...]
    replaces_records: bool

    def decode(self, telegram: WmbusTelegram, key: bytes | None = None) -> DriverOutput: ...


@valueclass(frozen=True, slots=True)
class _Entry:
    name: str
    target: str  # "module:attribute", imported on use
    matches: tuple[Match, ...]


_A_CIS = frozenset(range(0xA0, 0xB8))
_PRIOS = frozenset(range(0xA0, 0xA8)) | frozenset({0xB1, 0xB2, 0xB3})
_STD = frozenset({0x72, 0x78, 0x7A})

# Built-in drivers, most deployed first. Each module names its source next to the layout it reads.
BUILTIN: tuple[_Entry, ...] = (
    _Entry(
        "izar",
        "sonocli.codecs.drivers.diehl:IzarDriver",
        tuple(Match(m, None, None, _PRIOS) for m in ("HYD", "SAP", "DME", "EWT", "SPL")),
    ),
    _Entry(
        "mkradio3",
        "sonocli.codecs.drivers.techem:MkRadio3Driver",
        (
            Match("TCH", 0x62, 0x74, _A_CIS),
            Match("TCH", 0x72, 0x74, _A_CIS),
            Match("TCH", 0x62, 0x50, _A_CIS),
            Match("TCH", 0x72, 0x50, _A_CIS),
        ),
    ),
    _Entry(
        "mkradio4",
        "sonocli.codecs.drivers.techem:MkRadio4Driver",
        (
            Match("TCH", 0x62, 0x95, _A_CIS),
            Match("TCH", 0x62, 0x70, _A_CIS),
            Match("TCH", 0x72, 0x95, _A_CIS),
            Match("TCH", 0x72, 0x70, _A_CIS),
        ),
    ),
    _Entry(
        "fhkvdataiii",
        "sonocli.codecs.drivers.techem:FhkvDataIIIDriver",
        (
            Match("TCH", 0x80, 0x69, _A_CIS),
            Match("TCH", 0x80, 0x94, _A_CIS),
        ),
    ),
    _Entry(
        "apator162",
        "sonocli.codecs.drivers.apator:Apator162Driver",
        (
            Match("APA", 0x06, 0x05, _STD),
            Match("APA", 0x07, 0x05, _STD),
        ),
    ),
    _Entry(
        "apator08",
        "sonocli.codecs.drivers.apator:Apator08Driver",
        (
            Match("APT", 0x03, 0x03, _A_CIS),
            Match("APT", 0x0F, 0x0F, _A_CIS),
            Match("APT", 0x11, 0x04, _A_CIS),
        ),
    ),
    _Entry("apatorna1", "sonocli.codecs.drivers.apator:ApatorNa1Driver", (Match("APA", 0x07, 0x14, _A_CIS),)),
    _Entry(
        "apatoreitn",
        "sonocli.codecs.drivers.apator:ApatorEitnDriver",
        (Match("APA", 0x08, 0x04, frozenset({0xA0, 0xB6})), Match("APT", 0x08, 0x04, frozenset({0xA0, 0xB6}))),
    ),
    _Entry("bfw240radio", "sonocli.codecs.drivers.bfw:Bfw240RadioDriver", (Match("BFW", 0x08, 0x02, _STD),)),
    _Entry("qundis", "sonocli.codecs.drivers.qundis:QundisWalkByDriver", (Match("QDS", None, None, _STD),)),
    _Entry("zenner0b", "sonocli.codecs.drivers.zenner:Zenner0BDriver", (Match("ZRI", 0x16, 0x0B, _STD),)),
)

_registered: list[Driver] = []  # declarative and programmatic drivers (register())
_plugins: list[Driver] | None = None  # entry points, loaded on the first lookup that needs them
_loaded: dict[str, Driver] = {}
_found: dict[tuple[str, int, int, int | None], Driver | None] = {}  # find() per meter type: the hot path


def register(driver: Driver) -> None:
    """Add a driver (a declarative TOML driver, a test's): it is tried before the built-in ones."""
    _registered[:] = [d for d in _registered if d.name != driver.name]
    _registered.append(driver)
    _found.clear()


def unregister(name: str) -> None:
    _registered[:] = [d for d in _registered if d.name != name]
    _found.clear()


def names() -> tuple[str, ...]:
    """Every driver name known without importing a driver module: registered, then built-in."""
    return tuple(d.name for d in _registered) + tuple(e.name for e in BUILTIN)


def load(name: str) -> Driver:
    """The driver called ``name`` (registered, built-in or an entry point), imported now."""
    for driver in _registered:
        if driver.name == name:
            return driver
    if name in _loaded:
        return _loaded[name]
    for entry in BUILTIN:
        if entry.name == name:
            module, _, attr = entry.target.partition(":")
            made = getattr(importlib.import_module(module), attr)()
            _loaded[name] = made
            return made  # type: ignore[no-any-return]
    for plugin in _entry_points():
        if plugin.name == name:
            return plugin
    raise KeyError(name)


def _entry_points() -> list[Driver]:
    global _plugins
    if _plugins is None:
        from importlib.metadata import entry_points

        found: list[Driver] = []
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            obj = ep.load()
            driver = obj() if isinstance(obj, type) else obj
            if isinstance(driver, Driver):
                found.append(driver)
        _plugins = found
    return _plugins


def _best(
    candidates: Iterable[tuple[Driver | _Entry, tuple[Match, ...]]], key: tuple[str, int, int, int | None]
) -> Driver | _Entry | None:
    best: Driver | _Entry | None = None
    score = -1
    for item, matches in candidates:
        for match in matches:
            if match.accepts(*key) and match.specificity() > score:
                best, score = item, match.specificity()
    return best


def find(manufacturer: str, device_type: int, version: int, ci: int | None) -> Driver | None:
    """The driver for a telegram: registered drivers first, then built-in, then entry points; within a
    group the most specific match wins."""
    key = (manufacturer, device_type, version, ci)
    if key in _found:
        return _found[key]
    _found[key] = driver = _find(key)
    return driver


def _find(key: tuple[str, int, int, int | None]) -> Driver | None:
    chosen = _best(((d, d.matches) for d in _registered), key)
    if chosen is None:
        chosen = _best(((e, e.matches) for e in BUILTIN), key)
    if chosen is None and _plugins != []:
        chosen = _best(((d, d.matches) for d in _entry_points()), key)
    if chosen is None:
        return None
    if isinstance(chosen, _Entry):
        return load(chosen.name)
    return chosen


# --- helpers for drivers -----------------------------------------------------------------------------------


def virtual_records(items: Iterable[tuple[str, bytes]]) -> tuple[MeterValue, ...]:
    """Records from (DIF/VIF header hex, data bytes little-endian as sent), decoded by the standard record
    decoder: the driver says which record a value is, the decoder gives it description, unit and storage."""
    from sonocli.codecs.mbus_app import decode_records

    block = b"".join(bytes.fromhex(head) + data for head, data in items)
    values, _more, _mfct = decode_records(block)
    return values


def manufacturer_record(data: bytes, what: str = "manufacturer data") -> MeterValue:
    """The bytes nobody read, as one record (Vendor specific data, binary): shown, stored and exported."""
    from sonocli.model import MeterValue
    from sonocli.model.tables import measurement_index

    return MeterValue(
        0, measurement_index("Vendor specific data"), "None", 0, bytes(data),
        dif_vif=b"\x0f", data=bytes(data), encoding="BINARY", text=what,
    )  # fmt: skip


def need(data: bytes, size: int, what: str) -> None:
    """One clear line when a payload is shorter than its layout."""
    if len(data) < size:
        raise DecodeError(f"{what}: payload has {len(data)} bytes, the layout needs {size}")


def le_uint(data: bytes) -> int:
    return int.from_bytes(data, "little")


__all__ = [
    "BUILTIN", "ENTRY_POINT_GROUP", "Driver", "DriverOutput", "Match", "Span", "find", "le_uint", "load",
    "manufacturer_record", "names", "need", "register", "unregister", "virtual_records",
]  # fmt: skip
