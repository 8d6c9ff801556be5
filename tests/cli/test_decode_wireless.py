"""`sonocli decode` on wireless telegrams: detection, --key, the wmbus JSON shape, security failures."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sonocli.cli.root import cli

N21 = "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3"
N21_KEY = "0102030405060708090A0B0C0D0E0F11"
LSE = "2C446532821851582C067AE1000000046D1906D9180C1334120000426CBF1C4C1300000000326CFFFF01FD7300"


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["decode", *args])
    return result.exit_code, result.stdout, result.stderr


def test_mode5_with_key_json() -> None:
    code, out, err = _run(N21, "--key", N21_KEY, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["kind"] == "wmbus"
    assert data["security"] == {"mode": 5, "decrypted": True, "state": "decrypted"}
    assert data["header"]["id"] == "12345678" and data["header"]["manufacturer"] == "ELS"
    assert data["header"]["access_number"] == 0x2A
    assert data["records"][0]["value"] == 28504.27
    assert data["records"][1]["value"].startswith("2008-05-31T23:50")
    assert data["more_records_follow"] is False


def test_without_key_prints_header_and_fails() -> None:
    code, out, err = _run(N21, "--json")
    assert code == 1
    assert json.loads(out)["header"]["id"] == "12345678"
    assert err.strip().splitlines() == ["sonocli: error: no key for meter 12345678 (ELS), security mode 5"]


def test_wrong_key_says_wrong_key() -> None:
    code, out, err = _run(N21, "--key", "00" * 16)
    assert code == 1
    assert "ELS-12345678-33" in out
    assert "wrong key" in err and "Traceback" not in err


def test_bad_key_text_is_usage_error() -> None:
    code, _, err = _run(N21, "--key", "01020304")
    assert code == 2 and "32 hex digits" in err
    code, _, err = _run(N21, "--key", "x" * 32)
    assert code == 2 and "not hexadecimal" in err


def test_plain_telegram_table() -> None:
    code, out, _ = _run(LSE)
    assert code == 0
    assert "LSE-58511882-2C" in out and "Volume" in out


def test_truncated_telegram_is_one_line() -> None:
    code, _, err = _run(N21[:60])
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "truncated" in err


def test_key_with_wired_frame_refused() -> None:
    code, _, err = _run("E5", "--key", N21_KEY)
    assert code == 2 and "wireless" in err
