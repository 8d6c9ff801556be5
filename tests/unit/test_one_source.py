"""Issue 11, one source for each list: dongle names and baud rates are declared once, in sonocli.registry."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sonocli import registry
from sonocli.config.chipini import ChipIni
from sonocli.config.chipini_schema import by_name
from sonocli.errors import ConfigError, UsageError

SONOCLI = Path(__file__).resolve().parents[2] / "sonocli"


def test_dongle_names_schema_registry_and_simulator_agree() -> None:
    from sonocli.sim import radio

    assert registry.dongle_names() == tuple(registry.DONGLES) == radio.DONGLES
    for name in ("WMBUS_DONGLE", "WMBUS2_DONGLE"):
        assert by_name()[name].choices == ("", *registry.dongle_names())  # empty: not set
    assert ", ".join(registry.dongle_names()) in by_name()["WMBUS_DONGLE"].help


def test_every_registered_dongle_can_be_simulated() -> None:
    from sonocli.sim.peer import VirtualClock
    from sonocli.sim.radio import RadioPeer

    for name in registry.dongle_names():
        assert RadioPeer({"dongle": name}, VirtualClock()).dongle == name
    with pytest.raises(UsageError, match="allowed: " + ", ".join(registry.dongle_names())):
        RadioPeer({"dongle": "nope"}, VirtualClock())


def test_baud_rates_schema_registry_and_port_check_agree() -> None:
    from sonocli.transports import check_baudrate

    assert registry.BAUD_RATES == (300, 600, 1200, 2400, 4800, 9600, 19200, 38400)
    assert by_name()["MBUS_BAUDRATE"].choices == registry.BAUD_RATES
    for rate in registry.BAUD_RATES:
        assert check_baudrate(rate) == rate
        ChipIni([]).set("MBUS_BAUDRATE", str(rate))
    for rate in (110, 1234, 57600):
        with pytest.raises(UsageError):
            check_baudrate(rate)
        with pytest.raises(ConfigError):
            ChipIni([]).set("MBUS_BAUDRATE", str(rate))
    assert registry.baud_help() == "300, 600, 1200, 2400, 4800, 9600, 19200 or 38400"


def test_registry_imports_nothing_of_sonocli_but_errors() -> None:
    tree = ast.parse((SONOCLI / "registry.py").read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {name for name in imported if name.startswith("sonocli")} == {"sonocli.errors"}


def test_no_second_literal_list_of_dongles_or_baud_rates() -> None:
    """Outside the registry no module spells out all dongle names or baud rates as a literal tuple or list.

    (A subset, such as the sticks that need no set-up, is behaviour, not a copy of the list.)
    """
    dongles = set(registry.dongle_names())
    bauds = set(registry.BAUD_RATES) - {38400}  # the guide's seven alone are a copy too
    offenders = []
    for path in sorted(SONOCLI.rglob("*.py")):
        if path.name == "registry.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Tuple | ast.List | ast.Set):
                continue
            values = {elt.value for elt in node.elts if isinstance(elt, ast.Constant)}
            if values >= dongles or values >= bauds:
                offenders.append(f"{path.relative_to(SONOCLI)}:{node.lineno}")
    assert offenders == []
