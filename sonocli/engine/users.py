"""Users and rights of the web interface and the FTP server (guide 4.6, Tables 13 and 14).

The rules, in one place for ``sonocli users``, the web page's User tab and the FTP server:

* a new root has the guide's three users (Table 13): ``admin``/``admin`` (everything, FTP over FTPS to the
  whole root), ``web``/``web`` (every tab of the website) and ``ftp``/``ftp`` (FTP to ``ext/log`` only).
  Their passwords work until changed; :func:`default_password_users` names the ones still unchanged, so
  the web page and the commands can warn;
* rights are per tab (Table 14): ``read`` or ``write`` for general, meter, config, server, security and
  service, ``write`` for the User tab (the table has one right for it), and ``ftp``. Write implies read;
* ``admin`` always has every right, cannot be edited or deleted, and its password is changed only by
  ``admin`` itself: whoever changes it must give the current one;
* at most two users have the FTP right (admin and one more), and only when the user is created;
* MaxSessions limits a user's simultaneous web sessions (-1: unlimited); the web server counts them;
* passwords are stored as salted scrypt hashes (``hashlib.scrypt``, a standard memory-hard KDF) with their
  parameters, compared in constant time, and never returned, printed or logged.

Storage: ``app/users.json`` (:mod:`sonocli.config.users_file`), written atomically, 0600, under a lock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sonocli.errors import NotFoundError, SonoError, UsageError
from sonocli.model.valueclass import field, replace, valueclass

if TYPE_CHECKING:
    from pathlib import Path

    from sonocli.engine.core import Engine

# Table 14's tabs with read and write rights; the User tab has one right ("Write User")
TABS = ("general", "meter", "config", "server", "security", "service", "user")
LEVELS = ("none", "read", "write")
ADMIN = "admin"
# Table 13: the users on delivery, and their passwords (the guide prints them; they work until changed)
DEFAULT_PASSWORDS: Mapping[str, str] = {"admin": "admin", "web": "web", "ftp": "ftp"}
MAX_FTP_USERS = 2  # "FTP: User is allowed to access the FTP server (maximum 2 users)"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
MAX_PASSWORD = 128

# scrypt with N=2^14, r=8, p=1: 16 MiB and some 50 ms per check on a PC - a guess costs an attacker as much.
# The parameters travel with each hash, so a later release can raise them without breaking old files.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 14, 8, 1


@valueclass(frozen=True)
class User:
    """One user as the tables show it (the hash is kept here but never shown: see :meth:`public`)."""

    name: str
    password_hash: str = field(repr=False)
    rights: Mapping[str, str] = field(default_factory=dict)  # tab -> "read" | "write" (absent: none)
    ftp: bool = False
    change_password: bool = True  # Table 14 "Change Password": may change its own password on the web page
    max_sessions: int = -1
    default_password: bool = False  # still the guide's password of Table 13

    @property
    def is_admin(self) -> bool:
        return self.name == ADMIN

    def level(self, tab: str) -> str:
        if self.is_admin:
            return "write"
        return self.rights.get(tab, "none")

    def can(self, tab: str, write: bool = False) -> bool:
        """Whether the user may read (or write) ``tab``; write implies read."""
        level = self.level(tab)
        return level == "write" or (not write and level == "read")

    def public(self) -> dict[str, Any]:
        """The ``users list --json`` shape: everything but the hash."""
        return {
            "name": self.name,
            "rights": {tab: self.level(tab) for tab in TABS},
            "ftp": self.ftp,
            "change_password": self.change_password,
            "max_sessions": self.max_sessions,
            "default_password": self.default_password,
            "admin": self.is_admin,
        }


# -- hashing ------------------------------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` for ``password`` with a fresh 16-byte salt."""
    check_password(password)
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=64 * 1024 * 1024, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the stored hash (constant-time compare; a malformed hash never matches)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=64 * 1024 * 1024, dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def check_password(password: str) -> str:
    if not password:
        raise UsageError("the password is empty")
    if len(password) > MAX_PASSWORD:
        raise UsageError(f"the password is longer than {MAX_PASSWORD} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise UsageError("the password contains control characters")
    return password


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise UsageError(f"user name {name!r} is not valid: 1-32 of A-Z a-z 0-9 . _ -, starting with a letter or "
                         "digit")
    return name


# -- rights ---------------------------------------------------------------------------------------------------
def parse_rights(text: str) -> list[tuple[str, str]]:
    """``meter:read,config:write,ftp`` -> [("meter", "read"), ("config", "write"), ("ftp", "write")].

    A tab without a level means write for ``--grant`` and everything for ``--revoke``; ``all`` names every tab.
    """
    out: list[tuple[str, str]] = []
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        tab, _, level = part.partition(":")
        level = level or "write"
        if tab == "ftp":
            out.append(("ftp", "write"))
            continue
        tabs = TABS if tab == "all" else (tab,)
        for one in tabs:
            if one not in TABS:
                raise UsageError(f"unknown right {part!r}; tabs: {', '.join(TABS)} (each :read or :write), or ftp")
            if level not in ("read", "write"):
                raise UsageError(f"unknown level in {part!r}; allowed: read, write")
            if one == "user" and level == "read" and tab != "all":
                raise UsageError("the User tab has one right, user:write (Table 14: 'Write User')")
            out.append((one, "write" if one == "user" and tab == "all" else level))
    return out


def _granted(rights: Mapping[str, str], grants: Iterable[tuple[str, str]]) -> dict[str, str]:
    new = dict(rights)
    for tab, level in grants:
        if tab == "ftp":
            continue
        if LEVELS.index(level) > LEVELS.index(new.get(tab, "none")):
            new[tab] = level
    return new


def _revoked(rights: Mapping[str, str], revokes: Iterable[tuple[str, str]], explicit: set[str]) -> dict[str, str]:
    new = dict(rights)
    for tab, level in revokes:
        if tab == "ftp":
            continue
        if level == "write" and tab not in explicit and new.get(tab) == "write" and tab != "user":
            new[tab] = "read"  # revoking write leaves read (write implied read)
        else:
            new.pop(tab, None)
    return new


# -- the store ------------------------------------------------------------------------------------------------
def _to_record(user: User) -> dict[str, Any]:
    return {
        "name": user.name,
        "hash": user.password_hash,
        "rights": dict(sorted(user.rights.items())),
        "ftp": user.ftp,
        "change_password": user.change_password,
        "max_sessions": user.max_sessions,
        "default_password": user.default_password,
    }


def _from_record(record: Mapping[str, Any]) -> User:
    rights = {str(k): str(v) for k, v in dict(record.get("rights") or {}).items()
              if k in TABS and v in ("read", "write")}
    return User(
        name=str(record["name"]),
        password_hash=str(record.get("hash") or ""),
        rights=rights,
        ftp=bool(record.get("ftp", False)),
        change_password=bool(record.get("change_password", True)),
        max_sessions=int(record.get("max_sessions", -1)),
        default_password=bool(record.get("default_password", False)),
    )


def _defaults() -> list[User]:
    """Table 13. The hashes are computed when the file is first written; until then ``""`` marks "the guide's
    password" and :func:`authenticate` compares with it (no scrypt work for a root that never saves users)."""
    everything = {tab: "write" for tab in TABS}
    return [
        User(ADMIN, "", everything, ftp=True, default_password=True),
        User("web", "", everything, default_password=True),
        User("ftp", "", {}, ftp=True, default_password=True),
    ]


class UserStore:
    """The users of one root: read fresh on every call, changed by locked read-modify-write."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def users(self) -> list[User]:
        from sonocli.config.users_file import load_users

        records = load_users(self.path)
        if records is None:
            return _defaults()
        return [_from_record(r) for r in records]

    def get(self, name: str) -> User:
        for user in self.users():
            if user.name == name:
                return user
        raise NotFoundError(f"no user {name!r}", hint="sonocli users list")

    def change(self, change: Callable[[list[User]], list[User]]) -> list[User]:
        """Apply ``change`` to the list as it is on disk now, under the lock; the result is saved."""
        from sonocli.config.users_file import load_users, locked_users, save_users

        with locked_users(self.path):
            records = load_users(self.path)
            current = _defaults() if records is None else [_from_record(r) for r in records]
            new = change(current)
            new = [u if u.password_hash else replace(u, password_hash=hash_password(DEFAULT_PASSWORDS[u.name]))
                   for u in new]
            save_users(self.path, [_to_record(u) for u in new])
        return new


def store(engine: Engine) -> UserStore:
    from sonocli.config.users_file import users_path

    return UserStore(users_path(engine.layout.app))


def list_users(engine: Engine) -> list[User]:
    return store(engine).users()


def get_user(engine: Engine, name: str) -> User:
    return store(engine).get(name)


def default_password_users(engine: Engine) -> list[str]:
    """The users whose password is still the guide's (Table 13): the web page and ``status`` warn."""
    return [u.name for u in list_users(engine) if u.default_password]


def authenticate(engine: Engine, name: str, password: str) -> User | None:
    """The user if ``password`` is right, else None (the caller rate-limits and logs, never the password)."""
    try:
        user = get_user(engine, name)
    except NotFoundError:
        verify_password(password, hash_password("x"))  # the same work for an unknown name: no user oracle
        return None
    if not user.password_hash:
        ok = hmac.compare_digest(password.encode("utf-8"), DEFAULT_PASSWORDS.get(user.name, "").encode("utf-8"))
        return user if ok and user.name in DEFAULT_PASSWORDS else None
    return user if verify_password(password, user.password_hash) else None


def _ftp_check(users: list[User]) -> None:
    holders = [u.name for u in users if u.ftp]
    if len(holders) > MAX_FTP_USERS:
        raise UsageError(f"at most {MAX_FTP_USERS} users may have the FTP right (guide 4.6); they are: "
                         f"{', '.join(holders[:-1])}", hint="delete the other FTP user first")


def add_user(engine: Engine, name: str, password: str, *, grants: str = "", max_sessions: int = -1,
             change_password: bool = True) -> User:
    """A new user with the rights in ``grants`` (none by default); ``ftp`` only here, at creation."""
    check_name(name)
    check_password(password)
    _check_sessions(max_sessions)
    parsed = parse_rights(grants)
    user = User(name, hash_password(password), _granted({}, parsed), ftp=any(t == "ftp" for t, _ in parsed),
                change_password=change_password, max_sessions=max_sessions)

    def change(users: list[User]) -> list[User]:
        if any(u.name == name for u in users):
            raise UsageError(f"user {name!r} exists already", hint=f"sonocli users edit {name}")
        new = [*users, user]
        _ftp_check(new)
        return new

    store(engine).change(change)
    return user


def _check_sessions(value: int) -> int:
    if value < -1 or value == 0 or value > 1000:
        raise UsageError(f"MaxSessions {value} is not valid; allowed: -1 (unlimited) or 1..1000")
    return value


def edit_user(engine: Engine, name: str, *, grant: str = "", revoke: str = "", max_sessions: int | None = None,
              change_password: bool | None = None) -> User:
    """Grant or revoke rights, set MaxSessions or the Change Password flag. ``admin`` cannot be edited."""
    if name == ADMIN:
        raise UsageError("the user admin cannot be changed (guide 4.6); it always has every right",
                         hint="sonocli users passwd admin changes its password")
    grants, revokes = parse_rights(grant), parse_rights(revoke)
    if any(t == "ftp" for t, _ in grants):
        raise UsageError("the FTP right can only be given when a user is created (guide 4.6)",
                         hint="sonocli users add NAME --password P --grant ftp")
    if max_sessions is not None:
        _check_sessions(max_sessions)
    explicit = {part.split(":")[0].strip().lower() for part in revoke.split(",") if ":" not in part}
    if "all" in explicit:
        explicit |= set(TABS)
    result: list[User] = []

    def change(users: list[User]) -> list[User]:
        out: list[User] = []
        for u in users:
            if u.name == name:
                rights = _revoked(_granted(u.rights, grants), revokes, explicit)
                u = replace(u, rights=rights, ftp=u.ftp and not any(t == "ftp" for t, _ in revokes),
                            max_sessions=u.max_sessions if max_sessions is None else max_sessions,
                            change_password=u.change_password if change_password is None else change_password)
                result.append(u)
            out.append(u)
        if not result:
            raise NotFoundError(f"no user {name!r}", hint="sonocli users list")
        return out

    store(engine).change(change)
    return result[0]


def delete_user(engine: Engine, name: str) -> None:
    if name == ADMIN:
        raise UsageError("the user admin cannot be deleted (guide 4.6)")

    def change(users: list[User]) -> list[User]:
        if not any(u.name == name for u in users):
            raise NotFoundError(f"no user {name!r}", hint="sonocli users list")
        return [u for u in users if u.name != name]

    store(engine).change(change)


def set_password(engine: Engine, name: str, password: str, *, current: str | None = None,
                 by: str | None = None) -> None:
    """Set ``name``'s password. ``admin``'s only by admin itself: ``current`` (its present password) must be
    right, and on the web page the logged-in user (``by``) must be admin. Others: ``by`` None (the local
    command line, with file access to app/) or a user with the User tab's write right (checked by the caller),
    or the user itself."""
    check_password(password)
    if name == ADMIN:
        if by is not None and by != ADMIN:
            raise PermissionDenied("only admin itself can change the admin password (guide 4.6)")
        if current is None or authenticate(engine, ADMIN, current) is None:
            raise PermissionDenied("the current admin password is wrong", hint="give the current password")
    new_hash = hash_password(password)
    found: list[str] = []

    def change(users: list[User]) -> list[User]:
        out: list[User] = []
        for u in users:
            if u.name == name:
                u = replace(u, password_hash=new_hash, default_password=False)
                found.append(u.name)
            out.append(u)
        if not found:
            raise NotFoundError(f"no user {name!r}", hint="sonocli users list")
        return out

    store(engine).change(change)


class PermissionDenied(SonoError):
    """A user lacks the right for what was asked (the web answers 403)."""
