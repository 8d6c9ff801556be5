"""Built-in compact formats, learnt formats kept in the store across a restart, declarative drivers and
what happens when a driver cannot read a payload."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sonocli.codecs import compact_formats, drivers
from sonocli.codecs.drivers.declarative import check_file, load_file
from sonocli.codecs.wmbus import DecodeOptions, FormatCache, decode_telegram, layout_from_headers
from sonocli.errors import DecodeError, UsageError

VECTORS = Path(__file__).parents[1] / "data" / "wmbus" / "wmbus_vectors.tsv"
IZAR = "1944304C72242421D401A2013D4013DD8B46A4999C1293E582CC"  # wmbusmeters izar test: total 3.488 m³
MKRADIO4 = "2F446850200141029562A206702901006017030004000300000000000000000000000000000000000000000000000000"


def _vector(name: str) -> bytes:
    with VECTORS.open(encoding="utf-8") as fh:
        row = next(r for r in csv.DictReader(fh, delimiter="\t") if r["id"] == name)
    return bytes.fromhex(row["hex_telegram"])[:-1]  # the capture's RSSI byte


def test_every_builtin_format_reads_and_names_its_source() -> None:
    seen = set()
    for entry in compact_formats.FORMATS:
        layout = layout_from_headers(bytes.fromhex(entry.headers))
        assert layout is not None and layout.signature == entry.signature, entry.source
        assert entry.source.startswith(("corpus:", "wmbusmeters:")), entry.source
        seen.add((entry.manufacturers, entry.signature, entry.device_type, entry.version))
    assert len(seen) == len(compact_formats.FORMATS)  # no entry twice


def test_compact_frame_decodes_from_the_first_telegram_with_a_builtin_format() -> None:
    compact = _vector("jmbus_kam_compact_1")
    with pytest.raises(DecodeError, match="no full frame"):
        decode_telegram(compact, DecodeOptions(cache=FormatCache(builtin=False)))
    telegram = decode_telegram(compact, DecodeOptions(cache=FormatCache()))
    full = decode_telegram(_vector("jmbus_kam_full_1"), DecodeOptions(cache=FormatCache()))
    assert telegram.compact_format == "built-in"
    assert [v.dif_vif for v in telegram.records] == [v.dif_vif for v in full.records]


def test_user_given_format_for_one_compact_frame() -> None:
    compact = _vector("jmbus_kam_compact_1")
    headers = bytes.fromhex("02F9FF15040604EEFF0704EEFF08041402FD17026C426C44064414043B0259025D")
    telegram = decode_telegram(compact, DecodeOptions(cache=FormatCache(builtin=False), compact_format=headers))
    assert telegram.compact_format == "given" and len(telegram.records) == 13
    with pytest.raises(DecodeError, match=r"its signature is .*, the compact frame's is 82DD"):
        decode_telegram(compact, DecodeOptions(cache=FormatCache(), compact_format=headers[:-2]))


def test_learnt_format_survives_a_restart(tmp_path: Path) -> None:
    """A receiver hears a full frame, the daemon restarts, the next compact frame decodes at once (the
    receivers of both runs are built by the engine, as the daemon builds them; built-in formats off)."""
    from sonocli.config.layout import init_root
    from sonocli.engine.core import Engine

    init_root(tmp_path)
    first = Engine(tmp_path).receiver("hex")
    first.formats.builtin = False
    heard = first.feed(_vector("jmbus_kam_full_1").hex().encode() + b"\n")
    assert heard and heard[0].telegram is not None and len(heard[0].telegram.records) == 13
    first.close()
    again = Engine(tmp_path).receiver("hex")  # a new process: nothing in memory
    again.formats.builtin = False
    heard = again.feed(_vector("jmbus_kam_compact_1").hex().encode() + b"\n")
    assert heard and heard[0].error == "", heard[0].error
    assert heard[0].telegram is not None and heard[0].telegram.compact_format == "learnt"
    assert len(heard[0].telegram.records) == 13


def test_izar_prios_payload_becomes_records_and_named_fields() -> None:
    telegram = decode_telegram(bytes.fromhex(IZAR))
    assert telegram.driver == "izar"
    fields = dict(telegram.fields)
    assert fields["total_m3"] == 3.488 and fields["current_alarms"] == "meter_blocked,underflow"
    volume = [v for v in telegram.records if v.unit == "m³"]
    assert [(v.storage, v.value) for v in volume] == [(0, 3.488), (1, 3.486)]


def test_apator162_keeps_the_registers_it_does_not_read() -> None:
    # wmbusmeters apator162 test "W2": total 904.398 m³ in register 10 among others
    raw = "2E4401064052030205077A2D0020852F2F0F334DA39A00000071011ABF0D00039A0D00A01053850310CECC0D008943"
    telegram = decode_telegram(bytes.fromhex(raw))
    assert dict(telegram.fields) == {"total_m3": 904.398}
    assert [(v.unit, v.value) for v in telegram.records if v.unit == "m³"] == [("m³", 904.398)]
    assert telegram.records[-1].text == "manufacturer data"  # the bytes after 0F are kept, not dropped
    assert telegram.records[-1].raw == telegram.manufacturer_data


def test_driver_failure_keeps_the_bytes_and_names_the_meter() -> None:
    broken = bytearray(bytes.fromhex(IZAR))
    broken[15] ^= 0xFF  # the check byte no longer decodes to 4B with either default key
    telegram = decode_telegram(bytes(broken))
    assert telegram.driver == "izar" and not telegram.fields
    assert any("driver izar" in w and "check byte" in w and telegram.meter.id in w for w in telegram.warnings)
    assert telegram.records[-1].raw == telegram.payload  # raw bytes as a manufacturer-data record
    with pytest.raises(DecodeError, match="no driver called 'nosuch'"):
        decode_telegram(bytes.fromhex(IZAR), DecodeOptions(driver="nosuch"))
    assert not decode_telegram(bytes.fromhex(IZAR), DecodeOptions(drivers=False)).records


def test_apator_eitn_both_layouts_and_a_frame_it_cannot_read() -> None:
    # wmbusmeters apatoreitn tests HCA1 (CI A0) and HCA2 (CI B6: ten extra bytes, then A0)
    a0 = decode_telegram(bytes.fromhex("19440186313737370408A0A1000059001C270100322DE413B415"))
    assert a0.driver == "apatoreitn" and dict(a0.fields)["esb_date"] == "2019-08-28"
    assert [(v.storage, v.value) for v in a0.records if v.description == "Units for H.C.A."] == [(0, 1), (1, 89)]
    b6_hex = "25441486323737370408B60AFFFFF5450186F41B9D58A0A100007809000000001F2D6416C819"
    b6 = decode_telegram(bytes.fromhex(b6_hex))
    fields = dict(b6.fields)
    assert (fields["current_hca"], fields["previous_hca"], fields["status"]) == (0, 2424, "OK")
    assert fields["current_date"] == "2022-08-31" and fields["temp_room_avg_c"] == 25.78125
    broken = bytearray(bytes.fromhex(b6_hex))
    broken[22] = 0x00  # the A0 byte after the ten extra bytes
    telegram = decode_telegram(bytes(broken))
    assert not telegram.fields and telegram.records[-1].raw == telegram.payload  # bytes kept as a record
    assert any("driver apatoreitn" in w and "without the A0 byte" in w and "37373732" in w
               for w in telegram.warnings)


def test_declarative_toml_driver(tmp_path: Path) -> None:
    path = tmp_path / "techem-test.toml"
    path.write_text(
        'name = "techem-test"\n[[match]]\nmanufacturer = "TCH"\ndevice_type = 0x62\n'
        '[[payload]]\noffset = 3\nlength = 2\ndif_vif = "4215"\n'
        '[[payload]]\noffset = 7\nlength = 2\ndif_vif = "0215"\n'
        '[[field]]\nname = "target_m3"\ndif_vif = "4215"\n'
        '[[field]]\nname = "current_l"\ndif_vif = "0215"\nfactor = 1000\n',
        encoding="utf-8",
    )
    assert check_file(path) == []
    drivers.register(load_file(path))
    try:
        telegram = decode_telegram(bytes.fromhex(MKRADIO4))
    finally:
        drivers.unregister("techem-test")
    assert telegram.driver == "techem-test"
    assert dict(telegram.fields) == {"target_m3": 0.1, "current_l": 300.0}
    assert decode_telegram(bytes.fromhex(MKRADIO4)).driver == "mkradio4"  # unregistered: the built-in one


@pytest.mark.parametrize(("text", "problem"), [
    ('[[match]]\nmanufacturer = "TCH"\n', "'name' missing"),
    ('name = "x"\n[[field]]\nname = "a"\ndif_vif = "04"\n', "at least one [[match]]"),
    ('name = "x"\n[[match]]\nmanufacturer = "TCH"\n[[field]]\nname = "a"\ndif_vif = "zz"\n', "is not hex"),
    ('name = "x"\n[[match]]\nmanufacturer = "TCH"\n[[payload]]\noffset = 0\nlength = 3\ndif_vif = "0413"\n',
     "does not read"),
    ('name = "x"\n[[match]]\nmanufacturer = "TCH"\n', "would do nothing"),
    ('name = \n', "not valid TOML"),
])  # fmt: skip
def test_declarative_driver_problems_are_named(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    problems = check_file(path)
    assert len(problems) == 1 and problem in problems[0] and str(path) in problems[0]
    with pytest.raises(UsageError):
        load_file(path)
