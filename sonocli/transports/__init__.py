"""Byte pipes that know nothing of M-Bus: pyserial's ``serial_for_url`` plus the ``sim://`` handler.

``open_link`` is the one entry point: device paths, ``socket://host:port`` (ser2net), ``rfc2217://``,
``spy://`` and ``sim://`` all come back as a :class:`Link` with the same small surface. The link carries
the clock the engine must measure time with: the simulator's (possibly virtual) clock for ``sim://``,
wall-clock time otherwise, so scans on the virtual clock compute exact wire times.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sonocli.errors import TransportError, UsageError
from sonocli.model.valueclass import valueclass
from sonocli.registry import BAUD_RATES, check_port_url
from sonocli.sim.peer import Clock, RealClock

if TYPE_CHECKING:
    import serial

# MBUS_PARITY of Table 25: 0 no, 1 odd, 2 even, 3 mark, 4 space.
PARITIES = ("N", "O", "E", "M", "S")
BITS_PER_CHAR_8E1 = 11


def check_baudrate(baudrate: int) -> int:
    """``baudrate`` if it is one of the M-Bus rates of ``sonocli.registry.BAUD_RATES`` (as MBUS_BAUDRATE)."""
    if baudrate not in BAUD_RATES:
        allowed = ", ".join(str(b) for b in BAUD_RATES)
        raise UsageError(f"baud rate {baudrate} is not allowed; allowed: {allowed}")
    return baudrate


def parity_letter(parity: int | str) -> str:
    """Table 25 MBUS_PARITY (0-4) or a pyserial letter -> pyserial letter."""
    if isinstance(parity, int):
        if not 0 <= parity < len(PARITIES):
            raise UsageError(f"MBUS_PARITY {parity} is outside 0..4 (0 no, 1 odd, 2 even, 3 mark, 4 space)")
        return PARITIES[parity]
    letter = parity.upper()[:1]
    if letter not in PARITIES:
        raise UsageError(f"parity {parity!r} is not one of N, O, E, M, S")
    return letter


def register_sim_handler() -> None:
    """Let pyserial find ``sonocli.transports.protocol_sim`` for ``sim://`` URLs (idempotent)."""
    import serial

    if "sonocli.transports" not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append("sonocli.transports")


@valueclass
class Link:
    """An open port plus the clock and character time the master needs for its timing."""

    port: serial.SerialBase
    clock: Clock
    url: str

    @property
    def baudrate(self) -> int:
        return int(self.port.baudrate)

    def char_time(self) -> float:
        """Seconds per character on the wire: start + data + parity + stop bits."""
        bits = 1 + int(self.port.bytesize) + (0 if self.port.parity == "N" else 1) + int(self.port.stopbits)
        return bits / float(self.port.baudrate)

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def drain(self) -> None:
        """Wait until the written bytes have left (a sim port moves its clock to the end of transmission)."""
        self.port.flush()

    def read(self, size: int, timeout: float) -> bytes:
        """Up to ``size`` bytes, waiting at most ``timeout`` seconds for the first one."""
        wanted = max(0.0, timeout)
        if hasattr(self.port, "_timeout"):
            # Set pyserial's private field: the public setter re-applies termios on every change, which
            # costs a syscall per read and fails with EINVAL on ptys with even parity (TESTING.md §5).
            # Every pyserial backend reads ``_timeout`` at the start of read().
            self.port._timeout = wanted
        else:  # pragma: no cover - foreign SerialBase without the field
            self.port.timeout = wanted
        return bytes(self.port.read(size))

    def in_waiting(self) -> int:
        return int(self.port.in_waiting)

    def reset_input_buffer(self) -> None:
        self.port.reset_input_buffer()

    def set_baudrate(self, baudrate: int) -> None:
        self.port.baudrate = check_baudrate(baudrate)

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()



class WrappedLink(Link):
    """A :class:`Link` that hands every call to ``inner``: the base of links that add one thing to another
    (transports.rawlog's TeeLink logs the bytes, transports.buslock's LockedLink holds the bus lock), so
    each overrides only what it adds."""

    def __init__(self, inner: Link) -> None:
        super().__init__(port=inner.port, clock=inner.clock, url=inner.url)
        self.inner = inner

    def write(self, data: bytes) -> None:
        self.inner.write(data)

    def read(self, size: int, timeout: float) -> bytes:
        return self.inner.read(size, timeout)

    def drain(self) -> None:
        self.inner.drain()

    def in_waiting(self) -> int:
        return self.inner.in_waiting()

    def reset_input_buffer(self) -> None:
        self.inner.reset_input_buffer()

    def set_baudrate(self, baudrate: int) -> None:
        self.inner.set_baudrate(baudrate)

    def char_time(self) -> float:
        return self.inner.char_time()

    @property
    def baudrate(self) -> int:
        return self.inner.baudrate

    def close(self) -> None:
        self.inner.close()

def open_link(
    url: str,
    baudrate: int = 2400,
    parity: int | str = "E",
    bytesize: int = 8,
    stopbits: int = 1,
    *,
    timeout: float = 0.5,
    mbus_baud: bool = True,
) -> Link:
    """Open ``url`` as an M-Bus link, 8E1 at 2400 baud by default (MBUS_BAUDRATE/DATABITS/PARITY/STOPBITS).

    ``mbus_baud=False`` lifts the M-Bus baud-rate list for other byte pipes (wireless dongles at 57600+).
    Failures become TransportError with a hint (missing port, dialout group, settings refused by a pty).
    """
    import serial

    if mbus_baud:
        check_baudrate(baudrate)
    elif baudrate <= 0:
        raise UsageError(f"baud rate {baudrate} must be positive")
    if bytesize not in (7, 8):
        raise UsageError(f"MBUS_DATABITS {bytesize} is not allowed; allowed: 7, 8")
    if stopbits not in (1, 2):
        raise UsageError(f"MBUS_STOPBITS {stopbits} is not allowed; allowed: 1, 2")
    check_port_url(url)  # an unknown scheme lists the supported ones
    register_sim_handler()
    try:
        port = serial.serial_for_url(
            url,
            baudrate=baudrate,
            parity=parity_letter(parity),
            bytesize=bytesize,
            stopbits=stopbits,
            timeout=timeout,
        )
    except UsageError:
        raise
    except ValueError as exc:
        raise UsageError(f"port {url!r}: {exc}") from exc
    except serial.SerialException as exc:
        raise _port_error(url, exc) from exc
    except OSError as exc:
        raise _port_error(url, exc) from exc
    except Exception as exc:
        if type(exc).__module__ == "termios":
            raise TransportError(
                f"port {url!r} rejected its settings ({baudrate} baud, parity {parity_letter(parity)})",
                hint="a pseudo-terminal reopened with even parity can refuse it; use a fresh pty",
            ) from exc
        raise
    clock = getattr(port, "clock", None)
    return Link(port=port, clock=clock if clock is not None else RealClock(), url=url)


def _port_error(url: str, exc: BaseException) -> TransportError:
    text = str(exc)
    errno = getattr(exc, "errno", None)
    low = text.lower()
    if errno == 13 or "permission denied" in low:
        return TransportError(
            f"port {url!r}: permission denied",
            hint="add the user to the dialout group (sudo usermod -aG dialout $USER), then log in again",
        )
    if "connection refused" in low or "errno 111" in low:
        return TransportError(f"port {url!r}: connection refused", hint="is ser2net/the TCP gateway running?")
    if errno == 2 or "no such file" in low or "could not open port" in low:
        return TransportError(
            f"port {url!r} does not exist",
            hint="check the port name (ls /dev/ttyUSB* /dev/ttyACM*) or use sim://demo",
        )
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return TransportError(f"port {url!r}: {first}")
