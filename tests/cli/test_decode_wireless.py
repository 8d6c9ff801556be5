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
    code, _, err = _run(N21, "--key", "")
    assert code == 2 and err.strip() == (
        "sonocli: error: --key must be 32 hex digits (AES-128), got 0 (hint: a key is 16 bytes: 32 hex digits "
        "such as 1AC8BD4C1421E45C4D11456AC0467A83, or '0x1A 0xC8 …')"
    )


def test_plain_telegram_table() -> None:
    code, out, _ = _run(LSE)
    assert code == 0
    assert "LSE-58511882-2C" in out and "Volume" in out


def test_truncated_telegram_is_one_line() -> None:
    code, _, err = _run(N21[:60], "--key", N21_KEY)
    assert code == 1  # a security/reception failure kind (issue 4), not a usage error
    assert err.strip().splitlines() == [
        "sonocli: error: telegram truncated: L-field says 47 bytes, got 30 (at byte 30)"
    ]


def test_truncated_encrypted_blocks_print_header_and_fail() -> None:
    short = bytes.fromhex(N21)[:40]
    code, out, err = _run((bytes([len(short) - 1]) + short[1:]).hex(), "--key", N21_KEY, "--json")
    assert code == 1
    data = json.loads(out)
    assert data["header"]["id"] == "12345678"
    assert data["security"]["state"] == "truncated" and data["security"]["decrypted"] is False
    assert err.strip().splitlines() == [
        "sonocli: error: meter 12345678 (mode 5): telegram truncated, 2 encrypted blocks need 32 bytes, got 25"
    ]


def test_mac_mismatch_and_unsupported_mode_exit_1() -> None:
    f3 = (
        "530824484433221103378E80753A63665544330A31900F002C25B30A0000AF5D74DF73A600D972785634129315330375002007"
        "109058475F4BC91DF878B80A1B0F98B629024AAC727942BFC549233C0140829B93"
    )
    code, _, err = _run(f3, "--key", "000102030405060708090A0B0C0D0E0E")
    assert code == 1 and err.startswith("sonocli: error: meter 12345678: MAC mismatch: AFL MAC is AF5D74DF73A600D9")
    code, _, err = _run(f3, "--key", "000102030405060708090A0B0C0D0E0F")
    assert code == 0, err
    mode13 = N21[:28] + "0D" + N21[30:]  # CFG high byte: mode 13
    code, out, err = _run(mode13, "--key", N21_KEY)
    assert code == 1 and "security mode 13" in out
    assert err.strip() == ("sonocli: error: security mode 13 is not supported (supported: 0, 2, 3, 5, 7; 16-31 in "
                           "Diehl real-data frames)")


def test_key_with_wired_frame_refused() -> None:
    code, _, err = _run("E5", "--key", N21_KEY)
    assert code == 2 and "wireless" in err


def test_text_title_leaves_out_what_the_telegram_does_not_have() -> None:
    """Format B frame with CRCs, manufacturer CI 0xA0: no access number, payload kept raw."""
    ffb = "13442D2C785634120132A000010203040506C3C0"  # rmja/wmbus format B example (tests/data/wmbus)
    code, out, err = _run(ffb)
    assert code == 0, err
    title = "KAM-12345678-01 Unidirectional repeater, 0x44 SND_NR, CI 0xA0, security mode 0 (none)"
    assert out.splitlines()[0] == title
    assert out.splitlines()[1] == "payload (CI 0xA0): 00010203040506"


def test_key_for_a_plain_telegram_is_a_warning() -> None:
    code, out, err = _run(LSE, "--key", N21_KEY)
    assert code == 0 and "LSE-58511882-2C" in out
    assert err.strip() == "sonocli: warning: --key not used: the telegram is not encrypted"
    code, _, err = _run(LSE, "--key", " ".join(f"0x{b}" for b in (N21_KEY[i : i + 2] for i in range(0, 32, 2))))
    assert code == 0 and "not used" in err


def _vector(name: str) -> str:
    import csv
    from pathlib import Path

    path = Path(__file__).parents[1] / "data" / "wmbus" / "wmbus_vectors.tsv"
    with path.open(encoding="utf-8") as fh:
        return next(row["hex_telegram"] for row in csv.DictReader(fh, delimiter="\t") if row["id"] == name)


def test_compact_frame_decodes_after_its_full_frame_in_one_call() -> None:
    full, compact = _vector("jmbus_kam_full_1")[:-2], _vector("jmbus_kam_compact_1")[:-2]  # capture's RSSI byte
    code, out, err = _run(full, compact, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert [d["header"]["ci"] for d in data] == ["0x78", "0x79"]
    assert len(data[1]["records"]) == len(data[0]["records"]) == 13
    assert [r["dif_vif"] for r in data[1]["records"]] == [r["dif_vif"] for r in data[0]["records"]]
    code, out, err = _run(compact, full)  # the other way round: the compact frame's format is built in
    assert code == 0, err
    assert "CI 0x79" in out and "CI 0x78" in out
    code, out, _ = _run(N21)  # a single telegram stays a single JSON object
    assert code == 1 and "ELS-12345678-33" in out


# jMBus ShortTelegramTest: a Kamstrup full frame (CI 0x78) and then its compact frame (CI 0x79), each
# without the RSSI byte jMBus keeps after it (so the two split by their L-fields)
KAM_FULL = (
    "5C442D2C06357260190C8D207B70032F21271D7802F9FF15011104061765000004EEFF07BFA8000004EEFF08D24F00000414B1FB"
    "000002FD170000026CE919426CFF184406F76400004414E8FA0000043B0B0000000259DB11025D1C0B"
)
KAM_COMPACT = (
    "3F442D2C06357260190C8D207C71032F21255C79DD829283011117650000BFA80000D24F0000B1FB00000000E919FF18F7640000"
    "E8FA00000B000000DB111C0B"
)


def test_compact_frame_after_its_full_frame_in_one_input_also_with_a_key() -> None:
    # --key makes decode look at each telegram's header first; that look must not need the format
    for extra in ((), ("--key", "00" * 16)):
        code, out, err = _run(KAM_FULL + " " + KAM_COMPACT, *extra, "--json")
        assert code == 0, err
        full, compact = json.loads(out)
        assert len(full["records"]) == len(compact["records"]) == 13
        assert compact["header"]["ci"] == "0x79"


def test_wmbusmeters_log_notation_is_accepted() -> None:
    # wmbusmeters logs telegrams as telegram=|<DLL+TPL>_<records>|
    code, out, err = _run(f"telegram=|{LSE[:30]}_{LSE[30:]}|", "--json")
    assert code == 0, err
    assert json.loads(out)["header"]["id"] == "58511882"
