"""EN 13757-3 application layer: headers, DIF/DIFE, VIF tables, combinable VIFEs, data types, errors.

Records are built from the standard's codings here (not copied from a decoder), so the expectations come
from EN 13757-3 rather than from our own output.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sonocli.codecs import mbus_link
from sonocli.codecs.mbus_app import (
    decode_application,
    decode_record_block,
    decode_records,
    decode_wired,
    manufacturer_code,
    manufacturer_text,
    security_mode,
)
from sonocli.errors import DecodeError, NeedMoreData, NoKeyError
from sonocli.model import MeterValue, ValueType

DATA = Path(__file__).resolve().parents[1] / "data"
_TSV = DATA / "wired" / "wired_mbus_extra_vectors.tsv"
EXTRA = {row["id"]: row for row in csv.DictReader(_TSV.open(encoding="utf-8"), delimiter="\t")}


def one(record_hex: str) -> MeterValue:
    values, more, mfr = decode_records(bytes.fromhex(record_hex.replace(" ", "")), strict=True)
    assert len(values) == 1 and not more and mfr == b""
    return values[0]


def long_header(ci_payload: str, ci: int = 0x72) -> bytes:
    """A long frame from the secondary address 12345678 / KAM / v1 / electricity and a payload."""
    header = "78563412 2D2C 01 02 04 00 0000"
    data = bytes.fromhex((header + ci_payload).replace(" ", ""))
    return mbus_link.encode(mbus_link.LongFrame(0x08, 0x05, ci, data))


# ---- header and CI --------------------------------------------------------------------------------------


def test_long_header_fields() -> None:
    app = decode_wired(long_header("04 06 39 30 00 00"))
    h = app.header
    assert h is not None
    assert (h.id, h.manufacturer, h.version, h.medium, h.access_number, h.status, h.signature) == (
        "12345678", "KAM", 1, 2, 4, 0, 0,
    )  # fmt: skip
    assert app.ci == 0x72 and not app.more_records_follow
    (v,) = app.values
    assert (v.description, v.unit, v.exponent, v.raw, v.value) == ("Energy", "Wh", 3, 12345, 12345000.0)
    assert v.dif_vif == b"\x04\x06" and v.data == bytes.fromhex("39300000") and v.encoding == "INT32"


def test_hex_digits_in_the_id_are_kept() -> None:
    frame = mbus_link.encode(mbus_link.LongFrame(8, 1, 0x72, bytes.fromhex("7CC30B00 2D2C 01 07 01 00 0000")))
    assert decode_wired(frame).header.id == "000BC37C"  # type: ignore[union-attr]


def test_short_header_and_no_header() -> None:
    app = decode_application(0x7A, bytes.fromhex("2A 10 0000 0C13 78563412"))
    assert app.header is not None and app.header.access_number == 0x2A and app.header.status == 0x10
    assert app.header.id == "" and app.values[0].value == pytest.approx(12345.678)
    app = decode_application(0x78, bytes.fromhex("0C13 78563412"))
    assert app.header is None and app.values[0].raw == 12345678


def test_ci_76_is_msb_first() -> None:
    app = decode_application(0x76, bytes.fromhex("12345678 2C2D 01 07 09 00 0000 04 13 00 00 30 39"))
    assert app.header is not None and app.header.id == "12345678" and app.header.manufacturer == "KAM"
    assert app.values[0].raw == 12345


def test_fixed_data_structure() -> None:
    # EN 1434-3 fixed structure: ID, ACC, status (BCD, actual), unit1 kWh (0x05) + medium bits, unit2 l (0x29)
    app = decode_application(0x73, bytes.fromhex("93929190 10 00 05 69 31650000 69000000"))
    assert app.header is not None and app.header.id == "90919293" and app.header.medium == 4  # heat
    energy, volume = app.values
    assert (energy.description, energy.unit, energy.exponent, energy.raw) == ("Energy", "Wh", 3, 6531)
    assert (volume.description, volume.unit, volume.value) == ("Volume", "m³", 0.069)
    # binary counters, "same but historic" second counter -> storage 1 in the first counter's unit
    app = decode_application(0x73, bytes.fromhex("78563412 0A 80 E9 7E 01000000 87000000"))
    first, second = app.values
    assert first.raw == 1 and second.raw == 135 and second.storage == 1 and second.unit == "m³"
    with pytest.raises(DecodeError):
        decode_application(0x73, bytes(15))


@pytest.mark.parametrize(
    ("code", "text"), [(0, "unspecified error"), (8, "application busy"), (5, "more than 10 DIFEs")]
)
def test_application_error_ci_70(code: int, text: str) -> None:
    app = decode_application(0x70, bytes((code,)))
    assert app.application_error == code and app.application_error_text == text and app.values == ()


def test_unknown_ci_is_a_decode_error_at_the_ci() -> None:
    frame = mbus_link.encode(mbus_link.LongFrame(8, 1, 0x99, b"\x00"))
    with pytest.raises(DecodeError) as err:
        decode_wired(frame)
    assert err.value.offset == 6 and "CI 0x99" in str(err.value)


def test_truncated_header() -> None:
    with pytest.raises(DecodeError) as err:
        decode_application(0x72, bytes(5), base_offset=7)
    assert "12-byte header" in str(err.value) and err.value.offset == 12


def test_trailing_bytes_after_frame() -> None:
    with pytest.raises(DecodeError):
        decode_wired(long_header("") + b"\x00")
    with pytest.raises(NeedMoreData):
        decode_wired(long_header("")[:-1])


def test_manufacturer_code_round_trip() -> None:
    assert manufacturer_code("KAM") == 0x2C2D and manufacturer_text(0x2C2D) == "KAM"
    for man in ("AAA", "ZZZ", "ELS", "GWF"):
        assert manufacturer_text(manufacturer_code(man)) == man
    with pytest.raises(DecodeError):
        manufacturer_code("K4M")


# ---- DIF / DIFE --------------------------------------------------------------------------------------------


def test_function_field() -> None:
    assert one("04 06 01000000").function is ValueType.INSTANTANEOUS
    assert one("14 06 01000000").function is ValueType.MAXIMUM
    assert one("24 06 01000000").function is ValueType.MINIMUM
    assert one("34 06 01000000").function is ValueType.ERRORGATE


def test_storage_tariff_subunit_across_difes() -> None:
    # DIF C4: storage bit0=1; DIFE 9F: storage bits 1-4 = F, tariff bits 0-1 = 1; DIFE 5A: subunit bit 1,
    # tariff bits 2-3 = 1, storage bits 5-8 = A
    v = one("C4 9F 5A 06 01000000")
    assert (v.storage, v.tariff, v.subunit) == (1 | 0xF << 1 | 0xA << 5, 1 | 1 << 2, 1 << 1)


def test_ten_difes_allowed_eleven_refused() -> None:
    ten = "84" + "80" * 9 + "00" + "06 01000000"
    assert one(ten).storage == 0
    with pytest.raises(DecodeError) as err:
        one("84" + "80" * 10 + "00" + "06 01000000")
    assert "DIFE" in str(err.value)


def test_special_functions() -> None:
    values, more, mfr = decode_records(bytes.fromhex("2F 04 06 01000000 2F 2F 0F AA BB"), strict=True)
    assert len(values) == 1 and not more and mfr == b"\xaa\xbb"
    values, more, mfr = decode_records(bytes.fromhex("04 06 01000000 1F"), strict=True)
    assert more and mfr == b""
    with pytest.raises(DecodeError):
        decode_records(bytes.fromhex("3F"), strict=True)


# ---- VIF tables -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "description", "unit", "exponent"),
    [
        ("04 00 01000000", "Energy", "Wh", -3),
        ("04 07 01000000", "Energy", "Wh", 4),
        ("04 0E 01000000", "Energy", "J", 6),
        ("04 13 01000000", "Volume", "m³", -3),
        ("04 1B 01000000", "Mass", "kg", 0),
        ("04 22 01000000", "On-time", "H", 0),
        ("04 27 01000000", "Operating time", "D", 0),
        ("04 2B 01000000", "Power", "W", 0),
        ("04 33 01000000", "Power", "J/h", 3),
        ("04 3B 01000000", "Volume flow", "m³/h", -3),
        ("04 43 01000000", "Volume flow ext", "m³/min", -4),
        ("04 4B 01000000", "Volume flow ext", "m³/s", -6),
        ("04 53 01000000", "Mass flow", "kg/h", 0),
        ("02 5B 0100", "Flow temperature", "degree C", 0),
        ("02 5F 0100", "Return temperature", "degree C", 0),
        ("02 62 0100", "Temperature difference", "K", -1),
        ("02 65 0100", "External temperature", "degree C", -2),
        ("02 6A 0100", "Pressure", "Bar", -1),
        ("02 6E 0100", "Units for H.C.A.", "", 0),
        ("02 70 0100", "Averaging duration", "s", 0),
        ("02 77 0100", "Actuality duration", "D", 0),
        ("0C 78 01000000", "Fabrication", "None", 0),
        ("04 FB 00 01000000", "Energy", "Wh", 5),
        ("04 FB 09 01000000", "Energy", "J", 9),
        ("04 FB 1A 01000000", "Relative humidity", "%", -1),
        ("04 FB 21 01000000", "Volume", "Ft³", -1),
        ("04 FB 2D 01000000", "Frequency", "Hz", -2),
        ("04 FB 5A 01000000", "Flow temperature", "Degree F", -1),
        ("04 FD 02 01000000", "Credit", "Cur", -1),
        ("04 FD 0E 01000000", "Metrology (firmware) version", "None", 0),
        ("04 FD 17 01000000", "Error flags (Device type specific)", "Bin", 0),
        ("04 FD 1C 01000000", "Baud rate", "bd", 0),
        ("04 FD 26 01000000", "Storage interval", "H", 0),
        ("04 FD 48 01000000", "Volts", "V", -1),
        ("04 FD 59 01000000", "Ampere", "A", -3),
        ("04 FD 6D 01000000", "Operating time battery", "D", 0),
        ("04 FD 71 01000000", "RSSI", "dBm", 0),
        ("04 FD 74 01000000", "Remaining battery life time", "D", 0),
        ("04 FD FD 03 01000000", "Remaining battery life time", "y", 0),
        ("04 FB 06 01000000", "None", "", -1),
        ("04 FB 20 01000000", "Volume", "Ft³", 0),
    ],
)
def test_vif_tables(record: str, description: str, unit: str, exponent: int) -> None:
    v = one(record)
    assert (v.description, v.unit, v.exponent) == (description, unit, exponent)


def test_combinable_vifes_adjust_scale_or_explain() -> None:
    assert one("04 86 74 01000000").exponent == 3 - 2  # multiplicative correction 10^(4-6)
    assert one("04 86 7D 01000000").exponent == 6  # multiplicative correction 10^3
    per_hour = one("04 93 22 01000000")
    assert per_hour.exponent == -3 and per_hour.text == "per hour"
    assert "additive correction" in (one("04 86 79 01000000").text or "")
    assert one("04 86 00 01000000").text is None  # VIFE 00 "no error" adds nothing
    err = one("04 86 15 01000000")
    assert err.text == "error: no data available (undefined value)"
    assert one("04 FD C8 74 01000000").exponent == -1 - 2  # FD table entry then a combinable VIFE


def test_date_combinable_vife_makes_a_date() -> None:
    # max flow temperature's date: VIF DB (flow temp) VIFE 6F "date(/time) of end of last", type F data
    v = one("94 10 DB 6F 32 14 7A 18")
    assert v.raw == datetime(2011, 8, 26, 20, 50, tzinfo=UTC) and (v.storage, v.tariff) == (0, 1)
    assert (v.description, v.unit, v.text) == ("Time point", "UTC", "Flow temperature; date(/time) of end of last")


@pytest.mark.parametrize(
    ("vife", "text"),
    [
        ("68", "value during lower limit exceed"),
        ("69", "leakage values"),
        ("6C", "value during upper limit exceed"),
        ("6D", "overflow values"),
    ],
)
def test_limit_exceed_value_vifes_are_named(vife: str, text: str) -> None:
    # EN 13757-3 Table 15 E110 1u00 / 1u01 (libmbus, jMBus and m-bus-parser name them the same way):
    # these qualify a volume, they are neither reserved nor a date.
    v = one(f"04 93 {vife} 39 30 00 00")
    assert (v.description, v.unit, v.exponent, v.raw, v.text) == ("Volume", "m³", -3, 12345, text)


@pytest.mark.parametrize(
    ("vife", "text"),
    [("12", "average value"), ("14", "relative deviation"), ("1D", "standard conform data content")],
)
def test_2018_qualifier_vifes_are_not_record_errors(vife: str, text: str) -> None:
    # EN 13757-3:2018 Table 16 moved E001 0010, E001 0100 and E001 1101 out of the record-error range
    # (as it did for the compact-profile codes 13/1E/1F): the value is valid and only qualified.
    v = one(f"04 AB {vife} E8 03 00 00")
    assert (v.description, v.unit, v.raw, v.text) == ("Power", "W", 1000, text)
    assert one("04 AB 15 E8 03 00 00").text == "error: no data available (undefined value)"


def test_plain_text_vif_standard_and_libmbus_order() -> None:
    standard = one("02 FC 74 03 48 52 25 D4 11")
    assert (standard.description, standard.exponent, standard.raw) == ("%RH", -2, 0x11D4)
    values, _more, _mfr = decode_records(bytes.fromhex("02 FC 03 48 52 25 74 D4 11"), strict=True)
    assert (values[0].description, values[0].exponent, values[0].raw) == ("%RH", -2, 0x11D4)
    seven_bit = one("02 7C 03 48 52 25 D4 11")
    assert seven_bit.description == "%RH" and seven_bit.exponent == 0


def test_manufacturer_specific_vif() -> None:
    v = one("04 FF 81 02 01000000")
    assert v.description == "Vendor specific data" and "VIFE 81 02" in (v.text or "")


def test_too_many_vifes() -> None:
    assert one("04 86" + " 80" * 9 + " 00 01000000").exponent == 3
    with pytest.raises(DecodeError) as err:
        one("04 86" + " 80" * 10 + " 00 01000000")
    assert "VIFE" in str(err.value)


# ---- data types -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "raw", "encoding"),
    [
        ("01 FB 1A FF", -1, "INT8"),
        ("02 13 FEFF", -2, "INT16"),
        ("03 13 FFFF7F", 0x7FFFFF, "INT24"),
        ("04 13 FFFFFFFF", -1, "INT32"),
        ("06 13 010000000080", -(1 << 47) + 1, "INT48"),
        ("07 13 0100000000000000", 1, "INT64"),
        ("09 13 99", 99, "BCD2"),
        ("0A 13 3412", 1234, "BCD4"),
        ("0B 13 563412", 123456, "BCD6"),
        ("0C 13 785634F2", -2345678, "BCD8"),
        ("0E 13 907856341201", 11234567890, "BCD12"),
        ("0C 13 BDEBDDDD", "DDDDEBBD", "BCD8"),
        ("00 13", None, "NODATA"),
        ("08 13", None, "READOUT"),
        ("02 FD 17 0180", 0x8001, "INT16"),  # error flags are a bit field: unsigned
    ],
)
def test_integer_and_bcd_types(record: str, raw: object, encoding: str) -> None:
    v = one(record)
    assert v.raw == raw and v.encoding == encoding


def test_real32() -> None:
    v = one("05 2B 0000C03F")  # 1.5 W
    assert v.raw == 1.5 and v.encoding == "REAL32"


@pytest.mark.parametrize(
    ("record", "raw"),
    [
        ("0D FD 0C 05 4F 4C 4C 45 48", "HELLO"),  # ASCII, last character first
        ("0D 13 C2 3412", 1234),  # positive BCD, 4 digits
        ("0D 13 D2 3412", -1234),  # negative BCD
        ("0D 13 E3 010203", 0x030201),  # binary, 3 bytes
        ("0D 13 00", ""),
    ],
)
def test_lvar(record: str, raw: object) -> None:
    assert one(record).raw == raw


def test_lvar_long_binary_and_reserved() -> None:
    # binary numbers up to 8 bytes are two's complement like the fixed-size integers; longer ones stay bytes
    assert one("0D 13 E1 FF").raw == -1
    assert one("0D 13 E8 " + "FF" * 7 + "7F").raw == (1 << 63) - 1
    assert one("0D FD 3B F0 " + "00" * 16).raw == bytes(16)
    assert one("0D 13 E9 " + "FF" * 9).raw == b"\xff" * 9
    with pytest.raises(DecodeError):
        one("0D 13 F8 00")


@pytest.mark.parametrize(
    ("record", "raw"),
    [
        ("02 6C 9F 1C", datetime(2012, 12, 31, tzinfo=UTC)),  # type G
        ("04 6D 32 37 1F 15", datetime(2008, 5, 31, 23, 50, tzinfo=UTC)),  # type F (OMS N.2.2)
        ("06 6D 05 32 17 BF 15 00", datetime(2013, 5, 31, 23, 50, 5, tzinfo=UTC)),  # type I
        ("03 6D 05 32 17", "23:50:05"),  # type J
        ("04 6D B2 37 1F 15", None),  # IV bit: invalid
        ("02 6C 00 00", None),  # day 0: invalid
        ("0E ED 18 01 01 01 01 01 10", datetime(2010, 1, 1, 1, 1, 1, tzinfo=UTC)),  # BCD12 date-time (ABB A41)
    ],
)
def test_dates(record: str, raw: object) -> None:
    v = one(record)
    assert v.raw == raw
    assert v.exponent == 0


def test_meter_timestamp_is_attached_to_values_of_the_same_storage() -> None:
    data = bytes.fromhex("04 06 01000000 04 6D 32 37 1F 15 44 06 02000000 84 40 06 03000000")
    values, _m, _f = decode_records(data, strict=True)
    stamp = datetime(2008, 5, 31, 23, 50, tzinfo=UTC)
    assert values[0].timestamp == stamp
    assert values[1].timestamp is None  # the timestamp record itself
    assert values[2].timestamp is None  # storage 1
    assert values[3].timestamp is None  # subunit 1


# ---- truncation and offsets -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "offset", "words"),
    [
        ("04 06 0100", 2, "needs 4 bytes"),
        ("84", 1, "DIFEs"),
        ("04", 1, "before its VIF"),
        ("04 86", 2, "VIFEs"),
        ("0D 06", 2, "LVAR"),
        ("0D 06 05 4142", 2, "needs 6 bytes"),
        ("02 7C 05 41", 4, "plain-text VIF"),
    ],
)
def test_truncated_records_name_the_offset(record: str, offset: int, words: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode_records(bytes.fromhex(record.replace(" ", "")), base_offset=0, strict=True)
    assert err.value.offset == offset and words in str(err.value)


def test_base_offset_shifts_error_offsets() -> None:
    with pytest.raises(DecodeError) as err:
        decode_records(bytes.fromhex("04 06 01"), base_offset=19, strict=True)
    assert err.value.offset == 21


# ---- extra vectors -------------------------------------------------------------------------------------------------


def test_oms_annex_n22_plain_wired_frame() -> None:
    app = decode_wired(bytes.fromhex(EXTRA["oms_n22_mbus_plain"]["hex_frame"]))
    h = app.header
    assert h is not None
    assert (h.id, h.manufacturer, h.version, h.medium, h.access_number) == ("12345678", "ELS", 0x33, 3, 42)
    volume, when, flags = app.values
    assert (volume.description, volume.unit, volume.value) == ("Volume", "m³", 28504.27)
    assert when.raw == datetime(2008, 5, 31, 23, 50, tzinfo=UTC) and volume.timestamp == when.raw
    assert (flags.description, flags.raw) == ("Error flags (Device type specific)", 0)


def test_oms_annex_n54_encrypted_frame_asks_for_a_key() -> None:
    frame = bytes.fromhex(EXTRA["oms_n54_mbus_partial_enc"]["hex_frame"])
    with pytest.raises(NoKeyError) as err:
        decode_wired(frame)
    assert "security mode 5" in str(err.value)
    h = decode_application(0x72, frame[7:19] + b"\x2f\x2f").header
    assert h is not None and security_mode(h) == 5 and h.id == "55667788" and h.manufacturer == "QDS"


def test_gav_frame_with_fb_and_fd_vifes() -> None:
    app = decode_wired(bytes.fromhex(EXTRA["exmbus_gav_vife"]["hex_frame"]))
    assert app.header is not None and app.header.manufacturer == "GAV" and app.header.status == 0x20
    assert len(app.values) == 11 and app.more_records_follow
    by_desc = [(v.description, v.unit, v.subunit, v.value) for v in app.values]
    assert ("Reactive energy", "kVARh", 0, 0.1) in by_desc
    assert ("Power", "W", 0, -272.7) in by_desc
    assert ("Volts", "V", 0, 232.6) in by_desc
    currents = [(v.subunit, v.value) for v in app.values if v.description == "Ampere"]
    assert currents == [(1, 1.478), (2, 1.762), (3, 1.685)]


def test_plain_text_in_libmbus_order_is_accepted_with_a_warning() -> None:
    app = decode_wired(bytes.fromhex(EXTRA["exmbus_mbus_ascii_unit_order"]["hex_frame"]))
    rh = [v for v in app.values if v.description == "%RH"]
    assert [v.value for v in rh] == [33.96, 33.13, 44.51]
    assert app.warnings and "libmbus order" in app.warnings[0]


def test_libmbus_error_frames_give_clean_errors_or_application_errors() -> None:
    folder = DATA / "libmbus" / "error-frames"
    app_errors = {
        "application_busy": 8, "buffer_too_long": 2, "error": -1, "premature_end_of_record": 4,
        "too_many_difes": 5, "too_many_readouts": 9, "too_many_records": 3, "too_many_vifes": 6,
        "unimplemented_ci": 1, "unspecified_error": 0,
    }  # fmt: skip
    files = sorted(folder.glob("*.hex"))
    assert len(files) == 20
    for path in files:
        frame = bytes.fromhex(path.read_text())
        if path.stem in app_errors:
            # CI 0x70: the meter reports an application error; that is a valid frame, not a decode error
            assert decode_wired(frame).application_error == app_errors[path.stem], path.stem
        else:
            with pytest.raises(DecodeError) as err:
                decode_wired(frame)
            assert err.value.offset is not None and 0 <= err.value.offset <= len(frame), path.stem


def test_records_where_libmbus_is_wrong_decode_as_the_standard_says() -> None:
    """The conformance allowlist's records, checked against EN 13757-3 / EN 1434-3 instead."""
    frames = DATA / "libmbus" / "test-frames"

    def values(name: str) -> tuple[MeterValue, ...]:
        return decode_wired(bytes.fromhex((frames / f"{name}.hex").read_text())).values

    els = values("ELS_Elster-F96-Plus")
    assert (els[4].raw, els[4].value, els[5].raw) == ("DDDDEBBD", "DDDDEBBD", "DDEBBD")
    t230 = values("landis+gyr_ultraheat_t230")
    assert t230[19].raw is None and t230[20].raw is None  # 00 00 00 00: no date recorded
    assert t230[21].raw == datetime(2011, 8, 26, 20, 50, tzinfo=UTC)
    assert t230[22].raw == datetime(2011, 8, 9, 11, 43, tzinfo=UTC)
    assert t230[21].text == "Flow temperature; date(/time) of end of last"
    pollutherm = values("sen_pollutherm")[2]
    assert (pollutherm.description, pollutherm.raw, pollutherm.text) == ("Reserved", 302, "VIF 0x7B without extension")
    historic = values("manual_frame2")[1]
    assert (historic.storage, historic.unit, historic.value) == (1, "m³", 0.135)


@pytest.mark.parametrize(
    ("tail", "words"),
    [
        ("DE 47", "before its VIF"),  # DIF + DIFE, no VIF (amiplus telegram tail)
        ("52 08", "needs 2 bytes"),  # int16 record without data (unismart)
        ("DD 2F", "before its VIF"),
        ("FF FF", "reserved special function"),
    ],
)
def test_tolerant_mode_keeps_complete_records_before_a_broken_one(tail: str, words: str) -> None:
    data = bytes.fromhex("04 13 E8030000 2F 2F " + tail)
    block = decode_record_block(data)
    assert [v.value for v in block.values] == [1.0]
    assert len(block.warnings) == 1 and words in block.warnings[0] and "kept the 1 complete" in block.warnings[0]
    assert decode_records(data, strict=False)[0] == block.values
    with pytest.raises(DecodeError):
        decode_records(data)  # strict by default
    with pytest.raises(DecodeError):
        decode_application(0x78, data)  # wired frames stay strict by default
    assert decode_application(0x78, data, strict=False).warnings == block.warnings


def test_compact_profiles_expand_into_one_value_per_element() -> None:
    # Zenner Caltos E: HCA, storage 8, inverse compact profile, BCD6 elements, one month apart, newest first
    inverse = "8D 04 EE 13 2C 3B FE 990000 520000 100000 000000" + " FF" * 30
    values = decode_records(bytes.fromhex(inverse), strict=True)[0]
    assert [v.raw for v in values] == [99, 52, 10, 0]
    # element k is storage 8 + k + 1 (Annex F as wmbusmeters and exmbus read it); BCD all-ones is "illegal"
    assert [v.storage for v in values] == [9, 10, 11, 12]
    assert all(v.description == "Units for H.C.A." for v in values)
    assert values[1].text == "inverse compact profile; element 2 of 14, newest first, every 1 month, absolute values"
    assert values[1].encoding == "BCD6" and values[1].data == bytes.fromhex("520000")
    # Techem: compact profile of int16 increments, oldest first
    compact = "8D 04 EE 1F 1E 72 FE" + " 0000" * 12 + " 0300 1600"
    values = decode_records(bytes.fromhex(compact), strict=True)[0]
    assert [v.raw for v in values][-2:] == [3, 22] and len(values) == 14
    assert "increments" in (values[0].text or "") and "oldest first" in (values[0].text or "")
    # with register numbers (VIFE 1E) element k has storage number + k + 1 (EN 13757-3:2018 F.2.6)
    values = decode_records(bytes.fromhex("8D 04 EE 1E 08 3B FE 990000 520000"), strict=True)[0]
    assert [(v.raw, v.storage) for v in values] == [(99, 9), (52, 10)]
    words = "compact profile with register numbers; element 2 of 2, oldest first, every 1 month, absolute values"
    assert values[1].text == words
    # without LVAR the VIFE is only words, not a profile
    assert one("04 EE 13 01000000").text == "inverse compact profile"


def test_type_f_hundred_year_bits_are_ignored_like_libmbus_and_wmbusmeters() -> None:
    """uiws (wmbusmeters test data) sends HY=2 in 046D 22484136; its other dates say 2026, not 2126."""
    from datetime import UTC, datetime

    from sonocli.codecs.mbus_app import decode_records

    values, _more, _mdata = decode_records(bytes.fromhex("046D22484136"))
    assert values[0].raw == datetime(2026, 6, 1, 8, 34, tzinfo=UTC)
    values, _more, _mdata = decode_records(bytes.fromhex("046D220841C6"))  # year 98: 81-99 are 19xx
    assert values[0].raw == datetime(1998, 6, 1, 8, 34, tzinfo=UTC)


# ---- real-world shapes beyond the libmbus set ----------------------------------------------------------


def test_lvar_text_range_holding_binary_is_kept_as_bytes() -> None:
    # manufacturer data in an LVAR "text" (0D FF 5F 0C ...): control characters are not ISO 8859-1 text
    v = one("0D FF 5F 0C 0102030405060708090A0B0C")
    assert v.raw == bytes(range(1, 13)) and v.value == "0102030405060708090A0B0C"
    assert one("0D FD 11 04 20412D42").raw == "B-A "  # printable text stays text, last character first
    assert one("0D FD 11 02 E9 41").raw == "Aé"  # ISO 8859-1


def test_vife_chains_with_extension_tables() -> None:
    # energy 10^3 Wh, VIFE FD (multiplicative 10^3 with the extension bit) then 74 (10^-2)
    assert one("04 86 FD 74 03000000").exponent == 3 + 3 - 2
    # FB 02: reactive energy 10^0 kVARh, then 75: 10^-1
    v = one("04 FB 82 75 10000000")
    assert (v.description, v.unit, v.exponent) == ("Reactive energy", "kVARh", -1)
    # FB 00: energy 10^-1 MWh = 10^5 Wh
    assert (one("04 FB 00 10000000").unit, one("04 FB 00 10000000").exponent) == ("Wh", 5)
    # FD 48 volts 10^-1, then a manufacturer-specific VIFE FF and one more byte: the quantity stays
    volts = one("04 FD C8 FF 01 E8030000")
    assert (volts.description, volts.unit, volts.exponent, volts.raw) == ("Volts", "V", -1, 1000)
    # manufacturer-specific VIF with a chain of VIFEs: kept, and the VIFEs named
    vendor = one("04 FF FF 01 02000000")
    assert vendor.description == "Vendor specific data" and "VIFE FF 01" in (vendor.text or "")


def test_plain_text_unit_with_lvar_text_value() -> None:
    v = one("0D 7C 03 484356 02 3132")
    assert (v.description, v.raw, v.dif_vif) == ("VCH", "21", bytes.fromhex("0D7C03484356"))


def test_storage_above_15_and_tariff_subunit_bits() -> None:
    assert one("C4 0F 06 01000000").storage == 1 + (15 << 1)
    assert one("84 81 01 06 01000000").storage == (1 << 1) | (1 << 5)
    v = one("84 B0 C0 00 06 05000000")  # tariff bits 3 then 0, subunit bits 0 then 1
    assert (v.storage, v.tariff, v.subunit) == (0, 3, 2)
    assert one("94 0A 06 06000000").function == ValueType.MAXIMUM


def test_wide_integers_and_negative_bcd() -> None:
    assert one("06 03 FEFFFFFFFFFF").raw == -2
    assert one("07 03 0102030405060708").raw == 0x0807060504030201
    assert one("03 03 FFFF7F").raw == 0x7FFFFF
    assert one("0C 13 78 56 34 F2").raw == -2345678
    assert one("0A 5A 12 F0").value == -1.2


def test_fillers_between_records_and_more_records_follow() -> None:
    values, more, mfr = decode_records(bytes.fromhex("2F 04 06 01000000 2F 2F 04 13 02000000 2F 1F AA BB"))
    assert [v.raw for v in values] == [1, 2] and [v.index for v in values] == [0, 1]
    assert more and mfr == b"\xaa\xbb"
