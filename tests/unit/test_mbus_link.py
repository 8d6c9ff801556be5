"""EN 13757-2 link layer: frames, checks, the stream decoder on real frames in any pieces, master encoders."""

from __future__ import annotations

from pathlib import Path

import pytest

from sonocli.codecs import mbus_link as ml
from sonocli.errors import DecodeError, NeedMoreData, UsageError

FRAMES = Path(__file__).resolve().parents[1] / "data" / "libmbus" / "test-frames"


def _real_frames() -> list[bytes]:
    return [bytes.fromhex(p.read_text().strip()) for p in sorted(FRAMES.glob("*.hex"))]


REAL = _real_frames()


def test_there_are_76_real_frames() -> None:
    assert len(REAL) == 76


@pytest.mark.parametrize(
    "frame",
    [
        ml.Ack(),
        ml.ShortFrame(0x5B, 0x01),
        ml.ControlFrame(0x53, 0xFE, 0x50),
        ml.LongFrame(0x08, 0x05, 0x72, bytes(range(40))),
        ml.LongFrame(0x08, 0xFF, 0x78, bytes(252)),
    ],
)
def test_encode_decode_round_trip(frame: ml.Frame) -> None:
    wire = ml.encode(frame)
    assert ml.frame_length(wire) == len(wire)
    assert ml.decode_frame(wire + b"\x00\x01") == (frame, len(wire))


def test_long_frame_with_no_data_is_a_control_frame() -> None:
    wire = ml.encode(ml.LongFrame(0x53, 0x01, 0x50, b""))
    assert wire == bytes.fromhex("6803036853015 0a416".replace(" ", ""))
    assert ml.decode_frame(wire)[0] == ml.ControlFrame(0x53, 0x01, 0x50)


def test_too_long_data_is_refused() -> None:
    with pytest.raises(UsageError):
        ml.encode(ml.LongFrame(0x08, 1, 0x72, bytes(253)))


@pytest.mark.parametrize("wire", REAL[:10])
def test_real_frames_decode(wire: bytes) -> None:
    frame, used = ml.decode_frame(wire)
    assert used == len(wire)
    assert isinstance(frame, ml.LongFrame)
    assert ml.encode(frame) == wire


@pytest.mark.parametrize(
    ("wire", "offset", "words"),
    [
        ("107b017d16", 3, "checksum"),
        ("107b017c17", 4, "stop byte"),
        ("6803046853fe50a116", 2, "L-fields differ"),
        ("6803036953fe50a116", 3, "second start"),
        ("68030368 53fe50a216", 7, "checksum"),
        ("68030368 53fe50a115", 8, "stop byte"),
        ("6802026853fe16", 1, "below 3"),
        ("42", 0, "does not start a frame"),
    ],
)
def test_invalid_frames_name_the_offset(wire: str, offset: int, words: str) -> None:
    with pytest.raises(DecodeError) as err:
        ml.decode_frame(bytes.fromhex(wire.replace(" ", "")))
    assert not isinstance(err.value, NeedMoreData)
    assert err.value.offset == offset
    assert words in str(err.value)


@pytest.mark.parametrize("cut", [0, 1, 2, 3, 4, 8, 20])
def test_truncated_frames_need_more(cut: int) -> None:
    wire = REAL[0]
    with pytest.raises(NeedMoreData):
        ml.decode_frame(wire[:cut])
    assert ml.frame_length(wire[:cut]) == (None if cut < 2 else len(wire))


def _stream(chunks: list[bytes]) -> tuple[list[ml.Frame], int]:
    dec = ml.StreamDecoder()
    out: list[ml.Frame] = []
    for chunk in chunks:
        out += dec.feed(chunk)
    return out, dec.skipped


def _expected() -> list[ml.Frame]:
    return [ml.decode_frame(w)[0] for w in REAL]


def test_stream_whole() -> None:
    assert _stream(REAL) == (_expected(), 0)


def test_stream_halves() -> None:
    chunks = [part for w in REAL for part in (w[: len(w) // 2], w[len(w) // 2 :])]
    assert _stream(chunks) == (_expected(), 0)


def test_stream_byte_by_byte() -> None:
    blob = b"".join(REAL)
    assert _stream([blob[i : i + 1] for i in range(len(blob))]) == (_expected(), 0)


def test_stream_after_garbage_and_broken_frames() -> None:
    garbage = b"\x00\x68\x99\x10\xff\x16"  # includes start bytes that do not begin a valid frame
    broken = bytearray(REAL[1])
    broken[-2] ^= 0xFF  # wrong checksum: skipped as garbage
    chunks = [garbage, bytes(broken), *REAL, b"\xe5"]
    frames, skipped = _stream(chunks)
    assert frames == [*_expected(), ml.Ack()]
    assert skipped == len(garbage) + len(broken)


def test_find_frame_says_need_more_without_blocking() -> None:
    wire = REAL[2]
    assert ml.find_frame(b"\x01\x02" + wire[:10]) == (None, 2)
    frame, used = ml.find_frame(b"\x01\x02" + wire + b"\x10")
    assert frame == ml.decode_frame(wire)[0]
    assert used == len(wire) + 2
    assert ml.find_frame(b"") == (None, 0)
    assert ml.find_frame(b"\x00\x00") == (None, 2)


def test_master_encoders() -> None:
    assert ml.snd_nke(0xFE) == bytes.fromhex("1040fe3e16")
    assert ml.req_ud2(0x01, fcb=True) == bytes.fromhex("107b017c16")
    assert ml.req_ud2(0x01, fcb=False) == bytes.fromhex("105b015c16")
    assert ml.req_ud1(0x05, fcb=False) == bytes.fromhex("105a055f16")
    assert ml.snd_ud(0x01, 0x51, b"\x01\x02", fcb=True) == bytes.fromhex("68050568730151010 2c816".replace(" ", ""))
    assert ml.application_reset(0x01) == bytes.fromhex("680303685301 50a416".replace(" ", ""))
    assert ml.application_reset(0x01, 0x10).hex() == "6804046853015010b416"
    assert ml.get_all_data(3).hex(" ") == "68 05 05 68 53 03 51 7f 7e a4 16"
    assert ml.get_all_data_ext2(3).hex(" ") == "68 04 04 68 53 03 51 7f 26 16"


def test_select_secondary_with_wildcards() -> None:
    wire = ml.select_secondary("1234FFFF", manufacturer=0x2C2D, version=0xFF, medium=0x07)
    frame, _ = ml.decode_frame(wire)
    assert frame == ml.LongFrame(0x53, 0xFD, 0x52, bytes.fromhex("ffff3412 2d2c ff 07".replace(" ", "")))
    with pytest.raises(UsageError):
        ml.select_secondary("1234FFF")
    with pytest.raises(UsageError):
        ml.select_secondary("1234FFFA")


def test_freeze_uses_storage_dif_and_freeze_action_vife() -> None:
    frame, _ = ml.decode_frame(ml.freeze(0x01, 0))
    assert frame == ml.LongFrame(0x53, 0x01, 0x51, bytes.fromhex("00fe0b"))
    frame, _ = ml.decode_frame(ml.freeze(0x01, 5))
    # storage 5 = LSB 1 in the DIF, then 2 in the first DIFE
    assert frame == ml.LongFrame(0x53, 0x01, 0x51, bytes.fromhex("c002fe0b"))


def test_decode_select_and_wildcard_matching() -> None:
    frame, _ = ml.decode_frame(ml.select_secondary("1234FFFF", manufacturer=0x2C2D, medium=0x07))
    assert isinstance(frame, ml.LongFrame)
    sel = ml.decode_select(frame.data)
    assert sel == ml.Selection("1234FFFF", 0x2C2D, 0xFF, 0x07)
    assert sel.matches("12345678", 0x2C2D, 1, 0x07)
    assert not sel.matches("12355678", 0x2C2D, 1, 0x07)
    assert not sel.matches("12345678", 0x2C2E, 1, 0x07)
    assert not sel.matches("12345678", 0x2C2D, 1, 0x06)
    assert ml.decode_select(bytes.fromhex("ffffffffffffffff")).matches("00000001", 1, 2, 3)
    with pytest.raises(DecodeError):
        ml.decode_select(b"\x00" * 7)
