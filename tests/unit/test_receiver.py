"""The receiver on the simulated radio: meter-list rules, frame cache, keys, bad input, set-up failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sonocli.codecs.dongles import Received
from sonocli.codecs.dongles.amb8465 import Amb8465Driver
from sonocli.codecs.dongles.hexlines import HexLinesDriver
from sonocli.codecs.dongles.im871a import Im871aDriver
from sonocli.engine.receiver import Heard, Receiver, ReceiverSettings, parse_raw_log
from sonocli.errors import ProtocolError
from sonocli.model import Interface, Meter
from sonocli.sim.peer import VirtualClock
from sonocli.sim.radio import RadioPeer, RadioPort, default_telegrams

SONTEX = "28335519"
SONTEX_KEY = bytes.fromhex("1AC8BD4C1421E45C4D11456AC0467A83")
LANSEN = "00010067"


class Clocked:
    """A UTC clock for the receiver that advances one second per call (deterministic last-seen times)."""

    def __init__(self) -> None:
        self.t = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.t += timedelta(seconds=1)
        return self.t


def _radio(**params: str) -> tuple[RadioPort, VirtualClock]:
    clock = VirtualClock()
    peer = RadioPeer({"dongle": "im871a", "rate": "10", **params}, clock)
    return RadioPort(peer, clock), clock


def _listen(receiver: Receiver, port: RadioPort, **kw: object) -> list[Heard]:
    out: list[Heard] = []
    receiver.setup(port)
    receiver.run(port, on_heard=out.append, **kw)  # type: ignore[arg-type]
    return out


def test_unknown_meters_go_to_the_temporary_list_inactive() -> None:
    port, _ = _radio(count="7")
    receiver = Receiver(Im871aDriver(), now=Clocked())
    heard = _listen(receiver, port, duration=5)
    assert len([h for h in heard if h.meter]) == 7
    temporary = receiver.temporary()
    assert {m.id for m in temporary} >= {SONTEX, LANSEN}
    assert all(not m.active and not m.in_list for m in temporary)
    assert all(h.reading is None for h in heard)  # nothing reported before activation and saving
    assert receiver.merged_meters([]) == []
    receiver.activate(LANSEN)
    merged = receiver.merged_meters([])
    assert [m.serial for m in merged] == [LANSEN]
    assert merged[0].interface is Interface.WMBUS and merged[0].manufacturer == "LAS"
    assert len(receiver.merged_meters([], all_heard=True)) == len(temporary)


def test_listed_meter_with_key_gives_readings_and_rssi() -> None:
    port, _ = _radio(count="7")
    meters = [Meter(Interface.WMBUS, serial=SONTEX, key=SONTEX_KEY), Meter(Interface.WMBUS, serial=LANSEN)]
    receiver = Receiver(Im871aDriver(), meters=meters, now=Clocked())
    heard = _listen(receiver, port, duration=5)
    readings = [h.reading for h in heard if h.reading is not None]
    assert {r.meter.serial for r in readings} == {SONTEX, LANSEN}
    sontex = next(r for r in readings if r.meter.serial == SONTEX)
    # 19 records, one a compact profile with register numbers expanded into 17 monthly values
    assert len(sontex.values) == 36 and sontex.rssi is not None and sontex.rssi < 0
    assert receiver.heard[SONTEX].security == "decrypted"
    assert receiver.heard[SONTEX].last_seen is not None
    merged = receiver.merged_meters(meters)
    assert merged[0].rssi == receiver.heard[SONTEX].rssi


def test_inactive_listed_meter_gives_a_reading_marked_inactive() -> None:
    """The engine learns an inactive meter's value entries from it and stores only active meters' readings."""
    port, _ = _radio(count="7")
    receiver = Receiver(Im871aDriver(), meters=[Meter(Interface.WMBUS, serial=LANSEN, active=False)])
    heard = _listen(receiver, port, duration=5)
    readings = [h.reading for h in heard if h.reading is not None]
    assert readings and all(not r.meter.active and r.meter.serial == LANSEN for r in readings)
    assert all(h.reading is None for h in heard if h.meter is not None and h.meter.id != LANSEN)


def test_listen_off_ignores_unknown_meters() -> None:
    port, _ = _radio(count="7")
    listed = [Meter(Interface.WMBUS, serial=LANSEN)]
    receiver = Receiver(Im871aDriver(), ReceiverSettings(listen_new=False), meters=listed)
    _listen(receiver, port, duration=5)
    assert set(receiver.heard) == {LANSEN}
    assert receiver.stats.bad["ignored (wM-Bus listen off)"] == 6


def test_repeats_counted_once_and_cache_bounds() -> None:
    telegram = default_telegrams()[3].telegram  # Lansen, plain
    receiver = Receiver(HexLinesDriver(), now=Clocked())
    for _ in range(3):
        receiver.handle(Received(telegram, -50, "none"))
    assert receiver.heard[LANSEN].telegrams == 1 and receiver.heard[LANSEN].duplicates == 2
    # a cache of one frame forgets the first telegram as soon as another one arrives
    small = Receiver(HexLinesDriver(), ReceiverSettings(cache_size=1), now=Clocked())
    other = default_telegrams()[4].telegram
    for item in (telegram, other, telegram):
        small.handle(Received(item, -50, "none"))
    assert small.heard[LANSEN].telegrams == 2


def test_cache_timeout_forgets_old_frames() -> None:
    telegram = default_telegrams()[3].telegram
    receiver = Receiver(HexLinesDriver(), ReceiverSettings(cache_timeout=1.5), now=Clocked())
    receiver.handle(Received(telegram))
    receiver.handle(Received(telegram))  # 1 s later: still a repeat
    receiver.now()  # let time pass
    receiver.handle(Received(telegram))  # 3 s after the first: a new telegram
    assert receiver.heard[LANSEN].telegrams == 2 and receiver.heard[LANSEN].duplicates == 1


def test_varied_access_numbers_are_new_telegrams_and_still_decrypt() -> None:
    port, _ = _radio(count="21")  # three rounds of the seven default telegrams
    receiver = Receiver(Im871aDriver(), meters=[Meter(Interface.WMBUS, serial=SONTEX, key=SONTEX_KEY)])
    heard = _listen(receiver, port, duration=10)
    sontex = [h for h in heard if h.meter is not None and h.meter.id == SONTEX]
    assert len(sontex) == 3 and all(h.reading is not None for h in sontex)
    assert len({h.telegram.access_number for h in sontex if h.telegram}) == 3


def test_bad_input_is_counted_never_fatal(tmp_path: Path) -> None:
    port, _ = _radio(count="28", garbage="3", badcrc="4")
    log = tmp_path / "raw" / "wmbus.log"
    receiver = Receiver(Im871aDriver(), ReceiverSettings(raw_log=log), meters=[Meter(Interface.WMBUS, serial=LANSEN)])
    heard = _listen(receiver, port, duration=10)
    assert receiver.stats.bad["garbage"] >= 7  # noise and frames with broken CRCs
    assert len([h for h in heard if h.meter is not None]) == 28 - 7
    lines = parse_raw_log(log.read_text())
    assert len(lines) == len(heard)
    receiver.close()


def test_wrong_key_is_reported_per_meter() -> None:
    port, _ = _radio(count="7")
    receiver = Receiver(Im871aDriver(), meters=[Meter(Interface.WMBUS, serial=SONTEX, key=bytes(16))])
    heard = _listen(receiver, port, duration=5)
    bad = [h for h in heard if h.meter is not None and h.meter.id == SONTEX]
    assert bad and bad[0].error_kind == "wrong key" and "wrong key" in bad[0].error
    assert receiver.heard[SONTEX].failures == 1
    assert receiver.stats.bad["wrong key"] == 1


def test_dongle_that_does_not_answer() -> None:
    port, _ = _radio(mute="1")
    receiver = Receiver(Amb8465Driver(), ReceiverSettings(setup_timeout=0.5))
    port.peer.dongle = "amb8465"
    with pytest.raises(ProtocolError, match="no answer to the set-up command 'firmware version'"):
        receiver.setup(port)


def test_key_lookup_does_not_scan_the_meter_list() -> None:
    meters = [Meter(Interface.WMBUS, serial=f"{n:08d}", key=bytes(16)) for n in range(5000)]
    receiver = Receiver(HexLinesDriver(), meters=meters)
    assert isinstance(receiver.keys, dict) and len(receiver.keys) == 5000
    assert isinstance(receiver.meters, dict)


def test_temporary_list_published_every_fast_rescan_seconds() -> None:
    receiver = Receiver(HexLinesDriver(), ReceiverSettings(fast_rescan=60))
    assert receiver.temporary_due(0.0)
    assert not receiver.temporary_due(59.0)
    assert receiver.temporary_due(60.0)


def test_repeated_copy_with_hop_bit_or_crcs_is_the_same_telegram() -> None:
    """A repeater sets the ELL H bit on its copy; a stick may hand over one copy with its DLL CRCs."""
    from sonocli.codecs.wmbus_link import crc16_en13757

    plain = bytes.fromhex("194793444433221155378C20758B8877665593445508FF040000")  # OMS N.5.2: ELL CC 0x20
    hopped = plain[:11] + bytes([plain[11] | 0x10]) + plain[12:]
    receiver = Receiver(HexLinesDriver(), now=Clocked())
    receiver.handle(Received(plain, -50, "none"))
    assert receiver.handle(Received(hopped, -70, "none")).duplicate
    # format A of the same telegram: block 1 (10 bytes) and the rest, each followed by its CRC
    block1, rest = plain[:10], plain[10:]
    with_crcs = b"".join(b + crc16_en13757(b).to_bytes(2, "big") for b in (block1, rest))
    item = receiver.handle(Received(with_crcs, -60, "A"))
    assert item.error == "" and item.duplicate
    meter = receiver.heard["55667788"]
    assert meter.telegrams == 1 and meter.duplicates == 2 and meter.rssi == -60
    other = plain[:13] + bytes([plain[13] + 1]) + plain[14:]  # another access number: a new telegram
    assert not receiver.handle(Received(other, -50, "none")).duplicate


def test_chip_ini_rows_reach_the_receiver(tmp_path: Path) -> None:
    """Table 25: WMBUS_MODE, WMBUS_CACHESIZE, WMBUS_CACHETIMEOUT, WMBUS_RAWLOGENABLE, FASTRESCAN_TIME."""
    from sonocli.config.chipini import ChipIni
    from sonocli.engine.receiver import RAW_LOG_NAME, settings_from_chip

    chip = ChipIni.from_text(
        "[CONFIG]\nWMBUS_MODE=S2_REQ\nWMBUS2_MODE=C1_OTHER_REQ\nWMBUS_CACHESIZE=2\nWMBUS_CACHETIMEOUT=30\nWMBUS_RAWLOGENABLE=1\n"
        "FASTRESCAN_TIME=5\n"
    )
    settings = settings_from_chip(chip, tmp_path)
    assert (settings.mode, settings.cache_size, settings.cache_timeout) == ("S1", 2, 30.0)
    assert settings_from_chip(chip, tmp_path, 2).mode == "C1"  # the 2nd interface has its own mode
    assert settings.raw_log == tmp_path / RAW_LOG_NAME and settings.fast_rescan == 5.0
    defaults = settings_from_chip(ChipIni.from_text("[CONFIG]\n"), tmp_path)
    assert (defaults.mode, defaults.cache_size, defaults.cache_timeout, defaults.raw_log) == ("T1", 500, 0.0, None)
    # the raw log gets every telegram, repeats and bad ones included, with time and RSSI
    receiver = Receiver(HexLinesDriver(), settings, now=Clocked())
    telegram = default_telegrams()[3].telegram
    for item in (telegram, telegram, b"\x05\x44\x00"):
        receiver.handle(Received(item, -61, "none"))
    receiver.close()
    logged = parse_raw_log((tmp_path / RAW_LOG_NAME).read_text())
    assert [raw for _, raw in logged] == [telegram, telegram, b"\x05\x44\x00"]
    assert (tmp_path / RAW_LOG_NAME).read_text().splitlines()[0].startswith("2026-01-01T00:00:01Z;-61;")


@pytest.mark.parametrize(
    ("name", "text", "allowed"),
    [
        ("WMBUS_CACHESIZE", "0", "allowed: 1..500"),
        ("WMBUS_CACHETIMEOUT", "soon", "allowed: 0..4294967295"),
        ("WMBUS_RAWLOGENABLE", "0 ", ""),  # valid: "0" is off, not a true string
        ("WMBUS_MODE", "T3", "allowed: R2_OTHER_REQ, S2_REQ"),
        ("FASTRESCAN_TIME", "-5", "allowed: 1..4294967295"),
    ],
)
def test_chip_ini_values_pass_the_schema_check(tmp_path: Path, name: str, text: str, allowed: str) -> None:
    """settings_from_chip checks what it is given by the chip.ini schema: a bad value is an error naming it."""
    from sonocli.config.chipini import ChipIni
    from sonocli.engine.receiver import settings_from_chip
    from sonocli.errors import ConfigError

    defaults = ChipIni([])

    class Raw:  # a source whose values did not go through ChipIni's load checks
        def get(self, key: str) -> object:
            return text if key == name else defaults.get(key)

    if not allowed:
        assert settings_from_chip(Raw(), tmp_path).raw_log is None
        return
    with pytest.raises(ConfigError) as info:
        settings_from_chip(Raw(), tmp_path)
    assert str(info.value).startswith(f"{name}={text!r}: ") and allowed in str(info.value)
