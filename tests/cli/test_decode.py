"""`sonocli decode`: exact JSON, table output, stdin and files, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from sonocli.cli.root import cli
from sonocli.codecs import mbus_link

DATA = Path(__file__).resolve().parents[1] / "data"

# KAM electricity meter 14839120: energy 12345 × 10^3 Wh (DIF 04 VIF 06), then a 2-byte flow temperature
KAM_DATA = bytes.fromhex("20918314 2D2C 01 02 04 00 0000 0406 39300000 025B 1500")
KAM = mbus_link.encode(mbus_link.LongFrame(0x08, 0x01, 0x72, KAM_DATA)).hex(" ").upper()

EXPECTED = {
    "kind": "mbus",
    "header": {
        "id": "14839120",
        "manufacturer": "KAM",
        "version": 1,
        "medium": "Electricity",
        "access_number": 4,
        "status": 0,
    },
    "records": [
        {
            "index": 0, "function": "instantaneous", "storage": 0, "tariff": 0, "subunit": 0,
            "description": "Energy", "unit": "Wh", "scale": 1000.0, "raw": 12345, "value": 12345000,
            "dif_vif": "04 06", "qualifiers": [],
        },
        {
            "index": 1, "function": "instantaneous", "storage": 0, "tariff": 0, "subunit": 0,
            "description": "Flow temperature", "unit": "degree C", "scale": 1.0, "raw": 21, "value": 21,
            "dif_vif": "02 5B", "qualifiers": [],
        },
    ],
    "more_records_follow": False,
}  # fmt: skip


def run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_json_shape_and_key_order() -> None:
    code, out, err = run("decode", "--json", KAM)
    assert code == 0, err
    doc = json.loads(out)
    assert doc == EXPECTED
    assert list(doc) == ["kind", "header", "records", "more_records_follow"]
    assert list(doc["header"]) == list(EXPECTED["header"])  # type: ignore[call-overload]
    assert list(doc["records"][0]) == list(EXPECTED["records"][0])  # type: ignore[index]


def test_hex_in_several_arguments_and_without_spaces() -> None:
    a = run("decode", "--json", *KAM.split())[1]
    b = run("decode", "--json", KAM.replace(" ", "").lower())[1]
    assert json.loads(a) == json.loads(b) == EXPECTED


def test_hex_as_log_files_print_it() -> None:
    with_prefixes = ", ".join(f"0x{b}" for b in KAM.split())
    assert json.loads(run("decode", "--json", with_prefixes)[1]) == EXPECTED
    assert json.loads(run("decode", "--json", KAM.replace(" ", ":"))[1]) == EXPECTED


def test_table_output() -> None:
    code, out, _err = run("decode", KAM)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "# KAM-14839120-01 Electricity, access number 4, status 0x00"
    columns = ["#", "function", "storage", "tariff", "subunit", "description", "value", "unit", "DIF/VIF"]
    assert lines[1].split("\t") == columns
    assert lines[2].split("\t") == ["0", "instantaneous", "0", "0", "0", "Energy", "12345000", "Wh", "04 06"]


def test_stdin_hex_and_binary_file(tmp_path: Path) -> None:
    assert json.loads(run("decode", "--json", "-", stdin=KAM.encode() + b"\n")[1]) == EXPECTED
    binary = tmp_path / "frame.bin"
    binary.write_bytes(bytes.fromhex(KAM))
    assert json.loads(run("decode", "--json", "--file", str(binary))[1]) == EXPECTED
    text = tmp_path / "frame.hex"
    text.write_text(KAM + "\n")
    assert json.loads(run("decode", "--json", "--file", str(text))[1]) == EXPECTED


def test_libmbus_frame_from_file() -> None:
    code, out, _err = run("decode", "--json", "--file", str(DATA / "libmbus" / "test-frames" / "EDC.hex"))
    assert code == 0
    doc = json.loads(out)
    assert doc["header"]["manufacturer"] == "EDC" and len(doc["records"]) == 21
    assert doc["records"][16]["value"] == "2012-07-10T15:25:00+00:00"


def test_application_error_frame() -> None:
    code, out, _err = run("decode", "--json", "68 04 04 68 08 01 70 08 81 16")
    assert code == 0
    assert json.loads(out)["application_error"] == {"code": 8, "text": "application busy"}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("68 04 04 68 08 01 70 08 82 16",), "checksum 0x82 is wrong (expected 0x81) (at byte 8)"),
        (("68 04 04 68 08 01 70 08 81",), "frame incomplete"),
        (("680",), "odd number of hex digits (3)"),
        (("68 0G",), "input is not hex: 'G' at character 5 (at byte 1)"),
        ((DATA / "libmbus" / "error-frames" / "too_many_dife.hex").read_text().split(), "more than 10 DIFEs"),
        ((DATA / "libmbus" / "error-frames" / "premature_end_of_data1.hex").read_text().split(), "record data"),
        (("E5 E5",), "1 byte after the end of the frame (at byte 1)"),
        ((), "give the frame"),
        (("--file", "/nonexistent/frame.hex"), "cannot read it"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], words: str) -> None:
    code, out, err = run("decode", *args)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and words in err and "Traceback" not in err


def test_short_frame_and_ack() -> None:
    assert json.loads(run("decode", "--json", "10 7B 01 7C 16")[1]) == {
        "kind": "mbus", "frame": "short", "control": 0x7B, "address": 1,
    }  # fmt: skip
    assert json.loads(run("decode", "--json", "E5")[1]) == {"kind": "mbus", "frame": "ack"}


def test_real_subprocess() -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "sonocli", "decode", "--json", KAM], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == EXPECTED
    bad = subprocess.run(
        [sys.executable, "-m", "sonocli", "decode", KAM[:-5] + "17 16"], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.startswith("sonocli: error: checksum") and "Traceback" not in bad.stderr


def test_text_file_that_is_not_hex_is_refused_not_taken_for_a_telegram(tmp_path: Path) -> None:
    # printable text: parsed as hex, so a wrong file gets the "not hex" error instead of a wireless decode
    notes = tmp_path / "notes.txt"
    notes.write_text("root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")
    code, out, err = run("decode", "--file", str(notes))
    assert (code, out) == (2, "")
    assert err.strip() == "sonocli: error: input is not hex: 'r' at character 1 (at byte 0)"
    logged = tmp_path / "logged.txt"
    logged.write_text(", ".join(f"0x{b}" for b in KAM.split()) + "\n")
    assert json.loads(run("decode", "--json", "--file", str(logged))[1]) == EXPECTED


def test_empty_stdin_and_odd_hex_name_the_problem() -> None:
    code, out, err = run("decode", "-", stdin=b"")
    assert (code, out, err.strip()) == (2, "", "sonocli: error: no input: the file or stdin is empty")
    code, _out, err = run("decode", "68 04 0")
    assert code == 2
    assert err.strip() == "sonocli: error: odd number of hex digits (5): the last byte is incomplete (at byte 2)"


def test_master_frames_show_what_they_ask_for() -> None:
    reset = run("decode", "--json", "68 03 03 68 53 FE 50 A1 16")
    assert json.loads(reset[1]) == {
        "kind": "mbus", "frame": "application reset", "control": 0x53, "address": 0xFE, "ci": 0x50, "data": "",
    }  # fmt: skip
    select = mbus_link.encode(mbus_link.LongFrame(0x53, 0xFD, 0x52, bytes.fromhex("78563412FFFFFFFF")))
    code, out, _err = run("decode", select.hex())
    assert code == 0
    assert out.strip() == (
        "select by secondary address frame: control 0x53, address 0xFD, ci 0x52, data 78 56 34 12 FF FF FF FF"
    )


def test_manufacturer_data_after_1f_is_shown() -> None:
    frame = mbus_link.encode(mbus_link.LongFrame(0x08, 0x01, 0x72, KAM_DATA + bytes.fromhex("1F 01 02")))
    doc = json.loads(run("decode", "--json", frame.hex())[1])
    assert doc["more_records_follow"] is True and doc["manufacturer_data"] == "01 02"
    assert list(doc)[:4] == ["kind", "header", "records", "more_records_follow"]
    out = run("decode", frame.hex())[1]
    assert "manufacturer data: 01 02" in out and "more records follow (DIF 0x1F)" in out


# OMS vol. 2 Annex N.5.4 (via tudborg/exmbus, tests/data/wired/wired_mbus_extra_vectors.tsv): wired mode 5
N54 = "682C2C6808FD7288776655934455080004100500DFE2A782146D1513581CD2F83F39040CFD10785634120C78443322112616"
N54_KEY = "000102030405060708090A0B0C0D0E0F"


def test_wired_mode_5_frame_decrypts_with_key() -> None:
    code, out, err = run("decode", "--json", "--key", N54_KEY, N54)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["header"]["id"] == "55667788" and doc["header"]["manufacturer"] == "QDS"
    assert [(r["description"], r["storage"], r["value"]) for r in doc["records"]] == [
        ("Units for H.C.A.", 0, 1234.0),
        ("Time point", 1, "2007-04-30T00:00:00+00:00"),
        ("Units for H.C.A.", 1, 23456.0),
        ("Customer location", 0, 12345678.0),
        ("Fabrication", 0, 11223344.0),
    ]


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        ((N54,), 1, "a key is needed to decode it (hint: give the AES key with --key 32HEX)"),
        (("--key", N54_KEY[:-1] + "E", N54), 1, "wrong key for wired frame (mode 5)"),
        (("--key", "0001", N54), 2, "--key must be 32 hex digits (AES-128), got 4"),
    ],
)
def test_wired_mode_5_key_errors_are_one_line(args: tuple[str, ...], code: int, words: str) -> None:
    got, out, err = run("decode", *args)
    assert (got, out) == (code, "")
    assert len(err.strip().splitlines()) == 1 and words in err


def test_key_on_a_plain_frame_is_a_warning() -> None:
    code, out, err = run("decode", "--json", "--key", N54_KEY, KAM)
    assert code == 0
    assert json.loads(out)["records"] == EXPECTED["records"]
    assert "--key given but the frame is not encrypted" in err


@pytest.mark.parametrize("frame", ["E5", "10 7B 01 7C 16"])
def test_key_on_a_frame_without_data_is_refused(frame: str) -> None:
    code, out, err = run("decode", "--key", N54_KEY, frame)
    assert (code, out) == (2, "")
    assert "--key applies to wireless telegrams and wired frames in security mode 5" in err


def test_input_size_is_bounded(tmp_path: Path) -> None:
    code, out, err = run("decode", "--file", "/dev/zero")
    assert (code, out) == (2, "")
    assert err.strip() == "sonocli: error: --file /dev/zero: more than 1048576 bytes; give one frame or telegram"
    code, _out, err = run("decode", "-", stdin=b"68" * (1 << 20))
    assert code == 2 and "stdin: more than 1048576 bytes" in err
    frame = tmp_path / "frame.hex"
    frame.write_text(KAM)
    code, _out, err = run("decode", "--file", str(frame), "E5")
    assert code == 2 and "not both" in err


@pytest.mark.parametrize(
    ("cut", "words"),
    [
        (lambda f: f[:-1], "frame incomplete: 26 of 27 bytes (at byte 26)"),
        (lambda f: f[:-3], "frame incomplete: 24 of 27 bytes (at byte 24)"),
        (lambda f: f[:-1] + b"\x17", "stop byte is 0x17, expected 0x16 (at byte 26)"),
        (lambda f: f + b"\x00\x01", "2 bytes after the end of the frame (at byte 27)"),
        (lambda f: f[:-2] + bytes([(f[-2] + 1) & 0xFF]) + f[-1:], "checksum"),
    ],
)
def test_broken_wired_frames_get_link_errors_not_a_wireless_decode(cut: Callable[[bytes], bytes], words: str) -> None:
    # 68 L L 68 is wired whatever follows: a cut or damaged frame must not be read as a wireless telegram
    frame = mbus_link.encode(mbus_link.LongFrame(0x08, 0x02, 0x72, bytes.fromhex(KAM_DATA.hex()[:-8])))
    assert len(frame) == 27
    code, out, err = run("decode", cut(frame).hex())
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1 and words in err, err


def test_quiet_silences_warnings_json_keeps_them() -> None:
    code, out, err = run("-q", "decode", "--json", "--key", N54_KEY, KAM)
    assert (code, err) == (0, "")
    assert json.loads(out)["warnings"] == [
        "--key given but the frame is not encrypted (no long header with a security mode)"
    ]


def test_bytes_before_a_wired_frame_are_named() -> None:
    code, out, err = run("decode", "FF 00 01 " + KAM)
    assert (code, out) == (2, "")
    assert err.strip() == "sonocli: error: 3 bytes before a valid wired frame that starts at byte 3 (at byte 0)"
