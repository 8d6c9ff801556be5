"""Run a sonocli process with its stdout on a real pseudo-terminal (the CLI's TTY behaviour: live tables,
tables that fit the width, plots) and collect all it wrote there until it exits."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import NamedTuple


class PtyRun(NamedTuple):
    returncode: int
    screen: str  # what the process wrote on the terminal, decoded ("replace" for broken UTF-8)
    stderr: str  # its stderr, when it was captured


def run_on_pty(root: Path, args: list[str], env: dict[str, str], *, size: tuple[int, int] | None = None,
               stdin_on_pty: bool = True, capture_stderr: bool = True, stderr_on_pty: bool = False) -> PtyRun:
    """``python -m sonocli --root ROOT ARGS`` with stdout (and stdin, unless ``stdin_on_pty`` is off) on a
    new pty; ``size`` (lines, columns) is set on it as a terminal window's. ``stderr_on_pty``: stderr goes
    to the pty instead (progress on a terminal) and stdout to /dev/null. Reads until the process closes
    its end (EIO), then waits for it (60 s at most)."""
    master, slave = pty.openpty()
    if size is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    if stderr_on_pty:
        stdout: int = subprocess.DEVNULL
        stderr: int = slave
    else:
        stdout, stderr = slave, subprocess.PIPE if capture_stderr else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "sonocli", "--root", str(root), *args],
                            stdin=slave if stdin_on_pty else subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                            env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    code = proc.wait(timeout=60)
    os.close(master)
    err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    return PtyRun(code, b"".join(chunks).decode("utf-8", "replace"), err)
