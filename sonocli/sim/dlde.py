"""``sim://dlde``: IEC 62056-21 tariff devices (DLDE) on a simulated optical port or RS-485 multi-drop line.

Each meter answers a sign-on ``/?!`` (or ``/?ADDRESS!`` for its own address) after its reaction time with its
identification, switches baud rate the way its mode says (C: after the master's acknowledgement ``ACK 0 Z 0``,
B: right after the identification, A: never) and sends its data message. Bytes go out at the meter's baud
rate; a host port at another rate receives garbage, as a real UART would, so a master that does not switch
(or switches to the wrong rate) fails exactly as it would in the field. Several meters answering one
address-less sign-on on a multi-drop line collide (garbage). After the data message the meter is back at
300 baud, listening for the next sign-on.

The data set is a real one: an Iskra MT174 read in mode C at 9600 baud (identification ``/ISk5MT174-0002``,
BCC 0x19), published in a public GitHub script's comment; see tests/data/dlde/README.md for its provenance.

Query parameters::

    mode=A|B|C         the meters' protocol mode (default C)
    baud=N             the rate proposed in modes B/C (default 9600)
    address=A,B,...    multi-drop: one meter per address (default one meter, address 62807889)
    slow=SECONDS       extra reaction time before every answer (a slow meter)
    bcc=bad            a wrong BCC on every data message
    no_switch=1        the meter stays at 300 baud (does not switch)
    truncate=N         only the first N bytes of the data message
    clock=real         pace on the wall clock (``sonocli simulate``); default virtual
"""

from __future__ import annotations

import bisect

from sonocli.codecs import dlde
from sonocli.model.valueclass import field, valueclass
from sonocli.sim.peer import Clock
from sonocli.sim.pty_server import PtyEndpoint

# Iskra MT174 readout (mode C, 9600 baud): see the module docstring and tests/data/dlde/README.md.
MT174_IDENT = "ISk5MT174-0002"
MT174_LINES: tuple[str, ...] = (
    "1-0:0.9.2*255(0220127)",
    "1-0:0.9.1*255(105644)",
    "1-0:1.8.0*255(0000502.853*kWh)",
    "1-0:2.8.0*255(0098697.318*kWh)",
)
DEFAULT_ADDRESS = "62807889"
REACTION = 0.2  # tr: the meter answers 200 ms after the end of a request (IEC 62056-21: 200 ms .. 1500 ms)
ACK_WINDOW = 1.5  # mode C: how long the meter waits for the acknowledgement after its identification
BITS_7E1 = 10  # start + 7 data + parity + stop


@valueclass
class DldeMeter:
    """One simulated tariff device."""

    address: str
    manufacturer: str = "ISk"
    ident: str = "MT174-0002"
    mode: str = "C"
    baud: int = 9600
    lines: tuple[str, ...] = MT174_LINES
    slow: float = 0.0
    bad_bcc: bool = False
    no_switch: bool = False
    truncate: int | None = None

    @property
    def baud_char(self) -> str:
        table = dlde.MODE_C_BAUDS if self.mode == "C" else dlde.MODE_B_BAUDS if self.mode == "B" else {}
        for char, rate in table.items():
            if rate == self.baud:
                return char
        if self.mode == "A":
            return "H"  # a letter past the mode B rates (A-F) and no digit: mode A, no baud switch
        raise ValueError(f"baud={self.baud} is not a mode {self.mode} rate ({', '.join(map(str, table.values()))})")

    def identification(self) -> bytes:
        return f"/{self.manufacturer}{self.baud_char}{self.ident}".encode("ascii") + dlde.CRLF

    def data_message(self) -> bytes:
        message = dlde.encode_data_message(self.lines, bad_bcc=self.bad_bcc)
        return message[: self.truncate] if self.truncate is not None else message


@valueclass
class DldeBus:
    """A SimPeer: the host's bytes in, the meters' timed bytes out. ``log`` keeps (time, "rx"/"tx", baud,
    bytes) for every request heard and every message sent, so tests check the baud switch byte by byte."""

    meters: list[DldeMeter]
    host_baud: int = dlde.INITIAL_BAUD
    log: list[tuple[float, str, int, bytes]] = field(default_factory=list)
    _line: bytearray = field(default_factory=bytearray)
    _line_baud: int = dlde.INITIAL_BAUD
    _times: list[float] = field(default_factory=list)
    _out: list[tuple[int, int]] = field(default_factory=list)  # (byte, baud it is sent at)
    _waiting_ack: tuple[DldeMeter, float] | None = None  # mode C meter and the end of its ack window
    _busy_until: float = 0.0

    # ---- SimPeer -------------------------------------------------------------------------------------

    def set_host_line(self, baudrate: int, parity: bool) -> None:
        self.host_baud = baudrate

    def receive(self, data: bytes, now: float) -> None:
        self.log.append((now, "rx", self.host_baud, bytes(data)))
        if self.host_baud != self._line_baud:
            self._line.clear()
            self._line_baud = self.host_baud
        if self.host_baud != dlde.INITIAL_BAUD:
            return  # the meters listen at 300 baud between readouts: anything faster is noise to them
        self._line += data
        while b"\n" in self._line:
            end = self._line.index(b"\n") + 1
            line = bytes(self._line[:end])
            del self._line[:end]
            self._request(line, now)

    def poll(self, now: float) -> bytes:
        cut = bisect.bisect_right(self._times, now)
        out = bytes(byte if baud == self.host_baud else _garbage(byte) for byte, baud in self._out[:cut])
        del self._times[:cut]
        del self._out[:cut]
        return out

    def next_event(self) -> float | None:
        return self._times[0] if self._times else None

    # ---- meter side ----------------------------------------------------------------------------------

    def _request(self, line: bytes, now: float) -> None:
        if line.startswith(b"/?") and line.endswith(b"!\r\n"):
            address = line[2:-3].decode("ascii", "replace")
            targets = [m for m in self.meters if not address or m.address == address]
            self._waiting_ack = None
            if len(targets) == 1:
                self._answer_sign_on(targets[0], now)
            elif targets:  # several meters answer an address-less sign-on: their answers collide
                start = now + REACTION
                garbled = bytes(_garbage(b) for b in targets[0].identification())
                self._send(garbled, dlde.INITIAL_BAUD, start)
            return
        if line[:1] == bytes((dlde.ACK,)) and len(line) == 6 and self._waiting_ack is not None:
            meter, until = self._waiting_ack
            self._waiting_ack = None
            if now > until:
                return  # too late: the meter went back to waiting for a sign-on
            baud_char, option = chr(line[2]), chr(line[3])
            if option != "0" or baud_char not in dlde.MODE_C_BAUDS:
                return  # programming mode and unknown rates are not simulated
            baud = dlde.INITIAL_BAUD if meter.no_switch else dlde.MODE_C_BAUDS[baud_char]
            self._send(meter.data_message(), baud, now + REACTION + meter.slow)

    def _answer_sign_on(self, meter: DldeMeter, now: float) -> None:
        start = now + REACTION + meter.slow
        end = self._send(meter.identification(), dlde.INITIAL_BAUD, start)
        if meter.mode == "C":
            self._waiting_ack = (meter, end + ACK_WINDOW)
            return
        baud = meter.baud if meter.mode == "B" and not meter.no_switch else dlde.INITIAL_BAUD
        self._send(meter.data_message(), baud, end + REACTION)

    def _send(self, data: bytes, baud: int, start: float) -> float:
        """Queue ``data`` at ``baud`` from ``start`` (after anything already on the wire); returns its end."""
        char = BITS_7E1 / baud
        start = max(start, self._busy_until)
        self.log.append((start, "tx", baud, bytes(data)))
        when = start
        for byte in data:
            when += char
            index = bisect.bisect_right(self._times, when)
            self._times.insert(index, when)
            self._out.insert(index, (byte, baud))
        self._busy_until = when
        return when


def _garbage(byte: int) -> int:
    """What a UART at another baud rate makes of a character: a framing-error byte, never the original."""
    return (byte ^ 0x5A) | 0x80


def _flag(params: dict[str, str], name: str) -> bool:
    return params.get(name, "").lower() in ("1", "true", "yes", "bad")


def peer_from_params(params: dict[str, str], clock: Clock | None = None) -> DldeBus:
    """The bus a ``sim://dlde?...`` URL describes (see the module docstring); bad values are ValueErrors."""
    mode = params.get("mode", "C").upper()
    if mode not in ("A", "B", "C"):
        raise ValueError(f"mode={mode!r} is not one of A, B, C")
    baud = int(params.get("baud", "9600"))
    addresses = [a for a in params.get("address", DEFAULT_ADDRESS).split(",") if a]
    for address in addresses:
        dlde.check_address(address)
    slow = float(params.get("slow", "0"))
    if slow < 0:
        raise ValueError(f"slow={slow} must not be negative")
    truncate = int(params["truncate"]) if "truncate" in params else None
    if params.get("bcc", "ok").lower() not in ("ok", "bad"):
        raise ValueError(f"bcc={params['bcc']!r} is not one of ok, bad")
    meters = [
        DldeMeter(
            address=address,
            mode=mode,
            baud=baud if mode != "A" else dlde.INITIAL_BAUD,
            slow=slow,
            bad_bcc=params.get("bcc", "ok").lower() == "bad",
            no_switch=_flag(params, "no_switch"),
            truncate=truncate,
        )
        for address in addresses
    ]
    for meter in meters:
        meter.baud_char  # noqa: B018 - raises ValueError for a baud rate the mode does not have
    return DldeBus(meters)


class DldePtyServer(PtyEndpoint):
    """``sim://dlde`` behind a real pseudo-terminal, in real time, for other software and the pty tests.

    A pty has no baud rate of its own, so the server reads the speed the client set on the slave side
    (termios) before it hands the bus any byte and on every turn of its loop: a client that switches to
    9600 baud after its acknowledgement is heard, and answered, at 9600.
    """

    thread_name = "sonocli-sim-dlde"
    max_wait = 0.01  # the speed is looked at every turn: a client's baud switch is seen within 10 ms

    def __init__(self, bus: DldeBus, link: str | None = None) -> None:
        super().__init__(bus, link)
        self.bus = bus

    def _follow_client(self) -> None:
        """The client's current speed, if it set one since the last look (then the slave is unpinned again)."""
        import termios

        try:
            attrs = termios.tcgetattr(self.slave_fd)
        except termios.error:
            return
        speed = attrs[4]
        if speed != termios.B50:
            rate = _termios_rates().get(speed)
            if rate is not None:
                self.bus.set_host_line(rate, True)
            self._unpin_speed()


def _termios_rates() -> dict[int, int]:
    import termios

    from sonocli.registry import BAUD_RATES

    return {getattr(termios, f"B{rate}"): rate for rate in BAUD_RATES if hasattr(termios, f"B{rate}")}

