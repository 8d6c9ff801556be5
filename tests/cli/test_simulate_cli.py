"""``sonocli simulate`` as a real process: prints the pty path, serves scans, stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from sonocli.cli.root import cli


def test_simulate_serves_the_demo_on_a_pty_until_sigterm(tmp_path: Path) -> None:
    link = tmp_path / "ttyMBUS"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sonocli", "simulate", "--baud", "9600", "--link", str(link), "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/pts/")
        result = CliRunner().invoke(
            cli,
            [
                "--root",
                str(tmp_path),
                "scan",
                "--port",
                str(link),
                "--baud",
                "9600",
                "--mode",
                "primary",
                "--first",
                "9",
                "--last",
                "11",
                "--retries",
                "0",
                "--json",
            ],
        )
        assert result.exit_code == 0, result.stderr
        assert [m["primary_address"] for m in json.loads(result.stdout)["meters"]] == [9, 10, 11]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "serving 12 meters at 9600 baud" in err
    assert not link.exists()


def test_simulate_rejects_a_missing_segment_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["simulate", str(tmp_path / "none.toml")])
    assert result.exit_code == 2
    assert "cannot read segment file" in result.stderr
