"""``sonocli simulate`` as a real process: prints the pty path, serves scans, stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import re
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


def test_simulate_v_logs_each_request_and_its_answer(tmp_path: Path) -> None:
    """``sonocli simulate --pty demo -v``: one line per request - time, type and address, answer kind."""
    link = tmp_path / "ttyMBUS"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sonocli", "simulate", "--pty", "--baud", "9600", "--link", str(link), "demo", "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip().startswith("/dev/pts/")
        common = ["--root", str(tmp_path), "readout", "--port", str(link), "--baud", "9600", "--retries", "0"]
        result = CliRunner().invoke(cli, [*common, "--address", "10"])
        assert result.exit_code == 0, result.stderr
        result = CliRunner().invoke(cli, [*common, "--address", "42"])  # nobody there
        assert result.exit_code == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    lines = [line for line in err.splitlines() if "sonocli.sim:" in line]
    pattern = r"sonocli\.sim: \d\d:\d\d:\d\d\.\d{3} "
    assert all(re.search(pattern, line) for line in lines), lines
    assert any(line.endswith("SND_NKE to address 10 -> ACK (E5)") for line in lines), lines
    assert any("REQ_UD2 FCB=1 to address 10 -> RSP_UD 00623702 EMH (39 bytes, CI 72)" in line for line in lines)
    assert any(line.endswith("SND_NKE to address 42 -> no answer") for line in lines), lines


def test_requests_and_answers_in_words() -> None:
    from sonocli.codecs import mbus_link
    from sonocli.sim.pty_server import describe_answer, describe_request

    assert describe_request(mbus_link.req_ud2(10, True)) == "REQ_UD2 FCB=1 to address 10"
    assert describe_request(mbus_link.req_ud2(0xFD, False)) == "REQ_UD2 FCB=0 to the selected meter (FD)"
    assert describe_request(mbus_link.snd_nke(0xFF)) == "SND_NKE to broadcast (FF)"
    select = mbus_link.select_secondary("1234FFFF", mbus_link_code("EMH"))
    assert describe_request(select) == "SND_UD select 1234FFFF-EMH-FF-FF to the selected meter (FD)"
    assert describe_answer(b"") == "no answer" and describe_answer(b"\xe5") == "ACK (E5)"
    assert describe_answer(b"\xe5\x13\x77").startswith("ACK (E5) + 2 byte(s) more")
    assert describe_answer(b"\x68\x21\x21\x68\x08").startswith("truncated frame")
    assert describe_answer(b"\x13\x77").startswith("garbled answer")


def mbus_link_code(letters: str) -> int:
    """EN 13757-3 manufacturer code of three letters."""
    a, b, c = (ord(ch) - 64 for ch in letters)
    return (a << 10) | (b << 5) | c
