"""The wired segment simulator: slave-side link layer, selection, broadcasts, collisions, faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sonocli.codecs import mbus_link as L
from sonocli.errors import ConfigError
from sonocli.sim.wired import SimMeter, WiredSegment, collide, load_segment, segment_from_dict

CHAR = 11 / 2400


def _header(ident: str, man: int = 0x2C2D, version: int = 8, medium: int = 4) -> bytes:
    return bytes.fromhex(ident)[::-1] + man.to_bytes(2, "little") + bytes((version, medium, 1, 0, 0, 0))


def _meter(primary: int, ident: str, pages: int = 1, **kw: object) -> SimMeter:
    telegrams = []
    for page in range(pages):
        records = bytes((0x04, 0x13)) + (1000 + page).to_bytes(4, "little")
        if page < pages - 1:
            records += b"\x1f"
        telegrams.append((0x72, _header(ident) + records))
    return SimMeter(primary=primary, telegrams=telegrams, **kw)  # type: ignore[arg-type]


def _ask(seg: WiredSegment, request: bytes, now: float = 0.0) -> bytes:
    seg.receive(request, now)
    return seg.poll(1e9)


def test_snd_nke_acks_and_broadcast_ff_is_silent() -> None:
    seg = WiredSegment([_meter(1, "00000001"), _meter(2, "00000002")])
    assert _ask(seg, L.snd_nke(1)) == b"\xe5"
    assert _ask(seg, L.snd_nke(3)) == b""
    assert _ask(seg, L.snd_nke(0xFF)) == b""


def test_fcb_repeat_and_next_telegram() -> None:
    seg = WiredSegment([_meter(5, "00000005", pages=3)])
    _ask(seg, L.snd_nke(5))
    first = _ask(seg, L.req_ud2(5, True))
    again = _ask(seg, L.req_ud2(5, True))  # FCB not toggled: the same telegram again
    second = _ask(seg, L.req_ud2(5, False))
    third = _ask(seg, L.req_ud2(5, True))
    assert first == again
    assert first != second != third
    assert first.endswith(b"\x1f" + bytes((sum(first[4:-2]) & 0xFF, 0x16)))
    assert (1002).to_bytes(4, "little") in third
    _ask(seg, L.snd_nke(5))  # link reset: back to the first telegram
    assert _ask(seg, L.req_ud2(5, False)) == first


def test_select_with_wildcards_in_every_field() -> None:
    seg = WiredSegment([_meter(1, "12345678"), _meter(2, "12345679")])
    seg.meters[1].telegrams[0] = (0x72, _header("12345679", version=9))
    assert _ask(seg, L.select_secondary("12345678")) == b"\xe5"
    assert [m.selected for m in seg.meters] == [True, False]
    # a new select deselects the meter that does not match
    assert _ask(seg, L.select_secondary("1234567F", version=0x09)) == b"\xe5"
    assert [m.selected for m in seg.meters] == [False, True]
    assert _ask(seg, L.select_secondary("FFFFFFFF", manufacturer=0x2CFF)) != b""
    assert _ask(seg, L.select_secondary("FFFFFFFF", manufacturer=0x1111)) == b""
    assert not any(m.selected for m in seg.meters)
    _ask(seg, L.select_secondary("12345678"))
    reply = _ask(seg, L.req_ud2(0xFD, True))
    assert reply[5] == 1 and bytes.fromhex("78563412") in reply  # its own primary address in the A field
    assert _ask(seg, L.snd_nke(0xFD)) == b"\xe5"  # acknowledged, and the selection ends
    assert _ask(seg, L.req_ud2(0xFD, False)) == b""


def test_collisions_garble_and_aligned_identical_bytes_survive() -> None:
    assert collide([(40, b"\xe5"), (40, b"\xe5")]) == (40, b"\xe5")
    start, garbled = collide([(40, b"\xe5"), (45, b"\xe5")])
    assert start == 40 and garbled != b"\xe5"
    seg = WiredSegment([_meter(1, "00000001", delay_bits=20), _meter(2, "00000002", delay_bits=60)])
    reply = _ask(seg, L.req_ud2(0xFE, True))
    with pytest.raises(L.DecodeError):
        L.decode_frame(reply)


def test_response_timing_is_paced_at_the_baud_rate() -> None:
    seg = WiredSegment([_meter(1, "00000001", delay_bits=100)])
    seg.receive(L.snd_nke(1), 1.0)
    assert seg.next_event() == pytest.approx(1.0 + 100 / 2400 + CHAR)
    assert seg.poll(1.0 + 100 / 2400) == b""
    assert seg.poll(2.0) == b"\xe5"
    assert seg.next_event() is None


def test_faults_echo_silent_flaky_corrupt_truncated_foreign_baud() -> None:
    seg = WiredSegment([_meter(1, "00000001")], echo=True)
    assert _ask(seg, L.snd_nke(1)) == L.snd_nke(1) + b"\xe5"
    seg = WiredSegment([_meter(1, "00000001", silent=True)])
    assert _ask(seg, L.snd_nke(1)) == b""
    seg = WiredSegment([_meter(1, "00000001", flaky=1)])
    assert _ask(seg, L.snd_nke(1)) == b""
    assert _ask(seg, L.snd_nke(1)) == b"\xe5"
    seg = WiredSegment([_meter(1, "00000001", corrupt=True)])
    with pytest.raises(L.DecodeError, match="checksum"):
        L.decode_frame(_ask(seg, L.req_ud2(1, True)))
    seg = WiredSegment([_meter(1, "00000001", stop_after=7)])
    assert len(_ask(seg, L.req_ud2(1, True))) == 7
    seg = WiredSegment([_meter(1, "00000001")], baud=9600)
    assert _ask(seg, L.snd_nke(1)) == b""


def test_snd_ud_commands_are_acknowledged_and_recorded() -> None:
    seg = WiredSegment([_meter(7, "00000007")])
    meter = seg.meters[0]
    assert _ask(seg, L.get_all_data(7)) == b"\xe5"
    assert _ask(seg, L.freeze(7, 5)) == b"\xe5"
    assert _ask(seg, L.application_reset(7)) == b"\xe5"
    assert _ask(seg, L.snd_ud(7, 0x51, b"\x01\x7a\x21")) == b"\xe5"
    assert (meter.get_all_data, meter.frozen, meter.app_resets, meter.primary) == (1, [5], 1, 0x21)


def test_demo_segment_has_distinct_addresses_and_multi_telegram_meters() -> None:
    seg = load_segment("demo")
    assert len(seg.meters) == 12
    assert len({m.primary for m in seg.meters}) == 12
    assert len({m.address_bytes for m in seg.meters}) == 12
    assert sum(1 for m in seg.meters if len(m.telegrams) > 1) >= 3


def test_segment_files_toml_json_and_errors(tmp_path: Path) -> None:
    frame = L.encode(L.LongFrame(0x08, 1, 0x72, _header("11223344") + b"\x04\x13\x01\x00\x00\x00"))
    (tmp_path / "s.json").write_text(json.dumps({"meter": [{"primary": 9, "frame": frame.hex(), "id": "55667788"}]}))
    seg = load_segment(str(tmp_path / "s.json"))
    assert seg.meters[0].primary == 9 and seg.meters[0].secondary_id == "55667788"
    (tmp_path / "s.toml").write_text(f'baud = 9600\n[[meter]]\nprimary = 3\ntelegrams = ["{frame.hex()}"]\n')
    assert load_segment(str(tmp_path / "s.toml")).baud == 9600
    with pytest.raises(ConfigError, match="primary 300"):
        segment_from_dict({"meter": [{"primary": 300, "frame": frame.hex()}]}, "x")
    with pytest.raises(ConfigError, match="telegrams"):
        segment_from_dict({"meter": [{"primary": 1}]}, "x")
    with pytest.raises(ConfigError, match="not valid TOML"):
        (tmp_path / "bad.toml").write_text("[[meter]\n")
        load_segment(str(tmp_path / "bad.toml"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_segment(str(tmp_path / "missing.toml"))


def test_meters_in_step_merge_bit_by_bit_into_one_valid_looking_frame() -> None:
    """Same response delay: the wire ANDs the two telegrams; 87654321 and 87654322 read as 87654320."""
    def meter(ident: str) -> SimMeter:
        head = bytes.fromhex(ident)[::-1] + bytes.fromhex("2D2C0804") + bytes((0x11, 0, 0, 0))
        return SimMeter(primary=5, telegrams=[(0x72, head + bytes.fromhex("041301000000"))], delay_bits=30)

    seg = WiredSegment([meter("87654321"), meter("87654322")])
    assert _ask(seg, L.snd_nke(5)) == b"\xe5"
    frame, _ = L.decode_frame(_ask(seg, L.req_ud2(5, True)))
    assert isinstance(frame, L.LongFrame) and frame.data[:4] == bytes.fromhex("20436587")


def test_hex_ids_and_fixed_structure_meters_are_selected() -> None:
    fixed = SimMeter(primary=3, telegrams=[(0x73, bytes.fromhex("78563412") + bytes(12))])
    seg = WiredSegment([_meter(1, "1234ABCD"), _meter(2, "A234ABCE"), fixed])
    assert _ask(seg, L.snd_ud(0xFD, 0x52, bytes.fromhex("CDAB3412FFFFFFFF"))) == b"\xe5"
    assert [m.selected for m in seg.meters] == [True, False, False]
    assert _ask(seg, L.snd_ud(0xFD, 0x52, bytes.fromhex("FFFFFFAFFFFFFFFF"))) == b"\xe5"
    assert [m.selected for m in seg.meters] == [False, True, False]
    # a fixed-structure meter has no manufacturer, version or medium to compare: its ID selects it
    assert _ask(seg, L.snd_ud(0xFD, 0x52, bytes.fromhex("785634122D2C0804"))) == b"\xe5"
    assert [m.selected for m in seg.meters] == [False, False, True]
    assert fixed.fixed and fixed.secondary_id == "12345678"


def test_jitter_varies_each_answer_within_the_window_and_replays_by_seed() -> None:
    def starts(seed: int) -> list[float]:
        seg = WiredSegment([_meter(1, "00000001", delay_bits=20, jitter_bits=300)], seed=seed)
        out = []
        for n in range(20):
            seg.receive(L.snd_nke(1), float(n))
            event = seg.next_event()
            assert event is not None
            out.append(round((event - n - CHAR) * 2400))
            seg.poll(1e9)
        return out

    first = starts(1)
    assert len(set(first)) > 5 and all(20 <= d <= 330 for d in first)
    assert starts(1) == first and starts(2) != first


def test_segment_file_ids_may_be_hex_and_fixed_structure() -> None:
    frame = L.encode(L.LongFrame(0x08, 1, 0x72, _header("11223344") + b"\x04\x13\x01\x00\x00\x00"))
    fixed = "73" + "00000000" + "01000F0F" + "D2040000" + "00000000"
    seg = segment_from_dict(
        {"meter": [{"primary": 1, "frame": frame.hex(), "id": "1234ABCE", "jitter_bits": 40},
                   {"primary": 2, "telegrams": [fixed], "id": "12345678"}]},
        "x",
    )
    assert [m.secondary_id for m in seg.meters] == ["1234ABCE", "12345678"]
    assert seg.meters[0].jitter_bits == 40 and seg.meters[1].fixed
    with pytest.raises(ConfigError, match="8 hex digits"):
        segment_from_dict({"meter": [{"primary": 1, "frame": frame.hex(), "id": "12G4ABCE"}]}, "x")
