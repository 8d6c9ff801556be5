"""open_link: URLs, settings and the errors a user meets; sim:// pacing; socket:// against a real server."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator

import pytest

from sonocli.codecs import mbus_link as L
from sonocli.errors import TransportError, UsageError
from sonocli.sim.peer import RealClock, VirtualClock
from sonocli.sim.wired import load_segment
from sonocli.transports import open_link, parity_letter


def test_sim_demo_paces_bytes_at_the_baud_rate_on_a_virtual_clock() -> None:
    with open_link("sim://demo") as link:
        assert isinstance(link.clock, VirtualClock)
        assert link.char_time() == pytest.approx(11 / 2400)
        link.write(L.snd_nke(1))
        link.drain()
        assert link.clock.now() == pytest.approx(5 * 11 / 2400)
        assert link.read(1, 1.0) == b"\xe5"
        delay = load_segment("demo").meters[0].delay_bits
        assert link.clock.now() == pytest.approx(6 * 11 / 2400 + delay / 2400)
        assert link.read(1, 0.25) == b""  # a timeout moves the clock by exactly the timeout
        assert link.clock.now() == pytest.approx(6 * 11 / 2400 + delay / 2400 + 0.25)


def test_sim_url_parameters_echo_baud_and_faults() -> None:
    with open_link("sim://demo?echo=1&silent=2") as link:
        link.write(L.snd_nke(2))
        assert link.read(16, 1.0) == L.snd_nke(2)
    with open_link("sim://demo?baud=9600") as link:  # the meters talk 9600, the port 2400
        link.write(L.snd_nke(1))
        assert link.read(1, 1.0) == b""
    with open_link("sim://demo?clock=real") as link:
        assert isinstance(link.clock, RealClock)
    with pytest.raises(UsageError, match="no simulated meter has primary address 99"):
        open_link("sim://demo?silent=99")


def test_bad_settings_and_ports() -> None:
    with pytest.raises(UsageError, match="baud rate 1234 is not allowed; allowed: 300, 600"):
        open_link("sim://demo", 1234)
    with pytest.raises(UsageError, match="MBUS_DATABITS"):
        open_link("sim://demo", bytesize=6)
    with pytest.raises(TransportError, match="does not exist") as info:
        open_link("/dev/ttyNOSUCHPORT")
    assert info.value.hint and "ttyUSB" in info.value.hint
    with pytest.raises(TransportError, match="connection refused"):
        open_link("socket://127.0.0.1:1")
    assert parity_letter(2) == "E" and parity_letter(0) == "N"
    with pytest.raises(UsageError, match="MBUS_PARITY 7"):
        parity_letter(7)


class _MbusOverTcp(socketserver.BaseRequestHandler):
    """A ser2net-like gateway: bytes from the TCP client go to a simulated segment, answers come back."""

    def handle(self) -> None:
        segment = load_segment("demo")
        clock = RealClock()
        while True:
            data = self.request.recv(256)
            if not data:
                return
            segment.receive(data, clock.now())
            when = segment.next_event()
            while when is not None:
                clock.sleep_until(when)
                self.request.sendall(segment.poll(clock.now()))
                when = segment.next_event()


@pytest.fixture
def tcp_gateway() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _MbusOverTcp)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_socket_url_reads_a_meter_through_a_tcp_gateway(tcp_gateway: int) -> None:
    from sonocli.engine.master import Master, MasterSettings
    from sonocli.model import AddressMode, Interface, Meter

    with open_link(f"socket://127.0.0.1:{tcp_gateway}", 9600) as link:
        assert isinstance(link.clock, RealClock)
        reading = Master(link, MasterSettings(baudrate=9600)).readout(
            Meter(Interface.MBUS, primary_address=10, address_mode=AddressMode.PRIMARY)
        )
    assert reading.meter.manufacturer == "EMH" and len(reading.values) == 3


def test_permission_denied_names_the_dialout_group() -> None:
    from sonocli.transports import _port_error

    error = _port_error("/dev/ttyUSB0", PermissionError(13, "Permission denied"))
    assert str(error) == "port '/dev/ttyUSB0': permission denied"
    assert error.hint is not None and "dialout" in error.hint


def test_sim_air_is_routed_to_the_radio_peer() -> None:
    with open_link("sim://air?dongle=im871a", 57600, "N", mbus_baud=False) as link:
        assert type(link.port.peer).__name__ == "RadioPeer"
