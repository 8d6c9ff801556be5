"""open_link's other URL forms against real peers: ``spy://`` on a real pty and ``rfc2217://`` through
pyserial's RFC 2217 port manager (a real TCP server) in front of a pty served by the simulator."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sonocli.engine.master import Master, MasterSettings
from sonocli.model import AddressMode, Interface, Meter
from sonocli.sim.pty_server import PtyServer
from sonocli.sim.wired import load_segment
from sonocli.transports import open_link

METER_10 = Meter(Interface.MBUS, primary_address=10, address_mode=AddressMode.PRIMARY)


@pytest.fixture
def pty_demo() -> Iterator[PtyServer]:
    with PtyServer(load_segment("demo"), 9600) as server:
        yield server


def test_spy_url_logs_the_traffic_of_a_real_port(pty_demo: PtyServer, tmp_path: Path) -> None:
    log = tmp_path / "spy.txt"
    with open_link(f"spy://{pty_demo.path}?file={log}", 9600) as link:
        reading = Master(link, MasterSettings(baudrate=9600, max_retry=0)).readout(METER_10)
    assert reading.meter.manufacturer == "EMH"
    text = log.read_text()
    assert "TX" in text and "RX" in text and "10 40 0a 4a 16" in text.lower()


def _pty_serial_class() -> type:
    """A pty has no modem lines (ENOTTY, TESTING.md section 5): the port manager polls them, so they read
    as off. Re-applying the same speed with even parity fails with EINVAL on a pty (same section); the
    client's settings change nothing on a pty, so that is ignored."""
    import termios

    import serial

    class PtySerial(serial.Serial):  # type: ignore[misc]
        cts = dsr = ri = cd = property(lambda self: False)

        def _reconfigure_port(self, force_update: bool = False) -> None:
            try:
                super()._reconfigure_port(force_update)
            except termios.error:
                pass

        def _update_dtr_state(self) -> None:
            return None

        def _update_rts_state(self) -> None:
            return None

    return PtySerial


class _Writer:
    """PortManager writes to its connection with ``write``; a socket has ``sendall``."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn

    def write(self, data: bytes) -> None:
        self.conn.sendall(data)


def _rfc2217_server(port_url: str) -> tuple[socket.socket, threading.Thread]:
    """pyserial's RFC 2217 server (as in its rfc2217_server example), one client, serving ``port_url``."""
    import serial
    import serial.rfc2217

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ser = _pty_serial_class()(port_url, 9600, parity="E", timeout=0.05)
        manager = serial.rfc2217.PortManager(ser, _Writer(conn))
        alive = True

        def to_client() -> None:
            while alive:
                data = ser.read(ser.in_waiting or 1)
                if data:
                    conn.sendall(b"".join(manager.escape(data)))

        pump = threading.Thread(target=to_client, daemon=True)
        pump.start()
        try:
            while True:
                data = conn.recv(1024)
                if not data:
                    break
                ser.write(b"".join(manager.filter(data)))
        finally:
            alive = False
            pump.join(1)
            ser.close()
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_rfc2217_url_reads_a_meter_through_a_port_server(pty_demo: PtyServer) -> None:
    listener, thread = _rfc2217_server(pty_demo.path)
    port = listener.getsockname()[1]
    try:
        with open_link(f"rfc2217://127.0.0.1:{port}", 9600) as link:
            reading = Master(link, MasterSettings(baudrate=9600, max_retry=1)).readout(METER_10)
    finally:
        listener.close()
        thread.join(5)
    assert reading.meter.manufacturer == "EMH" and len(reading.values) == 3
