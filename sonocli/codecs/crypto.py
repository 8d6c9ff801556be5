"""OMS security: TPL modes 5 and 7, the AFL MAC, ELL AES-CTR, and legacy DES modes 2 and 3.

``cryptography`` is imported inside the functions: CLI start-up must not pay for it (DESIGN.md). Each
failure is its own error type, so the receiver can count "wrong key" apart from "MAC mismatch".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sonocli.errors import (
    DecodeError,
    MacError,
    TruncatedError,
    UnsupportedSecurityError,
    UsageError,
    WrongKeyError,
)

KEY_HINT = "a key is 16 bytes: 32 hex digits such as 1AC8BD4C1421E45C4D11456AC0467A83, or '0x1A 0xC8 …'"


def parse_key(text: str, *, name: str = "key") -> bytes:
    """A 16-byte AES key from 32 hex digits: spaces, colons, commas and dashes allowed, and a 0x before each
    byte or before the whole key (device_handle.cfg and the web page write keys as '0x82 0xB0 ...')."""
    tokens = [t for t in text.replace(":", " ").replace("-", " ").replace(",", " ").split() if t]
    cleaned = "".join(t[2:] if t[:2] in ("0x", "0X") else t for t in tokens)
    if any(ch not in "0123456789abcdefABCDEF" for ch in cleaned):
        bad = next(ch for ch in cleaned if ch not in "0123456789abcdefABCDEF")
        raise UsageError(f"{name} {text!r} is not hexadecimal ({bad!r}); allowed: 0-9, A-F", hint=KEY_HINT)
    if len(cleaned) != 32:
        raise UsageError(f"{name} must be 32 hex digits (AES-128), got {len(cleaned)}", hint=KEY_HINT)
    return bytes.fromhex(cleaned)


def _cipher(key: bytes, mode: Any) -> Any:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    return Cipher(algorithms.AES(key), mode)


def aes_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import modes

    decryptor = _cipher(key, modes.CBC(iv)).decryptor()
    return bytes(decryptor.update(data) + decryptor.finalize())


def aes_cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import modes

    encryptor = _cipher(key, modes.CBC(iv)).encryptor()
    return bytes(encryptor.update(data) + encryptor.finalize())


def aes_ecb(key: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import modes

    encryptor = _cipher(key, modes.ECB()).encryptor()
    return bytes(encryptor.update(data) + encryptor.finalize())


def aes_cmac(key: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import algorithms
    from cryptography.hazmat.primitives.cmac import CMAC

    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return bytes(mac.finalize())


def mode5_iv(address_raw: bytes, acc: int) -> bytes:
    """IV of security mode 5: M(2) A(6) as sent, then the access number eight times."""
    return bytes(address_raw[:8]) + bytes([acc]) * 8


def decrypt_cbc_blocks(key: bytes, iv: bytes, data: bytes, blocks: int, *, what: str) -> bytes:
    """Decrypt the first ``blocks`` 16-byte blocks (0 = as many whole blocks as there are), keep the rest.

    The plaintext must start with 2F2F; anything else means the key is wrong.
    """
    return _decrypt_checked(aes_cbc_decrypt, key, iv, data, blocks, 16, what)


def _decrypt_checked(
    decrypt: Callable[[bytes, bytes, bytes], bytes],
    key: bytes,
    iv: bytes,
    data: bytes,
    blocks: int,
    cipher_block: int,
    what: str,
) -> bytes:
    """The CFG's ``blocks`` count 16-byte units for every cipher; 0 means all whole cipher blocks."""
    size = blocks * 16 if blocks else len(data) - len(data) % cipher_block
    if size == 0:
        raise DecodeError(f"{what}: no encrypted block in the telegram")
    if len(data) < size:
        need = f"{blocks} encrypted blocks need {size} bytes"
        raise TruncatedError(f"{what}: telegram truncated, {need}, got {len(data)}")
    plain = decrypt(key, iv, data[:size])
    if plain[:2] != b"\x2f\x2f":
        raise WrongKeyError(f"wrong key for {what}: decrypted data does not start with 2F2F")
    return plain + data[size:]


def des_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """Single DES in CBC mode, for the legacy security modes 2 and 3 of EN 13757-3:2004.

    OMS forbids DES, but old meters still send it. cryptography has no single DES; TripleDES with one
    8-byte key (K1 = K2 = K3) is single DES by construction.
    """
    if len(key) != 8:
        raise UnsupportedSecurityError(f"DES needs an 8-byte key, got {len(key)} bytes")
    try:
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    except ImportError:  # cryptography < 43
        from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES  # type: ignore[attr-defined,no-redef,unused-ignore]
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    decryptor = Cipher(TripleDES(key * 3), modes.CBC(iv)).decryptor()
    return bytes(decryptor.update(data) + decryptor.finalize())


def decrypt_des_blocks(key: bytes, iv: bytes, data: bytes, blocks: int, *, what: str) -> bytes:
    """Modes 2/3: the CFG counts 16-byte blocks as for AES (two DES blocks each); 2F2F checks the key."""
    return _decrypt_checked(des_cbc_decrypt, key, iv, data, blocks, 8, what)


def kdf_a(master_key: bytes, derivation: int, counter: bytes, meter_id: bytes) -> bytes:
    """OMS KDF-A: AES-CMAC(Kmaster, DC || counter(4) || ID(4) || 07*7)."""
    return aes_cmac(master_key, bytes([derivation]) + counter[:4] + meter_id[:4] + b"\x07" * 7)


def afl_mac(kmac: bytes, mcl: int, counter: bytes, ml: int | None, message: bytes, length: int) -> bytes:
    """AFL MAC: the first ``length`` bytes of CMAC(Kmac, MCL || MCR || [ML] || message after the AFL)."""
    head = bytes([mcl]) + counter
    if ml is not None:
        head += ml.to_bytes(2, "little")
    return aes_cmac(kmac, head + message)[:length]


def verify_afl_mac(kmac: bytes, mcl: int, counter: bytes, ml: int | None, message: bytes, mac: bytes) -> None:
    expected = afl_mac(kmac, mcl, counter, ml, message, len(mac))
    if expected != mac:
        raise MacError(f"MAC mismatch: AFL MAC is {mac.hex().upper()}, computed {expected.hex().upper()} (wrong key?)")


def ell_counter_block(address_raw: bytes, cc: int, sn: int, block: int) -> bytes:
    """ELL AES-CTR counter: M A (DLL) | CC without the H and R bits | SN | FN=0 | block counter."""
    head = bytes(address_raw[:8]) + bytes([cc & ~0x12 & 0xFF]) + sn.to_bytes(4, "little")
    return head + b"\x00\x00" + bytes([block & 0xFF])


def ell_ctr_crypt(key: bytes, address_raw: bytes, cc: int, sn: int, data: bytes) -> bytes:
    """AES-CTR as the ELL uses it (encrypting and decrypting are the same operation)."""
    blocks = (len(data) + 15) // 16
    counters = b"".join(ell_counter_block(address_raw, cc, sn, i) for i in range(blocks))
    stream = aes_ecb(key, counters)
    return bytes(a ^ b for a, b in zip(data, stream, strict=False))
