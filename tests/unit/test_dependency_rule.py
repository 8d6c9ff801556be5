"""The dependency rule of DESIGN.md, checked on every import statement (lazy ones inside functions too).

cli → daemon → engine → {codecs, transports, store, outputs, push} → {model, config}. Concretely:

* ``cli/`` imports only the engine, the daemon, the model, errors, logs, the registry and itself, plus
  ``service/`` (updates, daemon control) and ``sim/`` (what ``simulate`` serves) — never a codec, a
  transport, the store, an output, a push channel or the config files directly: that is engine work;
* ``daemon/`` imports only the engine, the model, errors and logs (and itself): it schedules engine calls;
* nothing imports upward: only ``cli/`` (and ``__main__``) imports ``cli``, only ``cli``/``daemon`` import
  ``daemon``, the engine's lower layers never import the engine, the model imports nothing else of sonocli,
  and codecs never import transports;
* outside ``cli/``, nothing imports click or rich (only the CLI prints).

The AST walk sees ``import a.b``, ``from a.b import c`` and ``from . import x`` (resolved against the
module's package), wherever they stand in the file; ``TYPE_CHECKING`` imports count too, since a type at a
seam is a dependency as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "sonocli"

CLI_ALLOWED = ("sonocli.engine", "sonocli.daemon", "sonocli.model", "sonocli.errors", "sonocli.logs",
               "sonocli.registry", "sonocli.cli", "sonocli.service", "sonocli.sim", "sonocli.web")
DAEMON_ALLOWED = ("sonocli.engine", "sonocli.model", "sonocli.errors", "sonocli.logs", "sonocli.daemon")
# the web interface: a face beside daemon/
WEB_ALLOWED = ("sonocli.engine", "sonocli.model", "sonocli.errors", "sonocli.logs", "sonocli.web")
BELOW_ENGINE = ("codecs", "transports", "store", "outputs", "push", "model", "config")


def _module_name(path: Path, package_root: Path) -> str:
    parts = list(path.relative_to(package_root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, package_root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file; ``from x import y`` also yields ``x.y``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = _module_name(path, package_root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            out.append((node.lineno, target))
            out.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
    return out


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _layer(path: Path, package_root: Path) -> str:
    rel = path.relative_to(package_root).parts
    return rel[0] if len(rel) > 1 else rel[0].removesuffix(".py")


def _violations(package_root: Path = PACKAGE) -> list[str]:
    found: list[str] = []
    for path in sorted(package_root.rglob("*.py")):
        layer = _layer(path, package_root)
        rel = path.relative_to(package_root.parent)
        for line, name in _imports(path, package_root):
            where = f"{rel}:{line}: {name}"
            top = name.split(".")[0]
            if top in ("click", "rich") and layer not in ("cli", "__main__"):
                found.append(f"{where} (only cli/ may import click or rich)")
            if not name.startswith("sonocli"):
                continue
            if name == "sonocli" or name == "sonocli.__version__":
                continue
            if layer == "cli":
                if not _within(name, CLI_ALLOWED):
                    found.append(f"{where} (cli/ goes through the engine)")
                continue
            if layer == "__main__":
                continue
            if _within(name, ("sonocli.cli",)):
                found.append(f"{where} (nothing imports the CLI)")
            if layer == "daemon" and not _within(name, DAEMON_ALLOWED):
                found.append(f"{where} (daemon/ only schedules engine calls)")
            if layer == "web" and not _within(name, WEB_ALLOWED):
                found.append(f"{where} (web/ only calls the engine)")
            if layer != "web" and _within(name, ("sonocli.web",)):
                found.append(f"{where} (only cli/ imports the web interface)")
            if layer != "daemon" and _within(name, ("sonocli.daemon",)):
                found.append(f"{where} (only cli/ imports the daemon)")
            if layer in BELOW_ENGINE and _within(name, ("sonocli.engine",)):
                found.append(f"{where} ({layer}/ is below the engine)")
            if layer == "model" and not _within(name, ("sonocli.model",)):
                found.append(f"{where} (the model imports nothing else of sonocli)")
            if layer == "codecs" and _within(name, ("sonocli.transports",)):
                found.append(f"{where} (codecs never import transports)")
    return found


def test_no_import_breaks_the_dependency_rule() -> None:
    violations = _violations()
    assert violations == [], "\n".join(violations)


def test_the_checker_sees_lazy_relative_and_type_checking_imports(tmp_path: Path) -> None:
    """The walk itself, on a small package of its own: an import inside a function, a relative import, a
    TYPE_CHECKING import, an upward import from the store and click outside cli/ are all caught."""
    package = tmp_path / "sonocli"
    (package / "cli").mkdir(parents=True)
    (package / "store").mkdir()
    (package / "cli" / "probe.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from sonocli.store.outbox import Outbox\n"
        "def f():\n    from ..codecs import mbus_link\n    import sonocli.push.ftp\n"
        "    from sonocli.engine.core import Engine\n",
        encoding="utf-8",
    )
    (package / "store" / "probe.py").write_text(
        "def g():\n    from sonocli.engine import core\n    import click\n", encoding="utf-8"
    )
    names = {name for _line, name in _imports(package / "cli" / "probe.py", package)}
    assert {"sonocli.store.outbox", "sonocli.codecs.mbus_link", "sonocli.push.ftp"} <= names
    found = _violations(package)

    def lines(name: str) -> set[int]:
        return {int(v.split(":")[1]) for v in found if name in v}

    assert lines("cli/probe.py") == {3, 5, 6}  # store, codecs, push; the engine (line 7) is allowed
    assert lines("store/probe.py") == {2, 3}  # the engine from below, click outside cli/


@pytest.mark.parametrize("layer", ["cli", "daemon"])
def test_the_face_layers_exist(layer: str) -> None:
    assert (PACKAGE / layer / "__init__.py").is_file()
