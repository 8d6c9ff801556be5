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
        # The mask keeps the real-time search short (each silent probe waits the whole answer window);
        # the root still collides and is resolved on the last digit.
        result = secondary_scan(master, mask="1234567F")
    assert sorted(m.serial for m in result.meters) == ["12345678", "12345679"]
    assert result.probes == 16  # 11 + the hex digits A-E tried once at the last position (issue 12)


@pytest.mark.parametrize("mode", ["reverse", "alloc"])
def test_reverse_and_alloc_scans_over_a_pty(pty_bus: PtyServer, mode: str) -> None:
    with open_link(pty_bus.path, 9600) as link:
        master = Master(link, MasterSettings(baudrate=9600, max_retry=0))
        result = secondary_scan(master, reverse=mode == "reverse", alloc=mode == "alloc", used_primary=[1])
    assert {m.serial for m in result.meters} == {m.secondary_id for m in pty_bus.segment.meters}
    if mode == "alloc":  # the simulated meters really took the new addresses
        assert sorted(m.primary for m in pty_bus.segment.meters) == [2, 3, 4]


@pytest.mark.parametrize(
    ("reset", "request_mode"), [(0, "DEFAULT"), (1, "EXT"), (2, "ONLY"), (3, "FREEZE"), (4, "DEFAULT")]
)
def test_reset_and_request_modes_over_a_pty_byte_for_byte(pty_bus: PtyServer, reset: int, request_mode: str) -> None:
    from sonocli.codecs import mbus_link as L

    target = next(m for m in pty_bus.segment.meters if m.primary == 6)  # two telegrams
    target.sleepy = True
    ident = target.address_bytes
    meter = Meter(
        Interface.MBUS,
        serial=target.secondary_id,
        manufacturer="SON",
        version=ident[6],
        medium=ident[7],
        address_mode=AddressMode.SECONDARY,
    )
    settings = MasterSettings(
        baudrate=9600, max_retry=0, reset_mode=reset, request_mode=request_mode, freeze_storage=2, wakeup=True
    )
    with open_link(pty_bus.path, 9600) as link:
        reading = Master(link, settings).readout(meter)
    assert len(reading.raw_frames) == 2
    nke_fd, nke_ff = L.snd_nke(0xFD), L.snd_nke(0xFF)
    select = L.snd_ud(0xFD, 0x52, ident)
    before = {
        0: [select, nke_ff],
        1: [nke_ff, select],
        2: [select],
        3: [nke_fd, nke_ff, select],
        4: [nke_fd, L.application_reset(0xFF), nke_ff, select],
    }[reset]
    command = {
        "DEFAULT": [],
        "EXT": [L.get_all_data(0xFD)],
        "ONLY": [L.get_all_data(0xFD, extended2=True)],
        "FREEZE": [L.freeze(0xFD, 2)],
    }[request_mode]
    expected = [*before, *command, L.req_ud2(0xFD, True), L.req_ud2(0xFD, False)]
    assert [frame for _, frame in pty_bus.segment.log] == expected
