"""chip.ini: load, query, change and save without losing a byte the user wrote.

The file is kept as its list of lines. Reading types every known parameter through the schema and
refuses invalid values with file, line, parameter, value and the allowed range; unknown keys are kept
(the device's RTOS adds its own, see the note under Table 25) and reported by :meth:`ChipIni.unknown`.
``set`` rewrites only the value part of one line, so comments, order, spacing and unknown keys survive.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from sonocli.config.chipini_schema import GROUPS, PARAMETERS, Param, Value, by_name
from sonocli.config.textfile import decode_utf8
from sonocli.errors import ConfigError, looks_secret, shown_value
from sonocli.model.valueclass import valueclass

_SECTION = re.compile(r"^\s*\[([^\]]*)\]\s*$")
_ENTRY = re.compile(r"^(\s*)([^=;#\s][^=]*?)(\s*=\s*)(.*?)(\s*)$")


@valueclass(frozen=True)
class Entry:
    """A ``KEY=VALUE`` line as found in the file (line numbers from 1)."""

    section: str
    name: str
    text: str
    line: int


@valueclass(frozen=True)
class Setting:
    """A parameter's effective value and where it came from (for ``config show``)."""

    param: Param
    value: Value
    line: int | None  # None: the default applies

    @property
    def text(self) -> str:
        return self.param.format(self.value)


def split_lines(text: str) -> list[str]:
    """Lines ending at LF only (CRLF kept): str.splitlines would also break at U+0085, U+2028, FF, ..."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def suggest(name: str) -> str:
    """ " (did you mean X?)" for a near miss of a known name, else ""."""
    import difflib  # only for a name that is not known

    close = difflib.get_close_matches(name.upper(), list(by_name()), n=1, cutoff=0.8)
    return f" (did you mean {close[0]}?)" if close else ""


class ChipIni:
    """A loaded chip.ini. Missing parameters read as their defaults."""

    def __init__(self, lines: list[str], file: str | None = None, *, errors: list[ConfigError] | None = None) -> None:
        """``errors``: collect every invalid line there instead of raising at the first (``config check``)."""
        self._lines = lines
        self._errors = errors
        self._file = file
        self._schema = by_name()
        self._entries: dict[str, Entry] = {}
        self._values: dict[str, Value] = {}
        self._unknown: list[tuple[str, str, int]] = []
        self._duplicates: list[tuple[str, int]] = []
        self._bad: dict[str, int] = {}  # parameter -> line of its invalid value (only when collecting errors)
        self._parse()

    # -- loading -------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path, *, errors: list[ConfigError] | None = None) -> ChipIni:
        """Read ``path``; a missing file is an empty one (all defaults), as on the device. ``errors``: collect
        invalid lines there instead of raising at the first."""
        from sonocli.fsutil import CHIP_INI_LIMIT, read_config

        path = Path(path)
        data = read_config(path, limit=CHIP_INI_LIMIT)  # a directory or a 30 MB file: refused at once
        if data is None:
            return cls([], str(path), errors=errors)
        return cls.from_bytes(data, str(path), errors=errors)

    @classmethod
    def from_bytes(cls, data: bytes, file: str | None = None, *, errors: list[ConfigError] | None = None) -> ChipIni:
        text = decode_utf8(data, file, "save chip.ini as UTF-8 without BOM")
        return cls(split_lines(text), file, errors=errors)

    @classmethod
    def from_text(cls, text: str, file: str | None = None) -> ChipIni:
        return cls(split_lines(text), file)

    def _parse(self) -> None:
        section = ""
        for index, raw in enumerate(self._lines):
            number = index + 1
            line = raw.lstrip("\ufeff") if index == 0 else raw
            stripped = line.strip()
            if not stripped or stripped[0] in ";#":
                continue
            header = _SECTION.match(line.rstrip("\r\n"))
            if header:
                section = header.group(1).strip()
                continue
            match = _ENTRY.match(line.rstrip("\r\n"))
            if match is None:
                self._fail(
                    ConfigError(
                        f"expected KEY=VALUE, [SECTION] or a ; comment, found "
                        f"{shown_value(stripped, secret=looks_secret(stripped.split()[0]))}",
                        file=self._file,
                        line=number,
                    )
                )
                continue
            key, text = match.group(2).strip(), match.group(4)
            name = key.upper()
            param = self._schema.get(name)
            if param is None:
                self._unknown.append((key, text, number))
                continue
            try:
                value = param.check(text, file=self._file, line=number)
            except ConfigError as exc:
                self._fail(exc)
                # collecting (config check, config set): the line is known, its value is not; a set() of
                # this parameter replaces the bad line instead of adding a second one
                self._bad[name] = number
                self._entries[name] = Entry(section, key, text, number)
                continue
            if name in self._entries:
                self._duplicates.append((name, number))
            self._entries[name] = Entry(section, key, text, number)
            self._values[name] = value

    def _fail(self, error: ConfigError) -> None:
        if self._errors is None:
            raise error
        self._errors.append(error)

    # -- queries -------------------------------------------------------------------------------------
    def param(self, name: str) -> Param:
        param = self._schema.get(name.strip().upper())
        if param is None:
            raise ConfigError(f"unknown parameter {name!r}{suggest(name)}", hint="sonocli config show lists them")
        return param

    def get(self, name: str) -> Value:
        """The typed value; the default where the file does not set it."""
        param = self.param(name)
        if param.name in self._values:
            return self._values[param.name]
        if param.name == "WATCHDOG_READOUT":
            # Table 25: "4 times the read-out cycle, at least WATCHDOG_PROCESS".
            return max(4 * int(self.get("METER_TIME")), int(self.get("WATCHDOG_PROCESS")))
        return param.default

    def __getitem__(self, name: str) -> Value:
        return self.get(name)

    def is_set(self, name: str) -> bool:
        return self.param(name).name in self._values

    def line_of(self, name: str) -> int | None:
        entry = self._entries.get(self.param(name).name)
        return entry.line if entry else None

    def unknown(self) -> list[tuple[str, str, int]]:
        """Keys the schema does not know, as (key, value, line); they are kept on save."""
        return list(self._unknown)

    def bad_line(self, name: str) -> int | None:
        """The line holding an invalid value of ``name`` (when loaded collecting errors), else None."""
        return self._bad.get(name.strip().upper())

    def warnings(self) -> list[tuple[int, str]]:
        """(line, message) for unknown keys (with a near-miss suggestion) and repeated parameters."""
        found = [
            (line, f"unknown parameter {key}={shown_value(text, secret=looks_secret(key))} kept{suggest(key)}")
            for key, text, line in self._unknown
        ]
        found += [(line, f"{name} set again; this later value wins") for name, line in self._duplicates]
        found += [
            (entry.line, f"{name} belongs in [{self._schema[name].group}], found in [{entry.section}]")
            for name, entry in self._entries.items()
            if entry.section and entry.section.upper() != self._schema[name].group and name not in self._bad
        ]
        return sorted(found)

    def ignored(self) -> list[tuple[int, str]]:
        """(line, message) for parameters the file sets away from their default that sonocli does not act on
        (Param.no_effect): the engineer expects a change that will not happen. At the default they are
        quiet, so the chip.ini written by ``sonocli init`` (every parameter listed) checks clean."""
        found = []
        for name, entry in self._entries.items():
            param = self._schema[name]
            if param.no_effect is not None and name in self._values and self._values[name] != param.default:
                found.append((entry.line, f"{name}={entry.text.strip()} has no effect in sonocli: {param.no_effect}"))
        return sorted(found)

    def settings(self) -> Iterator[Setting]:
        """Every parameter of the schema, in table order, with its effective value."""
        for param in PARAMETERS:
            entry = self._entries.get(param.name)
            yield Setting(param, self.get(param.name), entry.line if entry else None)

    @property
    def file(self) -> str | None:
        return self._file

    def text(self) -> str:
        return "".join(self._lines)

    # -- changes -------------------------------------------------------------------------------------
    def set(self, name: str, value: str) -> None:
        """Validate and store ``value``, editing the existing line in place or adding one to its group."""
        param = self.param(name)
        typed = param.check(value)  # the schema's one rule, as for chip.ini lines and command options
        if any(ord(char) < 0x20 and char != "\t" for char in value):
            raise ConfigError(f"{param.name}: a value cannot contain line breaks or control characters")
        formatted = param.format(typed) if param.type in ("bool", "choice", "int") else value.strip()
        entry = self._entries.get(param.name)
        if entry is not None:
            index = entry.line - 1
            raw = self._lines[index]
            ending = raw[len(raw.rstrip("\r\n")) :]
            bom = "\ufeff" if index == 0 and raw.startswith("\ufeff") else ""
            match = _ENTRY.match(raw.rstrip("\r\n").lstrip("\ufeff"))
            assert match is not None
            self._lines[index] = (
                f"{bom}{match.group(1)}{match.group(2)}{match.group(3)}{formatted}{match.group(5)}{ending}"
            )
        else:
            self._insert(param, formatted)
        self._reparse()

    def _insert(self, param: Param, formatted: str) -> None:
        newline = "\r\n" if any(line.endswith("\r\n") for line in self._lines) else "\n"
        if self._lines and not self._lines[-1].endswith(("\n", "\r")):
            self._lines[-1] += newline
        new_line = f"{param.name}={formatted}{newline}"
        section = ""
        last_in_group: int | None = None
        for index, raw in enumerate(self._lines):
            header = _SECTION.match(raw.rstrip("\r\n").lstrip("\ufeff"))
            if header:
                section = header.group(1).strip()
                if section.upper() == param.group:
                    last_in_group = index
                continue
            stripped = raw.strip()
            if section.upper() == param.group and stripped and stripped[0] not in ";#":
                last_in_group = index  # after the group's last entry, before comments that follow it
        if last_in_group is None:
            if self._lines and self._lines[-1].strip():
                self._lines.append(newline)
            self._lines += [f"[{param.group}]{newline}", new_line]
        else:
            self._lines.insert(last_in_group + 1, new_line)

    def _reparse(self) -> None:
        self._entries, self._values, self._unknown, self._duplicates, self._bad = {}, {}, [], [], {}
        if self._errors is not None:
            self._errors.clear()  # they describe the lines as they are now
        self._parse()

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves the old file or the new one, never a mix."""
        from sonocli.fsutil import atomic_write_text

        atomic_write_text(Path(path), self.text(), private=True)  # FTP_PASS, SMTP_PASSWORD: 0600


def load_for_root(root: Path) -> ChipIni:
    """The chip.ini of a sonocli root (``ROOT/app/chip.ini``), e.g. for a command's ``--port`` default."""
    from sonocli.config.layout import RootLayout

    return ChipIni.load(RootLayout(Path(root)).chip_ini)


def default_text() -> str:
    """A chip.ini with every parameter at its default, each with its meaning and range as a comment."""
    out = [
        "; chip.ini written by `sonocli init`: every parameter of the operating guide's Table 25 at its\n",
        "; default, plus sonocli's own (MBUS_PORT, WMBUS_PORT, WMBUS_DONGLE, WMBUS2_PORT, WMBUS2_DONGLE).\n",
        "; Change values with `sonocli config set NAME VALUE`; comments and unknown keys are kept.\n",
    ]
    for group in GROUPS:
        out.append(f"\n[{group}]\n")
        for param in PARAMETERS:
            if param.group != group:
                continue
            note = f"; default: {param.default_note}" if param.default_note else ""
            out.append(f"; {param.help} Allowed: {param.allowed()}{note}\n")
            if param.no_effect is not None:
                out.append(f"; No effect in sonocli: {param.no_effect}.\n")
            # A computed default stays commented out so that it keeps following what it depends on.
            prefix = ";" if param.default_note else ""
            out.append(f"{prefix}{param.name}={param.format(param.default)}\n")
    return "".join(out)
