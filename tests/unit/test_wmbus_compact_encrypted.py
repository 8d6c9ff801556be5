"""Compact frames (CI 0x79/0x7B/0x73) under security mode 5: the 2F 2F check bytes come before the signature.

OMS Vol 2 puts 2F 2F at the start of every mode-5/7 encrypted part, also when the APL is a compact frame
(the Engelmann FAW telegram in wmbus_more.json is one). The decoder must skip them before reading the
format signature, else it looks up signature 2F2F and never finds the full frame it has seen.
The encrypted frame is built here with the `cryptography` package directly (AES-128-CBC, OMS IV).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from sonocli.codecs.wmbus import DecodeOptions, FormatCache, decode_telegram
from sonocli.codecs.wmbus_link import crc16_en13757

KEY = bytes(range(16))
HEADER = bytes.fromhex("442D2C7856341201 07".replace(" ", ""))  # C, M=KAM, id 12345678, version 1, water
RECORDS = [(bytes.fromhex("0413"), bytes.fromhex("39300000")), (bytes.fromhex("025A"), bytes.fromhex("D200"))]


def _frame(body: bytes) -> bytes:
    return bytes([len(HEADER) + len(body)]) + HEADER + body


def _full_frame() -> bytes:
    apl = b"".join(difvif + data for difvif, data in RECORDS)
    return _frame(bytes.fromhex("7A01000000") + apl)


def _compact_mode5(acc: int = 2) -> bytes:
    signature = crc16_en13757(b"".join(difvif for difvif, _ in RECORDS))
    full_crc = crc16_en13757(b"".join(difvif + data for difvif, data in RECORDS))
    plain = b"\x2f\x2f" + signature.to_bytes(2, "little") + full_crc.to_bytes(2, "little")
    plain += b"".join(data for _, data in RECORDS)
    plain += b"\x2f" * (-len(plain) % 16)
    blocks = len(plain) // 16
    frame_head = _frame(b"")[1:]  # C, M, A without L
    iv = frame_head[1:9] + bytes([acc]) * 8
    encryptor = Cipher(algorithms.AES(KEY), modes.CBC(iv)).encryptor()
    cipher = encryptor.update(plain) + encryptor.finalize()
    cfg = (5 << 8) | (blocks << 4)
    return _frame(bytes([0x7B, acc, 0x00]) + cfg.to_bytes(2, "little") + cipher)


def test_encrypted_compact_frame_expands_after_its_full_frame() -> None:
    cache = FormatCache()
    options = DecodeOptions(keys={"12345678": KEY}, cache=cache)
    decode_telegram(_full_frame(), options)
    telegram = decode_telegram(_compact_mode5(), options)
    assert telegram.security.state == "decrypted"
    assert [(v.unit, v.value) for v in telegram.records] == [("m³", 12.345), ("degree C", 21.0)]
