"""OMS security primitives against the published vectors (RFC 4493, CEN/TR 17167 F.3, OMS Annex N)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sonocli.codecs import crypto
from sonocli.codecs.wmbus_link import normalise_frame
from sonocli.errors import MacError, UsageError, WrongKeyError

DATA = Path(__file__).parents[1] / "data" / "wmbus"
with (DATA / "checksum_crypto_vectors.tsv").open(encoding="utf-8") as _fh:
    CHECKS = {row["id"]: row for row in csv.DictReader(_fh, delimiter="\t")}

MASTER = bytes(range(16))
KMAC = bytes.fromhex("C9CD19FF5A9AAD5A6BBDA13BD2C4C7AD")
RFC_KEY = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")


def _hex(vector_id: str, column: str) -> bytes:
    text = CHECKS[vector_id][column].split()[0]
    return b"" if text == "(empty)" else bytes.fromhex(text)


@pytest.mark.parametrize("vector_id", ["aes_cmac_rfc4493_empty", "aes_cmac_rfc4493_16"])
def test_cmac_rfc4493(vector_id: str) -> None:
    assert crypto.aes_cmac(RFC_KEY, _hex(vector_id, "input_hex")) == _hex(vector_id, "expected_output_hex")


@pytest.mark.parametrize("vector_id", ["kdf_a_kenc", "kdf_a_kmac"])
def test_kdf_a(vector_id: str) -> None:
    raw = _hex(vector_id, "input_hex")
    assert crypto.kdf_a(MASTER, raw[0], raw[1:5], raw[5:9]) == _hex(vector_id, "expected_output_hex")


@pytest.mark.parametrize("vector_id", ["afl_mac_f3", "afl_mac_oms_short"])
def test_afl_mac(vector_id: str) -> None:
    raw = _hex(vector_id, "input_hex")
    expected = _hex(vector_id, "expected_output_hex")
    assert crypto.afl_mac(KMAC, raw[0], raw[1:5], None, raw[5:], 8) == expected
    crypto.verify_afl_mac(KMAC, raw[0], raw[1:5], None, raw[5:], expected)
    with pytest.raises(MacError, match="MAC mismatch"):
        crypto.verify_afl_mac(KMAC, raw[0], raw[1:5], None, raw[5:-1] + b"\x00", expected)


def test_mode5_iv_of_oms_n21() -> None:
    telegram = bytes.fromhex("2E4493157856341233037A2A0020255923C95AAA")
    assert crypto.mode5_iv(telegram[2:10], telegram[11]) == _hex("mode5_iv_oms_n21", "expected_output_hex")


def test_ell_counter_block() -> None:
    telegram = bytes.fromhex("35442D2C1131342733028D20E9603A1020")
    block = crypto.ell_counter_block(telegram[2:10], telegram[11], int.from_bytes(telegram[13:17], "little"), 0)
    assert block == _hex("ell_ctr_iv_exmbus_kam", "expected_output_hex")


def test_ctr_is_its_own_inverse_and_hr_bits_ignored() -> None:
    address = bytes.fromhex("2D2C113134273302")
    data = bytes(range(40))
    once = crypto.ell_ctr_crypt(MASTER, address, 0x20, 0x20103A60, data)
    assert once != data
    assert crypto.ell_ctr_crypt(MASTER, address, 0x20 | 0x12, 0x20103A60, once) == data


def test_cbc_blocks_partial_and_wrong_key() -> None:
    iv = bytes(16)
    plain = b"\x2f\x2f" + bytes(14)
    cipher = crypto.aes_cbc_encrypt(MASTER, iv, plain) + b"\x0c\xfd"
    assert crypto.decrypt_cbc_blocks(MASTER, iv, cipher, 1, what="t") == plain + b"\x0c\xfd"
    with pytest.raises(WrongKeyError, match="wrong key"):
        crypto.decrypt_cbc_blocks(bytes(16), iv, cipher, 1, what="t")


def test_full_mode5_decrypt_of_n21() -> None:
    telegram, _ = normalise_frame(
        bytes.fromhex("2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3")
    )
    key = bytes.fromhex("0102030405060708090A0B0C0D0E0F11")
    plain = crypto.decrypt_cbc_blocks(key, crypto.mode5_iv(telegram[2:10], 0x2A), telegram[15:], 2, what="n21")
    assert plain.hex().upper() == "2F2F0C1427048502046D32371F1502FD1700002F2F2F2F2F2F2F2F2F2F2F2F2F"


@pytest.mark.parametrize(
    ("text", "message"),
    [("0102", "32 hex digits"), ("zz" * 16, "not hexadecimal"), ("00" * 17, "32 hex digits")],
)
def test_parse_key_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        crypto.parse_key(text)


def test_parse_key_accepts_separators() -> None:
    assert crypto.parse_key("00:01:02:03-04 05 06 07 08090A0B0C0D0E0F") == MASTER
    assert crypto.parse_key(" ".join(f"0x{b:02X}" for b in MASTER)) == MASTER  # device_handle.cfg style
    assert crypto.parse_key("0x000102030405060708090a0b0c0d0e0f") == MASTER
    assert crypto.parse_key("0x00,0x01,0x02,0x03,0x04,0x05,0x06,0x07,0x08,0x09,0x0A,0x0B,0x0C,0x0D,0x0E,0x0F") == MASTER


def test_parse_key_error_names_the_parameter_and_count() -> None:
    with pytest.raises(UsageError) as info:
        crypto.parse_key("0x0102", name="--key")
    assert str(info.value) == "--key must be 32 hex digits (AES-128), got 4"
    with pytest.raises(UsageError) as info:
        crypto.parse_key("g" * 32, name="--key")
    assert str(info.value) == "--key 'gggggggggggggggggggggggggggggggg' is not hexadecimal ('g'); allowed: 0-9, A-F"


def test_des_mode2_legacy_vector_and_wrong_key() -> None:
    """EN 13757-3:2004 mode 2 (DES-CBC, zero IV): a public wmbusmeters test telegram (actislink).

    DES ignores the low bit of each key byte (parity), so the wrong key differs in a high bit.
    """
    from sonocli.codecs import crypto

    encrypted = bytes.fromhex("BBD1EAFD0222F871CB70DA16C78AE098")
    plain = crypto.decrypt_des_blocks(bytes.fromhex("0102030405060708"), bytes(8), encrypted, 1, what="t")
    assert plain[:8] == bytes.fromhex("2F2F0413E8030000")
    with pytest.raises(WrongKeyError):
        crypto.decrypt_des_blocks(bytes.fromhex("1102030405060708"), bytes(8), encrypted, 1, what="t")
