"""The README's first set-up command (install, then the main job on the simulated meters) works as written.

The install part (venv, pip) is what CI does anyway; the sonocli commands after it are run here, verbatim
but for the interpreter, in an empty directory — as a newcomer would. A rule that makes them fail (a root
that must exist first, a renamed option) fails here before it fails a newcomer.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _setup_commands() -> list[list[str]]:
    block = re.search(r"## Set-up\n.*?```sh\n(.*?)\n```", README.read_text(encoding="utf-8"), re.S)
    assert block is not None, "README has no Set-up block"
    line = block.group(1).strip().splitlines()[0]
    parts = [shlex.split(part) for part in line.split("&&")]
    commands = [p for p in parts if p and p[0] == ".venv/bin/sonocli"]
    assert len(commands) >= 2, line
    return [[sys.executable, "-m", "sonocli", *p[1:]] for p in commands]


def test_the_readme_main_job_runs_in_an_empty_directory(tmp_path: Path) -> None:
    for argv in _setup_commands():
        run = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, f"{shlex.join(argv[3:])}: exit {run.returncode}\n{run.stderr}"
    assert "EMH" in run.stdout  # the readout printed the demo meters' values
