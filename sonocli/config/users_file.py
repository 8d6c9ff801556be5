"""``app/users.json``: the users of the web interface and the FTP server (guide 4.6, Tables 13 and 14).

A small JSON file beside chip.ini rather than a table in the store: the users are configuration (the device
keeps them under /app, the store under /ext is data that a reset may drop), they change rarely, and an
engineer can back them up with the rest of app/. The file holds salted password hashes only; it is written
atomically and owner-only (0600) under the same advisory lock as the other configuration files, so two
writers (``sonocli users`` and the web page's User tab) never lose each other's change.

This module only loads and saves the records; the rules (rights, admin, default passwords, hashing) are
in :mod:`sonocli.engine.users`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sonocli.errors import ConfigError

FILE_NAME = "users.json"
FORMAT_VERSION = 1


def users_path(app_dir: Path) -> Path:
    return Path(app_dir) / FILE_NAME


def load_users(path: Path) -> list[dict[str, Any]] | None:
    """The user records of ``path``; None when there is no file yet (a new root: the guide's defaults)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a users file ({exc})", hint="restore it from a backup of app/") from None
    users = body.get("users") if isinstance(body, dict) else None
    if not isinstance(users, list) or not all(isinstance(u, dict) for u in users):
        raise ConfigError(f"{path}: not a users file (no list of users)", hint="restore it from a backup of app/")
    return users


def save_users(path: Path, users: list[dict[str, Any]]) -> None:
    """Write the records atomically, owner-only (the hashes are secrets too)."""
    from sonocli.fsutil import atomic_open

    text = json.dumps({"version": FORMAT_VERSION, "users": users}, indent=1, sort_keys=True) + "\n"
    with atomic_open(Path(path), private=True) as handle:
        handle.write(text.encode("utf-8"))


@contextmanager
def locked_users(path: Path) -> Iterator[None]:
    """Hold the file's lock from load to save (one writer path, as for chip.ini and device_handle.cfg)."""
    from sonocli.config.locking import locked

    with locked(Path(path)):
        yield
