"""Link layer: CRC-16/EN-13757, frame formats A and B, L/C/M/A, ELL/AFL/TPL headers."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sonocli.codecs.wmbus_link import (
    Address,
    add_format_a_crcs,
    add_format_b_crcs,
    crc16_en13757,
    format_a_length,
    manufacturer_code,
    normalise_frame,
    parse_afl,
    parse_ell,
    parse_link_header,
    parse_tpl,
    strip_format_a,
    strip_format_b,
)
from sonocli.errors import DecodeError, TruncatedError

DATA = Path(__file__).parents[1] / "data" / "wmbus"


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


VECTORS = {row["id"]: row for row in _rows("wmbus_vectors.tsv")}
CHECKS = {row["id"]: row for row in _rows("checksum_crypto_vectors.tsv")}


@pytest.mark.parametrize(
    "vector_id",
    [k for k, v in CHECKS.items() if v["algorithm"].startswith(("CRC-16/EN", "format signature", "full-frame"))]
    + ["compact_format_signature_omnipower", "compact_fullframe_crc_omnipower"],
)
def test_crc_vectors(vector_id: str) -> None:
    row = CHECKS[vector_id]
    assert crc16_en13757(bytes.fromhex(row["input_hex"])) == int(row["expected_output_hex"][:4], 16)


def test_format_a_with_crcs_verifies_and_strips() -> None:
    frame = bytes.fromhex(VECTORS["rmja_ffa_with_crc"]["hex_telegram"])
    telegram, trailing = normalise_frame(frame)
    assert trailing == b""
    assert telegram[0] == len(telegram) - 1 == frame[0]
    assert telegram[10] == 0x7A and telegram[-1] == 0xAD
    assert len(telegram) - 10 == 69
    assert strip_format_a(frame) == telegram
    assert len(frame) == format_a_length(frame[0])


@pytest.mark.parametrize("vector_id", ["rmja_ffb_2blk", "rmja_ffb_3blk", "rmja_ffb_ell"])
def test_format_b_with_crcs(vector_id: str) -> None:
    frame = bytes.fromhex(VECTORS[vector_id]["hex_telegram"])
    telegram = strip_format_b(frame)
    assert normalise_frame(frame)[0] == telegram
    assert telegram[0] == len(telegram) - 1 == frame[0] - (2 if frame[0] < 128 else 4)
    assert add_format_b_crcs(telegram) == frame


def test_format_b_three_blocks_payload() -> None:
    telegram = strip_format_b(bytes.fromhex(VECTORS["rmja_ffb_3blk"]["hex_telegram"]))
    assert telegram[10:] == bytes([0xA0]) + bytes(range(0x00, 0x74))


@pytest.mark.parametrize("vector_id", sorted(VECTORS))
def test_crc_round_trip_every_vector(vector_id: str) -> None:
    telegram, _ = normalise_frame(bytes.fromhex(VECTORS[vector_id]["hex_telegram"]))
    assert normalise_frame(add_format_a_crcs(telegram), "A")[0] == telegram
    assert normalise_frame(add_format_b_crcs(telegram), "B")[0] == telegram
    assert normalise_frame(add_format_a_crcs(telegram))[0] == telegram


def test_bad_crc_is_reported_with_offset() -> None:
    frame = bytearray(bytes.fromhex(VECTORS["rmja_ffa_with_crc"]["hex_telegram"]))
    frame[20] ^= 0x01
    with pytest.raises(DecodeError, match="CRC mismatch"):
        normalise_frame(bytes(frame), "A")
    frame_b = bytearray(bytes.fromhex(VECTORS["rmja_ffb_2blk"]["hex_telegram"]))
    frame_b[12] ^= 0x40
    with pytest.raises(DecodeError, match="format B CRC mismatch"):
        strip_format_b(bytes(frame_b))


def test_length_that_lies() -> None:
    telegram = bytes.fromhex(VECTORS["jmbus_lse_plain"]["hex_telegram"])
    with pytest.raises(DecodeError, match="truncated"):
        normalise_frame(bytes([0xF0]) + telegram[1:])
    with pytest.raises(DecodeError, match="too small"):
        normalise_frame(bytes([0x05]) + telegram[1:])
    with pytest.raises(DecodeError, match="too short"):
        normalise_frame(telegram[:8])


def test_trailing_rssi_byte_is_split_off() -> None:
    telegram, trailing = normalise_frame(bytes.fromhex(VECTORS["jmbus_lug_energy"]["hex_telegram"]))
    assert trailing == b"\x6e"
    assert len(telegram) == telegram[0] + 1


def test_link_header_fields() -> None:
    telegram, _ = normalise_frame(bytes.fromhex(VECTORS["oms_n21_mode5"]["hex_telegram"]))
    head = parse_link_header(telegram)
    assert head.c_field == 0x44
    assert head.address.manufacturer_text == "ELS"
    assert head.address.id == "12345678"
    assert (head.address.version, head.address.device_type) == (0x33, 0x03)


def test_manufacturer_letters() -> None:
    assert manufacturer_code(0x2C2D) == "KAM"
    assert manufacturer_code(0x0421) == "AAA"
    assert manufacturer_code(0x6B5A) == "ZZZ"
    assert manufacturer_code(0x0000) == "???"


def test_non_bcd_id_prints_as_hex() -> None:
    assert Address.from_bytes(bytes.fromhex("01067CC30B000107")).id == "000BC37C"


def test_ell_afl_tpl_of_mode7_example() -> None:
    telegram, _ = normalise_frame(bytes.fromhex(VECTORS["cen_f3_mode7_afl"]["hex_telegram"]))
    ell, pos = parse_ell(telegram, 10)
    assert (ell.ci, ell.cc, ell.acc) == (0x8E, 0x80, 0x75)
    assert ell.address2 is not None and ell.address2.manufacturer_text == "XYZ"
    assert ell.address2.id == "33445566"
    afl, pos = parse_afl(telegram, pos)
    assert afl.fcl == 0x2C00 and afl.mcl == 0x25 and afl.counter == 0x0AB3
    assert afl.mac == bytes.fromhex("AF5D74DF73A600D9")
    tpl, pos = parse_tpl(telegram, pos)
    assert tpl.ci == 0x72 and tpl.security_mode == 7 and tpl.cfg_ext == 0x10
    assert tpl.address is not None and tpl.address.id == "12345678" and tpl.address.manufacturer_text == "ELS"
    assert tpl.acc == 0x75 and tpl.encrypted_blocks == 2


def test_ell_ii_session_number() -> None:
    telegram, _ = normalise_frame(bytes.fromhex(VECTORS["exmbus_ell_ctr_kam"]["hex_telegram"]))
    ell, pos = parse_ell(telegram, 10)
    assert ell.sn == 0x20103A60 and ell.encryption == 1 and ell.acc == 0xE9
    assert pos == 10 + 1 + 6  # the payload CRC follows


def test_fragmented_afl_is_refused() -> None:
    data = bytes([0x90, 0x02]) + (0x4001).to_bytes(2, "little") + b"\x7a"
    with pytest.raises(DecodeError, match="fragment"):
        parse_afl(data, 0)


def test_ell_v_refused_cleanly() -> None:
    with pytest.raises(DecodeError, match="ELL-V"):
        parse_ell(bytes([0x86, 0, 0, 0]), 0)


def test_short_and_no_header_tpl() -> None:
    tpl, pos = parse_tpl(bytes.fromhex("7A2A002025"), 0)
    assert (tpl.acc, tpl.security_mode, tpl.encrypted_blocks, pos) == (0x2A, 5, 2, 5)
    tpl, pos = parse_tpl(bytes.fromhex("78"), 0)
    assert tpl.acc is None and pos == 1
    with pytest.raises(DecodeError):
        parse_tpl(bytes.fromhex("7A2A"), 0)


def test_auto_does_not_mistake_a_broken_format_a_frame_for_a_stripped_one() -> None:
    frame = bytearray(bytes.fromhex(VECTORS["rmja_ffa_with_crc"]["hex_telegram"]))
    frame[11] ^= 0x01  # block 1 CRC broken
    with pytest.raises(DecodeError, match="CRC mismatch"):
        normalise_frame(bytes(frame))


def test_auto_refuses_a_format_a_frame_cut_short() -> None:
    frame = bytes.fromhex(VECTORS["rmja_ffa_with_crc"]["hex_telegram"])
    length = frame[0]
    assert len(frame) == format_a_length(length)
    # one and five bytes short: the block-1 CRC says format A, so no CRC-less reading
    cuts = [cut for cut in (frame[:-1], frame[:-5]) if len(cut) > length + 3]
    assert len(cuts) == 2
    for cut in cuts:
        with pytest.raises(TruncatedError, match="format A frame truncated"):
            normalise_frame(cut)
    # a CRC-less telegram with an RSSI and an LQI byte after it is still taken as such
    stripped, _ = normalise_frame(frame)
    assert normalise_frame(stripped + b"\xc8\x80") == (stripped, b"\xc8\x80")
