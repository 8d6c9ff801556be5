"""``sonocli init`` through click and as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from sonocli.cli.root import cli


def test_init_creates_and_reports(tmp_path: Path) -> None:
    root = tmp_path / "r"
    result = CliRunner().invoke(cli, ["--root", str(root), "init"])
    assert result.exit_code == 0, result.output
    assert f"sonocli root {root}: created" in result.output
    assert (root / "app" / "chip.ini").is_file() and (root / "ext" / "Upd").is_dir()
    (root / "app" / "chip.ini").write_text("[CONFIG]\nMETER_TIME=60\n")
    again = CliRunner().invoke(cli, ["--root", str(root), "init", "--json"])
    assert json.loads(again.output)["created"] is False
    assert (root / "app" / "chip.ini").read_text() == "[CONFIG]\nMETER_TIME=60\n"


def test_init_uses_sonocli_root_in_a_real_process(tmp_path: Path) -> None:
    env = {**os.environ, "SONOCLI_ROOT": str(tmp_path / "env-root")}
    done = subprocess.run([sys.executable, "-m", "sonocli", "init"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "env-root" / "app" / "device_handle.cfg").is_file()


def test_init_on_an_unusable_root_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(cli, ["--root", str(blocker / "root"), "init"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sonocli: error: cannot set up the root {blocker / 'root'}: ")
    assert "Not a directory" in lines[0] and "port" not in lines[0]
    assert blocker.read_text() == "not a directory"
