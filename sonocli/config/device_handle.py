"""device_handle.cfg (Table 26 of the operating guide): the meter list as the device stores it.

Only entries that differ from Table 26's defaults are written (``version`` always is), as the device
does. A file read and saved without changes is written back byte for byte; a changed list is written in
the style of the file it came from (declaration, indentation, line ends), with unknown elements,
comments and processing instructions kept verbatim in ``Meter.extra`` / ``ValueConfig.extra`` /
``MeterList.extra`` as ``(tag, raw XML)`` pairs.

sonocli's additions, absent from Table 26, inside a ``<value>``: ``<setvalue>`` holds the value of a manual
S0/DLDE meter entered by hand (Figure 21, "Set value"); ``<subunit>`` (written when not 0) and ``<difvif>``
(the record's DIF/DIFE/VIF/VIFE bytes, written like ``<confdata>``) let sonocli match each M-Bus/wM-Bus
value entry to its record exactly (see sonocli.engine.values). A list without them, as a device writes it,
is matched by the Table 26 fields.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sonocli.config.xmlsafe import Node, escape_text, parse_document
from sonocli.errors import ConfigError
from sonocli.model.tables import medium_index, medium_text
from sonocli.model.valueclass import field, field_defaults, replace, valueclass
from sonocli.model.values import AddressMode, Interface, Meter, ValueConfig, ValueType

DEFAULT_VERSION = "0x06"
_OBIS = re.compile(r"^\s*(\d{1,3})-(\d{1,3}):(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\*(\d{1,3}))?\s*$")


@valueclass(frozen=True)
class XmlStyle:
    """How the file looked, so that a changed list is written in the same hand."""

    declaration: str | None = '<?xml version="1.0" encoding="UTF-8"?>'
    indent: str = "\t"
    newline: str = "\n"
    bom: bool = False
    root_tag: str = "root"
    final_newline: bool = True


@valueclass(frozen=True)
class MeterList:
    """The whole file: its version element, the meters in order, and what is needed to round-trip it."""

    version: str = DEFAULT_VERSION
    meters: tuple[Meter, ...] = ()
    extra: tuple[tuple[str, str], ...] = ()  # unknown children of the root element, verbatim
    style: XmlStyle = XmlStyle()
    # The bytes read and the state they encode: saved back unchanged while the state is unchanged.
    source: tuple[bytes, tuple[Any, ...]] | None = field(default=None, compare=False, repr=False)

    def state(self) -> tuple[Any, ...]:
        return (self.version, self.meters, self.extra, self.style)


# ---------------------------------------------------------------------------------------------- OBIS
def parse_obis(text: str) -> tuple[int, int, int, int, int, int]:
    """``A-B:C.D.E*F`` (F defaults to 255) as six numbers 0..255; ValueError otherwise."""
    match = _OBIS.match(text)
    if match is None:
        raise ValueError(f"OBIS code {text!r} is not of the form A-B:C.D.E*F")
    parts = [int(group) if group is not None else 255 for group in match.groups()]
    for part in parts:
        if part > 255:
            raise ValueError(f"OBIS code {text!r}: {part} is outside 0..255")
    a, b, c, d, e, f = parts
    return a, b, c, d, e, f


def format_obis(parts: tuple[int, ...] | bytes) -> str:
    a, b, c, d, e, f = parts
    return f"{a}-{b}:{c}.{d}.{e}*{f}"


# ------------------------------------------------------------------------------------------- parsing
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def parse_hex_bytes(text: str) -> bytes:
    """``0x82 0xB0 ...`` (the device's spelling), also ``82 B0 ...`` or one run of hex digits."""
    tokens = text.split()
    if len(tokens) == 1 and not tokens[0].lower().startswith("0x") and len(tokens[0]) > 2:
        return bytes.fromhex(tokens[0])
    out = bytearray()
    for token in tokens:
        digits = token[2:] if token[:2] in ("0x", "0X") else token
        if not 0 < len(digits) <= 2 or not _HEX_DIGITS.issuperset(digits):
            raise ValueError(f"{token!r} is not a byte (0x00..0xFF)")
        out.append(int(digits, 16))
    return bytes(out)


def _int(text: str) -> int:
    return int(text.strip(), 0) if text.strip().lower().startswith("0x") else int(text.strip())


def _bool01(text: str) -> bool:
    value = _int(text)
    if value not in (0, 1):
        raise ValueError("allowed: 0 or 1")
    return bool(value)


def parse_scale(text: str) -> int:
    """``1e-3`` -> -3; any power of ten is accepted, other factors are not (the CSV/XML exponent is an int)."""
    number = float(text)
    if number <= 0:
        raise ValueError("the scale must be a power of ten such as 1e-3")
    exponent = round(math.log10(number))
    if not math.isclose(10.0**exponent, number, rel_tol=1e-9):
        raise ValueError("the scale must be a power of ten such as 1e-3")
    return exponent


def _text(element: Node) -> str:
    return element.text_content()


def _raw(element: Node) -> tuple[str, str]:
    """An element sonocli does not know (or a comment, "#comment", or PI, "#pi"): kept as found."""
    return element.tag, element.raw()


def _meter_fields(children: list[Node], file: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    extra: list[tuple[str, str]] = []
    value_entries: list[ValueConfig] = []
    for child in children:
        tag: str | None = child.tag if child.tag[0] != "#" else None  # not a comment or PI
        text = _text(child) if tag and tag != "value" else ""  # a <value>'s own fields are read below
        try:
            if tag == "value":
                value_entries.append(_value_config(child, file))
            elif tag == "interface":
                values["interface"] = Interface.from_label(text)
            elif tag == "serial":
                digits = text.strip()
                digits = digits[2:] if digits.lower().startswith("0x") else digits
                if not re.fullmatch(r"[0-9A-Fa-f]{1,8}", digits):
                    raise ValueError("expected up to 8 hex digits such as 0x30101198")
                values["serial"] = digits.zfill(8)
            elif tag == "manufacturer":
                values["manufacturer"] = text.strip()
            elif tag == "version":
                values["version"] = _checked(_int(text), 0, 255)
            elif tag == "medium":
                values["medium"] = parse_medium(text)
            elif tag == "primaryaddress":
                values["primary_address"] = _checked(_int(text), 0, 255)
            elif tag == "addressmode":
                values["address_mode"] = AddressMode(_int(text))
            elif tag == "readoutcycle":
                values["readout_cycle"] = _checked(_int(text), 0, 4294967295)
            elif tag == "maxvaluecount":
                values["max_value_count"] = _checked(_int(text), 0, 65535)
            elif tag == "encryptionkey":
                key = parse_hex_bytes(text)
                values["key"] = None if key in (b"", b"\x00") else key  # Table 26: "Not set, 0"
            elif tag == "active":
                values["active"] = _bool01(text)
            elif tag == "rsi":
                values["rssi"] = _int(text)
            elif tag == "register":
                values["register"] = _int(text)
            elif tag == "user":
                values["user"] = text
            else:
                extra.append(_raw(child))
        except (ValueError, KeyError) as exc:
            message = f"<{tag}>{text.strip()}</{tag}>: {_reason(exc)}"
            raise ConfigError(message, file=file, line=child.sourceline) from None
    values["values"] = tuple(value_entries)
    values["extra"] = tuple(extra)
    return values


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"unknown name {exc.args[0]!r}"
    return str(exc)


def _checked(value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise ValueError(f"{value} is outside {low}..{high}")
    return value


def _medium_element(medium: int) -> str:
    """The Table 16 text, or hex where the text would not read back (e.g. "Reserved" for 0x1E; wmbus helper)."""
    text = medium_text(medium)
    try:
        return text if medium_index(text) == medium else f"0x{medium:02X}"
    except KeyError:
        return f"0x{medium:02X}"


def parse_medium(text: str) -> int:
    stripped = text.strip()
    if re.fullmatch(r"0x[0-9A-Fa-f]{1,2}|\d{1,3}", stripped):
        return _checked(_int(stripped), 0, 255)
    try:
        return medium_index(stripped)
    except KeyError:
        raise ValueError(f"medium {stripped!r} is not a text of Table 16") from None


def _value_config(element: Node, file: str | None) -> ValueConfig:
    values: dict[str, Any] = {}
    extra: list[tuple[str, str]] = []
    for child in element:
        tag: str | None = child.tag if child.tag[0] != "#" else None  # not a comment or PI
        text = _text(child) if tag else ""
        try:
            if tag in ("description", "unit", "encodetype"):
                values[tag] = text.strip()
            elif tag == "difvif":  # in every entry: asked early (a 500-meter list has ~7,500)
                values["difvif"] = parse_hex_bytes(text).hex().upper()
            elif tag == "scale":
                values["exponent"] = parse_scale(text)
            elif tag == "valuetype":
                values["valuetype"] = ValueType(text.strip().lower())
            elif tag == "storagenum":
                values["storagenum"] = _int(text)
            elif tag == "tariff":
                values["tariff"] = _int(text)
            elif tag == "confdata":
                data = parse_hex_bytes(text)
                if len(data) == 6:
                    values["obis"] = format_obis(data)
                else:  # generic data that is no OBIS code: keep it as found
                    extra.append(_raw(child))
            elif tag == "active":
                values["active"] = _bool01(text)
            elif tag == "register":
                values["register"] = _int(text)
            elif tag == "user":
                values["user"] = text
            elif tag == "setvalue":
                values["value"] = float(text)
            elif tag == "subunit":
                values["subunit"] = _checked(_int(text), 0, 1023)
            else:
                extra.append(_raw(child))
        except (ValueError, KeyError) as exc:
            message = f"<{tag}>{text.strip()}</{tag}>: {_reason(exc)}"
            raise ConfigError(message, file=file, line=child.sourceline) from None
    values["extra"] = tuple(extra)
    return ValueConfig(**values)


def _style(data: bytes, root: Node) -> XmlStyle:
    text = data.decode("utf-8-sig")
    newline = "\r\n" if "\r\n" in text else "\n"
    first = text.lstrip().split("\n", 1)[0].rstrip("\r")
    declaration = first if first.startswith("<?xml") else None
    indent = "\t"
    if root.text and "\n" in root.text:
        indent = root.text.rsplit("\n", 1)[1] or indent
    return XmlStyle(
        declaration=declaration,
        indent=indent,
        newline=newline,
        bom=data.startswith(b"\xef\xbb\xbf"),
        root_tag=root.tag,
        final_newline=text.endswith("\n"),
    )


def parse_meter_list(data: bytes, file: str | None = None) -> MeterList:
    """Parse the bytes of a device_handle.cfg (see :func:`load_meter_list`)."""
    version = DEFAULT_VERSION
    meters: list[Meter] = []
    extra: list[tuple[str, str]] = []

    def each(child: Node) -> None:  # a meter as soon as its end tag is read: the list is never one tree
        nonlocal version
        if child.tag == "version":
            version = _text(child).strip()
        elif child.tag == "meter":
            found = _meter_fields(list(child), file)
            if "interface" not in found:
                raise ConfigError("<meter> without <interface>", file=file, line=child.sourceline)
            meters.append(Meter(**found))
        else:
            extra.append(_raw(child))

    root = parse_document(data, file, each_child=each)
    result = MeterList(version=version, meters=tuple(meters), extra=tuple(extra), style=_style(data, root))
    return replace(result, source=(data, result.state()))


def load_meter_list(path: Path) -> MeterList:
    """Read device_handle.cfg; a missing file is an empty list (as on a device fresh from the factory).

    Not UTF-8, not well-formed, a DTD (entity bombs) or a value Table 26 does not allow: ConfigError
    with the file and line.
    """
    from sonocli.fsutil import read_config

    path = Path(path)
    data = read_config(path)  # a directory or an absurdly large file: refused at once
    if data is None:
        return MeterList()
    return parse_meter_list(data, str(path))


# ------------------------------------------------------------------------------------------- writing
_METER_DEFAULTS = {name: default for name, default in field_defaults(Meter).items() if name != "interface"}
_VALUE_DEFAULTS = field_defaults(ValueConfig)


def _meter_elements(meter: Meter) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = [("interface", meter.interface.label)]

    def differs(name: str) -> bool:
        return bool(getattr(meter, name) != _METER_DEFAULTS[name])

    if differs("serial"):
        out.append(("serial", f"0x{meter.serial}"))
    if meter.manufacturer is not None:
        out.append(("manufacturer", meter.manufacturer))
    if meter.version is not None:
        out.append(("version", f"0x{meter.version:02X}"))
    if meter.medium is not None:
        out.append(("medium", _medium_element(meter.medium)))
    if differs("primary_address"):
        out.append(("primaryaddress", f"0x{meter.primary_address:02X}"))
    if differs("address_mode"):
        out.append(("addressmode", str(int(meter.address_mode))))
    if differs("readout_cycle"):
        out.append(("readoutcycle", str(meter.readout_cycle)))
    if differs("max_value_count"):
        out.append(("maxvaluecount", str(meter.max_value_count)))
    if meter.key is not None:
        out.append(("encryptionkey", " ".join(f"0x{byte:02X}" for byte in meter.key)))
    if differs("active"):
        out.append(("active", "1" if meter.active else "0"))
    if differs("rssi"):
        out.append(("rsi", str(meter.rssi)))
    if differs("register"):
        out.append(("register", str(meter.register)))
    if meter.user is not None:
        out.append(("user", meter.user))
    return out


def _value_elements(value: ValueConfig) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []

    def differs(name: str) -> bool:
        return bool(getattr(value, name) != _VALUE_DEFAULTS[name])

    for name in ("description", "unit", "encodetype"):
        if differs(name):
            out.append((name, getattr(value, name)))
    if differs("exponent"):
        out.append(("scale", f"1e{value.exponent}"))
    if differs("valuetype"):
        out.append(("valuetype", str(value.valuetype.value)))
    for name in ("storagenum", "tariff"):
        if differs(name):
            out.append((name, str(getattr(value, name))))
    if value.obis is not None:
        out.append(("confdata", " ".join(f"0x{part:02X}" for part in parse_obis(value.obis))))
    if differs("active"):
        out.append(("active", "1" if value.active else "0"))
    if differs("register"):
        out.append(("register", str(value.register)))
    if value.user is not None:
        out.append(("user", value.user))
    if value.value is not None:
        out.append(("setvalue", repr(float(value.value))))
    if differs("subunit"):
        out.append(("subunit", str(value.subunit)))
    if value.difvif:
        out.append(("difvif", " ".join(f"0x{b:02X}" for b in bytes.fromhex(value.difvif))))
    return out


def render_meter_list(meters: MeterList) -> bytes:
    """The file's bytes: the original ones when nothing changed, else a fresh rendering in the file's style."""
    if meters.source is not None and meters.source[1] == meters.state():
        return meters.source[0]
    style = meters.style
    nl, ind = style.newline, style.indent
    lines: list[str] = []  # of the meter being written; then one string per meter in ``chunks``: 60,000
    chunks: list[str] = []  # line strings of a 500-meter list at once were twice the memory of the text

    def element(depth: int, tag: str, text: str) -> None:
        try:
            lines.append(f"{ind * depth}<{tag}>{escape_text(text)}</{tag}>")
        except ValueError as exc:
            raise ConfigError(f"<{tag}>: {exc}") from None

    if style.declaration:
        lines.append(style.declaration)
    lines.append(f"<{style.root_tag}>")
    element(1, "version", meters.version)
    for _tag, raw in meters.extra:
        lines.append(f"{ind}{raw}")
    for meter in meters.meters:
        lines.append(f"{ind}<meter>")
        for tag, text in _meter_elements(meter):
            element(2, tag, text)
        for _tag, raw in meter.extra:
            lines.append(f"{ind * 2}{raw}")
        for value in meter.values:
            children = _value_elements(value)
            if not children and not value.extra:
                lines.append(f"{ind * 2}<value/>")
                continue
            lines.append(f"{ind * 2}<value>")
            for tag, text in children:
                element(3, tag, text)
            for _tag, raw in value.extra:
                lines.append(f"{ind * 3}{raw}")
            lines.append(f"{ind * 2}</value>")
        lines.append(f"{ind}</meter>")
        chunks.append(nl.join(lines))
        lines.clear()
    lines.append(f"</{style.root_tag}>")
    chunks.append(nl.join(lines))
    text = nl.join(chunks) + (nl if style.final_newline else "")
    del chunks  # not held while the text is encoded
    return (b"\xef\xbb\xbf" if style.bom else b"") + text.encode("utf-8")


def save_meter_list(path: Path, meters: MeterList) -> None:
    """Write atomically (temp + fsync + rename): a reader sees the old list or the new one, never a mix.

    Owner-only (0600, or the file's tighter mode): the list holds the meters' AES keys.
    """
    from sonocli.fsutil import atomic_write_bytes

    atomic_write_bytes(Path(path), render_meter_list(meters), private=True)


def update_meter_list(path: Path, change: Callable[[MeterList], MeterList]) -> MeterList:
    """Load, apply ``change`` and save under the file's lock, so concurrent writers (the CLI, the daemon's
    scan merge) lose nothing; the file is not rewritten when ``change`` returns the list unchanged."""
    from sonocli.config.locking import locked

    with locked(Path(path)):
        before = load_meter_list(path)
        after = change(before)
        if after.state() != before.state() or not Path(path).exists():
            save_meter_list(path, after)
        return after
