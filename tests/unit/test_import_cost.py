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
        "sonocli.cli.root", "sonocli.cli.context", "sonocli.cli.helpoption")}
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


def _loaded_by_command(tmp_path: object, *argv: str) -> set[str]:
    """The modules a whole `sonocli ...` run loaded, printed at exit (after its output)."""
    import os

    root = str(tmp_path)
    subprocess.run([sys.executable, "-m", "sonocli", "--root", root, "init"], check=True, capture_output=True)
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.stderr.write('\\nMODULES ' + ' '.join(sorted(sys.modules)) + '\\n'))\n"
        "from sonocli.cli.root import main\n"
        f"main({['--root', root, *argv]!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "100"})
    assert done.returncode == 0, done.stderr
    return set(done.stderr.rsplit("MODULES ", 1)[1].split())


# issue 15: decode and listen start within 1.3x of `import click`; benchmarks/startup.py measures it, these
# keep what made them slow from coming back (each was milliseconds before the first output)
def test_decode_loads_no_logging_dataclasses_xml_or_database(tmp_path: object) -> None:
    frame = ("683C3C680808727803491177040E160A0000000C7878034911041331D40000426C0000441300000000046D0B0BCD13022700"
             "0009FD0E0209FD0F060F00017513D316")  # a libmbus test frame (ACW), as benchmarks/startup.py
    loaded = _loaded_by_command(tmp_path, "decode", frame)
    assert "sonocli.codecs.mbus_app" in loaded  # the probe saw the decode happen
    unwanted = {"logging", "dataclasses", "copy", "string", "lxml", "sqlite3", "xml", "json", "serial", "decimal",
                "locale"}  # locale: click's gettext, for help texts sonocli does not translate
    assert {name.split(".")[0] for name in loaded} & unwanted == set()


def test_listen_loads_no_logging_lxml_or_wired_engine(tmp_path: object) -> None:
    loaded = _loaded_by_command(tmp_path, "listen", "--port", "sim://air?count=1", "--dongle", "hex",
                                "--count", "1", "--json")
    assert "sonocli.engine.receiver" in loaded
    # locale: click's gettext (sonocli.cli.helpoption); random: the simulator's noise, made only when sent
    assert {name.split(".")[0] for name in loaded} & {"logging", "lxml", "rich", "locale", "random"} == set()
    assert "sonocli.engine.wired" not in loaded and "sonocli.engine.delivery" not in loaded
    assert "sonocli.cli.output" not in loaded  # piped: JSON lines (sonocli.cli.jsonout), no table renderer
