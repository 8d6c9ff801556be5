"""The telegram pipeline on every stored vector: decryption, records, compact frames, failure kinds."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import pytest

from sonocli.codecs.wmbus import DecodeOptions, FormatCache, decode_telegram
from sonocli.codecs.wmbus_link import add_format_a_crcs, normalise_frame
from sonocli.errors import (
    DecodeError,
    MacError,
    NoKeyError,
    TruncatedError,
    UnsupportedSecurityError,
    WrongKeyError,
)

DATA = Path(__file__).parents[1] / "data" / "wmbus"
with (DATA / "wmbus_vectors.tsv").open(encoding="utf-8") as _fh:
    VECTORS = {row["id"]: row for row in csv.DictReader(_fh, delimiter="\t")}
FULL_FRAME_FIRST = {"exmbus_kam_compact_ell": "exmbus_ell_ctr_kam"}
KEYED = sorted(k for k, v in VECTORS.items() if v["key"])


def _raw(vector_id: str) -> bytes:
    return bytes.fromhex(VECTORS[vector_id]["hex_telegram"])


def _decode(vector_id: str, *, key: str | None = None, cache: FormatCache | None = None):  # type: ignore[no-untyped-def]
    row = VECTORS[vector_id]
    key_hex = row["key"] if key is None else key
    keys: dict[str, bytes] = {}
    cache = FormatCache() if cache is None else cache
    if key_hex:
        probe = decode_telegram(_raw(vector_id), DecodeOptions(decode_application=False, cache=cache))
        keys = {probe.meter.id: bytes.fromhex(key_hex), probe.link.address.id: bytes.fromhex(key_hex)}
    return decode_telegram(_raw(vector_id), DecodeOptions(keys=keys, cache=cache))


def _values(telegram) -> list[tuple[str, object, int]]:  # type: ignore[no-untyped-def]
    return [(v.description, v.value, v.storage) for v in telegram.records]


@pytest.mark.parametrize("vector_id", KEYED)
def test_every_keyed_vector_decrypts_and_decodes(vector_id: str) -> None:
    cache = FormatCache()
    if vector_id in FULL_FRAME_FIRST:  # a compact frame needs its full frame first
        _decode(FULL_FRAME_FIRST[vector_id], cache=cache)
    telegram = _decode(vector_id, cache=cache)
    assert telegram.security.error is None
    assert telegram.security.state == "decrypted"
    assert telegram.records, "no records decoded"


def test_oms_n21_published_plaintext_and_values() -> None:
    telegram = _decode("oms_n21_mode5")
    assert telegram.payload.hex().upper() == "2F2F0C1427048502046D32371F1502FD1700002F2F2F2F2F2F2F2F2F2F2F2F2F"
    assert telegram.security.mode == 5
    volume, stamp, flags = telegram.records
    assert volume.value == pytest.approx(28504.27) and volume.unit.startswith("m")
    assert stamp.raw == datetime(2008, 5, 31, 23, 50, tzinfo=stamp.raw.tzinfo)  # type: ignore[union-attr]
    assert flags.value == 0


def test_oms_n53_partial_encryption_uses_meter_address() -> None:
    telegram = _decode("oms_n53_partial_enc")
    assert telegram.payload.hex().upper() == "2F2F0B6E341200426CFE044B6E5634020CFD1078563412"
    assert telegram.meter.id == "55667788" and telegram.link.address.id == "11223344"
    values = [v.value for v in telegram.records]
    assert values[0] == 1234 and values[2] == 23456 and values[3] == 12345678
    assert telegram.records[1].storage == 1
    assert telegram.tpl is not None and telegram.tpl.status == 0x04


def test_cen_f3_mode7_with_mac() -> None:
    telegram = _decode("cen_f3_mode7_afl")
    assert telegram.security.mode == 7
    assert telegram.payload.hex().upper() == "2F2F0C1427048502046D32371F1502FD1700002F2F2F2F2F2F2F2F2F2F2F2F2F"
    assert telegram.records[0].value == pytest.approx(28504.27)
    assert telegram.afl is not None and telegram.afl.counter == 0xAB3


def test_mode7_mac_mismatch_is_its_own_error() -> None:
    raw = bytearray(_raw("cen_f3_mode7_afl"))
    raw[-1] ^= 0x01
    keys = {"12345678": bytes(range(16))}
    telegram = decode_telegram(bytes(raw), DecodeOptions(keys=keys))
    assert isinstance(telegram.security.error, MacError)
    assert telegram.security.state == "mac mismatch"
    assert "MAC mismatch" in str(telegram.security.error)


def test_zri_long_header_values() -> None:
    telegram = _decode("exmbus_zri_mode5_long")
    assert telegram.meter.id == "14639203"
    assert telegram.records[0].value == pytest.approx(67.329)


def test_kamstrup_ell_ctr_value_and_wrong_key() -> None:
    telegram = _decode("jmbus_kam_ell_ctr")
    assert pytest.approx(474.24) in [v.value for v in telegram.records]
    wrong = _decode("jmbus_kam_ell_ctr", key="4E5508544202058100DFEFA06B0934AF")
    assert isinstance(wrong.security.error, WrongKeyError)
    assert wrong.security.state == "wrong key"
    assert "wrong key" in str(wrong.security.error)
    assert wrong.link.address.id == "63452869"  # the header is still there to show


def test_mode5_wrong_key() -> None:
    telegram = _decode("oms_n21_mode5", key="00" * 16)
    assert isinstance(telegram.security.error, WrongKeyError)
    assert telegram.records == ()


def test_no_key() -> None:
    telegram = decode_telegram(_raw("exmbus_sontex868_mode5"))
    assert isinstance(telegram.security.error, NoKeyError)
    assert "no key for meter 28335519" in str(telegram.security.error)
    assert telegram.meter.manufacturer_text == "SON"


def test_unsupported_mode_13() -> None:
    raw = bytearray(_raw("jmbus_lse_plain"))
    raw[13:15] = (0x0D10).to_bytes(2, "little")  # CFG: mode 13, 1 block
    telegram = decode_telegram(bytes(raw), DecodeOptions(keys={"58511882": bytes(16)}))
    assert isinstance(telegram.security.error, UnsupportedSecurityError)
    assert "mode 13" in str(telegram.security.error)


def test_truncated_encrypted_telegram() -> None:
    raw = _raw("exmbus_sontex868_mode5")
    key = bytes.fromhex(VECTORS["exmbus_sontex868_mode5"]["key"])
    with pytest.raises(TruncatedError, match="telegram truncated: L-field"):  # L-field lies
        decode_telegram(raw[:60], DecodeOptions(keys={"28335519": key}))
    short = bytes([100]) + raw[1:101]  # L-field right, encrypted blocks cut: the header is still known
    telegram = decode_telegram(short, DecodeOptions(keys={"28335519": key}))
    assert telegram.security.state == "truncated" and telegram.meter.id == "28335519"
    assert isinstance(telegram.security.error, TruncatedError) and isinstance(telegram.security.error, DecodeError)
    assert "encrypted blocks need" in str(telegram.security.error) and telegram.records == ()


def test_plain_values_from_jmbus() -> None:
    assert _decode("jmbus_elv_temp").records[0].value == pytest.approx(-13.71)
    negative = _decode("jmbus_lug_negative_bcd").records[-1]
    assert negative.dif_vif == bytes.fromhex("0B5E") and negative.data == bytes.fromhex("4000F0")
    assert isinstance(negative.value, float) and negative.value < 0
    assert _decode("jmbus_las_hca_long").records[0].value == 110
    lansen = _decode("exmbus_lansen_g2_doc")
    assert lansen.records[-1].subunit == 1


def test_predecrypted_without_key_and_with_key() -> None:
    telegram = decode_telegram(_raw("jmbus_kam_full_1"))
    assert telegram.security.state == "predecrypted"
    assert len(telegram.records) == 13
    # A mode-5 telegram whose stick already decrypted it: plaintext 2F2F after the header.
    plain = _decode("oms_n21_mode5")
    predecrypted = plain.raw[:15] + plain.payload
    for keys in ({}, {"12345678": bytes.fromhex(VECTORS["oms_n21_mode5"]["key"])}):
        again = decode_telegram(predecrypted, DecodeOptions(keys=keys))
        assert again.security.state == "predecrypted"
        assert again.records[0].value == pytest.approx(28504.27)


@pytest.mark.parametrize(("full", "compact", "count"), [
    ("jmbus_kam_full_1", "jmbus_kam_compact_1", 13), ("jmbus_kam_full_2", "jmbus_kam_compact_2", 8)])
def test_compact_frame_after_its_full_frame(full: str, compact: str, count: int) -> None:
    cache = FormatCache(builtin=False)  # learning only: no built-in compact formats (sonocli.codecs.compact_formats)
    with pytest.raises(DecodeError, match="no full frame"):
        decode_telegram(_raw(compact), DecodeOptions(cache=cache))
    first = decode_telegram(_raw(full), DecodeOptions(cache=cache))
    second = decode_telegram(_raw(compact), DecodeOptions(cache=cache))
    assert len(first.records) == len(second.records) == count
    assert [r.dif_vif for r in first.records] == [r.dif_vif for r in second.records]
    assert second.app_ci == 0x79


def test_compact_signature_is_crc_of_difvif() -> None:
    cache = FormatCache(builtin=False)  # learning only: no built-in compact formats (sonocli.codecs.compact_formats)
    decode_telegram(_raw("jmbus_kam_full_1"), DecodeOptions(cache=cache))
    meter = decode_telegram(_raw("jmbus_kam_full_1"), DecodeOptions(decode_application=False)).meter
    assert cache.find(meter, 0x82DD) is not None


def _tpl_frame(tpl_hex: str) -> bytes:
    """A link header (C 0x44, M 0x0000, ID 00000000, version 0, type 0) in front of a TPL from its CI on."""
    body = bytes.fromhex("440000000000000000" + tpl_hex)
    return bytes([len(body)]) + body


def test_format_frame_teaches_the_compact_frame_its_records() -> None:
    # EN 13757-3:2018 G.5.2: format frame (CI 0x69: length, signature 0x3B31, DIF/VIFs 02 02 02 15 02 2A)
    cache = FormatCache()
    compact = _tpl_frame("79313B42A6D2042E163423")
    with pytest.raises(DecodeError, match="no full frame"):
        decode_telegram(compact, DecodeOptions(cache=cache))
    learnt = decode_telegram(_tpl_frame("6908313B02020215022A"), DecodeOptions(cache=cache))
    assert learnt.records == () and any("format 3B31 (3 records)" in w for w in learnt.warnings)
    values = decode_telegram(compact, DecodeOptions(cache=cache)).records
    assert [(v.dif_vif.hex(), v.raw) for v in values] == [("0202", 1234), ("0215", 5678), ("022a", 9012)]


@pytest.mark.parametrize(("tpl", "error"), [
    ("6908323B02020215022A", "signature 3B32 does not match its record headers"),
    ("69", "format frame truncated"),
    ("6905000002020D13", "cannot be read"),  # a variable-length record has no fixed place in a compact frame
])
def test_bad_format_frames_are_refused(tpl: str, error: str) -> None:
    with pytest.raises(DecodeError, match=error):
        decode_telegram(_tpl_frame(tpl), DecodeOptions(cache=FormatCache()))


def test_compact_frame_of_encrypted_ell() -> None:
    cache = FormatCache()
    key = bytes.fromhex("0102030405060708090A0B0C0D0E0F10")
    decode_telegram(_raw("exmbus_ell_ctr_kam"), DecodeOptions(cache=cache, keys={"27343111": key}))
    telegram = decode_telegram(_raw("exmbus_kam_compact_ell"), DecodeOptions(cache=cache, keys={"12345678": key}))
    assert telegram.security.state == "decrypted"
    assert len(telegram.records) == 5


def test_access_offer_without_application_data() -> None:
    telegram = decode_telegram(_raw("oms_n52_accnr"))
    assert telegram.link.c_field == 0x47
    assert telegram.meter.id == "55667788" and telegram.tpl is not None and telegram.tpl.acc == 0xFF
    assert telegram.records == ()


def test_manufacturer_ci_kept_raw() -> None:
    telegram = decode_telegram(_raw("rmja_ffb_2blk"))
    assert telegram.app_ci == 0xA0
    assert telegram.payload == bytes.fromhex("00010203040506")


def test_telegram_with_crcs_decodes_like_without() -> None:
    plain, _ = normalise_frame(_raw("jmbus_lse_plain"))
    a = decode_telegram(add_format_a_crcs(plain))
    b = decode_telegram(plain)
    assert _values(a) == _values(b)


# --- robustness ------------------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sonocli.errors import SonoError  # noqa: E402

_SEEDS = [normalise_frame(_raw(k))[0] for k in sorted(VECTORS)]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_project_errors(data: bytes) -> None:
    try:
        decode_telegram(data, DecodeOptions(keys={"12345678": bytes(16)}))
    except SonoError:
        pass


@settings(max_examples=300, deadline=None)
@given(index=st.integers(0, len(_SEEDS) - 1), pos=st.integers(0, 400), value=st.integers(0, 255),
       cut=st.integers(0, 400))
def test_mutated_vectors_raise_only_project_errors(index: int, pos: int, value: int, cut: int) -> None:
    data = bytearray(_SEEDS[index])
    data[pos % len(data)] = value
    keys = {"12345678": bytes(range(16)), "55667788": bytes(range(16)), "63452869": bytes(16)}
    try:
        decode_telegram(bytes(data[: max(cut, 11)]), DecodeOptions(keys=keys))
    except SonoError:
        pass


def test_ell_security_is_labelled_as_such() -> None:
    key = bytes.fromhex(VECTORS["exmbus_ell_ctr_kam"]["key"])
    telegram = decode_telegram(_raw("exmbus_ell_ctr_kam"), DecodeOptions(keys={"27343111": key}))
    assert (telegram.security.layer, telegram.security.mode, telegram.security.state) == ("ell", 1, "decrypted")
    assert telegram.payload.hex().upper().startswith("04050000000004FB8275")
    plain = decode_telegram(_raw("jmbus_lse_plain"))
    assert (plain.security.layer, plain.security.state) == ("tpl", "none")


def test_l_field_slightly_too_large_decodes_with_a_warning() -> None:
    telegram, _ = normalise_frame(_raw("jmbus_lse_plain"))
    lying = bytes([telegram[0] + 2]) + telegram[1:]
    result = decode_telegram(lying)
    assert len(result.records) == len(decode_telegram(telegram).records)
    assert result.warnings[0].startswith("L-field says")
    with pytest.raises(DecodeError, match="truncated"):
        decode_telegram(bytes([0xF0]) + telegram[1:])
    with pytest.raises(DecodeError, match="truncated"):  # the bytes present do not decode: the L error stands
        decode_telegram(bytes([telegram[0] + 2]) + telegram[1:-3])
