"""`keys import` in every form installers receive (issue 14): CSV, JSON, wmbusmeters meter files, Kamstrup KEM.

The KEM files are built here with the construction wmbusmeters' utils/kem-import.py describes (read at
wmbusmeters@4dedd717): the meter-list XML is encrypted with AES-128-CBC, key = IV = the password's UTF-8
bytes zero-padded to 16, base64 in an XML-Enc ``CipherValue``; a KEM file may come inside a zip archive.
The plaintext layouts are the two that script reads: ``MetersInOrder/Meter`` (SerialNo, DEK) and KEM2's
``Devices/Device`` (SerialNumber, Name=DEK / Value). Nothing here is a real customer's key.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path

from click.testing import CliRunner

from sonocli.cli.root import cli
from sonocli.codecs.crypto import aes_cbc_encrypt
from sonocli.config.device_handle import load_meter_list
from sonocli.config.layout import RootLayout
from sonocli.engine.keys import detect_format, read_key_file
from sonocli.engine.receiver import RAW_LOG_NAME

KEY_A = "000102030405060708090A0B0C0D0E0F"
KEY_B = "F0E0D0C0B0A090807060504030201000"


def _run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), *args])
    return result.exit_code, result.stdout, result.stderr


def _kem(plain: str, password: str) -> bytes:
    data = plain.encode()
    data += bytes([16 - len(data) % 16]) * (16 - len(data) % 16)  # PKCS#7, as XML-Enc pads
    key = password.encode().ljust(16, b"\0")
    cipher = base64.b64encode(aes_cbc_encrypt(key, key, data)).decode()
    return ('<?xml version="1.0" encoding="utf-8"?><EncryptedData xmlns="http://www.w3.org/2001/04/xmlenc#">'
            '<EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
            f"<CipherData><CipherValue>{cipher}</CipherValue></CipherData></EncryptedData>").encode()


KEM_PLAIN = (
    '<?xml version="1.0" encoding="utf-8"?><MetersInOrder><Meter><MeterName>MC21</MeterName>'
    f"<SerialNo>76348799</SerialNo><TypeNo>021xxx</TypeNo><DEK>{KEY_A}</DEK></Meter>"
    f"<Meter><MeterName>MC403</MeterName><SerialNo>1234567</SerialNo><DEK>{KEY_B}</DEK></Meter>"
    "<Meter><MeterName>MC603</MeterName><SerialNo>55555555</SerialNo><DEK>0102</DEK></Meter></MetersInOrder>"
)
KEM2_PLAIN = (
    "<Devices><Device><ShortName>FlowIQ2200</ShortName><SerialNumber>61234567</SerialNumber><Keys><Key>"
    f"<Name>DEK</Name><Value>{KEY_B}</Value></Key></Keys></Device></Devices>"
)


def _meters(root: Path) -> dict[str, bytes | None]:
    return {m.serial: m.key for m in load_meter_list(root / "app" / "device_handle.cfg").meters}


def test_kem_file_with_password(tmp_path: Path) -> None:
    kem = tmp_path / "order.kem"
    kem.write_bytes(_kem(KEM_PLAIN, "secret-1234"))
    code, out, err = _run(tmp_path, "keys", "import", str(kem), "--password", "secret-1234", "--json")
    assert code == 3, err  # two meters set, one refused
    result = json.loads(out)
    assert result["format"] == "kem"
    assert [(r["id"], r["action"]) for r in result["imported"]] == [("76348799", "created"), ("01234567", "created")]
    assert result["refused"] == [{"id": "55555555", "source": f"{kem}: meter 3 (MC603)",
                                  "reason": "key of meter 55555555 must be 32 hex digits (AES-128), got 4"}]
    assert _meters(tmp_path) == {"76348799": bytes.fromhex(KEY_A), "01234567": bytes.fromhex(KEY_B)}


def test_kem2_in_a_zip_archive(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "not this one")
        archive.writestr("export.kem2", _kem(KEM2_PLAIN, "CUST0042"))
    path = tmp_path / "export.zip"
    path.write_bytes(buffer.getvalue())
    assert detect_format(path.read_bytes()) == "kem"
    code, _, err = _run(tmp_path, "keys", "import", str(path), "--password", "CUST0042", "--json")
    assert code == 0, err
    assert _meters(tmp_path) == {"61234567": bytes.fromhex(KEY_B)}


def test_kem_bad_input_is_one_line(tmp_path: Path) -> None:
    kem = tmp_path / "order.kem"
    kem.write_bytes(_kem(KEM_PLAIN, "right"))
    code, _, err = _run(tmp_path, "keys", "import", str(kem), "--password", "wrong")
    assert code == 2
    first = err.strip().splitlines()[0]
    assert first == f"sonocli: error: {kem}: wrong KEM password (the decrypted content is not XML)"
    code, _, err = _run(tmp_path, "keys", "import", str(kem))
    assert code == 2 and "give its --password" in err
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(b"PK\x03\x04" + bytes(40))
    code, _, err = _run(tmp_path, "keys", "import", str(damaged), "--password", "right")
    assert code == 2 and "damaged zip archive" in err
    assert not (tmp_path / "app" / "device_handle.cfg").exists()  # nothing imported


def test_json_and_wmbusmeters_meter_files(tmp_path: Path) -> None:
    as_dict = tmp_path / "keys.json"
    as_dict.write_text(json.dumps({"11111111": KEY_A}))
    as_list = tmp_path / "list.json"
    meters = [{"id": "22222222", "key": KEY_B}, {"serial": "0x33333333", "aes_key": KEY_A}]
    as_list.write_text(json.dumps({"meters": meters}))
    meter_file = tmp_path / "MyWater"
    meter_file.write_text(f"name=MyWater\ndriver=multical21\nid=44444444\nkey={KEY_B}\n")
    code, out, err = _run(tmp_path, "keys", "import", str(as_dict), str(as_list), str(meter_file), "--json")
    assert code == 0, err
    assert json.loads(out)["format"] == "json+wmbusmeters"
    assert _meters(tmp_path) == {"11111111": bytes.fromhex(KEY_A), "22222222": bytes.fromhex(KEY_B),
                                 "33333333": bytes.fromhex(KEY_A), "44444444": bytes.fromhex(KEY_B)}
    nokey = tmp_path / "Other"
    nokey.write_text("name=Other\ndriver=auto\nid=55555555\nkey=NOKEY\n")
    code, _, err = _run(tmp_path, "keys", "import", str(nokey), "--format", "wmbusmeters")
    assert code == 2 and "NOKEY" in err
    pattern = tmp_path / "All"
    pattern.write_text(f"name=All\nid=1234*\nkey={KEY_A}\n")
    code, _, err = _run(tmp_path, "keys", "import", str(pattern))
    assert code == 2 and "'1234*' is a wmbusmeters pattern" in err


def test_meter_named_twice_with_different_keys(tmp_path: Path) -> None:
    first = tmp_path / "a.csv"
    first.write_text(f"11111111,{KEY_A}\n22222222,{KEY_A}\n")
    second = tmp_path / "b.json"
    second.write_text(json.dumps({"11111111": KEY_B}))
    code, out, err = _run(tmp_path, "keys", "import", str(first), str(second), "--json")
    assert code == 2
    lines = err.strip().splitlines()
    assert lines == [f"sonocli: error: {second}: meter 11111111: meter 11111111 already has a different key on "
                     f"{first}:1; neither is imported"]
    assert _meters(tmp_path) == {"22222222": bytes.fromhex(KEY_A)}
    assert json.loads(out)["refused"][0]["id"] == "11111111"


def test_unsupported_security_mode_names_meter_and_mode(tmp_path: Path) -> None:
    """A key for a meter whose stored telegram uses security mode 16 (BMeters, manufacturer specific, which
    sonocli does not implement): the key is set, and the import says which meter and which mode cannot be
    decrypted."""
    assert _run(tmp_path, "init")[0] == 0
    raw = "1E44B409717273740507" + "7AA5000610" + "00" * 16  # wmbusmeters rfmtx1 header (corpus), payload zeroed
    log_dir = RootLayout(tmp_path).log_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / RAW_LOG_NAME).write_text(f"2026-01-01T00:00:00Z;-70;{raw}\n")  # as WMBUS_RAWLOGENABLE writes it
    keys = tmp_path / "k.csv"
    keys.write_text(f"74737271,{KEY_A}\n")
    code, out, err = _run(tmp_path, "keys", "import", str(keys), "--json")
    assert code == 0, err
    row = json.loads(out)["imported"][0]
    assert row["check"] == "unsupported" and "security mode 16" in row["detail"]
    assert "meter 74737271: key set, but security mode 16" in err


def test_read_key_file_is_pure() -> None:
    result = read_key_file(b"id;key\n12345678;" + KEY_A.encode() + b"\n", "mem.csv")
    assert (result.format, [e.id for e in result.entries], result.refused) == ("csv", ["12345678"], [])
