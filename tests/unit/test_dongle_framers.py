"""Dongle framers: real framings built by the stick side, split at every position, garbage, arbitrary bytes."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sonocli.codecs.dongles import DongleDriver, Garbage, Received, Reply, amb8465, cul, hexlines, im871a, rtlwmbus
from sonocli.codecs.dongles.amb8465 import Amb8465Driver
from sonocli.codecs.dongles.cul import CulDriver
from sonocli.codecs.dongles.hexlines import HexLinesDriver
from sonocli.codecs.dongles.im871a import Im871aDriver, crc16_x25
from sonocli.codecs.dongles.rtlwmbus import RtlWmbusDriver
from sonocli.codecs.wmbus_link import add_format_a_crcs, add_format_b_crcs, normalise_frame
from sonocli.errors import SonoError, UsageError

DATA = Path(__file__).parents[1] / "data" / "wmbus"
with (DATA / "wmbus_vectors.tsv").open(encoding="utf-8") as _fh:
    TELEGRAMS = [normalise_frame(bytes.fromhex(r["hex_telegram"]))[0] for r in csv.DictReader(_fh, delimiter="\t")]
with (DATA / "checksum_crypto_vectors.tsv").open(encoding="utf-8") as _fh:
    CHECKS = {row["id"]: row for row in csv.DictReader(_fh, delimiter="\t")}

TELEGRAM = TELEGRAMS[0]

Framing = tuple[Callable[[], DongleDriver], Callable[[bytes], bytes], str]
FRAMINGS: dict[str, Framing] = {
    "im871a": (Im871aDriver, lambda t: im871a.encode_indication(t, -61), "none"),
    "im871a-ts": (lambda: Im871aDriver(timestamp=True), lambda t: im871a.encode_indication(t, -61, 123456), "none"),
    "amb8465": (Amb8465Driver, lambda t: amb8465.encode_indication(t, -61), "none"),
    "cul-A": (CulDriver, lambda t: cul.encode_indication(add_format_a_crcs(t), "A", -61), "A"),
    "cul-B": (CulDriver, lambda t: cul.encode_indication(add_format_b_crcs(t), "B", -61), "B"),
    "rtlwmbus": (RtlWmbusDriver, lambda t: rtlwmbus.encode_indication(t, "C1", 61), "none"),
    "hex": (HexLinesDriver, lambda t: hexlines.encode_indication(t, -61), "auto"),
}


def _received(events: list[object]) -> list[Received]:
    return [e for e in events if isinstance(e, Received)]


def _telegram_of(event: Received) -> bytes:
    return normalise_frame(event.telegram, event.frame_format)[0]


def test_im871a_hci_crc_vector() -> None:
    row = CHECKS["x25_im871a_hci"]
    assert crc16_x25(bytes.fromhex(row["input_hex"])) == int(row["expected_output_hex"][:4], 16)
    assert crc16_x25(b"123456789") == 0x906E


def test_im871a_real_capture() -> None:
    body = bytes.fromhex(CHECKS["x25_im871a_hci"]["input_hex"])
    frame = b"\xa5" + body + bytes.fromhex("3885")
    events = Im871aDriver().feed(frame)
    assert len(events) == 1 and isinstance(events[0], Received)
    assert events[0].telegram[0] == 0x27 and events[0].telegram[1:3] == bytes.fromhex("442D")


@pytest.mark.parametrize("name", sorted(FRAMINGS))
def test_every_vector_through_every_framing(name: str) -> None:
    factory, encode, fmt = FRAMINGS[name]
    driver = factory()
    stream = b"".join(encode(t) for t in TELEGRAMS)
    events = _received(driver.feed(stream))
    assert [_telegram_of(e) for e in events] == TELEGRAMS
    assert all(e.frame_format == fmt for e in events)
    if name != "rtlwmbus":
        assert all(e.rssi == -61 for e in events)


@pytest.mark.parametrize("name", sorted(FRAMINGS))
def test_split_at_every_position(name: str) -> None:
    factory, encode, _ = FRAMINGS[name]
    frame = encode(TELEGRAM)
    for cut in range(len(frame) + 1):
        driver = factory()
        events = _received(driver.feed(frame[:cut]) + driver.feed(frame[cut:]))
        assert len(events) == 1, cut
        assert _telegram_of(events[0]) == TELEGRAM


@pytest.mark.parametrize("name", sorted(FRAMINGS))
def test_byte_by_byte_with_garbage_before(name: str) -> None:
    factory, encode, _ = FRAMINGS[name]
    noise = b"\xa5\x82\x03\xff\xff\x03\x10\x00\x12garbage\xa5" if "im871a" in name or name == "amb8465" else b"xx zz\n"
    stream = noise + encode(TELEGRAM) + encode(TELEGRAMS[1])
    driver = factory()
    events: list[object] = []
    for byte in stream:
        events += driver.feed(bytes([byte]))
    assert [_telegram_of(e) for e in _received(events)] == [TELEGRAM, TELEGRAMS[1]]
    assert any(isinstance(e, Garbage) for e in events)


@pytest.mark.parametrize("name", ["im871a", "amb8465"])
def test_broken_checksum_is_skipped_and_next_frame_found(name: str) -> None:
    factory, encode, _ = FRAMINGS[name]
    bad = bytearray(encode(TELEGRAM))
    bad[-1] ^= 0xFF
    driver = factory()
    events = driver.feed(bytes(bad) + encode(TELEGRAMS[1]))
    assert [_telegram_of(e) for e in _received(events)] == [TELEGRAMS[1]]
    assert any(isinstance(e, Garbage) for e in events)


def test_false_start_does_not_block_a_complete_frame() -> None:
    # A5 82 03 FF announces 255 bytes that never come; the real frame after it must not wait for them.
    driver = Im871aDriver()
    events = driver.feed(b"\xa5\x82\x03\xff" + im871a.encode_indication(TELEGRAM))
    assert len(_received(events)) == 1


def test_rtlwmbus_crc_failed_line_is_garbage() -> None:
    line = rtlwmbus.encode_indication(TELEGRAM).replace(b";1;1;", b";0;1;", 1)
    events = RtlWmbusDriver().feed(line)
    assert len(events) == 1 and isinstance(events[0], Garbage) and "CRC_OK=0" in events[0].reason


def test_cul_odd_length_hex_is_garbage() -> None:
    events = CulDriver().feed(b"b2E44931\r\n")
    assert isinstance(events[0], Garbage)


def test_hexlines_comments_and_blank_lines() -> None:
    events = HexLinesDriver().feed(b"# capture\n\n" + TELEGRAM.hex().encode() + b"\n")
    assert [e.telegram for e in _received(events)] == [TELEGRAM]


@pytest.mark.parametrize(
    ("driver", "mode", "first"),
    [(Im871aDriver(), "C1", "ping"), (Amb8465Driver(), "T1", "firmware version"), (CulDriver(), "S1", "version")],
)
def test_setup_commands_answered_by_the_stick_side(driver: DongleDriver, mode: str, first: str) -> None:
    steps = driver.setup(mode)
    assert steps[0].what == first
    answer = {"im871a": im871a.answer, "amb8465": amb8465.answer, "cul": cul.answer}[driver.name]
    for step in steps:
        reply = answer(step.command)
        if step.expect is None:
            continue
        assert reply is not None
        events = driver.feed(reply)
        assert any(isinstance(e, Reply) and e.code.startswith(step.expect) for e in events)


def test_im871a_link_mode_command_bytes() -> None:
    set_config = Im871aDriver().setup("T1")[1].command
    assert set_config[:4] == bytes([0xA5, 0x81, 0x03, 0x06])
    assert set_config[4:10] == bytes([0x00, 0x02, 0x03, 0x30, 0x01, 0x00])
    assert crc16_x25(set_config[1:-2]) == int.from_bytes(set_config[-2:], "little")


def test_amb8465_checksum_and_modes() -> None:
    assert amb8465.encode_command(0x0A, bytes([0x00, 0x80])) == bytes.fromhex("FF0A02008077")
    assert Amb8465Driver().setup("C1")[-1].command[3] == 0x0E
    assert Amb8465Driver().setup("T1")[-1].command[3] == 0x08


def test_unsupported_mode_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="allowed"):
        CulDriver().setup("C1T1")
    with pytest.raises(UsageError):
        Im871aDriver().setup("X9")


@pytest.mark.parametrize("name", sorted(FRAMINGS))
@settings(max_examples=60, deadline=None)
@given(noise=st.binary(max_size=300), cut=st.integers(min_value=0, max_value=400))
def test_arbitrary_bytes_then_resync(name: str, noise: bytes, cut: int) -> None:
    factory, encode, _ = FRAMINGS[name]
    driver = factory()
    line_based = name.startswith(("cul", "rtl", "hex"))
    tail = (b"\n" if line_based else b"") + encode(TELEGRAM) * 3
    stream = noise + tail
    cut = min(cut, len(stream))
    events: list[object] = []
    try:
        events = driver.feed(stream[:cut]) + driver.feed(stream[cut:])
    except SonoError:
        pass
    except Exception as exc:  # pragma: no cover - the assertion documents the contract
        pytest.fail(f"{name} raised {type(exc).__name__}: {exc}")
    received = _received(events)
    assert received, "did not resync on the good frames"
    assert _telegram_of(received[-1]) == TELEGRAM


def test_rtlwmbus_capture_with_comments_and_failed_lines() -> None:
    good = "2e44333003020100071b7a634820252f2f0265840842658308820165950802fb1aae0142fb1aae018201fb1aa9012f"
    text = (
        f"T1;1;1;2019-04-03 19:00:42.000;97;148;88888888;0x{good}\n"
        "#2019-04-03T19:00:42Z\n"
        "T1;0;0;2021-12-29 13:50:57.000;11;108;99999999;0x294468505953629176f0a0009f29982b00e0982b\n"
        f"C1;1;1;2019-02-09 07:14:18.000;117;102;94740459;0x{good};extra\n"
    )
    events = RtlWmbusDriver().feed(text.encode())
    received = _received(events)
    assert [e.telegram.hex() for e in received] == [good, good]
    # PACKET_RSSI is rtl-wmbus's relative level, not dBm: its own field (issue 14), and the mode per telegram
    assert [(e.rssi, e.rssi_rel, e.link_mode) for e in received] == [(None, 97, "T1"), (None, 117, "C1")]
    assert [type(e).__name__ for e in events] == ["Received", "Garbage", "Received"]


def test_amb8465_transparent_mode() -> None:
    stream = bytes([len(TELEGRAM)]) + TELEGRAM[1:] + bytes([amb8465.rssi_raw(-70)])  # L counts the RSSI byte
    driver = Amb8465Driver(transparent=True)
    events = _received(driver.feed(b"\x00\x13" + stream + amb8465.encode_indication(TELEGRAMS[1], -61)))
    assert [e.telegram for e in events] == [TELEGRAM, TELEGRAMS[1]]
    assert events[0].rssi == -70
