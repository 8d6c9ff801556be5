"""Every Table 25 parameter either works or is marked "no effect in sonocli" - and the marking is exact.

"Works" is checked the only honest way: some code outside the schema names the parameter (``get("NAME")``,
the MasterSettings mapping ``CHIP_INI_FIELDS``, a ``f"{prefix}_PORT"`` over a tuple of prefixes, ...). The
walk is over the AST of every module of sonocli/ except the schema itself: a string constant equal to the
name is a reference; an f-string ``{x}_SUFFIX`` counts for every string constant of the same module
followed by the suffix. Names inside longer texts (help, docstrings) do not count. A name without an
underscore (``NAME``, ``ADDRESS``, ``DHCP``) is also an ordinary word (an XML attribute, a metavar), so it
counts only as the first argument of a getter call: ``get("NAME")``, ``check_setting("DHCP", ...)``.
"""

from __future__ import annotations

import ast
from pathlib import Path

from sonocli.config.chipini_schema import NO_EFFECT, PARAMETERS, param

PACKAGE = Path(__file__).resolve().parents[2] / "sonocli"
SCHEMA = PACKAGE / "config" / "chipini_schema.py"
MAN = Path(__file__).resolve().parents[2] / "man" / "sonocli.1"


GETTERS = frozenset({"get", "g", "check_setting", "param", "is_set", "line_of"})


def _called_with(tree: ast.AST) -> set[str]:
    """String constants passed first to a getter: ``x.get("NAME")``, ``check_setting("DHCP", v)``."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            first = node.args[0]
            if name in GETTERS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                out.add(first.value)
    return out


def _module_names(tree: ast.AST) -> set[str]:
    constants = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    names = {c for c in constants if "_" in c} | _called_with(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and len(node.values) == 2:
            head, tail = node.values
            if isinstance(head, ast.FormattedValue) and isinstance(tail, ast.Constant) and isinstance(tail.value, str):
                names |= {prefix + tail.value for prefix in constants if prefix.isidentifier()}
    return names


def referenced() -> dict[str, list[str]]:
    """Parameter name -> the modules (outside the schema) that name it."""
    wanted = {p.name for p in PARAMETERS}
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == SCHEMA:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name in _module_names(tree) & wanted:
            found.setdefault(name, []).append(str(path.relative_to(PACKAGE.parent)))
    return found


def test_every_parameter_that_is_not_marked_is_read_by_code() -> None:
    refs = referenced()
    unread = sorted(p.name for p in PARAMETERS if p.works and p.name not in refs)
    assert unread == [], f"marked as working but no code reads them (mark them in NO_EFFECT): {unread}"


def test_every_marked_parameter_is_read_by_no_code() -> None:
    refs = referenced()
    read = {p.name: refs[p.name] for p in PARAMETERS if not p.works and p.name in refs}
    assert read == {}, f"marked 'no effect' but read by code (remove them from NO_EFFECT): {read}"


def test_the_marks_name_real_parameters_with_a_reason() -> None:
    names = {p.name for p in PARAMETERS}
    assert set(NO_EFFECT) <= names
    for name, reason in NO_EFFECT.items():
        assert param(name).no_effect == reason and reason.strip() and not reason.endswith(".")
    # the device's network and time settings are the obvious ones; the wired debugging aids work
    assert not param("ADDRESS").works and not param("SNTP_IP").works and param("WEBCOM_TIMEOUT").works
    assert param("MBUS_RAWLOGENABLE").works and param("MBUS_DEBUGOUT").works


def test_the_walk_sees_prefix_f_strings_and_ignores_prose(tmp_path: Path) -> None:
    tree = ast.parse(
        'for prefix in ("WMBUS", "WMBUS2"):\n    engine.get(f"{prefix}_DONGLE")\n'
        'HELP = "set MBUS_PORT in chip.ini"\n'
    )
    names = _module_names(tree)
    assert {"WMBUS_DONGLE", "WMBUS2_DONGLE"} <= names
    assert "MBUS_PORT" not in names
    words = _module_names(ast.parse('element("parameter", {"NAME": "T"})\nini.get("DHCP")\n'))
    assert "DHCP" in words and "NAME" not in words


def test_the_man_page_lists_each_marked_parameter_as_without_effect() -> None:
    text = MAN.read_text(encoding="utf-8")
    section = text.split(".SH CHIP.INI PARAMETERS", 1)[1]
    entries = section.split(".TP\n")
    for p in PARAMETERS:
        entry = next(e for e in entries if e.startswith(f"\\fB{p.name.replace('-', chr(92) + '-')}\\fR"))
        assert ("No effect in sonocli:" in entry) is (not p.works), p.name
