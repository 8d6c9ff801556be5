"""One master on a wired bus at a time: a lock file per port, held while a link to it is open.

serve-daemon's readout cycle, a scan or readout started from its web interface and a ``sonocli readout``
typed over SSH all open the same M-Bus port. Two masters on one bus garble each other's frames (a meter
answering one master's REQ_UD2 is read as the other's answer), so whoever opens a port first holds
``ext/bus-<port>.lock`` (``fcntl.flock``, released by the kernel if the process dies, even on kill -9) and
the others wait for it, saying who holds it. The lock lives in the root's ``ext/``: the daemon, its web
interface and every command run on the same root share it (one root is one concentrator).

Simulated buses (``sim://``) are per process and are not locked. Where the lock file cannot be created (a
read-only root) the link opens without it: reading meters matters more than the lock, and a read-only root
has no daemon writing readings beside the command anyway.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sonocli import logs
from sonocli.errors import TransportError
from sonocli.transports import Link, WrappedLink

log = logs.logger("sonocli.transports.buslock")

POLL_S = 0.2


class BusBusyError(TransportError):
    """The port is held by another master longer than we were willing to wait."""


def lock_path(directory: Path, url: str) -> Path:
    """``directory/bus-<port>.lock`` with the URL made a file name (``/dev/ttyUSB0`` -> ``bus-dev_ttyUSB0``)."""
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", url).strip("_")[:80] or "port"
    return directory / f"bus-{slug}.lock"


class BusLock:
    """An exclusive flock on a port's lock file; the file holds the holder's PID and purpose."""

    def __init__(self, path: Path | None, fd: int | None) -> None:
        self.path = path
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    @staticmethod
    def holder(path: Path) -> str:
        """"pid N (purpose)" of the current holder, as written in the file, or "another process"."""
        try:
            text = path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            text = ""
        return text.splitlines()[0][:120] if text else "another process"

    @classmethod
    def acquire(
        cls,
        directory: Path,
        url: str,
        *,
        purpose: str = "",
        wait: float = 120.0,
        on_wait: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> BusLock:
        """Take the lock of ``url``, waiting up to ``wait`` seconds; BusBusyError names the holder."""
        import fcntl

        if url.startswith("sim://"):
            return cls(None, None)
        path = lock_path(directory, url)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT):
                log.debug("bus lock %s not available (%s); opening %s without it", path, exc.strerror, url)
                return cls(None, None)
            raise TransportError(f"cannot create the bus lock {path}: {exc.strerror}",
                                 hint="check the ownership of the root's ext/ directory") from None
        deadline = time.monotonic() + max(0.0, wait)
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise TransportError(f"cannot lock {path}: {exc.strerror}") from None
            who = cls.holder(path)
            if time.monotonic() >= deadline:
                os.close(fd)
                raise BusBusyError(f"port {url} is in use by {who}",
                                   hint="wait until it has finished, or stop it (sonocli service stop-daemon)")
            if not told:
                told = True
                message = f"port {url} is in use by {who}; waiting up to {wait:.0f} s"
                log.warning("%s", message)
                if on_wait is not None:
                    on_wait(message)
            sleep(POLL_S)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} ({purpose or 'sonocli'})\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is None:
            return
        import fcntl

        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class LockedLink(WrappedLink):
    """``inner`` holding ``lock`` until it is closed: the lock's life is the link's."""

    def __init__(self, inner: Link, lock: BusLock) -> None:
        super().__init__(inner)
        self.lock = lock

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.lock.release()

    def __enter__(self) -> LockedLink:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
