"""Sessions, the login rate limit and the one writer of the web interface (guide 4, 4.6, 6.2.3).

All in memory: a restart logs everybody out, as a reboot of the device does. Times are monotonic seconds.

* A session ends WEBCOM_TIMEOUT ms after its last request (the pages ping while they are open, so only a
  closed or cut-off browser times out); a user has at most MaxSessions sessions at once.
* Failed logins (form or HTTP Basic) are counted per client address: after ``MAX_FAILURES`` within
  ``WINDOW`` seconds that address is refused for ``LOCKOUT`` seconds. Failures are logged with the user name
  and address, never the password.
* "No other user is allowed to have write access at the same time": the first session that changes
  something holds write access until it logs out or times out; another session's change is refused (409)
  meanwhile. A script's HTTP Basic request writes only while no session holds it, for that request alone.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable

from sonocli.model.valueclass import field, valueclass

log = logging.getLogger("sonocli.web")

MAX_FAILURES = 5
WINDOW = 60.0
LOCKOUT = 60.0


@valueclass
class Session:
    token: str
    user: str
    csrf: str
    created: float
    last_seen: float
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) shown once by the next page


@valueclass
class RateLimit:
    """Failed logins per client address."""

    clock: Callable[[], float] = time.monotonic
    failures: dict[str, list[float]] = field(default_factory=dict)
    locked_until: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        with self.lock:
            return max(0.0, self.locked_until.get(client, 0.0) - self.clock())

    def failed(self, client: str, user: str) -> None:
        now = self.clock()
        log.warning("web: failed login for user %r from %s", user[:64], client)
        with self.lock:
            recent = [t for t in self.failures.get(client, []) if now - t < WINDOW] + [now]
            self.failures[client] = recent
            if len(recent) >= MAX_FAILURES:
                self.locked_until[client] = now + LOCKOUT
                self.failures[client] = []
                log.warning("web: %s locked out for %.0f s after %d failed logins", client, LOCKOUT, len(recent))

    def succeeded(self, client: str) -> None:
        with self.lock:
            self.failures.pop(client, None)


class TooManySessions(Exception):
    """The user has MaxSessions sessions open already."""


class WriterBusy(Exception):
    """Another session holds write access."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"user {holder} has write access now; only one user may write at a time (log out there "
                         "first, or wait until that session times out)")
        self.holder = holder


class Sessions:
    """The open sessions, and which one holds write access."""

    def __init__(self, timeout: Callable[[], float], clock: Callable[[], float] = time.monotonic) -> None:
        self._timeout = timeout  # seconds, read on every check (WEBCOM_TIMEOUT may change)
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._writer: str | None = None  # session token
        self.write_lock = threading.Lock()  # one change at a time, whoever makes it

    def _expire(self) -> None:
        now, limit = self._clock(), self._timeout()
        for token, session in list(self._sessions.items()):
            if now - session.last_seen > limit:
                log.info("web: session of %s timed out", session.user)
                del self._sessions[token]
        if self._writer is not None and self._writer not in self._sessions:
            self._writer = None

    def open(self, user: str, max_sessions: int) -> Session:
        with self._lock:
            self._expire()
            if max_sessions >= 0 and sum(s.user == user for s in self._sessions.values()) >= max_sessions:
                raise TooManySessions(f"user {user} has {max_sessions} session(s) open already (MaxSessions)")
            now = self._clock()
            session = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(24), now, now)
            self._sessions[session.token] = session
            return session

    def get(self, token: str | None) -> Session | None:
        """The live session of ``token`` (touched), or None when unknown or timed out."""
        if not token:
            return None
        with self._lock:
            self._expire()
            session = self._sessions.get(token)
            if session is not None:
                session.last_seen = self._clock()
            return session

    def close(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(token, None)
            if self._writer == token:
                self._writer = None

    def close_user(self, user: str) -> None:
        """End every session of ``user`` (deleted, or its password changed elsewhere)."""
        with self._lock:
            for token in [t for t, s in self._sessions.items() if s.user == user]:
                del self._sessions[token]
            self._expire()

    def count(self, user: str) -> int:
        with self._lock:
            self._expire()
            return sum(s.user == user for s in self._sessions.values())

    def claim_write(self, session: Session | None) -> None:
        """Take (or keep) write access for ``session``; None: a stateless request, only while nobody holds it."""
        with self._lock:
            self._expire()
            if self._writer is not None and (session is None or self._writer != session.token):
                raise WriterBusy(self._sessions[self._writer].user)
            if session is not None:
                self._writer = session.token

    def writer(self) -> str | None:
        with self._lock:
            self._expire()
            return None if self._writer is None else self._sessions[self._writer].user


class BasicCache:
    """Verified HTTP Basic credentials, so that a script's every request does not cost a scrypt run.

    Keyed by a hash of name, password and the stored hash: a changed password misses the cache by itself.
    """

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._seen: dict[bytes, None] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(name: str, password: str, stored: str) -> bytes:
        return hashlib.sha256(f"{name}\0{password}\0{stored}".encode()).digest()

    def hit(self, key: bytes) -> bool:
        with self._lock:
            return key in self._seen

    def add(self, key: bytes) -> None:
        with self._lock:
            if len(self._seen) >= self._size:
                self._seen.pop(next(iter(self._seen)))
            self._seen[key] = None
