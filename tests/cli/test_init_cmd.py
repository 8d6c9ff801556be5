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
