"""Daemon control through its PID file (guide Table 24 start-solapp / stop-solapp / restart-server).

The daemon writes its PID to ``<root>/ext/sonocli-daemon.pid``; SIGHUP makes it reload chip.ini and the
meter list, SIGTERM makes it stop cleanly. ``restart`` means what the guide means by restarting: stop the
process (SIGTERM, wait until it is gone) and start it again, detached, with the command line it was
started with: the same command line, working directory and environment (read from /proc/<pid>/cmdline,
cwd and environ, so a daemon started through the update launcher comes back on the same installation);
without /proc, ``python -m sonocli --root R serve-daemon`` with the caller's environment.
A PID file whose process is gone, or belongs to a program that is not a sonocli daemon (PID reuse), is
stale: it is reported as such and never signalled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sonocli.config.layout import RootLayout
from sonocli.errors import SonoError
from sonocli.model.valueclass import valueclass

PID_NAME = "sonocli-daemon.pid"
DAEMON_MARKER = "serve-daemon"
EMPTY_PID_GRACE = 2.0


class DaemonNotRunning(SonoError):
    """No daemon to signal: no PID file, or a stale one (exit 1)."""


@valueclass(frozen=True)
class DaemonProcess:
    pid: int
    argv: tuple[str, ...]
    cwd: str | None
    environ: dict[str, str] | None
    ppid: int | None = None
    cgroup: str | None = None


def pid_file(layout: RootLayout) -> Path:
    return layout.ext / PID_NAME


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")  # a zombie has exited already


def _cmdline(pid: int) -> tuple[str, ...] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def _environ(pid: int) -> dict[str, str] | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    pairs = (item.decode(errors="surrogateescape").partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs if key}


def _read_pid_text(path: Path) -> str:
    """The PID file's text. serve-daemon creates the file, then locks and writes it, so for a moment right
    after its start the file is empty: an empty file is read again for up to EMPTY_PID_GRACE seconds before it
    counts as garbage (without this, ``restart-daemon`` just after ``serve-daemon`` failed now and then)."""
    deadline = time.monotonic() + EMPTY_PID_GRACE
    while True:
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise DaemonNotRunning(
                f"the daemon is not running (no PID file {path})", hint="start it with sonocli serve-daemon"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DaemonNotRunning(f"cannot read PID file {path}: {exc}") from exc
        if text or time.monotonic() >= deadline:
            return text
        time.sleep(0.02)


def find_daemon(layout: RootLayout) -> DaemonProcess:
    """The running daemon, or DaemonNotRunning saying exactly why not."""
    path = pid_file(layout)
    text = _read_pid_text(path)
    if not text.isdigit() or int(text) <= 1:
        raise DaemonNotRunning(f"PID file {path} holds {text[:20]!r}, not a process id", hint=f"remove {path}")
    pid = int(text)
    if not _alive(pid):
        raise DaemonNotRunning(
            f"stale PID file {path}: process {pid} is not running", hint=f"the daemon died; remove {path}"
        )
    argv = _cmdline(pid)
    if argv is not None and not any(DAEMON_MARKER in part for part in argv):
        raise DaemonNotRunning(
            f"stale PID file {path}: process {pid} is {' '.join(argv)[:60]!r}, not a sonocli daemon",
            hint=f"remove {path}",
        )
    try:
        cwd: str | None = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        cwd = None
    return DaemonProcess(pid, argv or (), cwd, _environ(pid), _ppid(pid), _read_or_none(f"/proc/{pid}/cgroup"))


def _read_or_none(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _ppid(pid: int) -> int | None:
    stat = _read_or_none(f"/proc/{pid}/stat")
    try:
        return int(stat.rsplit(")", 1)[1].split()[1]) if stat else None
    except (IndexError, ValueError):
        return None


def running_pid(layout: RootLayout) -> int | None:
    try:
        return find_daemon(layout).pid
    except DaemonNotRunning:
        return None


def reload(layout: RootLayout) -> int:
    daemon = find_daemon(layout)
    os.kill(daemon.pid, signal.SIGHUP)
    return daemon.pid


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return not _alive(pid)


def _systemd_unit(daemon: DaemonProcess) -> str | None:
    """The systemd unit running the daemon ("" when its name is unknown), None when systemd does not run it.

    systemd starts a service as a child of PID 1 with INVOCATION_ID in its environment; both are required,
    because a shell inside a terminal that systemd runs (a desktop's terminal service) inherits
    INVOCATION_ID too, and a daemon started from there is ours to restart. The unit's name is the last
    ``*.service`` component of the cgroup path (``0::/system.slice/sonocli.service``).
    """
    if daemon.ppid != 1 or not daemon.environ or "INVOCATION_ID" not in daemon.environ:
        return None
    for line in (daemon.cgroup or "").splitlines():
        last = line.rpartition("/")[2]
        if last.endswith(".service"):
            return last
    return ""


def _refuse_under_systemd(daemon: DaemonProcess, action: str) -> None:
    """systemd restarts a daemon that exits (Restart=always in the README's unit) and would race a copy we
    start: stopping or restarting is systemctl's job then. SIGHUP (--reload) is still fine."""
    unit = _systemd_unit(daemon)
    if unit is None:
        return
    name = unit or "<unit>"
    raise SonoError(
        f"the daemon (pid {daemon.pid}) is run by systemd{f' ({unit})' if unit else ''}; "
        f"{action} it with systemctl, not through its PID file",
        hint=f"systemctl {action} {name}",
    )


def stop(layout: RootLayout, timeout: float = 10.0) -> DaemonProcess:
    """SIGTERM and wait until the process is gone; a PID file it left behind is removed."""
    daemon = find_daemon(layout)
    _refuse_under_systemd(daemon, "stop")
    return _stop(layout, daemon, timeout)


def _stop(layout: RootLayout, daemon: DaemonProcess, timeout: float) -> DaemonProcess:
    os.kill(daemon.pid, signal.SIGTERM)
    if not _wait_gone(daemon.pid, timeout):
        raise SonoError(
            f"the daemon (pid {daemon.pid}) did not stop within {timeout:g} s",
            hint=f"kill -9 {daemon.pid} if it hangs, then remove {pid_file(layout)}",
        )
    path = pid_file(layout)
    try:
        if path.read_text(encoding="ascii").strip() == str(daemon.pid):
            path.unlink()
    except (OSError, UnicodeDecodeError):
        pass
    return daemon


def start(
    layout: RootLayout,
    argv: tuple[str, ...] | None = None,
    cwd: str | None = None,
    timeout: float = 10.0,
    environ: dict[str, str] | None = None,
) -> int:
    """Start the daemon detached (new session, no terminal) and wait for it to write its PID file."""
    command = list(argv) if argv else [sys.executable, "-m", "sonocli", "--root", str(layout.root), "serve-daemon"]
    log_dir = layout.log_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "daemon-console.log", "ab") as console:
        proc = subprocess.Popen(
            command,
            cwd=cwd if cwd and Path(cwd).is_dir() else None,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=console,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = running_pid(layout)
        if pid is not None:
            return pid
        if proc.poll() is not None:
            raise SonoError(
                f"the daemon exited at once with status {proc.returncode}",
                hint=f"see {log_dir / 'daemon-console.log'}",
            )
        time.sleep(0.05)
    raise SonoError(f"the daemon did not write {pid_file(layout)} within {timeout:g} s")


def restart(layout: RootLayout, timeout: float = 10.0) -> tuple[int, int]:
    """Stop, then start with the same command line; returns (old pid, new pid)."""
    daemon = find_daemon(layout)
    _refuse_under_systemd(daemon, "restart")
    old = _stop(layout, daemon, timeout)
    new_pid = start(layout, old.argv or None, old.cwd, timeout, old.environ if old.argv else None)
    return old.pid, new_pid
