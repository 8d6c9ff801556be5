"""What every delivery channel shares: the report it sends, the step bookkeeping, the channel ABC.

A channel knows one protocol and nothing about scheduling or the outbox. It is built from chip.ini values
(a ``get(NAME)`` callable, so the engine can hand it a ``ChipIni`` and tests a dict) and the ``app/``
directory where certificates and keys live. Each network action runs inside :meth:`Channel.step`, which
turns any failure into ``PushError(channel=, step=)`` with a plain-words reason, and tells an optional
observer about every step - that is what ``sonocli push --test`` prints so an engineer sees where it fails.
"""

from __future__ import annotations

import socket
import ssl
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sonocli.errors import PushError
from sonocli.model.valueclass import valueclass

ConfigGet = Callable[[str], Any]

STEPS = ("resolve", "connect", "tls", "hostkey", "login", "upload", "confirm")


@valueclass(frozen=True)
class Report:
    """One delivery: ``name`` is the remote file name (FTP/SFTP), the subject (SMTP) or a label (TCP/HTTP).

    The name is decided once, when the report enters the outbox, so a retry after a crash sends the same
    thing under the same name.
    """

    name: str
    payload: bytes
    content_type: str  # "text/csv" or "application/xml"
    created: float  # UNIX time the report was built


@valueclass(frozen=True)
class StepEvent:
    channel: str
    step: str
    ok: bool
    detail: str = ""


StepObserver = Callable[[StepEvent], None]


def device_path(root: Path, path: str) -> Path:
    """Map a device path from chip.ini (``/app/cacert.pem``) into the sonocli root; relative paths stay."""
    if path.startswith("/"):
        return root / path.lstrip("/")
    return Path(path)


def explain(exc: BaseException) -> str:
    """One line an engineer understands, for the errors networks really produce."""
    if isinstance(exc, socket.gaierror):
        return f"name resolution failed ({exc.strerror or exc})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"server certificate does not verify: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out (the server stopped answering)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens on that port)"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text


class Channel(ABC):
    """A way to hand one report to the head-end. ``send`` returns only when the server confirmed it."""

    #: registry name (sonocli.registry.CHANNELS)
    name: str = ""
    #: which writer produces the payload: "csv" (FTP/SFTP) or "xml" (TCP/HTTP/SMTP)
    format: str = "xml"

    def __init__(self, get: ConfigGet, root: Path, *, observer: StepObserver | None = None) -> None:
        self.get = get
        self.root = root
        self.app = root / "app"
        self.observer = observer
        self._abort = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    # -- what a concrete channel implements -------------------------------------------------------
    @abstractmethod
    def send(self, report: Report) -> None:
        """Deliver ``report``; raise PushError naming the step on any failure."""

    @abstractmethod
    def describe(self) -> str:
        """Where this channel delivers to, e.g. ``ftps://host:21/dir`` (no password)."""

    def report_name(self, created: int, index: int) -> str:
        """The name a new report gets (file name or subject). ``index`` counts reports in one cycle."""
        return f"report_{created}_{index}"

    # -- shared machinery ------------------------------------------------------------------------------
    def test(self, report: Report) -> None:
        """The guide's Test button: a real transmission, with every step reported to the observer."""
        self.send(report)

    @contextmanager
    def step(self, step: str, detail: str = "") -> Iterator[None]:
        """Run one step; map any failure to PushError(channel, step) and tell the observer."""
        if self._abort.is_set():
            raise PushError("aborted by the watchdog", channel=self.name, step=step)
        try:
            yield
        except PushError as exc:
            raw = exc.message.removeprefix(f"{exc.channel}: {exc.step}: ")
            self._notify(StepEvent(self.name, exc.step or step, False, raw))
            raise
        except Exception as exc:
            reason = "aborted by the watchdog" if self._abort.is_set() else explain(exc)
            self._notify(StepEvent(self.name, step, False, reason))
            raise PushError(reason, channel=self.name, step=step, hint=self.hint(step, exc)) from exc
        self._notify(StepEvent(self.name, step, True, detail))

    def fail(self, step: str, message: str, hint: str | None = None) -> PushError:
        return PushError(message, channel=self.name, step=step, hint=hint)

    def hint(self, step: str, exc: BaseException) -> str | None:
        if step == "resolve":
            return "check the server name and the DNS settings"
        if step == "connect":
            return "check address, port and firewall"
        if step == "tls":
            return "check the CA certificate and the client certificate/key in app/"
        if step == "login":
            return "check user name and password"
        return None

    def _notify(self, event: StepEvent) -> None:
        if self.observer is not None:
            self.observer(event)

    def track(self, sock: socket.socket) -> socket.socket:
        """Remember a socket so that :meth:`abort` can close it from the watchdog's thread."""
        with self._lock:
            self._sockets.append(sock)
        return sock

    def abort(self) -> None:
        """Stop a stuck transfer from another thread: close every socket this channel opened."""
        self._abort.set()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass

    def resolve(self, host: str, port: int) -> None:
        """A separate resolve step, so a DNS failure is not reported as a refused connection."""
        with self.step("resolve", host):
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)

    def timeout_scale(self) -> float:
        return 1.0


def split_host(text: str, default_port: int) -> tuple[str, str, int]:
    """``scheme://host:port/path`` or ``host`` → (scheme, host, port); the scheme is '' when absent."""
    scheme = ""
    rest = text.strip()
    if "://" in rest:
        scheme, _, rest = rest.partition("://")
        scheme = scheme.lower()
    rest = rest.split("/", 1)[0]
    host, port = rest, default_port
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        if tail.startswith(":") and tail[1:].isdigit():
            port = int(tail[1:])
    elif rest.count(":") == 1:
        head, _, tail = rest.partition(":")
        if tail.isdigit():
            host, port = head, int(tail)
    return scheme, host, port


def client_tls_context(cafile: Path, certfile: Path | None, keyfile: Path | None, *, what: str) -> ssl.SSLContext:
    """A verifying client context: the server must chain to ``cafile``; the client cert is sent when present."""
    if not cafile.is_file():
        raise FileNotFoundError(f"{what}: CA certificate {cafile} is missing (copy it to app/)")
    context = ssl.create_default_context(cafile=str(cafile))
    if certfile is not None and keyfile is not None and certfile.is_file() and keyfile.is_file():
        context.load_cert_chain(str(certfile), str(keyfile))
    return context


def as_text(value: Any) -> str:
    return "" if value is None else str(value)


def as_int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
