"""The master and scans over a real pseudo-terminal served by the simulator in real time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sonocli.engine.master import Master, MasterSettings
from sonocli.engine.scan import primary_scan, secondary_scan
from sonocli.model import AddressMode, Interface, Meter
from sonocli.sim.pty_server import PtyServer
from sonocli.sim.wired import SimMeter, WiredSegment, load_segment
from sonocli.transports import open_link


def _small_segment() -> WiredSegment:
    demo = load_segment("demo")
    keep = [m for m in demo.meters if m.primary in (6, 10, 11)]  # 6 is multi-telegram
    return WiredSegment(keep)


@pytest.fixture
def pty_bus() -> Iterator[PtyServer]:
    """A fresh pty per test (reopening one pty with even parity is a kernel trap, TESTING.md §5)."""
    with PtyServer(_small_segment(), 9600) as server:
        yield server


def test_primary_scan_and_multi_telegram_readout_over_a_pty(pty_bus: PtyServer) -> None:
    with open_link(pty_bus.path, 9600) as link:
        master = Master(link, MasterSettings(baudrate=9600, max_retry=0))
        found = primary_scan(master, 5, 11)
        assert [m.primary_address for m in found.meters] == [6, 10, 11]
        reading = master.readout(Meter(Interface.MBUS, primary_address=6, address_mode=AddressMode.PRIMARY))
    assert len(reading.raw_frames) == 2
    assert reading.meter.manufacturer == "SON"
    wire = [frame.hex().upper() for _, frame in pty_bus.segment.log]
    assert wire[-3:] == ["1040064616", "107B068116", "105B066116"]


def test_secondary_scan_and_readout_by_secondary_address_over_a_pty(pty_bus: PtyServer) -> None:
    with open_link(pty_bus.path, 9600) as link:
        master = Master(link, MasterSettings(baudrate=9600, max_retry=0))
        result = secondary_scan(master)
        assert {m.serial for m in result.meters} == {m.secondary_id for m in pty_bus.segment.meters}
        target = next(m for m in result.meters if m.manufacturer == "EMH")
        reading = master.readout(target)
    assert [v.description for v in reading.values][:2] == ["Energy", "Power"]


def test_reopening_the_pty_with_even_parity_works(pty_bus: PtyServer) -> None:
    for _ in range(2):
        with open_link(pty_bus.path, 9600) as link:
            assert Master(link, MasterSettings(baudrate=9600, max_retry=0)).probe_primary(10)


def test_collisions_on_a_pty_are_detected() -> None:
    twins = [
        SimMeter(
            primary=1,
            telegrams=[(0x72, bytes.fromhex("78563412") + bytes(8) + b"\x04\x13\x01\x00\x00\x00")],
            delay_bits=15,
        ),
        SimMeter(
            primary=1,
            telegrams=[(0x72, bytes.fromhex("79563412") + bytes(8) + b"\x04\x13\x02\x00\x00\x00")],
            delay_bits=200,
        ),
    ]
    with PtyServer(WiredSegment(twins), 9600) as server, open_link(server.path, 9600) as link:
        master = Master(link, MasterSettings(baudrate=9600, max_retry=0))
        result = secondary_scan(master)
    assert sorted(m.serial for m in result.meters) == ["12345678", "12345679"]
