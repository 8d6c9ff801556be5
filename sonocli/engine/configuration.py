"""chip.ini and the root directory as the commands see them: read, change (locked) and check.

``config show|get|set|check``, ``init`` and every command that needs the root go through here, so the rules
live in one place: chip.ini is typed and validated by the one schema table (sonocli.config.chipini_schema),
a change is a locked read-modify-write of the file as it is on disk now (two ``config set`` at once both
land), and a check reports every bad line of a chip.ini, or the first problem of a device_handle.cfg.

The root helpers of sonocli.config.layout are re-exported so that the CLI never reaches below the engine.
Importing this module stays cheap (the layout and the schema's tab names): the CLI uses
it to resolve the root of every command (the CLI context).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sonocli.config.chipini_schema import PARAMETERS, TABS
from sonocli.config.layout import RootLayout, default_root, init_root, resolve_root
from sonocli.model.valueclass import valueclass

if TYPE_CHECKING:
    from sonocli.config.chipini import ChipIni, Setting
    from sonocli.config.chipini_schema import Param
    from sonocli.engine.core import Engine
    from sonocli.errors import ConfigError

# chip.ini's passwords: masked by config show/get/set, never in a message (chipini_schema.Param.secret)
SECRETS: frozenset[str] = frozenset(p.name for p in PARAMETERS if p.secret)

__all__ = [
    "SECRETS",
    "TABS",
    "CheckResult",
    "ParameterChange",
    "RootLayout",
    "check_file",
    "default_root",
    "driver_files",
    "init_root",
    "load_chip_ini",
    "resolve_root",
    "set_parameter",
    "settings",
]


def load_chip_ini(engine: Engine) -> ChipIni:
    """The root's chip.ini as it is on disk now (a missing file reads as all defaults, as on the device).

    Unlike ``engine.chip`` (cached for the daemon's cycles) this is always fresh and always names the file,
    which is what a command that shows or changes the configuration wants.
    """
    from sonocli.config.chipini import ChipIni

    return ChipIni.load(engine.layout.chip_ini)


def settings(ini: ChipIni, tab: str | None = None) -> Iterator[Setting]:
    """Every parameter of the schema in table order with its effective value; only one web tab's if given."""
    return (s for s in ini.settings() if tab is None or s.param.tab == tab)


@valueclass(frozen=True)
class ParameterChange:
    """What :func:`set_parameter` did: the parameter, its value before and after (as chip.ini spells them),
    and the warnings of the file it changed (unknown keys, repeated parameters)."""

    param: Param
    before: str
    after: str
    file: str | None
    warnings: tuple[tuple[int, str], ...] = ()

    @property
    def no_effect(self) -> str | None:
        """Why the change does nothing in sonocli (a device-only setting, say), None when it takes effect."""
        return self.param.no_effect


def set_parameter(engine: Engine, name: str, value: str) -> ParameterChange:
    """Change one chip.ini parameter: validated by the schema, written atomically with comments, order and
    unknown keys kept, under the file's lock from load to save so a concurrent writer's change survives.

    A bad name or value raises ConfigError (exit 2) and leaves the file untouched, as does an invalid line
    of another parameter (a typo must be fixed first, not silently kept); an invalid line of the parameter
    being set is what this call repairs, so it is replaced. The engine's cached ``chip`` is not refreshed:
    call ``engine.reload()`` where a long-lived engine must see the change.
    """
    from sonocli.config.chipini import ChipIni
    from sonocli.config.locking import locked

    path = engine.layout.chip_ini
    with locked(path):
        errors: list[ConfigError] = []
        ini = ChipIni.load(path, errors=errors)
        param = ini.param(name)
        others = [e for e in errors if ini.bad_line(param.name) != e.line]
        if others:
            raise others[0]
        before = param.format(ini.get(param.name))
        ini.set(param.name, value)
        ini.save(path)
    return ParameterChange(param, before, param.format(ini.get(param.name)), ini.file, tuple(ini.warnings()))


@valueclass(frozen=True)
class CheckResult:
    """The verdict on one configuration file: every error (chip.ini: one per bad line) and the warnings."""

    file: Path
    kind: str  # "chip.ini", "device_handle.cfg" or "driver"
    errors: tuple[ConfigError, ...] = ()
    warnings: tuple[tuple[int, str], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


def _is_meter_list(path: Path, data: bytes) -> bool:
    return path.suffix.lower() == ".cfg" or data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def check_file(path: Path) -> CheckResult:
    """Check a chip.ini (every invalid line, with file:line, parameter, value and allowed range; unknown keys
    and parameters set away from their default that have no effect in sonocli are warnings) or a
    device_handle.cfg (``*.cfg`` or XML: the first problem stops the parse).

    A missing file is NotFoundError; the problems found are returned, not raised.
    """
    from sonocli.config.chipini import ChipIni
    from sonocli.errors import ConfigError, NotFoundError
    from sonocli.fsutil import CHIP_INI_LIMIT, CONFIG_LIMIT, read_config

    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"{path}: no such file")
    if path.suffix.lower() == ".toml":  # a declarative driver (app/drivers/*.toml, sonocli.codecs.drivers)
        from sonocli.codecs.drivers.declarative import check_file as check_driver

        return CheckResult(path, "driver", tuple(ConfigError(problem) for problem in check_driver(path)))
    data = read_config(path, limit=CONFIG_LIMIT if path.suffix.lower() == ".cfg" else CHIP_INI_LIMIT,
                       missing_ok=False) or b""
    if _is_meter_list(path, data):
        from sonocli.config.device_handle import parse_meter_list

        try:
            parse_meter_list(data, str(path))
        except ConfigError as exc:
            return CheckResult(path, "device_handle.cfg", (exc,))
        return CheckResult(path, "device_handle.cfg")
    errors: list[ConfigError] = []
    try:
        ini = ChipIni.from_bytes(data, str(path), errors=errors)
    except ConfigError as exc:  # not UTF-8: nothing can be checked line by line
        return CheckResult(path, "chip.ini", (exc,))
    errors.extend(_wmbus_mode_errors(ini, str(path)))
    # parameters set away from their default that sonocli does not act on are warnings, not errors: the
    # file is valid (and stays right for the device), it just will not change what sonocli does
    return CheckResult(path, "chip.ini", tuple(errors), tuple(sorted([*ini.warnings(), *ini.ignored()])))


def driver_files(app_dir: Path) -> list[Path]:
    """The declarative driver files of a root (``app/drivers/*.toml``), in name order: what ``config
    check`` checks beside chip.ini and what the engine loads."""
    directory = Path(app_dir) / "drivers"
    return sorted(directory.glob("*.toml")) if directory.is_dir() else []


def _wmbus_mode_errors(ini: ChipIni, file: str) -> list[ConfigError]:
    """A WMBUS_MODE / WMBUS2_MODE the named dongle cannot do (registry.DONGLE_WMBUS_MODES): an error naming
    the modes it can do, never a silent fall-back to T1. Only where the receiver's dongle is set."""
    from sonocli.errors import ConfigError
    from sonocli.registry import wmbus_mode_problem

    out: list[ConfigError] = []
    for dongle_name, mode_name in (("WMBUS_DONGLE", "WMBUS_MODE"), ("WMBUS2_DONGLE", "WMBUS2_MODE")):
        try:
            dongle, mode = str(ini.get(dongle_name) or ""), str(ini.get(mode_name) or "")
        except (KeyError, ValueError):
            continue  # an invalid line is reported by the parse already
        problem = wmbus_mode_problem(dongle, mode, mode_name) if dongle else None
        if problem is not None:
            where = ini.line_of(mode_name) or ini.line_of(dongle_name)
            unset = "" if ini.is_set(mode_name) else f" ({mode_name} is not set: its default is {mode})"
            out.append(ConfigError(f"{problem}{unset}", file=file,
                                   line=where, hint=f"set {mode_name} to a mode of the {dongle} dongle"))
    return out


def require_usable_chip_ini(path: Path) -> None:
    """Refuse (ConfigError, exit 2) a chip.ini the daemon must not run on: a directory, an empty file (no
    parameter at all), one cut short (its last line ends without a line break), or one with an invalid line.

    A missing chip.ini stays all defaults, as on the device; but an unattended daemon that reads nothing
    for months because its configuration was truncated by a full disk must say so and stop.
    """
    from sonocli.config.chipini import ChipIni
    from sonocli.errors import ConfigError
    from sonocli.fsutil import CHIP_INI_LIMIT, read_config

    data = read_config(path, limit=CHIP_INI_LIMIT)
    if data is None:
        return
    hint = "restore chip.ini from a backup, or remove it and run sonocli init for a default one"
    ini = ChipIni.from_bytes(data, str(path))
    if not any(setting.line is not None for setting in ini.settings()) and not ini.unknown():
        raise ConfigError("empty: no parameter set", file=str(path), hint=hint)
    if not data.endswith(b"\n"):
        last = data.count(b"\n") + 1
        raise ConfigError("cut short: the last line has no line break", file=str(path), line=last,
                          hint=f"if the file is complete, end its last line with a line break; else {hint}")
