"""pyserial URL handler for ``sim://``: a serial port whose far end is sonocli's simulator.

pyserial finds it as ``protocol_sim`` in a package listed in ``serial.protocol_handler_packages``
(``sonocli.transports.register_sim_handler`` adds ours). URLs::

    sim://demo                       the built-in twelve meters (real frames)
    sim:///path/to/segment.toml      a segment file (TOML or JSON)
    sim://air?...                    simulated radio traffic (sonocli.sim.radio.RadioPeer)
    sim://dlde?...                   IEC 62056-21 meters, modes A/B/C, multi-drop (sonocli.sim.dlde)
    sim://sml?...                    an SML meter pushing real files, faults on demand (sonocli.sim.sml)

Query parameters for wired segments: ``clock=virtual|real`` (default virtual), ``echo=1`` (a level
converter that echoes the request), ``baud=N`` (the meters' baud rate), ``silent=A,B`` / ``flaky=A:N`` /
``corrupt=A`` / ``stop_after=A:N`` / ``sleepy=A`` (faults by primary address; a sleepy meter answers only
after a 0x55 wake-up preamble, MBUS_WAKEUPENABLE).

Bytes are paced at the port's baud rate with 11 bits per character (8E1). On the virtual clock a read
jumps the clock to the next byte or to the timeout, so callers see exact wire timings without waiting.
"""

from __future__ import annotations

import importlib
import urllib.parse
from typing import Any

import serial
from serial.serialutil import PortNotOpenError, SerialBase

from sonocli.sim.peer import Clock, RealClock, SimPeer, VirtualClock


def _live_air(params: dict[str, str]) -> bool:
    radio = importlib.import_module("sonocli.sim.radio")
    return bool(radio.paced_in_real_time(params))


class Serial(SerialBase):  # type: ignore[misc]  # pyserial ships no type hints
    """A SerialBase backed by a SimPeer and a Clock."""

    is_open: bool

    def __init__(self, *args: Any, peer: SimPeer | None = None, clock: Clock | None = None, **kwargs: Any) -> None:
        self.peer: SimPeer | None = peer
        self.clock: Clock = clock if clock is not None else VirtualClock()
        self._rx = bytearray()
        self._tx_busy = 0.0
        super().__init__(*args, **kwargs)

    # ---- SerialBase ----------------------------------------------------------------------------------

    def open(self) -> None:
        if self._port is None:
            raise serial.SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise serial.SerialException("Port is already open.")
        if self.peer is None:
            self.peer, self.clock = self.from_url(str(self._port))
        self.is_open = True
        self._reconfigure_port()

    def from_url(self, url: str) -> tuple[SimPeer, Clock]:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "sim":
            raise serial.SerialException(f"expected a URL of the form sim://demo or sim:///file, got {url!r}")
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
        # plain sim://air is live air: the real clock unless told otherwise (sim.radio.paced_in_real_time)
        kind = params.get("clock", "real" if parts.netloc == "air" and _live_air(params) else "virtual")
        if kind not in ("virtual", "real"):
            raise ValueError(f"clock={kind!r} is not one of virtual, real")
        clock: Clock = RealClock() if kind == "real" else VirtualClock()
        if parts.netloc == "air":
            radio = importlib.import_module("sonocli.sim.radio")
            peer: SimPeer = radio.RadioPeer(params, clock)
            return peer, clock
        if parts.netloc == "dlde":  # IEC 62056-21 meters (sonocli.sim.dlde)
            dlde = importlib.import_module("sonocli.sim.dlde")
            return dlde.peer_from_params(params, clock), clock
        if parts.netloc == "sml":  # an SML meter pushing files (sonocli.sim.sml)
            sml = importlib.import_module("sonocli.sim.sml")
            return sml.peer_from_params(params, clock), clock
        from sonocli.sim.wired import load_segment

        source = parts.netloc if parts.netloc else urllib.parse.unquote(parts.path)
        if not source:
            raise serial.SerialException(f"{url!r} names no segment (use sim://demo or sim:///path/file.toml)")
        segment = load_segment(source)
        apply_faults(segment, params)
        return segment, clock

    def close(self) -> None:
        self.is_open = False

    def _reconfigure_port(self) -> None:
        if self.is_open and self.peer is not None:
            setter = getattr(self.peer, "set_host_line", None)
            if setter is not None:
                setter(int(self._baudrate), self._parity != serial.PARITY_NONE)

    @property
    def _char_time(self) -> float:
        bits = 1 + int(self._bytesize) + (0 if self._parity == serial.PARITY_NONE else 1) + int(self._stopbits)
        return bits / float(self._baudrate)

    def _pull(self) -> None:
        assert self.peer is not None
        self._rx += self.peer.poll(self.clock.now())

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        self._pull()
        return len(self._rx)

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise PortNotOpenError()
        assert self.peer is not None
        timeout = self._timeout
        deadline = None if timeout is None else self.clock.now() + timeout
        while True:
            self._pull()
            if len(self._rx) >= size:
                break
            event = self.peer.next_event()
            if event is None and deadline is None:
                break  # nothing will ever come: do not hang forever on a virtual clock
            if event is None or (deadline is not None and event > deadline):
                assert deadline is not None
                self.clock.sleep_until(deadline)
                self._pull()
                break
            self.clock.sleep_until(event)
        out = bytes(self._rx[:size])
        del self._rx[:size]
        return out

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        assert self.peer is not None
        payload = bytes(data)
        start = max(self.clock.now(), self._tx_busy)
        self._tx_busy = start + len(payload) * self._char_time
        self.peer.receive(payload, self._tx_busy)
        return len(payload)

    def flush(self) -> None:
        """Like tcdrain: return when the last written byte has left the wire."""
        self.clock.sleep_until(self._tx_busy)

    def reset_input_buffer(self) -> None:
        self._pull()
        self._rx.clear()

    def reset_output_buffer(self) -> None:
        return None


def _addresses(text: str) -> list[tuple[int, int | None]]:
    out: list[tuple[int, int | None]] = []
    for item in filter(None, text.split(",")):
        address, _, count = item.partition(":")
        out.append((int(address), int(count) if count else None))
    return out


def apply_faults(segment: Any, params: dict[str, str]) -> None:
    """Query parameters of a wired sim:// URL: echo, baud and faults by primary address."""
    if params.get("echo") in ("1", "true", "yes"):
        segment.echo = True
    if "baud" in params:
        segment.baud = int(params["baud"])
    by_address = {meter.primary: meter for meter in segment.meters}
    for key in ("silent", "flaky", "corrupt", "stop_after", "sleepy"):
        for address, count in _addresses(params.get(key, "")):
            meter = by_address.get(address)
            if meter is None:
                raise ValueError(f"{key}={address}: no simulated meter has primary address {address}")
            if key == "silent":
                meter.silent = True
            elif key == "sleepy":
                meter.sleepy = True
            elif key == "corrupt":
                meter.corrupt = True
            elif key == "flaky":
                meter.flaky = count if count is not None else 1
            else:
                meter.stop_after = count if count is not None else 10
