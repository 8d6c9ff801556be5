"""CLI start-up is part of the product: importing the CLI must not load heavy libraries."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("paramiko", "lxml", "cryptography", "rich", "serial")


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_importing_cli_loads_no_heavy_library() -> None:
    loaded = _loaded_after("import sonocli.cli.root")
    heavy = {name for name in loaded if name.split(".")[0] in HEAVY}
    assert heavy == set(), f"heavy modules loaded at CLI import: {sorted(heavy)}"


def test_help_loads_no_command_module() -> None:
    loaded = _loaded_after(
        "from sonocli.cli.root import cli\n"
        "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass"
    )
    commands = {name for name in loaded if name.startswith("sonocli.cli.") and name not in (
        "sonocli.cli.root", "sonocli.cli.context")}
    assert commands == set()
    assert not {name for name in loaded if name.split(".")[0] in HEAVY}


def test_model_imports_nothing_else_from_sonocli() -> None:
    loaded = _loaded_after("import sonocli.model")
    assert {n for n in loaded if n.startswith("sonocli.") and not n.startswith("sonocli.model")} == set()


def test_engine_layers_never_import_click_or_rich() -> None:
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2] / "sonocli"
    offenders = []
    for path in root.rglob("*.py"):
        if "cli" in path.relative_to(root).parts[:1] or path.name == "__main__.py":
            continue
        text = path.read_text(encoding="utf-8")
        for banned in ("import click", "from click", "import rich", "from rich", "sonocli.cli"):
            if banned in text:
                offenders.append(f"{path.relative_to(root)}: {banned}")
    assert offenders == []
