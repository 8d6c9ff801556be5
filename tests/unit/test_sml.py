"""SML: the codec on real meter files (stated values), the stream with faults, sim://sml, the engine's
listening and the daemon's sampling, SML inside M-Bus frames (MBUS_SMLENEABLE), ``listen --protocol sml``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from sonocli.codecs import sml
from sonocli.engine.core import Engine
from sonocli.errors import DecodeError, NeedMoreData
from sonocli.model.values import Interface, Meter, Reading

DATA = Path(__file__).parent.parent / "data" / "sml"
EMH = bytes.fromhex((DATA / "EMH_eHZ-GW8E2A500AK2.hex").read_text().strip())
HLY = bytes.fromhex((DATA / "smllib_frame2.hex").read_text().strip())


def files(data: bytes) -> list[sml.SmlFile | DecodeError]:
    return list(sml.SmlStream().feed(data))


# -- codec ---------------------------------------------------------------------------------------------------
def test_emh_ehz_files_decode_to_their_stated_values() -> None:
    got = files(EMH)
    assert len(got) == 3 and all(isinstance(f, sml.SmlFile) for f in got)
    first = got[0]
    assert isinstance(first, sml.SmlFile)
    assert first.messages == ("SmlOpenResponse", "SmlGetListResponse", "SmlCloseResponse")
    assert (first.manufacturer, first.serial) == ("EMH", "02280816")
    values = {v.text: v for v in sml.file_values(first)}
    # libsml's sml_server output for this dump (tests/data/sml/README.md)
    assert str(values["1-0:1.8.1*255"].exact) == "14798112.9" and values["1-0:1.8.1*255"].unit == "Wh"
    assert str(values["1-0:1.8.2*255"].exact) == "2012.4"
    assert str(values["1-0:1.7.0*255"].exact) == "13.8" and values["1-0:1.7.0*255"].unit == "W"
    assert values["129-129:199.130.3*255"].raw == "EMH" and values["1-0:0.0.0*255"].raw == "02280816"
    assert values["1-0:1.8.1*255"].description == "Energy" and values["1-0:1.8.1*255"].tariff == 1
    assert values["1-0:1.7.0*255"].description == "Power"
    second = got[1]
    assert isinstance(second, sml.SmlFile)
    assert {v.text: str(v.exact) for v in sml.file_values(second)}["1-0:1.8.1*255"] == "14798113"  # .0


def test_holley_file_structure_and_encode_round_trip() -> None:
    file, used = sml.decode_file(HLY)
    assert used == len(HLY) and len(file.entries) == 20
    assert (file.manufacturer, file.server_id.hex().upper()) == ("HLY", "0A01484C5902000424A0")
    by = {e.obis_text: e for e in file.entries}
    assert (by["1-0:1.8.0*255"].unit, by["1-0:1.8.0*255"].scaler) == (30, -1)
    assert by["1-0:32.7.0*255"].unit == 35 and by["1-0:14.7.0*255"].unit == 44
    v = {x.text: x for x in sml.file_values(file)}
    assert v["1-0:32.7.0*255"].description == "Volts" and v["1-0:31.7.0*255"].description == "Ampere"
    assert v["1-0:14.7.0*255"].unit == "Hz"
    padding = HLY[-3]
    body = HLY[8 : len(HLY) - 8 - padding]
    assert sml.encode_file(body) == HLY  # the framing (padding, escape, CRC) is exactly the meter's


def test_crc_is_checked_and_a_bad_file_does_not_stop_the_stream() -> None:
    bad = HLY[:-1] + bytes((HLY[-1] ^ 0x01,))
    with pytest.raises(DecodeError, match="CRC"):
        sml.decode_file(bad)
    got = files(bad + EMH[:252])
    assert isinstance(got[0], DecodeError) and "CRC 0x22EC received, 0x22ED computed" in str(got[0])
    assert isinstance(got[1], sml.SmlFile) and got[1].serial == "02280816"


def test_truncated_file_and_incomplete_tail() -> None:
    with pytest.raises(NeedMoreData):
        sml.decode_file(EMH[:200])
    got = files(EMH[:200] + EMH[252:504])  # a file cut short, then the next one
    assert isinstance(got[0], DecodeError) and "truncated" in str(got[0])
    assert isinstance(got[1], sml.SmlFile)
    stream = sml.SmlStream()
    assert list(stream.feed(EMH[:100])) == [] and stream.pending == 100  # waits for the rest
    assert [f.serial for f in stream.feed(EMH[100:252]) if isinstance(f, sml.SmlFile)] == ["02280816"]


def test_unknown_message_is_one_clear_error() -> None:
    from sonocli.sim.sml import with_unknown_message

    odd = with_unknown_message(EMH[:252])
    with pytest.raises(DecodeError, match=r"unknown message type 0x0301"):
        sml.decode_file(odd)


def test_each_message_crc_is_checked_inside_a_good_transport_crc() -> None:
    from sonocli.sim.sml import peer_from_params, with_bad_message_crc

    for raw in (EMH[:252], EMH[252:504], HLY):  # the real files carry right message CRCs
        body = raw[8 : len(raw) - 8 - raw[-3]]
        spans = sml.message_spans(body)
        assert len(spans) == 3 and all(body[s] == 0x76 for s, _, _ in spans)
        sml.check_message_crcs(body)
    odd = with_bad_message_crc(EMH[:252])
    assert sml.crc16_x25(odd[:-2]) == int.from_bytes(odd[-2:], "big")  # the transport CRC is fine
    with pytest.raises(DecodeError, match=r"message 2 CRC 0x[0-9A-F]{4} received, 0x[0-9A-F]{4} computed"):
        sml.decode_file(odd)
    got = files(odd + EMH[252:504])  # the stream goes on with the next file
    assert isinstance(got[0], DecodeError) and isinstance(got[1], sml.SmlFile)
    meter = peer_from_params({"crc": "message", "every": "2", "count": "2"})
    assert meter.file(0) == meter.files[0] and meter.file(1) != meter.files[1]
    with pytest.raises(ValueError, match="ok, bad, message"):
        peer_from_params({"crc": "maybe"})


def test_a_message_cut_inside_an_element_is_one_clear_error() -> None:
    body = EMH[8 : 252 - 8 - EMH[252 - 3]]
    with pytest.raises(DecodeError, match="SML file"):
        sml.check_message_crcs(body[:40])


def test_escaped_escape_sequence_in_the_data() -> None:
    body = EMH[8 : 252 - 8 - EMH[252 - 3]]
    # an octet string holding 1B1B1B1B: the transport escapes it, the parser gets it back
    framed = sml.encode_file(body)
    assert framed == EMH[:252]
    assert sml.crc16_x25(EMH[:250]) == int.from_bytes(EMH[250:252], "big")


# -- sim://sml and the engine ---------------------------------------------------------------------------------
def root_with(tmp_path: Path, **settings: str) -> Path:
    from sonocli.config.chipini import ChipIni
    from sonocli.config.layout import init_root

    root = tmp_path / "root"
    layout = init_root(root)
    chip = ChipIni.load(layout.chip_ini)
    for key, value in settings.items():
        chip.set(key, value)
    chip.save(layout.chip_ini)
    return root


def test_sim_sml_pushes_the_real_files_with_faults_on_demand() -> None:
    from sonocli.sim.sml import peer_from_params

    meter = peer_from_params({"count": "4", "crc": "bad", "every": "2"})
    out = b""
    now = 0.0
    meter.poll(0.0)
    while (event := meter.next_event()) is not None:
        now = event
        out += meter.poll(now)
    assert now == pytest.approx(3.0 + 252 * 10 / 9600, abs=1e-6)  # one file a second, 8N1 at 9600 baud
    got = files(out)
    assert [isinstance(f, sml.SmlFile) for f in got] == [True, False, True, False]
    assert all("CRC" in str(f) for f in got[1::2])
    assert out[:252] == EMH[:252]
    truncated = peer_from_params({"count": "2", "truncate": "100"})
    truncated.poll(0.0)
    data = b""
    while (event := truncated.next_event()) is not None:
        data += truncated.poll(event)
    assert len(data) == 200


def test_listen_sml_records_readings_with_obis_entries(tmp_path: Path) -> None:
    from sonocli.engine.sml import is_sml_meter, listen_sml, sml_meter

    root = root_with(tmp_path)
    engine = Engine(root)
    try:
        engine.update_meters(lambda ml: (replace(ml, meters=(sml_meter("02280816", "EMH", user="hall"),)), None))
        items: list[object] = []
        stats = listen_sml(engine, "sim://sml?crc=bad&every=3", duration=5.5, on_item=items.append)
        assert (stats.files, stats.bad) == (4, 2) and stats.stored == 4
        listed = engine.meter_list().meters[0]
        assert is_sml_meter(listed) and listed.user == "hall"
        assert [v.obis for v in listed.values][2:4] == ["1-0:1.8.1*255", "1-0:1.8.2*255"]  # learned
        latest = [r for r in engine.store.latest_readings() if r.meter.serial == "02280816"]
        assert latest and {v.text for v in latest[0].values} >= {"1-0:1.8.1*255", "1-0:1.7.0*255"}
        assert all(v.index >= 0 for v in latest[0].values)
    finally:
        engine.close()


def test_daemon_step_samples_each_sml_meter_once(tmp_path: Path) -> None:
    from sonocli.engine.sml import read_due, sml_meter

    root = root_with(tmp_path, SML_PORT="sim://sml?crc=bad&every=2", SML_TIMEOUT="5000")
    engine = Engine(root)
    try:
        engine.update_meters(lambda ml: (replace(ml, meters=(sml_meter("02280816", "EMH"),)), None))
        readings = read_due(engine)
        assert len(readings) == 1 and readings[0].meter.device_id == "EMH-02280816-00-02"
        assert engine.store.count() == 1
    finally:
        engine.close()
    unlisted = root_with(tmp_path / "u", SML_PORT="sim://sml")
    engine = Engine(unlisted)
    try:
        assert read_due(engine) == [] and engine.store.count() == 0  # not in the list: not reported
    finally:
        engine.close()
    bad = root_with(tmp_path / "b", SML_PORT="sim://sml?crc=bad", SML_TIMEOUT="3000")
    engine = Engine(bad)
    try:
        assert read_due(engine) == []  # logged, nothing recorded, no exception
    finally:
        engine.close()


def test_dlde_readout_leaves_sml_meters_alone(tmp_path: Path) -> None:
    from sonocli.engine.dlde import dlde_meters
    from sonocli.engine.sml import sml_meter

    engine = Engine(root_with(tmp_path), meters=[sml_meter("02280816", "EMH"), Meter(Interface.DLDE, "62807889")])
    try:
        assert [m.serial for m in dlde_meters(engine)] == ["62807889"]
    finally:
        engine.close()


def mbus_frame_with_sml(sml_file: bytes) -> bytes:
    """An RSP_UD long frame: fixed header, one energy record, then DIF 0Fh and an SML file as manufacturer
    data (the way meters carry SML inside M-Bus)."""
    header = bytes.fromhex("78563412") + bytes.fromhex("2C2D") + bytes((0x01, 0x02, 0x01, 0x00, 0x00, 0x00))
    records = bytes.fromhex("0403") + (12345).to_bytes(4, "little") + b"\x0f" + sml_file
    user = bytes((0x08, 0x01, 0x72)) + header + records
    return bytes((0x68, len(user), len(user), 0x68)) + user + bytes((sum(user) & 0xFF, 0x16))


@pytest.mark.parametrize(("interface", "flag", "enabled"), [
    (Interface.MBUS, "MBUS_SMLENEABLE", True), (Interface.MBUS, "MBUS_SMLENEABLE", False),
    (Interface.WMBUS, "WMBUS_SMLENEBALE", True), (Interface.MBUS, "WMBUS_SMLENEBALE", True)])
def test_sml_inside_an_mbus_frame_when_mbus_smleneable(tmp_path: Path, interface: Interface, flag: str,
                                                       enabled: bool) -> None:
    from datetime import UTC, datetime

    from sonocli.codecs.mbus_link import decode_frame
    from sonocli.engine.master import decode_telegrams

    body = EMH[8 : 252 - 8 - EMH[252 - 3]]
    get_list = body[body.index(bytes.fromhex("63F8CC00")) + 4 : body.index(bytes.fromhex("7607004300001D27"))]
    frame = mbus_frame_with_sml(sml.encode_file(get_list))  # the meter's GetList.Res alone: fits one frame
    root = root_with(tmp_path, **{flag: "1" if enabled else "0"})
    engine = Engine(root)
    try:
        telegram, _used = decode_frame(frame)
        values, _ident = decode_telegrams([telegram])  # type: ignore[list-item]
        assert [v.raw for v in values] == [12345]  # the M-Bus record; the SML file is manufacturer data
        meter = Meter(interface, serial="12345678", manufacturer="KAM", version=1, medium=2)
        engine.update_meters(lambda ml: (replace(ml, meters=(meter,)), None))
        reading = Reading(meter, datetime.now(UTC), tuple(values), raw_frames=(frame,))
        recorded = engine.record([reading])
        texts = {v.text for v in recorded.readings[0].values if v.encoding == "SML"}
        if enabled and (flag == "MBUS_SMLENEABLE") == (interface is Interface.MBUS):
            assert "1-0:1.8.1*255" in texts
            kept = engine.store.latest_readings()[0]
            assert str({v.text: v for v in kept.values}["1-0:1.8.1*255"].exact) == "14798112.9"
            learned = engine.meter_list().meters[0].values
            assert learned[0].difvif == "0403" and learned[0].obis is None  # the M-Bus record
            assert [v.obis for v in learned[1:]][2:4] == ["1-0:1.8.1*255", "1-0:1.8.2*255"]  # SML: OBIS-IDs
        else:
            assert texts == set()
    finally:
        engine.close()


def wmbus_mode5_with_sml(sml_file: bytes, key: bytes, acc: int = 0x21) -> bytes:
    """A wM-Bus telegram (KAM 12345678, electricity) whose mode-5 encrypted application data is 2F 2F, one
    energy record, DIF 0Fh and an SML file as manufacturer data, encrypted with AES-128-CBC and the OMS IV
    (M, A, then the access number eight times), the way an OMS meter carries SML inside wM-Bus."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    header = bytes.fromhex("442D2C78563412") + bytes((0x01, 0x02))  # C, M=KAM, id, version 1, electricity
    plain = b"\x2f\x2f" + bytes.fromhex("0403") + (12345).to_bytes(4, "little") + b"\x0f" + sml_file
    plain += b"\x2f" * (-len(plain) % 16)
    iv = header[1:9] + bytes((acc,)) * 8
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    cipher = encryptor.update(plain) + encryptor.finalize()
    cfg = (5 << 8) | ((len(plain) // 16) << 4)
    body = header + bytes((0x7A, acc, 0x00)) + cfg.to_bytes(2, "little") + cipher
    return bytes((len(body),)) + body


@pytest.mark.parametrize("enabled", [True, False])
def test_sml_inside_an_encrypted_wmbus_telegram(tmp_path: Path, enabled: bool) -> None:
    """The receiver hands the decrypted application data on: the SML file inside is found although the
    telegram on the air shows none of it (its start sequence is encrypted)."""
    from sonocli.cli.root import cli

    key = bytes(range(16))
    body = EMH[8 : 252 - 8 - EMH[252 - 3]]
    get_list = body[body.index(bytes.fromhex("63F8CC00")) + 4 : body.index(bytes.fromhex("7607004300001D27"))]
    telegram = wmbus_mode5_with_sml(sml.encode_file(get_list), key)
    assert sml.START not in telegram
    (tmp_path / "air.txt").write_text(telegram.hex().upper() + "\n")
    root = root_with(tmp_path, WMBUS_SMLENEBALE="1" if enabled else "0")
    engine = Engine(root)
    try:
        meter = Meter(Interface.WMBUS, serial="12345678", manufacturer="KAM", version=1, medium=2, key=key,
                      active=True)
        engine.update_meters(lambda ml: (replace(ml, meters=(meter,)), None))
    finally:
        engine.close()
    result = CliRunner().invoke(cli, ["--root", str(root), "listen", "--port",
                                      f"sim://air?file={tmp_path / 'air.txt'}&count=1", "--dongle", "im871a",
                                      "--count", "1", "--json"])
    assert result.exit_code == 0, result.output
    engine = Engine(root)
    try:
        kept = engine.store.latest_readings()
        assert len(kept) == 1 and kept[0].meter.serial == "12345678"
        values = {v.text: v for v in kept[0].values if v.encoding == "SML"}
        assert kept[0].values[0].raw == 12345  # the standard record, decrypted
        if enabled:
            assert str(values["1-0:1.8.1*255"].exact) == "14798112.9"
            assert "1-0:1.8.1*255" in [v.obis for v in engine.meter_list().meters[0].values]
            assert kept[0].raw_frames and sml.START not in kept[0].raw_frames[0]  # stored as heard
        else:
            assert values == {}
    finally:
        engine.close()


def test_listen_protocol_sml_json_and_bad_files(tmp_path: Path) -> None:
    from sonocli.cli.root import cli

    root = root_with(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["--root", str(root), "listen", "--protocol", "sml", "--port", "sim://sml",
                                 "--count", "2", "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2 and lines[0]["kind"] == "sml"
    records = {r["obis"]: r for r in lines[0]["records"]}
    assert records["1-0:1.8.1*255"]["value"] == 14798112.9 and records["1-0:1.8.1*255"]["unit"] == "Wh"
    assert all("obis" in r for line in lines for r in line["records"])
    result = runner.invoke(cli, ["--root", str(root), "listen", "--protocol", "sml", "--port",
                                 "sim://sml?crc=bad", "--duration", "3"])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("sonocli: bad SML file")]
    assert errors and all("CRC" in line for line in errors)
    result = runner.invoke(cli, ["--root", str(root), "listen", "--protocol", "sml", "--port", "sim://sml",
                                 "--count", "1", "--save", "--json"])
    assert result.exit_code == 0, result.output
    from sonocli.engine.sml import is_sml_meter

    check = Engine(root)
    saved = check.meter_list().meters
    check.close()
    assert [(m.device_id, m.active, is_sml_meter(m)) for m in saved] == [("EMH-02280816-00-02", False, True)]
    result = runner.invoke(cli, ["--root", str(root), "listen", "--protocol", "sml"])
    assert result.exit_code == 2 and "no SML port" in result.stderr
