"""DLDE (IEC 62056-21): the codec on a real MT174 readout, the readout sequence against sim://dlde (modes A,
B and C, multi-drop, faults), the meter list learning OBIS-IDs, and ``readout --protocol dlde``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sonocli.codecs import dlde
from sonocli.engine.core import Engine
from sonocli.engine.dlde import DldeSettings, open_dlde_link, read_dlde, read_meter
from sonocli.errors import DecodeError, NeedMoreData, ProtocolError, TimeoutError_, UsageError
from sonocli.model.values import Interface, Meter

DATA = Path(__file__).parent.parent / "data" / "dlde" / "iskra_mt174_modec.bin"


def split(raw: bytes) -> tuple[bytes, bytes]:
    end = raw.index(b"\n") + 1
    return raw[:end], raw[end:]


# -- codec ---------------------------------------------------------------------------------------------------
def test_real_mt174_readout_decodes_to_its_stated_values() -> None:
    ident_line, message = split(DATA.read_bytes())
    ident = dlde.parse_identification(ident_line)
    assert (ident.manufacturer, ident.baud_char, ident.ident) == ("ISk", "5", "MT174-0002")
    assert ident.mode == "C" and ident.baudrate == 9600 and ident.fast
    decoded, used = dlde.decode_data_message(message)
    assert used == len(message)
    values = dlde.data_set_values(decoded.data_sets)
    energy = {v.text: v for v in values if v.unit == "Wh"}
    assert energy["1-0:1.8.0*255"].raw == 502853 and energy["1-0:1.8.0*255"].exponent == 0
    assert energy["1-0:1.8.0*255"].value == 502853.0  # 502.853 kWh, exactly
    assert energy["1-0:2.8.0*255"].raw == 98697318 and energy["1-0:2.8.0*255"].description == "Energy"
    assert [v.raw for v in values[:2]] == ["0220127", "105644"]  # date and time stay text


def test_message_whole_halves_and_byte_by_byte() -> None:
    _ident, message = split(DATA.read_bytes())
    for cut in range(len(message)):
        with pytest.raises(NeedMoreData):
            dlde.decode_data_message(message[:cut])
    decoded, used = dlde.decode_data_message(b"\x00\x7fgarbage" + message)
    assert used == len(message) + 9 and len(decoded.data_sets) == 4


def test_wrong_bcc_is_one_clear_error() -> None:
    _ident, message = split(DATA.read_bytes())
    broken = message[:-1] + bytes((message[-1] ^ 1,))
    with pytest.raises(DecodeError, match="BCC 0x18 received, 0x19 computed"):
        dlde.decode_data_message(broken)


def test_messages_of_the_standard() -> None:
    assert dlde.sign_on() == b"/?!\r\n"
    assert dlde.sign_on("45678903") == b"/?45678903!\r\n"
    assert dlde.ack_option_select("5") == b"\x06050\r\n"
    assert dlde.bcc(b"P0\x02(1234567)\x03") == ord("P")
    with pytest.raises(UsageError, match="not allowed"):
        dlde.sign_on("no!bang")
    ident = dlde.parse_identification(b"/LGZ4\\2ZMD3102400.B31\r\n")
    assert ident.enhanced == "\\2" and ident.mode == "C" and ident.baudrate == 4800
    assert dlde.parse_identification(b"/ABCE1234\r\n").mode == "B"
    assert dlde.parse_identification(b"/ABCH1234\r\n").mode == "A"
    assert dlde.baud_char_for(dlde.parse_identification(b"/ISk6X\r\n"), 9600) == "5"
    with pytest.raises(DecodeError, match="not an identification"):
        dlde.parse_identification(b"hello\r\n")


def test_data_sets_reduced_obis_units_and_several_values() -> None:
    _lines, sets = dlde.parse_data_block(
        "F.F(00000000)\r\nC.1.0(62807889)\r\n1.8.1(001985.597*kWh)\r\n"
        "1-0:1.6.0(230318200000W)(04.470*kW)\r\n1-0:32.7.0(230.9*V)\r\n!\r\n"
    )
    values = dlde.data_set_values(sets)
    by = [(v.text, v.raw, v.exponent, v.unit, v.description, v.tariff, v.subunit) for v in values]
    assert by == [
        ("0-0:97.97.0*255", "00000000", 0, "", "None", 0, 0),
        ("0-0:96.1.0*255", "62807889", 0, "", "None", 0, 0),
        ("1-0:1.8.1*255", 1985597, 0, "Wh", "Energy", 1, 0),
        ("1-0:1.6.0*255", "230318200000W", 0, "", "Power", 0, 0),
        ("1-0:1.6.0*255", 4470, 0, "W", "Power", 0, 1),
        ("1-0:32.7.0*255", 2309, -1, "V", "Volts", 0, 0),
    ]
    assert values[4].function.value == "maximum"
    with pytest.raises(DecodeError, match="line 1"):
        dlde.parse_data_block("1.8.0(12*kWh\r\n")


# -- the readout sequence on sim://dlde ------------------------------------------------------------------------
Log = list[tuple[str, int, bytes]]


def readout(url: str, address: str = "", **settings: object) -> tuple[dlde.Identification, int, Log]:
    s = DldeSettings(**settings)  # type: ignore[arg-type]
    with open_dlde_link(url, s) as link:
        try:
            ident, message, rate = read_meter(link, address, s)
        finally:
            log = [(d, b, x) for _t, d, b, x in link.port.peer.log]
        assert link.baudrate == 300  # back at the sign-on rate for the next meter
    assert len(message.data_sets) == 4
    return ident, rate, log


def test_mode_c_switches_after_the_acknowledgement() -> None:
    ident, rate, log = readout("sim://dlde")
    assert ident.mode == "C" and rate == 9600
    assert log[0] == ("rx", 300, b"/?!\r\n")
    assert log[1] == ("tx", 300, b"/ISk5MT174-0002\r\n")
    assert log[2] == ("rx", 300, b"\x06050\r\n")  # the acknowledgement still at 300 baud
    assert log[3] == ("tx", 9600, DATA.read_bytes()[17:])  # then the real data message at 9600


def test_mode_c_rate_capped_by_dlde_baudrate() -> None:
    _ident, rate, log = readout("sim://dlde?baud=19200", max_baudrate=4800)
    assert rate == 4800 and log[2] == ("rx", 300, b"\x06040\r\n") and log[3][1] == 4800


def test_mode_b_and_mode_a() -> None:
    ident, rate, log = readout("sim://dlde?mode=B")
    assert ident.mode == "B" and rate == 9600 and [e[0] for e in log] == ["rx", "tx", "tx"] and log[2][1] == 9600
    ident, rate, log = readout("sim://dlde?mode=A")
    assert ident.mode == "A" and rate == 300 and log[2][1] == 300


def test_multi_drop_only_the_addressed_meter_answers() -> None:
    url = "sim://dlde?address=11111111,62807889"
    _ident, _rate, log = readout(url, "62807889")
    assert log[0] == ("rx", 300, b"/?62807889!\r\n") and len([e for e in log if e[0] == "tx"]) == 2
    s = DldeSettings()
    with open_dlde_link(url, s) as link, pytest.raises(ProtocolError, match="not an identification"):
        read_meter(link, "", s)  # both meters answer an address-less sign-on: a collision
    with open_dlde_link(url, s) as link, pytest.raises(TimeoutError_, match="no identification"):
        read_meter(link, "99999999", s)


@pytest.mark.parametrize(
    ("query", "error", "text"),
    [
        ("bcc=bad", ProtocolError, "BCC 0x18 received, 0x19 computed"),
        ("no_switch=1", ProtocolError, "did not switch to 9600 baud"),
        ("truncate=40", TimeoutError_, "stopped after 40 bytes"),
        ("slow=3", TimeoutError_, "no identification within 2.0 s"),
    ],
)
def test_faults_are_one_clear_error(query: str, error: type[Exception], text: str) -> None:
    s = DldeSettings()
    with open_dlde_link(f"sim://dlde?{query}", s) as link, pytest.raises(error, match=text):
        read_meter(link, "", s)


def test_a_slow_meter_within_the_timeout_is_read() -> None:
    ident, _rate, _log = readout("sim://dlde?slow=1.2")
    assert ident.ident == "MT174-0002"


# -- the meter list and the CLI --------------------------------------------------------------------------------
def dlde_root(tmp_path: Path) -> Path:
    from sonocli.config.layout import init_root
    from sonocli.engine.meterlist import add_meters

    root = tmp_path / "root"
    init_root(root)
    engine = Engine(root)
    try:
        meter = Meter(Interface.DLDE, serial="62807889", manufacturer="ISK", medium=2)
        engine.update_meters(lambda ml: add_meters(ml, meter, 1, engine.limits()))
    finally:
        engine.close()
    return root


def test_listed_meter_learns_obis_ids_and_keeps_labels(tmp_path: Path) -> None:
    from dataclasses import replace

    root = dlde_root(tmp_path)
    engine = Engine(root)
    try:
        result, recorded = read_dlde(engine, url="sim://dlde", address="62807889")
        entry = engine.meters[0]
        assert [v.obis for v in entry.values] == ["1-0:0.9.2*255", "1-0:0.9.1*255", "1-0:1.8.0*255",
                                                 "1-0:2.8.0*255"]
        assert [v.index for v in result.reading.values] == [0, 1, 2, 3]
        # the engineer labels the import register and deactivates the date: that is what is delivered
        values = list(entry.values)
        values[2] = replace(values[2], user="import")
        values[0] = replace(values[0], active=False)
        engine.update_meters(lambda ml: (replace(ml, meters=(replace(ml.meters[0], values=tuple(values)),)), None))
        result, recorded = read_dlde(engine, url="sim://dlde", address="62807889")
        delivered = engine.configured(recorded.readings)[0]
        assert [v.text for v in delivered.values] == ["1-0:0.9.1*255", "1-0:1.8.0*255", "1-0:2.8.0*255"]
        assert delivered.meter.values[2].user == "import"
        assert engine.store.count() == 2
    finally:
        engine.close()


def test_cli_readout_protocol_dlde_json(tmp_path: Path) -> None:
    from sonocli.cli.root import cli

    root = dlde_root(tmp_path)
    runner = CliRunner()
    out = runner.invoke(cli, ["--root", str(root), "readout", "--protocol", "dlde", "--port",
                              "sim://dlde?address=62807889", "--address", "62807889", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data[0]["meter"]["device_id"] == "ISK-62807889-00-02"
    assert data[0]["mode"] == "C" and data[0]["baudrate"] == 9600
    assert all("obis" in r for r in data[0]["records"])
    assert data[0]["records"][2]["obis"] == "1-0:1.8.0*255" and data[0]["records"][2]["value"] == 502853.0
    bad = runner.invoke(cli, ["--root", str(root), "readout", "--protocol", "dlde", "--port", "sim://dlde?bcc=bad"])
    assert bad.exit_code == 1 and "BCC" in bad.output
    usage = runner.invoke(cli, ["--root", str(root), "readout", "--protocol", "dlde", "--port", "sim://dlde", "--all"])
    assert usage.exit_code == 2
    mbus = runner.invoke(cli, ["--root", str(root), "readout", "--port", "sim://demo", "--address", "300"])
    assert mbus.exit_code == 2 and "0<=x<=250" in mbus.output
