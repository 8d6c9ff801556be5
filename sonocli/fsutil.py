"""Crash-safe file writing: a reader (or the device) sees the old file or the new one, never a mix."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

# Files that hold passwords (chip.ini: FTP_PASS, SMTP_PASSWORD) or keys (device_handle.cfg: AES keys, the
# device's private keys): whoever writes them, they are created and rewritten owner-only.
PRIVATE_NAMES = frozenset({"chip.ini", "device_handle.cfg"})
PRIVATE_SUFFIXES = (".key", "key.pem", "_key")
PRIVATE_MODE = 0o600


def is_private(path: Path) -> bool:
    """Whether ``path`` names a file with secrets in it (see PRIVATE_NAMES), by its name alone."""
    name = Path(path).name.lower()
    return name in PRIVATE_NAMES or name.endswith(PRIVATE_SUFFIXES) or (name.startswith("ssh_id_") and "." not in name)


def private_mode(path: Path) -> int:
    """0600 for a new file; an existing file keeps its mode where that is tighter (0400 stays 0400)."""
    try:
        return Path(path).stat().st_mode & PRIVATE_MODE
    except FileNotFoundError:
        return PRIVATE_MODE


@contextlib.contextmanager
def atomic_open(path: Path, *, mode: int | None = None, private: bool | None = None) -> Iterator[IO[bytes]]:
    """A binary file that appears at ``path`` only complete: temp file beside it, fsync, rename, dir fsync.

    For streaming writers (``export -o``) as well as whole-buffer ones. The file keeps its previous
    permission bits unless ``mode`` is given; a new file gets 0644 less the umask. A private file
    (``private=True``, or by default a name in PRIVATE_NAMES / a key file) is 0600 or its existing tighter
    mode, whatever ``mode`` says: the temp file is owner-only from its first byte (mkstemp), so the secret
    is never readable by others, not even for a moment. If the block raises, the temp file is removed and
    ``path`` is untouched.
    """
    path = Path(path)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    if private is None:
        private = is_private(path)
    if private:
        mode = private_mode(path) if mode is None else mode & private_mode(path)
    elif mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644 & ~_umask()
    import tempfile  # ~4 ms (shutil, random, bz2, lzma): only commands that write pay it

    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_directory(directory)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None, private: bool | None = None) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_open``)."""
    with atomic_open(path, mode=mode, private=private) as handle:
        handle.write(data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(
    path: Path, text: str, *, encoding: str = "utf-8", mode: int | None = None, private: bool | None = None
) -> None:
    atomic_write_bytes(path, text.encode(encoding), mode=mode, private=private)


def fsync_directory(directory: Path) -> None:
    """Make a rename durable; ignored on platforms that cannot open directories."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


CONFIG_LIMIT = 64 * 1024 * 1024  # device_handle.cfg: 500 meters x 25 values with descriptions stay < 4 MB
CHIP_INI_LIMIT = 1024 * 1024  # chip.ini with every parameter and its comment is about 15 KB


def read_config(path: Path, *, limit: int = CONFIG_LIMIT, missing_ok: bool = True) -> bytes | None:
    """The bytes of a configuration file, refused at once when it is a directory or larger than ``limit``.

    A 30 MB chip.ini is a mistake (a log copied over it, say), not a configuration: it is refused from its
    size alone, before a byte is read or parsed. None for a missing file when ``missing_ok``.
    """
    from sonocli.errors import ConfigError

    path = Path(path)
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                raise ConfigError(
                    f"{size} bytes, more than a configuration file can be ({limit} bytes); refused",
                    file=str(path),
                    hint="is this the right file? restore it from a backup or create it with sonocli init",
                )
            # a buffer of the size, not of the limit: read(n) allocates n bytes before it reads (64 MB for a
            # 1.5 MB meter list); a file written in place while it is read is read on, up to the limit
            data = handle.read(min(size, limit) + 1)
            if len(data) > size:
                data += handle.read(limit + 1 - len(data))
            return data
    except FileNotFoundError:
        if missing_ok:
            return None
        raise
    except IsADirectoryError:
        raise ConfigError("is a directory, not a file", file=str(path),
                          hint="remove the directory and create the file with sonocli init") from None
