"""Diehl "real data" (CI 7Ah, manufacturer-specific security modes 16-31): LFSR with the meter's key or
Diehl's default keys, the CFG checksum, and data a logger decrypted already.

Telegrams: wmbusmeters' sharky and hydrus driver tests (drivers/src/{sharky,hydrus}.xmq @ 4dedd717,
GPL-3.0-or-later, quoted as test data; tests/data/drivers/README.md), with the values they state.
"""

from __future__ import annotations

from sonocli.codecs.wmbus import DecodeOptions, decode_telegram

SHARKY = (  # Diehl Sharky 775 heat meter, security mode 21, encrypted with a Diehl default key (NOKEY)
    "534424232004256092687A370045752235854DEEEA5939FAD81C25FEEF5A23C38FB9168493C563F08DB10BAF87F660FBA912"
    "96BA2397E8F4220B86D3A192FB51E0BFCF24DCE72118E0C75A9E89F43BDFE370824B"
)
HYDRUS_RS = "1E4424238B07797389607A8F00107D041312170100426CBF23441344100100"  # mode 29, logged decrypted


def _values(telegram: object) -> dict[tuple[str, int, int], object]:
    """(description, tariff, storage) -> value of the records of subunit 0."""
    records = telegram.records  # type: ignore[attr-defined]
    return {(v.description, v.tariff, v.storage): v.value for v in records if v.subunit == 0}


def test_sharky_real_data_decodes_with_the_default_keys() -> None:
    telegram = decode_telegram(bytes.fromhex(SHARKY))
    assert telegram.meter.id == "68926025" and telegram.security.state == "decrypted"
    values = _values(telegram)
    assert values[("Energy", 0, 0)] == 2651000  # Wh: the stated 2651 kWh
    assert values[("Volume", 0, 0)] == 150.347 and values[("Volume", 2, 0)] == 0.018
    assert values[("Flow temperature", 0, 0)] == 42.3 and values[("Return temperature", 0, 0)] == 28.1
    # a wrong key in the meter list does not hide the default keys
    wrong = decode_telegram(bytes.fromhex(SHARKY), DecodeOptions(keys={"68926025": bytes(16)}))
    assert wrong.security.state == "decrypted" and _values(wrong) == values


def test_data_decrypted_by_the_logger_is_taken_as_it_is_with_a_warning() -> None:
    telegram = decode_telegram(bytes.fromhex(HYDRUS_RS))
    assert telegram.security.state == "predecrypted" and telegram.security.mode == 29
    assert _values(telegram)[("Volume", 0, 0)] == 71.442
    assert any("Diehl real data (security mode 29)" in w and "plaintext" in w for w in telegram.warnings)


def test_a_damaged_real_data_telegram_is_refused_naming_the_meter() -> None:
    damaged = bytearray(bytes.fromhex(SHARKY))
    damaged[30] ^= 0x5A  # one byte of the encrypted data: the checksum no longer matches
    telegram = decode_telegram(bytes(damaged))
    assert telegram.security.state == "wrong key" and not telegram.records
    message = str(telegram.security.error)
    assert "68926025" in message and "security mode 21" in message and "checksum" in message
    assert "\n" not in message
