"""chip.ini: the schema table, lossless round trips, validation with file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sonocli.config.chipini import ChipIni, default_text
from sonocli.config.chipini_schema import PARAMETERS, TABS, Param, by_name
from sonocli.errors import ConfigError

DATA = Path(__file__).parent.parent / "data" / "config"

# Table 25's names with the guide's line-wrap hyphens removed (its footnote), spot-checked.
WRAPPED = (
    "MBUS_FIRSTFCBBIT_NEG",
    "MBUS_SECMASKMANUFACTURER",
    "METER_MAXALLVALUECOUNT",
    "METER_MAXDEVICECOUNT",
    "METER_MAXVALUECOUNT",
    "MUC_METERDESCRIPTIONENABLEFLAGS",
    "MUC_SHOWTIMESTAMPENTRIES",
    "SMTP_TIMEOUTSCALE",
    "TLS_DISCONNECTTIMEOUT",
    "WMBUS_RAWLOGENABLE",
)


def test_schema_is_complete_and_consistent() -> None:
    names = [p.name for p in PARAMETERS]
    assert len(names) == len(set(names))
    # Table 25 rows + sonocli's six + MUC_ID and twelve MQTT_* + WEB_*/FTPD_* + SMTP_ALLOWPLAIN, XMLTOTCP_LISTEN*
    # + DLDE_PORT/BAUDRATE/TIMEOUT + SML_PORT/BAUDRATE/TIMEOUT, S0_GPIOCHIP/LINES/EDGE/DEBOUNCE
    # + STORE_MAXREADINGS, STORE_COMMITINTERVAL, OUTBOX_MAXITEMS, CSVLOG_MAXSIZE
    assert len(PARAMETERS) == 111 + 6 + 13 + 8 + 3 + 3 + 7 + 4
    for name in (*WRAPPED, "MBUS_PORT", "WMBUS_PORT", "WMBUS_DONGLE", "WMBUS2_PORT", "WMBUS2_DONGLE",
                 "WMBUS_LISTEN"):
        assert name in by_name()
    for param in PARAMETERS:
        assert param.tab in TABS
        assert param.group in ("IP", "DEVICE", "CONFIG")
        assert param.help.endswith(".") and len(param.help) > 10
        assert param.parse(param.format(param.default)) == param.default, param.name
        assert re.fullmatch(r"[A-Z0-9_]+", param.name)


def test_guide_defaults() -> None:
    ini = ChipIni([])
    assert ini["ADDRESS"] == "192.168.1.101"
    assert ini["METER_MAXDEVICECOUNT"] == 80
    assert ini["METER_MAXVALUECOUNT"] == 25
    assert ini["MBUS_SCANMODE"] == "SECONDARYSCAN"
    assert ini["MUC_PROTOCOL_VER"] == 3
    assert ini["SHOW_KEYS"] is True
    assert ini["FTP_IP"] == ""


def test_missing_file_is_all_defaults(tmp_path: Path) -> None:
    ini = ChipIni.load(tmp_path / "nope.ini")
    assert ini["METER_TIME"] == 900 and ini.unknown() == []


def test_watchdog_readout_follows_meter_time() -> None:
    assert ChipIni.from_text("[CONFIG]\nMETER_TIME=600\n")["WATCHDOG_READOUT"] == 2400
    assert ChipIni.from_text("[CONFIG]\nMETER_TIME=60\n")["WATCHDOG_READOUT"] == 900  # WATCHDOG_PROCESS
    assert ChipIni.from_text("[CONFIG]\nWATCHDOG_READOUT=5\n")["WATCHDOG_READOUT"] == 5


def test_sample_round_trips_byte_identical(tmp_path: Path) -> None:
    original = (DATA / "chip.ini").read_bytes()
    ini = ChipIni.load(DATA / "chip.ini")
    ini.save(tmp_path / "chip.ini")
    assert (tmp_path / "chip.ini").read_bytes() == original


def test_sample_values_and_unknown_keys() -> None:
    ini = ChipIni.load(DATA / "chip.ini")
    assert ini["NAME"] == "Keller-Nord"
    assert ini["FTP_PASS"] == "s;cr=t"  # no inline comments: a password may contain ';'
    assert ini["FTP_ENABLE"] is True
    assert ini["MBUS_PORT"] == "sim://demo"
    assert [(k, v) for k, v, _ in ini.unknown()] == [("STDIN", "1"), ("STDOUT", "1"), ("RTOS_EXTRA_KEY", "keep me")]
    assert ini.unknown()[0][2] == 13


def test_set_changes_only_one_line(tmp_path: Path) -> None:
    path = tmp_path / "chip.ini"
    path.write_bytes((DATA / "chip.ini").read_bytes())
    ini = ChipIni.load(path)
    ini.set("meter_time", "60")
    ini.save(path)
    before = (DATA / "chip.ini").read_text().splitlines()
    after = path.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [("METER_TIME=900", "METER_TIME=60")]
    assert ChipIni.load(path)["METER_TIME"] == 60


def test_set_keeps_spacing_of_the_line() -> None:
    ini = ChipIni.from_text("[CONFIG]\n  METER_TIME = 900  \n")
    ini.set("METER_TIME", "120")
    assert ini.text() == "[CONFIG]\n  METER_TIME = 120  \n"


def test_set_adds_missing_parameter_to_its_group() -> None:
    ini = ChipIni.from_text("; top\n[IP]\nDHCP=1\n\n[CONFIG]\nMETER_TIME=900\n\n; trailing\n")
    ini.set("ADDRESS", "10.0.0.2")
    ini.set("REPORT_TIME", "30")
    ini.set("NAME", "box")
    assert ini.text() == (
        "; top\n[IP]\nDHCP=1\nADDRESS=10.0.0.2\n\n[CONFIG]\nMETER_TIME=900\nREPORT_TIME=30\n\n; trailing\n"
        "\n[DEVICE]\nNAME=box\n"
    )
    assert ChipIni.from_text(ini.text())["ADDRESS"] == "10.0.0.2"


def test_set_refuses_invalid_values() -> None:
    ini = ChipIni.from_text("[CONFIG]\nMETER_TIME=900\n")
    with pytest.raises(ConfigError, match=r"METER_TIME='5': out of range; allowed: 10\.\.4294967295"):
        ini.set("METER_TIME", "5")
    with pytest.raises(ConfigError, match=r"unknown parameter 'METER_TIMEE' \(did you mean METER_TIME\?\)"):
        ini.set("METER_TIMEE", "5")
    with pytest.raises(ConfigError, match="line breaks or control characters"):
        ini.set("FTP_PATH", "a\nb")
    assert ini.text() == "[CONFIG]\nMETER_TIME=900\n"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("MBUS_BAUDRATE=24OO", r"MBUS_BAUDRATE='24OO': not one of the choices; allowed: 300, 600"),
        ("METER_TIME=9", r"METER_TIME='9': out of range; allowed: 10\.\.4294967295"),
        ("DHCP=2", r"DHCP='2': out of range; allowed: 0 or 1"),
        ("ADDRESS=192.168.1.300", r"ADDRESS='192\.168\.1\.300': not an IPv4 address"),
        ("NAME=" + "x" * 21, r"NAME='x+': 21 characters; allowed: text of at most 20"),
        ("MBUS_SECMASKSERIAL=0xFFFFFFFFF", r"not a hex mask"),
        ("MBUS_PORT=foo://x", r"MBUS_PORT='foo://x': unknown port URL scheme 'foo'; allowed: empty, a device path"),
        ("WMBUS_PORT=socket://host:99999", r"WMBUS_PORT='socket://host:99999': socket:// needs HOST:PORT"),
        ("WMBUS2_PORT=rfc2217://host", r"rfc2217:// needs HOST:PORT with PORT 1\.\.65535"),
        ("MBUS_SECMASKSERIAL=123456789",
         r"MBUS_SECMASKSERIAL='123456789': not a hex mask; allowed: at most 8 characters 0-9, A-E or F"),
        ("MBUS_SECMASKSERIAL=12G4", r"shorter masks get leading zeros"),
        ("MBUS_SECMASKMANUFACTURER=0xFFF", r"allowed: exactly 4 hex digits"),
        ("MBUS_SECMASKMEDIUM=0xFFFF", r"allowed: exactly 2 hex digits"),
        ("MBUS_SECMASKVERSION=1", r"allowed: exactly 2 hex digits"),
        ("WMBUS_MODE=T3", r"WMBUS_MODE='T3': not one of the choices"),
        ("just garbage", r"expected KEY=VALUE"),
    ],
)
def test_load_refuses_with_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "chip.ini"
    path.write_text(f"; c\n[CONFIG]\n{line}\n")
    with pytest.raises(ConfigError, match=message) as info:
        ChipIni.load(path)
    assert info.value.file == str(path) and info.value.line == 3
    assert str(info.value).startswith(f"{path}:3: ")


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "chip.ini"
    path.write_bytes(b"[DEVICE]\n\nNAME=K\xfcche\n")
    with pytest.raises(ConfigError, match="not UTF-8") as info:
        ChipIni.load(path)
    assert info.value.line == 3


def test_check_mode_collects_every_error() -> None:
    errors: list[ConfigError] = []
    ini = ChipIni.from_bytes(b"[CONFIG]\nMETER_TIME=1\nDHCP=7\nFOO=1\nMETER_TIMEX=3\n", "x.ini", errors=errors)
    assert [e.line for e in errors] == [2, 3]
    warnings = ini.warnings()
    assert warnings[0] == (4, "unknown parameter FOO='1' kept")
    assert "did you mean METER_TIME?" in warnings[1][1]


def test_duplicates_warn_and_last_wins() -> None:
    ini = ChipIni.from_text("[CONFIG]\nMETER_TIME=60\nMETER_TIME=120\n")
    assert ini["METER_TIME"] == 120
    assert ini.warnings() == [(3, "METER_TIME set again; this later value wins")]


def test_default_text_lists_every_parameter() -> None:
    text = default_text()
    ini = ChipIni.from_text(text)
    assert ini.unknown() == []
    for param in PARAMETERS:
        assert f"{param.name}=" in text
        assert param.help in text


def test_bom_and_crlf_survive_a_change() -> None:
    ini = ChipIni.from_text("\ufeff[CONFIG]\r\nMETER_TIME=900\r\n")
    ini.set("METER_TIME", "60")
    ini.set("REPORT_TIME", "5")
    assert ini.text() == "\ufeff[CONFIG]\r\nMETER_TIME=60\r\nREPORT_TIME=5\r\n"


def _valid_text(param: Param) -> st.SearchStrategy[str]:
    if param.type == "int":
        assert param.minimum is not None and param.maximum is not None
        return st.integers(param.minimum, param.maximum).map(str)
    if param.type == "bool":
        return st.sampled_from(["0", "1"])
    if param.type == "choice":
        return st.sampled_from([str(c) for c in param.choices])
    if param.type == "ip":
        return st.ip_addresses(v=4).map(str)
    if param.type == "port":
        return st.sampled_from(["", "/dev/ttyUSB0", "socket://127.0.0.1:4001", "sim://demo", "-", "file:/tmp/x.hex"])
    if param.type == "mask":
        digits = param.charset or "0123456789ABCDEFabcdef"
        size = param.max_length or 1
        return st.text(digits, min_size=size, max_size=size).map(lambda s: "0x" + s)
    alphabet = st.characters(blacklist_categories=("Cs",), blacklist_characters="".join(map(chr, range(32))))
    return st.text(alphabet, max_size=param.max_length or 40).map(str.strip)


@st.composite
def _assignments(draw: st.DrawFn) -> list[tuple[Param, str]]:
    params = draw(st.lists(st.sampled_from(PARAMETERS), min_size=1, max_size=8, unique_by=lambda p: p.name))
    return [(p, draw(_valid_text(p))) for p in params]


@settings(max_examples=150, deadline=None)
@given(assignments=_assignments())
def test_property_set_save_load_is_identity(
    tmp_path_factory: pytest.TempPathFactory, assignments: list[tuple[Param, str]]
) -> None:
    path = tmp_path_factory.mktemp("prop") / "chip.ini"
    original = (DATA / "chip.ini").read_text()
    path.write_text(original)
    ini = ChipIni.load(path)
    for param, text in assignments:
        ini.set(param.name, text)
    ini.save(path)
    again = ChipIni.load(path)
    for param, text in assignments:
        assert again[param.name] == param.parse(text)
    assert [(k, v) for k, v, _ in again.unknown()] == [("STDIN", "1"), ("STDOUT", "1"), ("RTOS_EXTRA_KEY", "keep me")]

    def skeleton(text: str) -> list[str]:  # comments and section headers, in order
        # split on "\n" only: str.splitlines would also break values at U+0085/U+2028 (valid in text values)
        return [line.rstrip("\r") for line in text.split("\n") if line.startswith((";", "#", "["))]

    assert skeleton(path.read_text()) == skeleton(original)
    # saving what was loaded changes nothing
    again.save(path)
    assert ChipIni.load(path).text() == again.text()


def test_only_lf_ends_a_line(tmp_path: Path) -> None:
    """U+2028, U+0085 and form feed are text in chip.ini, not line ends (str.splitlines would split)."""
    ini = ChipIni.from_text("[CONFIG]\nFTP_PATH=a\u2028b\x85c\x0cd\nMETER_TIME=60\n")
    assert ini["FTP_PATH"] == "a\u2028b\x85c\x0cd" and ini.line_of("METER_TIME") == 3
    path = tmp_path / "chip.ini"
    ini.save(path)
    assert ChipIni.load(path).text() == ini.text()


def test_parameter_in_the_wrong_group_is_read_and_warned() -> None:
    ini = ChipIni.from_text("[IP]\nMETER_TIME=60\n[CONFIG]\nDHCP=1\n")
    assert ini["METER_TIME"] == 60 and ini["DHCP"] is True
    assert ini.warnings() == [
        (2, "METER_TIME belongs in [CONFIG], found in [IP]"),
        (4, "DHCP belongs in [IP], found in [CONFIG]"),
    ]


@pytest.mark.parametrize(
    ("name", "text"),
    [("MBUS_SECMASKSERIAL", "1234FFFF"), ("MBUS_SECMASKSERIAL", "0xFFFFFFFF"), ("MBUS_SECMASKMANUFACTURER", "2C2D"),
     ("MBUS_SECMASKMANUFACTURER", "0xFFFF"), ("MBUS_SECMASKMEDIUM", "0E"), ("MBUS_SECMASKVERSION", "0x1b")],
)
def test_masks_take_exactly_their_digits(name: str, text: str) -> None:
    assert by_name()[name].parse(text) == text


@pytest.mark.parametrize(
    "url", ["", "/dev/ttyUSB0", "COM3", "socket://10.0.0.5:4001", "rfc2217://[::1]:2217", "sim://demo?meters=3",
            "spy:///dev/ttyUSB0", "-", "file:/tmp/t.hex"],
)
def test_port_urls_accepted(url: str) -> None:
    assert by_name()["MBUS_PORT"].parse(url) == url


def test_38400_baud_is_accepted_by_set_and_load() -> None:
    """sonocli allows 38400 baud (USB level converters) for MBUS_BAUDRATE as for --baud (sonocli.registry)."""
    ini = ChipIni.from_text("[CONFIG]\nMBUS_BAUDRATE=2400\n")
    ini.set("MBUS_BAUDRATE", "38400")
    assert ini.text() == "[CONFIG]\nMBUS_BAUDRATE=38400\n" and ini["MBUS_BAUDRATE"] == 38400
    assert ChipIni.from_text(ini.text())["MBUS_BAUDRATE"] == 38400
    with pytest.raises(ConfigError, match=r"^MBUS_BAUDRATE='57600': not one of the choices; allowed: 300, .*, 38400$"):
        ini.set("MBUS_BAUDRATE", "57600")


def test_check_setting_is_the_schema_rule_for_text_and_typed_values() -> None:
    from sonocli.config.chipini_schema import check_setting, mask_number

    assert check_setting("mbus_baudrate", 38400) == 38400 and check_setting("MBUS_BAUDRATE", "9600") == 9600
    assert check_setting("MBUS_WAKEUPENABLE", True) is True and check_setting("MBUS_REQUESTMODE", "ext") == "EXT"
    assert mask_number(str(check_setting("MBUS_SECMASKMANUFACTURER", 0x2C2D))) == 0x2C2D  # a number as its hex
    for name, value in (("MBUS_BAUDRATE", 1234), ("MBUS_MAXRETRY", "x"), ("MBUS_SECMASKMEDIUM", 0x100)):
        with pytest.raises(ConfigError) as by_check:
            check_setting(name, value)
        with pytest.raises(ConfigError) as by_set:
            ChipIni([]).set(name, by_name()[name].text_of(value))
        assert str(by_check.value) == str(by_set.value)
    with pytest.raises(ConfigError, match="unknown parameter 'MBUS_NOPE'"):
        check_setting("MBUS_NOPE", 1)


def test_empty_dongle_choice_reads_as_empty() -> None:
    assert by_name()["WMBUS_DONGLE"].allowed().startswith("empty, im871a, ")


def test_parameters_without_effect_are_noted_in_the_default_file_and_reported_when_changed() -> None:
    """The chip.ini of ``sonocli init`` says which parameters change nothing in sonocli; a file that sets one
    away from its default is reported by ``ignored()`` (config check), one left at its default is not."""
    text = default_text()
    assert "; No effect in sonocli: the device's time service; the operating system keeps this computer's clock" in text
    assert text.count("; No effect in sonocli: ") == sum(1 for p in PARAMETERS if not p.works)
    assert ChipIni.from_text(text).ignored() == []
    ini = ChipIni.from_text("[IP]\nDHCP=0\nADDRESS=10.0.0.7\n[CONFIG]\nMBUS_RAWLOGENABLE=1\nSNTP_IP=pool.ntp.org\n")
    assert [(line, message.split(" has ")[0]) for line, message in ini.ignored()] == [
        (3, "ADDRESS=10.0.0.7"),
        (6, "SNTP_IP=pool.ntp.org"),
    ]
    assert all("has no effect in sonocli: " in message for _, message in ini.ignored())


def test_config_set_repairs_the_bad_line_of_its_own_parameter_only(tmp_path: Path) -> None:
    """An engineer who finds MQTT_QOS=7 in chip.ini fixes it with `config set MQTT_QOS 1` (the line is
    replaced, not doubled); a bad line of another parameter still refuses the change, naming that line."""
    from sonocli.engine.configuration import set_parameter
    from sonocli.engine.core import Engine
    from sonocli.errors import ConfigError

    root = tmp_path / "root"
    (root / "app").mkdir(parents=True)
    chip = root / "app" / "chip.ini"
    chip.write_text("[MQTT]\nMQTT_QOS=7\nMQTT_PORT=1883\n")
    engine = Engine(root)
    with pytest.raises(ConfigError, match=r"chip\.ini:2: MQTT_QOS='7': out of range"):
        set_parameter(engine, "MQTT_PORT", "1884")
    assert chip.read_text() == "[MQTT]\nMQTT_QOS=7\nMQTT_PORT=1883\n"
    change = set_parameter(engine, "MQTT_QOS", "1")
    assert change.after == "1" and chip.read_text() == "[MQTT]\nMQTT_QOS=1\nMQTT_PORT=1883\n"
