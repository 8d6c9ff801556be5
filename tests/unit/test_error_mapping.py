"""The CLI root's error mapping, end to end: real ``python -m sonocli`` processes, their exit codes
(0 ok, 1 operational failure, 2 usage/bad input, 3 partial) and one line on stderr, never a traceback
unless --debug asks for it.

Failures that no shipped command can be made to raise on demand (a permission error, a serial
exception, a bug) come from a small command module written into tmp_path and added to the root's lazy
command table by a two-line driver: the process, the root group and its error handling are the real ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ACK = "E5"
BAD_CHECKSUM = "68 04 04 68 08 01 70 08 82 16"

COMMANDS = textwrap.dedent(
    """
    import click, errno, termios
    import serial
    from sonocli import errors

    RAISERS = {
        "config": lambda: errors.ConfigError("MBUS_BAUDRATE=123 is not one of 300..38400", file="chip.ini", line=7),
        "transport": lambda: errors.TransportError("port /dev/ttyUSB0 died"),
        "timeout": lambda: errors.TimeoutError_("meter 5 did not answer"),
        "partial": lambda: errors.PartialFailure("2 of 5 meters failed"),
        "nokey": lambda: errors.NoKeyError("no key for meter 12345678"),
        "push": lambda: errors.PushError("530 login incorrect", channel="ftp", step="login"),
        "permission": lambda: PermissionError(errno.EACCES, "Permission denied", "/dev/ttyUSB0"),
        "missing": lambda: FileNotFoundError(errno.ENOENT, "No such file or directory", "/dev/ttyUSB9"),
        "serial": lambda: serial.SerialException("could not open port /dev/ttyUSB7: [Errno 2] nope"),
        "serialtimeout": lambda: serial.SerialTimeoutException("Write timeout"),
        "termios": lambda: termios.error(22, "Invalid argument"),
        "bug": lambda: RuntimeError("something impossible\\nsecond line"),
        "interrupt": lambda: KeyboardInterrupt(),
    }

    @click.command("boom")
    @click.argument("kind")
    def boom(kind):
        raise RAISERS[kind]()
    """
)

DRIVER = (
    "import sys; from sonocli.cli import root; "
    "root.COMMANDS['boom'] = ('boom_cmds:boom', 'test'); root.main(sys.argv[1:])"
)


def sonocli(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sonocli", *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        timeout=60,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("sonocli: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def boom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("boom")
    (where / "boom_cmds.py").write_text(COMMANDS)
    return where


def boom(boom_dir: Path, kind: str, *globals_: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(boom_dir), *sys.path])}
    return subprocess.run(
        [sys.executable, "-c", DRIVER, "--root", str(boom_dir / "root"), *globals_, "boom", kind],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )


# ---- shipped commands ----------------------------------------------------------------------------------


def test_exit_0_and_nothing_on_stderr(tmp_path: Path) -> None:
    proc = sonocli("--root", str(tmp_path), "decode", "--json", ACK)
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert proc.stdout.strip().startswith("{")


@pytest.mark.parametrize(
    ("args", "stdin", "words"),
    [
        (("decode", BAD_CHECKSUM), None, "checksum 0x82 is wrong (expected 0x81) (at byte 8)"),
        (("decode", "68 0"), None, "odd number of hex digits (3): the last byte is incomplete (at byte 1)"),
        (("decode", "68 0Z"), None, "input is not hex: 'Z' at character 5"),
        (("decode", "-"), b"", "no input: the file or stdin is empty"),
        (("decode", "-"), b"68 04 04\n", "frame incomplete: 3 of 10 bytes (at byte 3)"),
        (("decode", "--file", "/nonexistent/frame.hex"), None, "--file /nonexistent/frame.hex: cannot read it"),
        (("decode",), None, "give the frame as HEX, '-' for stdin, or --file PATH"),
    ],
)
def test_bad_input_exit_2_one_line(tmp_path: Path, args: tuple[str, ...], stdin: bytes | None, words: str) -> None:
    proc = sonocli("--root", str(tmp_path), *args, stdin=stdin)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    line = one_error_line(proc)
    assert line.startswith("sonocli: error: ") and words in line


def test_click_usage_errors_exit_2(tmp_path: Path) -> None:
    proc = sonocli("--root", str(tmp_path), "decode", "--no-such-option")
    assert proc.returncode == 2
    # one error voice: click's usage errors are one line like sonocli's own, with the command's --help
    assert proc.stderr == "sonocli: error: no such option '--no-such-option' (hint: sonocli decode --help)\n"
    proc = sonocli("--root", str(tmp_path), "no-such-command")
    assert proc.returncode == 2
    assert proc.stderr == "sonocli: error: no such command 'no-such-command' (hint: sonocli --help)\n"


def test_missing_port_exit_1_with_hint(tmp_path: Path) -> None:
    proc = sonocli("--root", str(tmp_path), "readout", "--port", str(tmp_path / "ttyNOPE"), "--address", "1")
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert "ttyNOPE" in line and "(hint: check the port name" in line


def test_partial_readout_exit_3(tmp_path: Path) -> None:
    root = str(tmp_path)
    scan = sonocli("--root", root, "scan", "--port", "sim://demo", "--mode", "primary", "--last", "4", "--save")
    assert scan.returncode == 0, scan.stderr
    proc = sonocli("--root", str(tmp_path), "readout", "--port", "sim://demo?silent=2", "--all", "--retries", "0")
    assert proc.returncode == 3
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("sonocli: warning:")]
    # one line per failed meter, then the summary (warnings, e.g. a limited value list, come before them)
    assert lines == [
        "sonocli: error: primary address 2: REQ_UD2 (telegram 1): no answer after 1 tries",
        "sonocli: error: 1 of 4 meters failed",
    ], proc.stderr
    assert "EMH" in proc.stdout or "Energy" in proc.stdout


# ---- every kind of error through the real root ---------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "code", "line"),
    [
        ("config", 2, "sonocli: error: chip.ini:7: MBUS_BAUDRATE=123 is not one of 300..38400"),
        ("transport", 1, "sonocli: error: port /dev/ttyUSB0 died"),
        ("timeout", 1, "sonocli: error: meter 5 did not answer"),
        ("partial", 3, "sonocli: error: 2 of 5 meters failed"),
        ("nokey", 1, "sonocli: error: no key for meter 12345678"),
        ("push", 1, "sonocli: error: ftp: login: 530 login incorrect"),
        (
            "permission",
            1,
            "sonocli: error: [Errno 13] Permission denied: '/dev/ttyUSB0' (hint: add the user to the dialout group"
            " (sudo usermod -aG dialout $USER), then log in again)",
        ),
        (
            "missing",
            1,
            "sonocli: error: [Errno 2] No such file or directory: '/dev/ttyUSB9' (hint: check the port name"
            " (ls /dev/ttyUSB* /dev/ttyACM*) or use sim://demo)",
        ),
        (
            "serial",
            1,
            "sonocli: error: could not open port /dev/ttyUSB7: [Errno 2] nope (hint: check the port name"
            " (ls /dev/ttyUSB* /dev/ttyACM*) or use sim://demo)",
        ),
        ("serialtimeout", 1, "sonocli: error: Write timeout"),
        (
            "termios",
            1,
            "sonocli: error: (22, 'Invalid argument') (hint: the port rejected its settings (baud rate or parity))",
        ),
        (
            "bug",
            1,
            "sonocli: internal error: RuntimeError: something impossible"
            " (run again with --debug for the traceback, and please report it)",
        ),
        ("interrupt", 130, "sonocli: interrupted"),
    ],
)
def test_each_error_kind_is_one_line(boom_dir: Path, kind: str, code: int, line: str) -> None:
    proc = boom(boom_dir, kind)
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [line]


@pytest.mark.parametrize("kind", ["config", "permission", "serial", "bug"])
def test_debug_adds_the_traceback(boom_dir: Path, kind: str) -> None:
    quiet = boom(boom_dir, kind)
    loud = boom(boom_dir, kind, "--debug")
    assert loud.returncode == quiet.returncode
    assert "Traceback (most recent call last)" in loud.stderr
    assert "boom_cmds.py" in loud.stderr  # the traceback reaches the line that raised


def test_verbose_and_quiet_set_the_log_level(boom_dir: Path) -> None:
    # -v/-q move the root logger: at -vv a debug record from a command is shown, at -q a warning is not
    module = boom_dir / "log_cmds.py"
    module.write_text(
        textwrap.dedent(
            """
            import click, logging

            @click.command("log")
            def log():
                logging.getLogger("sonocli.test").debug("debug record")
                logging.getLogger("sonocli.test").warning("warning record")
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(boom_dir), *sys.path])}
    driver = (
        "import sys; from sonocli.cli import root; "
        "root.COMMANDS['log'] = ('log_cmds:log', 'test'); root.main(sys.argv[1:])"
    )

    def run(*flags: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-c", driver, *flags, "log"], capture_output=True, text=True, check=False, env=env
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stderr

    assert run() == "sonocli: WARNING: sonocli.test: warning record\n"
    assert "DEBUG: sonocli.test: debug record" in run("-vv")
    assert run("-q") == ""


def test_closed_pipe_stops_quietly() -> None:
    # `sonocli ... | head`: the reader is gone before sonocli writes; no error line, the shell's SIGPIPE code
    proc = subprocess.Popen(
        [sys.executable, "-m", "sonocli", "decode", "--json", ACK], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141
    assert err == b""
