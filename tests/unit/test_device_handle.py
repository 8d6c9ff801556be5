"""device_handle.cfg: Table 26 mapping, lossless round trips, hardened parsing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sonocli.config.device_handle import (
    MeterList,
    XmlStyle,
    load_meter_list,
    parse_meter_list,
    render_meter_list,
    save_meter_list,
)
from sonocli.errors import ConfigError
from sonocli.model.tables import MEDIA
from sonocli.model.values import AddressMode, Interface, Meter, ValueConfig, ValueType

DATA = Path(__file__).parent.parent / "data" / "config"
SAMPLE = DATA / "device_handle.cfg"


def test_sample_reads_as_table_26_says() -> None:
    meters = load_meter_list(SAMPLE).meters
    mbus, wmbus, s0, dlde = meters
    assert (mbus.interface, mbus.serial, mbus.manufacturer, mbus.version, mbus.medium) == (
        Interface.MBUS,
        "30101198",
        "DFS",
        1,
        4,
    )
    assert (mbus.primary_address, mbus.address_mode, mbus.readout_cycle, mbus.max_value_count) == (
        3,
        AddressMode.PRIMARY,
        900,
        12,
    )
    assert mbus.user == "OG-1-Re" and mbus.device_id == "DFS-30101198-01-04"
    energy, volume, maximum = mbus.values
    assert (energy.description, energy.unit, energy.encodetype, energy.exponent) == ("Energy", "Wh", "INT32", 3)
    assert (volume.unit, volume.exponent, volume.storagenum, volume.tariff) == ("m³", -3, 2, 3)
    assert (volume.obis, volume.active, volume.register) == ("8-0:1.0.0*255", False, 250)
    assert maximum.valuetype is ValueType.MAXIMUM and maximum.description == "None"
    assert wmbus.key == bytes.fromhex("82B0551191F51D66EFCDAB8967452301")
    assert (wmbus.active, wmbus.rssi, wmbus.medium) == (False, 123, 7)
    assert [tag for tag, _ in wmbus.extra] == ["vendorflag", "#comment"]
    assert s0.values[0].value == 280.09 and s0.values[0].obis == "1-0:1.8.0*255"
    assert dlde.interface is Interface.DLDE and dlde.values == ()


def test_unchanged_file_round_trips_byte_identical(tmp_path: Path) -> None:
    target = tmp_path / "device_handle.cfg"
    save_meter_list(target, load_meter_list(SAMPLE))
    assert target.read_bytes() == SAMPLE.read_bytes()


def test_fresh_rendering_of_the_sample_is_byte_identical() -> None:
    """Not just the saved bytes: the writer itself reproduces a file in the device's style."""
    loaded = load_meter_list(SAMPLE)
    assert render_meter_list(replace(loaded, source=None)) == SAMPLE.read_bytes()


def test_change_keeps_unknown_elements_comments_and_style(tmp_path: Path) -> None:
    data = SAMPLE.read_bytes().replace(b"\n", b"\r\n").replace(b"\t", b"  ")
    loaded = parse_meter_list(data)
    assert loaded.style.newline == "\r\n" and loaded.style.indent == "  "
    changed = replace(loaded, meters=(*loaded.meters, Meter(Interface.S0, serial="00000002")))
    out = render_meter_list(changed)
    assert out.startswith(data[: data.index(b"</root>")])  # everything before stays as it was
    assert out.endswith(
        b"  <meter>\r\n    <interface>S0</interface>\r\n    <serial>0x00000002</serial>\r\n  </meter>\r\n</root>\r\n"
    )
    again = parse_meter_list(out)
    assert again.meters == changed.meters


def test_only_non_default_entries_are_written() -> None:
    out = render_meter_list(MeterList(meters=(Meter(Interface.MBUS, values=(ValueConfig(),)),)))
    assert out == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<root>\n\t<version>0x06</version>\n\t<meter>\n'
        b"\t\t<interface>M-Bus</interface>\n\t\t<value/>\n\t</meter>\n</root>\n"
    )


def test_missing_file_is_an_empty_list(tmp_path: Path) -> None:
    assert load_meter_list(tmp_path / "none.cfg").meters == ()


def test_key_zero_means_not_set() -> None:
    text = (
        b"<root><version>0x06</version><meter><interface>wM-Bus</interface>"
        b"<encryptionkey>0</encryptionkey></meter></root>"
    )
    assert parse_meter_list(text).meters[0].key is None


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "device_handle.cfg"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "line", "message"),
    [
        (
            b"<root>\n<version>0x06</version>\n<meter><interface>M-Bus</interface>\n<user>K\xfcche</user></meter></root>",
            4,
            "not UTF-8",
        ),
        (b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<root/>', 1, "only UTF-8"),
        (b"<root>\n<version>0x06</version>\n<meter>\n</root>", 4, "not well-formed XML"),
        (
            b"<root>\n<meter>\n<interface>M-Bus</interface>\n<medium>Lava</medium>\n</meter>\n</root>",
            4,
            "medium 'Lava' is not a text of Table 16",
        ),
        (
            b"<root>\n<meter>\n<interface>M-Bus</interface>\n<value><scale>2e3</scale></value>\n</meter></root>",
            4,
            "power of ten",
        ),
        (b"<root>\n<meter>\n<interface>LoRa</interface>\n</meter></root>", 3, "interface 'LoRa' is not one of"),
        (b"<root>\n<meter>\n<serial>0x1</serial>\n</meter></root>", 2, "without <interface>"),
        (b"<root>\n<meter>\n<interface>M-Bus</interface><active>2</active>\n</meter></root>", 3, "0 or 1"),
        (
            b"<root>\n<meter>\n<interface>M-Bus</interface><value>\n<valuetype>avg</valuetype></value></meter></root>",
            4,
            "'avg' is not a valid ValueType",
        ),
    ],
)
def test_bad_files_name_file_and_line(tmp_path: Path, data: bytes, line: int, message: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError, match=message) as info:
        load_meter_list(path)
    assert info.value.file == str(path)
    assert info.value.line == line


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<root><version>0x06</version><meter><interface>M-Bus</interface><user>&lol9;</user></meter></root>
"""


def test_billion_laughs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DOCTYPE/ENTITY declarations are not allowed") as info:
        load_meter_list(_write(tmp_path, BILLION_LAUGHS))
    assert info.value.line == 2


def test_external_entity_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    data = (
        f'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>\n'
        "<root><meter><interface>M-Bus</interface><user>&x;</user></meter></root>"
    ).encode()
    with pytest.raises(ConfigError, match="not allowed"):
        load_meter_list(_write(tmp_path, data))


def test_undeclared_entity_is_not_expanded(tmp_path: Path) -> None:
    data = b"<root><meter><interface>M-Bus</interface><user>&x;</user></meter></root>"
    with pytest.raises(ConfigError, match="not well-formed"):
        load_meter_list(_write(tmp_path, data))


# ------------------------------------------------------------------------------- property tests
_label = st.text(alphabet=st.sampled_from("ABCxyz019!$%&/()=?+*,-._ "), max_size=12)
_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters='<>"&\x85\u2028\u2029'),
    min_size=1,
    max_size=10,
).filter(lambda s: s == s.strip())
_obis = st.tuples(*[st.integers(0, 255)] * 6).map(lambda p: f"{p[0]}-{p[1]}:{p[2]}.{p[3]}.{p[4]}*{p[5]}")


@st.composite
def _values(draw: st.DrawFn) -> ValueConfig:
    return ValueConfig(
        description=draw(st.one_of(st.just("None"), _text)),
        unit=draw(st.one_of(st.just("None"), st.sampled_from(["Wh", "m³", "°C", "kWh"]))),
        encodetype=draw(st.sampled_from(["NODATA", "INT32", "BCD8", "REAL32"])),
        exponent=draw(st.integers(-12, 12)),
        valuetype=draw(st.sampled_from(list(ValueType))),
        storagenum=draw(st.integers(0, 2**32 - 1)),
        tariff=draw(st.integers(0, 255)),
        obis=draw(st.none() | _obis),
        active=draw(st.booleans()),
        register=draw(st.integers(0, 65535)),
        user=draw(st.none() | _label),
        value=draw(st.none() | st.floats(allow_nan=False, allow_infinity=False)),
        extra=draw(st.sampled_from([(), (("x-vendor", "<x-vendor>1</x-vendor>"),)])),
    )


_media = sorted({index for index in MEDIA if MEDIA[index] != "Reserved"})


@st.composite
def _meters(draw: st.DrawFn) -> Meter:
    medium = draw(st.none() | st.sampled_from(_media))
    if medium is not None:  # Table 16 texts repeat for some indices; the first index is the one read back
        from sonocli.model.tables import medium_index, medium_text

        medium = medium_index(medium_text(medium))
    return Meter(
        interface=draw(st.sampled_from(list(Interface))),
        serial=draw(st.text("0123456789ABCDEF", min_size=8, max_size=8)),
        manufacturer=draw(st.none() | st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3)),
        version=draw(st.none() | st.integers(0, 255)),
        medium=medium,
        primary_address=draw(st.integers(0, 255)),
        address_mode=draw(st.sampled_from(list(AddressMode))),
        readout_cycle=draw(st.integers(0, 2**32 - 1)),
        max_value_count=draw(st.integers(0, 65535)),
        key=draw(st.none() | st.binary(min_size=16, max_size=16)),
        active=draw(st.booleans()),
        rssi=draw(st.integers(-200, 255)),
        register=draw(st.integers(0, 65535)),
        user=draw(st.none() | _label),
        values=tuple(draw(st.lists(_values(), max_size=3))),
        extra=draw(st.sampled_from([(), (("#comment", "<!-- note -->"),)])),
    )


_styles = st.builds(
    XmlStyle,
    declaration=st.sampled_from([None, '<?xml version="1.0" encoding="UTF-8"?>', "<?xml version='1.0'?>"]),
    indent=st.sampled_from(["\t", "  ", " "]),
    newline=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    final_newline=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(meters=st.lists(_meters(), max_size=4), style=_styles, version=st.sampled_from(["0x06", "0x01", "7"]))
def test_property_write_then_read_is_identity(meters: list[Meter], style: XmlStyle, version: str) -> None:
    original = MeterList(version=version, meters=tuple(meters), style=style)
    data = render_meter_list(original)
    read = parse_meter_list(data)
    assert read.meters == original.meters
    assert read.version == version
    assert read.style == style
    # and writing what was read gives the same bytes, also without the saved source
    assert render_meter_list(replace(read, source=None)) == data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"<root><meter><interface>M-Bus</interface><x>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</x></meter></root>",
            "elements nested deeper than 256",
        ),
        (
            b"<root><meter><interface>M-Bus</interface><user>" + b"A" * 20_000_000 + b"</user></meter></root>",
            "a text longer than 10000000 characters",
        ),
    ],
)
def test_resource_limits_hold(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_meter_list(_write(tmp_path, data))
    assert "XML_PARSE_HUGE" not in str(info.value)


def test_update_meter_list_saves_only_changes(tmp_path: Path) -> None:
    from sonocli.config.device_handle import update_meter_list
    from sonocli.engine.meterlist import merge_found

    path = tmp_path / "device_handle.cfg"
    path.write_bytes(SAMPLE.read_bytes())
    found = [Meter(Interface.MBUS, serial="30101198", manufacturer="DFS", version=1, medium=4)]
    update_meter_list(path, lambda ml: merge_found(ml, found, 0)[0])  # already listed: nothing to write
    assert path.read_bytes() == SAMPLE.read_bytes()
    found.append(Meter(Interface.MBUS, serial="44444444", manufacturer="ABB", version=2, medium=2))
    result = update_meter_list(path, lambda ml: merge_found(ml, found, 0)[0])
    assert load_meter_list(path).meters == result.meters and len(result.meters) == 5


def test_unknown_nodes_are_kept_verbatim_when_the_list_is_rewritten() -> None:
    data = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<root>\n\t<version>0x06</version>\n\t<?vendor build="7"?>\n'
        b"\t<meter>\n\t\t<interface>M-Bus</interface>\n\t\t<flag a='1&gt;' b=\"x\"/>\n"
        b"\t\t<nested><inner/>text &amp; more<inner>2</inner></nested>\n\t\t<!-- keep me -->\n"
        b"\t\t<value><description>Energy</description><odd>1</odd></value>\n\t</meter>\n</root>\n"
    )
    meters = parse_meter_list(data)
    meter = meters.meters[0]
    assert meters.extra == (("#pi", '<?vendor build="7"?>'),)
    assert meter.extra == (
        ("flag", "<flag a='1&gt;' b=\"x\"/>"),
        ("nested", "<nested><inner/>text &amp; more<inner>2</inner></nested>"),
        ("#comment", "<!-- keep me -->"),
    )
    assert meter.values[0].extra == (("odd", "<odd>1</odd>"),)
    changed = replace(meters, meters=(replace(meter, serial="12345678"),))
    written = render_meter_list(changed)
    for raw in (b"<?vendor build=\"7\"?>", b"<flag a='1&gt;' b=\"x\"/>", b"<!-- keep me -->", b"<odd>1</odd>",
                b"<nested><inner/>text &amp; more<inner>2</inner></nested>"):
        assert raw in written
    assert parse_meter_list(written).meters[0].extra == meter.extra
