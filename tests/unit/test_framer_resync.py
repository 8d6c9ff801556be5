"""Dongle framers never lose a checked frame to noise (issue 13, item 10).

For every framer in sonocli/codecs/dongles/: random noise (biased towards start bytes and header-like
bytes, the case that used to drop an iM871A telegram about 1 in 1,200 splits), then one to three frames as
the stick sends them, fed in two pieces at EVERY split position. Every frame must come out, in order,
exactly as it comes out when the frames are fed alone. Frames carry their check: HCI CRC (iM871A), XOR
checksum (AMB8465), DLL CRCs (CUL format A/B, hex lines with CRCs), CRC_OK=1 (rtl-wmbus).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sonocli.codecs.dongles import DongleDriver, Received, amb8465, cul, hexlines, im871a, rtlwmbus
from sonocli.codecs.dongles.amb8465 import Amb8465Driver
from sonocli.codecs.dongles.cul import CulDriver
from sonocli.codecs.dongles.hexlines import HexLinesDriver
from sonocli.codecs.dongles.im871a import Im871aDriver
from sonocli.codecs.dongles.rtlwmbus import RtlWmbusDriver
from sonocli.codecs.wmbus_link import add_format_a_crcs, add_format_b_crcs, normalise_frame

DATA = Path(__file__).parents[1] / "data" / "wmbus"
with (DATA / "wmbus_vectors.tsv").open(encoding="utf-8") as _fh:
    TELEGRAMS = [normalise_frame(bytes.fromhex(r["hex_telegram"]))[0] for r in csv.DictReader(_fh, delimiter="\t")]
SHORT = sorted(TELEGRAMS, key=len)[:6]  # short ones keep every-split runs fast

Framing = tuple[Callable[[], DongleDriver], Callable[[bytes], bytes], bytes]
# (driver, the stick's bytes for a telegram, bytes that look like the start of a frame in this framing)
FRAMINGS: dict[str, Framing] = {
    "im871a": (Im871aDriver, lambda t: im871a.encode_indication(t, -61), b"\xa5\x02\x03\x82\x22\x42"),
    "im871a-ts": (lambda: Im871aDriver(timestamp=True), lambda t: im871a.encode_indication(t, -61, 99),
                  b"\xa5\x02\x03\xa2\x62\x22"),
    "amb8465": (Amb8465Driver, lambda t: amb8465.encode_indication(t, -61), b"\xff\x03\x80\x84\x8c"),
    "cul-A": (CulDriver, lambda t: cul.encode_indication(add_format_a_crcs(t), "A", -61), b"bY0123456789ABCDEF\r"),
    "cul-B": (CulDriver, lambda t: cul.encode_indication(add_format_b_crcs(t), "B", -61), b"bY0123456789ABCDEF\r"),
    "rtlwmbus": (RtlWmbusDriver, lambda t: rtlwmbus.encode_indication(t, "C1", 61), b"T1C;0x12\r"),
    "hex": (HexLinesDriver, lambda t: hexlines.encode_indication(add_format_a_crcs(t), -61), b"0123456789ABCDEF;#"),
}


def _telegrams(events: list[object]) -> list[bytes]:
    out = []
    for event in events:
        if isinstance(event, Received):
            try:
                out.append(normalise_frame(event.telegram, event.frame_format)[0])
            except Exception:
                out.append(b"!" + event.telegram)  # noise that passed as a frame: kept, so order is checked
    return out


def _noise(alphabet: bytes) -> st.SearchStrategy[bytes]:
    header_like = st.lists(st.sampled_from(list(alphabet)), max_size=12).map(bytes)
    return st.lists(st.one_of(st.binary(max_size=24), header_like), max_size=6).map(b"".join)


def _every_split(name: str, noise: bytes, frames: list[bytes]) -> None:
    factory, encode, _ = FRAMINGS[name]
    stream = noise + b"".join(encode(t) for t in frames)
    for cut in range(len(stream) + 1):
        driver = factory()
        got = _telegrams(driver.feed(stream[:cut]) + driver.feed(stream[cut:]))
        assert got[-len(frames):] == frames, f"{name}: split at {cut} of {stream.hex()} lost a frame: {got}"


@pytest.mark.parametrize("name", sorted(FRAMINGS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_noise_then_frames_at_every_split(name: str, data: st.DataObject) -> None:
    noise = data.draw(_noise(FRAMINGS[name][2]), label="noise")
    frames = data.draw(st.lists(st.sampled_from(SHORT), min_size=1, max_size=3), label="frames")
    _every_split(name, noise, frames)


@pytest.mark.parametrize("name", sorted(FRAMINGS))
def test_frames_alone_come_out_whole(name: str) -> None:
    factory, encode, _ = FRAMINGS[name]
    for telegram in TELEGRAMS:
        assert _telegrams(factory().feed(encode(telegram))) == [telegram]


def test_im871a_header_like_noise_before_a_frame() -> None:
    """The case measured on main: noise A5 02 03 LL without the CRC flag, claiming bytes into the frame."""
    frame = im871a.encode_indication(SHORT[0], -61)
    for length in range(0, 64):
        _every_split("im871a", bytes([0xA5, 0x02, 0x03, length]), [SHORT[0]])
    assert _telegrams(Im871aDriver().feed(b"\xa5\x02\x03\x20" + frame)) == [SHORT[0]]


def test_amb8465_noise_whose_checksum_passes_does_not_swallow_frames() -> None:
    """Found by the property test above: noise FF 80 36 … claims 58 bytes and its XOR byte happens to
    check, swallowing the two frames behind it; they are back to back and it ends inside the second."""
    stream = bytes.fromhex(
        "ff803699c10b42a4d7001e2a3137394a5d88898d8e97a7b7b9c5ff0312442d2c785634120132a0000102030405061a2dff03"
        "22442d2c3366000017168d208641ce0526747b1f0961178cbaf9a88e58714572ed551a72"
    )
    events = Amb8465Driver().feed(stream)
    assert [bytes(e.telegram[:4]) for e in events if isinstance(e, Received)] == [b"\x11D-,", b"!D-,"]
    for cut in range(len(stream) + 1):
        driver = Amb8465Driver()
        got = driver.feed(stream[:cut]) + driver.feed(stream[cut:])
        assert sum(isinstance(e, Received) for e in got) == 2, cut
