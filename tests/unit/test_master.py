"""The M-Bus master against the simulator, byte for byte: resets, request modes, FCB, retries, pages."""

from __future__ import annotations

import pytest

from sonocli.codecs import mbus_link as L
from sonocli.engine.master import Master, MasterSettings, read_all
from sonocli.errors import ConfigError, ProtocolError, TimeoutError_, UsageError
from sonocli.model import AddressMode, Interface, Meter
from sonocli.sim.peer import VirtualClock
from sonocli.sim.wired import SimMeter, WiredSegment
from sonocli.transports import Link
from sonocli.transports.protocol_sim import Serial

ID = "12345678"


def _telegram(value: int, more: bool, ident: str = ID) -> tuple[int, bytes]:
    head = bytes.fromhex(ident)[::-1] + bytes.fromhex("2D2C0804") + bytes((0x11, 0, 0, 0))
    records = bytes((0x04, 0x13)) + value.to_bytes(4, "little") + (b"\x1f" if more else b"")
    return 0x72, head + records


def _segment(pages: int = 1, **kw: object) -> WiredSegment:
    telegrams = [_telegram(100 + p, p < pages - 1) for p in range(pages)]
    return WiredSegment([SimMeter(primary=5, telegrams=telegrams, delay_bits=30, **kw)])  # type: ignore[arg-type]


def _master(seg: WiredSegment, **settings: object) -> Master:
    port = Serial(None, peer=seg, clock=VirtualClock(), baudrate=2400, parity="E")
    port.port = "sim://test"
    port.open()
    return Master(Link(port, port.clock, "sim://test"), MasterSettings(**settings))  # type: ignore[arg-type]


PRIMARY = Meter(Interface.MBUS, primary_address=5, address_mode=AddressMode.PRIMARY)
SECONDARY = Meter(
    Interface.MBUS, serial=ID, manufacturer="KAM", version=8, medium=4, address_mode=AddressMode.SECONDARY
)


def _wire(seg: WiredSegment) -> list[str]:
    return [frame.hex().upper() for _, frame in seg.log]


def test_primary_readout_default_is_nke_then_req_ud2_with_fcb_set() -> None:
    seg = _segment()
    reading = _master(seg).readout(PRIMARY)
    assert _wire(seg) == ["1040054516", "107B058016"]
    assert [v.value for v in reading.values] == [0.1]  # VIF 13: 100 l = 0.1 m³
    assert reading.meter.serial == ID and reading.meter.manufacturer == "KAM"


def test_multi_telegram_toggles_fcb_and_joins_records() -> None:
    seg = _segment(pages=3)
    reading = _master(seg).readout(PRIMARY)
    assert _wire(seg)[1:] == ["107B058016", "105B056016", "107B058016"]
    assert [v.raw for v in reading.values] == [100, 101, 102]
    assert [v.index for v in reading.values] == [0, 1, 2]
    assert len(reading.raw_frames) == 3


def test_first_fcb_negated_and_max_multipage() -> None:
    seg = _segment(pages=3)
    reading = _master(seg, first_fcb_neg=True, max_multipage=2).readout(PRIMARY)
    assert _wire(seg)[1:] == ["105B056016", "107B058016"]
    assert len(reading.raw_frames) == 2


def test_retry_repeats_the_same_fcb_and_the_meter_repeats_its_answer() -> None:
    seg = _segment(pages=2, flaky=2)  # ignores the SND_NKE and the first REQ_UD2
    reading = _master(seg, max_retry=3).readout(PRIMARY)
    assert _wire(seg) == ["1040054516", "107B058016", "107B058016", "105B056016"]
    assert [v.raw for v in reading.values] == [100, 101]


SELECT = L.select_secondary(ID, 0x2C2D, 0x08, 0x04).hex().upper()


@pytest.mark.parametrize(
    ("mode", "before"),
    [
        (0, [SELECT, "1040FF3F16"]),
        (1, ["1040FF3F16", SELECT]),
        (2, [SELECT]),
        (3, ["1040FD3D16", "1040FF3F16", SELECT]),
        (4, ["1040FD3D16", L.application_reset(0xFF).hex().upper(), "1040FF3F16", SELECT]),
    ],
)
def test_reset_modes_secondary(mode: int, before: list[str]) -> None:
    seg = _segment()
    _master(seg, reset_mode=mode).readout(SECONDARY)
    assert _wire(seg) == [*before, "107BFD7816"]
    assert seg.meters[0].app_resets == (1 if mode == 4 else 0)


@pytest.mark.parametrize(
    ("mode", "before"),
    [
        (0, ["1040054516"]),
        (1, ["1040054516"]),
        (2, []),
        (3, ["1040FD3D16", "1040FF3F16"]),  # Table 25: "NKE sent to FD and FF"
        (4, ["1040FD3D16", "6803036853FF50A216", "1040FF3F16"]),  # NKE FD, application reset FF, NKE FF
    ],
)
def test_reset_modes_primary(mode: int, before: list[str]) -> None:
    seg = _segment()
    _master(seg, reset_mode=mode).readout(PRIMARY)
    assert _wire(seg) == [*before, "107B058016"]
    assert seg.meters[0].app_resets == (1 if mode == 4 else 0)


@pytest.mark.parametrize(
    ("mode", "command"),
    [("EXT", L.get_all_data(5)), ("ONLY", L.get_all_data(5, extended2=True)), ("FREEZE", L.freeze(5, 3))],
)
def test_request_modes(mode: str, command: bytes) -> None:
    seg = _segment()
    _master(seg, request_mode=mode, freeze_storage=3).readout(PRIMARY)
    assert _wire(seg) == ["1040054516", command.hex().upper(), "107B058016"]
    meter = seg.meters[0]
    assert (meter.get_all_data, meter.frozen) == ((1, []) if mode != "FREEZE" else (0, [3]))


@pytest.mark.parametrize(
    ("mask", "select_data"),
    [
        (0, "78563412" "2D2C" "08" "04"),
        (1, "FFFFFFFF" "2D2C" "08" "04"),  # +1 serial number
        (2, "78563412" "FFFF" "08" "04"),  # +2 manufacturer
        (4, "78563412" "2D2C" "FF" "04"),  # +4 version
        (8, "78563412" "2D2C" "08" "FF"),  # +8 medium
        (15, "FFFFFFFF" "FFFF" "FF" "FF"),
    ],
)
def test_select_mask_wildcards_parts_of_the_secondary_address(mask: int, select_data: str) -> None:
    seg = _segment()
    reading = _master(seg, select_mask=mask, reset_mode=2).readout(SECONDARY)
    assert _wire(seg)[0] == L.snd_ud(0xFD, 0x52, bytes.fromhex(select_data)).hex().upper()
    assert reading.values[0].raw == 100  # the one meter on the bus was selected and read


def test_echoing_level_converter_is_handled() -> None:
    seg = _segment(pages=2)
    seg.echo = True
    assert len(_master(seg).readout(PRIMARY).values) == 2


def test_sleepy_meter_answers_only_after_the_wakeup_preamble() -> None:
    seg = _segment(sleepy=True)
    with pytest.raises(TimeoutError_):
        _master(seg, max_retry=1).readout(PRIMARY)
    master = _master(seg, wakeup=True)
    reading = master.readout(PRIMARY)
    assert [v.raw for v in reading.values] == [100]
    preamble = master.frames()[0].split()[1:]
    assert set(preamble) == {"55"} and len(preamble) == 109  # 0.5 s at 2400 baud, 11 bits a character


def test_a_short_preamble_does_not_wake_a_sleepy_meter() -> None:
    seg = _segment(sleepy=True)
    master = _master(seg, max_retry=0)
    master.send(b"\x55" * 20)
    with pytest.raises(TimeoutError_):
        master.readout(PRIMARY)


def test_wakeup_preamble_then_normal_sequence() -> None:
    seg = _segment()
    master = _master(seg, wakeup=True)
    master.readout(PRIMARY)
    assert master.frames()[0].startswith("TX 55 55 55")
    assert _wire(seg) == ["1040054516", "107B058016"]


def test_dead_meter_raises_with_the_flight_recorder() -> None:
    seg = _segment(silent=True)
    with pytest.raises(TimeoutError_, match="no answer after 2 tries") as info:
        _master(seg, max_retry=1).readout(PRIMARY)
    assert info.value.frames[-1] == "TX 10 7B 05 80 16"


def test_meter_stopping_mid_telegram_is_a_protocol_error() -> None:
    seg = _segment(stop_after=12)
    with pytest.raises(ProtocolError, match="stopped after 12 bytes"):
        _master(seg, max_retry=0).readout(PRIMARY)


CHAR = 11 / 2400


@pytest.mark.parametrize(("timeout_ms", "wait"), [(700, 0.7), (0, 330 / 2400 + 0.05)])
def test_mbus_timeout_is_the_wait_for_the_first_byte(timeout_ms: int, wait: float) -> None:
    master = _master(_segment(silent=True), reset_mode=2, max_retry=1, timeout_ms=timeout_ms)
    with pytest.raises(TimeoutError_):
        master.readout(PRIMARY)
    assert master.clock.now() == pytest.approx(2 * (5 * CHAR + wait))  # two tries of REQ_UD2


def test_mbus_idletimeout_is_the_longest_gap_inside_a_telegram() -> None:
    master = _master(_segment(stop_after=12), reset_mode=2, max_retry=0, idle_timeout_ms=300)
    with pytest.raises(ProtocolError, match="stopped after 12 bytes"):
        master.readout(PRIMARY)
    last_byte = 5 * CHAR + 30 / 2400 + 12 * CHAR  # request, response delay, 12 characters
    assert master.clock.now() == pytest.approx(last_byte + CHAR + 0.3)


def test_idle_timeout_never_delays_a_complete_frame() -> None:
    master = _master(_segment(), reset_mode=2, idle_timeout_ms=5000)
    reading = master.readout(PRIMARY)
    assert master.clock.now() == pytest.approx((5 + len(reading.raw_frames[0])) * CHAR + 30 / 2400)


def test_mbus_fulltimeout_bounds_the_whole_answer() -> None:
    seg = _segment()
    size = len(L.encode(L.LongFrame(L.C_RSP_UD, 5, *seg.meters[0].telegrams[0])))
    master = _master(seg, reset_mode=2, max_retry=0, full_timeout_ms=60)
    with pytest.raises(ProtocolError, match="MBUS_FULLTIMEOUT"):
        master.readout(PRIMARY)
    assert master.clock.now() == pytest.approx(5 * CHAR + 0.060)
    assert size * CHAR > 0.060  # the telegram needs longer than that on the wire
    assert len(_master(_segment(), reset_mode=2, full_timeout_ms=0).readout(PRIMARY).values) == 1


def test_corrupt_checksum_is_retried_then_reported() -> None:
    seg = _segment(corrupt=True)
    with pytest.raises(ProtocolError, match=r"REQ_UD2 \(telegram 1\): checksum 0x.. is wrong"):
        _master(seg, max_retry=1).readout(PRIMARY)
    assert _wire(seg).count("107B058016") == 2


def test_read_all_continues_past_a_dead_meter() -> None:
    seg = WiredSegment(
        [
            SimMeter(primary=1, telegrams=[_telegram(1, False, "00000001")]),
            SimMeter(primary=2, telegrams=[_telegram(2, False, "00000002")], silent=True),
            SimMeter(primary=3, telegrams=[_telegram(3, False, "00000003")]),
        ]
    )
    meters = [Meter(Interface.MBUS, primary_address=a, address_mode=AddressMode.PRIMARY) for a in (1, 2, 3)]
    results = read_all(_master(seg, max_retry=0), meters)
    assert [r.reading is not None for r in results] == [True, False, True]
    assert isinstance(results[1].error, TimeoutError_)


def test_wire_time_of_a_readout_is_exact_on_the_virtual_clock() -> None:
    seg = _segment()
    master = _master(seg)
    master.readout(PRIMARY)
    char = 11 / 2400
    frame_len = 6 + 3 + 12 + 6
    expected = 5 * char + (30 / 2400 + char) + 5 * char + 30 / 2400 + frame_len * char
    assert master.clock.now() == pytest.approx(expected)


def test_settings_validation() -> None:
    """Every field is checked by its chip.ini parameter's schema rule, with the words of ``config set``."""
    with pytest.raises(ConfigError, match=r"^MBUS_RESETMODE='7': out of range; allowed: 0\.\.4$"):
        MasterSettings(reset_mode=7)
    with pytest.raises(ConfigError, match=r"^MBUS_REQUESTMODE='FAST': not one of the choices; allowed: DEFAULT, EXT"):
        MasterSettings(request_mode="FAST")
    with pytest.raises(ConfigError, match=r"^MBUS_SECMASKSERIAL='12G': not a mask; allowed: at most 8 characters"):
        MasterSettings(secmask_serial="12G")
    with pytest.raises(ConfigError, match=r"^MBUS_SECMASKSERIAL='123456789': more than 8 characters; allowed: "):
        MasterSettings(secmask_serial="123456789")
    with pytest.raises(ConfigError, match=r"^MBUS_SECMASKMANUFACTURER='0x12345': not a hex mask; allowed: exactly 4"):
        MasterSettings(secmask_manufacturer=0x12345)
    with pytest.raises(UsageError, match=r"MBUS_MINPRIMARYADDRESS \(9\) is above MBUS_MAXPRIMARYADDRESS \(3\)"):
        MasterSettings(min_primary=9, max_primary=3)  # the one cross-field check the schema cannot express
    normalised = MasterSettings(request_mode="ext", secmask_serial="0x1234ffff", baudrate=38400)
    assert (normalised.request_mode, normalised.secmask_serial, normalised.baudrate) == ("EXT", "1234FFFF", 38400)


def test_settings_defaults_are_the_schemas() -> None:
    from sonocli.config.chipini import ChipIni

    assert MasterSettings() == MasterSettings.from_chip_ini(ChipIni([]))


@pytest.mark.parametrize(
    ("override", "name", "value"),
    [
        ({"baudrate": 1234}, "MBUS_BAUDRATE", "1234"),
        ({"max_retry": 256}, "MBUS_MAXRETRY", "256"),
        ({"min_primary": 251}, "MBUS_MINPRIMARYADDRESS", "251"),
        ({"max_primary": -1}, "MBUS_MAXPRIMARYADDRESS", "-1"),
    ],
)
def test_overrides_fail_like_config_set(override: dict[str, object], name: str, value: str) -> None:
    """``--baud 1234`` is refused with the same one line as ``config set MBUS_BAUDRATE 1234``."""
    from sonocli.config.chipini import ChipIni

    with pytest.raises(ConfigError) as by_config_set:
        ChipIni([]).set(name, value)
    with pytest.raises(ConfigError) as by_option:
        MasterSettings.from_chip_ini(ChipIni([]), **override)
    assert str(by_option.value) == str(by_config_set.value)
    assert str(by_option.value).startswith(f"{name}={value!r}: ") and "allowed: " in str(by_option.value)
    assert "\n" not in str(by_option.value)


def test_38400_baud_from_chip_ini_and_as_override() -> None:
    from sonocli.config.chipini import ChipIni

    assert MasterSettings.from_chip_ini(ChipIni.from_text("MBUS_BAUDRATE=38400\n")).baudrate == 38400
    assert MasterSettings.from_chip_ini(ChipIni([]), baudrate=38400).baudrate == 38400


class _Raw:
    """A chip.ini source that did not go through ChipIni's load checks (get returns the file's text)."""

    def __init__(self, **text: str) -> None:
        from sonocli.config.chipini import ChipIni

        self.text = text
        self.defaults = ChipIni([])

    def get(self, name: str) -> object:
        return self.text.get(name, self.defaults.get(name))


@pytest.mark.parametrize(
    ("name", "text", "allowed"),
    [
        ("MBUS_MAXRETRY", "many", "allowed: 0..255"),
        ("MBUS_MAXRETRY", "300", "allowed: 0..255"),
        ("MBUS_SECMASKMANUFACTURER", "0xKAM1", "allowed: exactly 4 hex digits"),
        ("MBUS_SECMASKMEDIUM", "0xFFFF", "allowed: exactly 2 hex digits"),
    ],
)
def test_bad_chip_ini_value_is_an_error_not_a_default(name: str, text: str, allowed: str) -> None:
    from sonocli.config.chipini import ChipIni

    with pytest.raises(ConfigError) as loaded:  # a real chip.ini is refused on load, with file and line
        ChipIni.from_text(f"[CONFIG]\n{name}={text}\n", "chip.ini")
    assert str(loaded.value).startswith(f"chip.ini:2: {name}={text!r}: ") and allowed in str(loaded.value)
    with pytest.raises(ConfigError) as mapped:  # and the mapping checks what it is given, no silent fallback
        MasterSettings.from_chip_ini(_Raw(**{name: text}))
    assert str(mapped.value).startswith(f"{name}={text!r}: ") and allowed in str(mapped.value)
    assert "\n" not in str(mapped.value)


def test_settings_from_chip_ini_for_the_daemon() -> None:
    from sonocli.config.chipini import ChipIni

    ini = ChipIni.from_text(
        "MBUS_RESETMODE=3\nMBUS_REQUESTMODE=FREEZE\nMBUS_FREEZESTORAGEENUM=2\nMBUS_SECMASKSERIAL=0x1234FFFF\n"
        "MBUS_SECMASKMANUFACTURER=0x2C2D\nMBUS_SCANMODE=SECONDARYSCANREVERSE\nMBUS_FIRSTFCBBIT_NEG=1\n"
    )
    s = MasterSettings.from_chip_ini(ini, max_retry=0)
    assert (s.reset_mode, s.request_mode, s.freeze_storage, s.first_fcb_neg) == (3, "FREEZE", 2, True)
    assert (s.secmask_serial, s.secmask_manufacturer, s.secmask_version) == ("1234FFFF", 0x2C2D, 0xFF)
    assert (s.scan_mode, s.max_retry, s.timeout_ms, s.max_device_count) == ("SECONDARYSCANREVERSE", 0, 2000, 80)


@pytest.mark.parametrize(
    ("mode", "command"),
    [("EXT", L.get_all_data(0xFD)), ("ONLY", L.get_all_data(0xFD, extended2=True)), ("FREEZE", L.freeze(0xFD, 9))],
)
def test_request_modes_by_secondary_address(mode: str, command: bytes) -> None:
    seg = _segment()
    _master(seg, request_mode=mode, freeze_storage=9).readout(SECONDARY)
    assert _wire(seg) == [SELECT, "1040FF3F16", command.hex().upper(), "107BFD7816"]
    spelled = {  # by hand from EN 13757-3: SND_UD (53) to FD, CI 51, DIF/VIF, checksum
        "EXT": "6805056853FD517F7E9E16",
        "ONLY": "6804046853FD517F2016",
        "FREEZE": "6807076853FD51C004FE0B6E16",  # DIF C0 DIFE 04 = storage 9, VIF FE VIFE 0B = freeze
    }
    assert command.hex().upper() == spelled[mode]


@pytest.mark.parametrize(
    ("mask", "normalised"),
    [("084F", "0000084F"), ("0x1234abcd", "1234ABCD"), ("F", "0000000F"), ("1234ABCE", "1234ABCE"), ("FFFFFFFF", None)],
)
def test_masks_take_hex_digits_and_short_ones_get_leading_zeros(mask: str, normalised: str | None) -> None:
    """Guide Table 12: "missing characters will be filled up with leading zeros"; A-E are ID digits."""
    from sonocli.engine.master import check_mask

    assert MasterSettings(secmask_serial=mask).secmask_serial == (normalised or mask)
    assert check_mask(mask) == (normalised or mask)


@pytest.mark.parametrize("mask", ["12G4", "123456789", "", "12 34", "-1"])
def test_a_bad_mask_is_one_usage_line(mask: str) -> None:
    from sonocli.engine.master import check_mask

    with pytest.raises(UsageError) as info:
        check_mask(mask)
    assert "\n" not in str(info.value) and "0-9, A-E or F" in str(info.value) and info.value.exit_code == 2


@pytest.mark.parametrize("mode", ["DEFAULT", "EXT"])
def test_muc_use_freeze_sends_the_freeze_command_before_the_readout(mode: str) -> None:
    """Table 25: MUC_USE_FREEZE "enables using the Freeze command prior to meter read-out", into the storage
    MBUS_FREEZESTORAGEENUM names; without it no Freeze is sent (MBUS_REQUESTMODE=FREEZE sends it once)."""
    seg = _segment()
    _master(seg, use_freeze=True, freeze_storage=7, request_mode=mode).readout(PRIMARY)
    wire = _wire(seg)
    assert wire[1] == L.freeze(5, 7).hex().upper() and wire[-1] == "107B058016"
    assert seg.meters[0].frozen == [7]
    seg = _segment()
    _master(seg, request_mode="FREEZE", freeze_storage=2, use_freeze=True).readout(PRIMARY)
    assert seg.meters[0].frozen == [2]
    seg = _segment()
    _master(seg, freeze_storage=7).readout(PRIMARY)
    assert seg.meters[0].frozen == []


def test_muc_use_freeze_comes_from_chip_ini() -> None:
    from sonocli.config.chipini import ChipIni

    ini = ChipIni([])
    ini.set("MUC_USE_FREEZE", "1")
    ini.set("MBUS_FREEZESTORAGEENUM", "4")
    settings = MasterSettings.from_chip_ini(ini)
    assert (settings.use_freeze, settings.freeze_storage) == (True, 4)


def test_a_fixed_structure_meter_reads_with_its_id() -> None:
    """CI 0x73 (EN 1434-3): the ID of the header is the meter's, not FFFFFFFF; selected by its ID alone."""
    data = bytes.fromhex("78563412") + bytes((0x01, 0x00, 0x0F, 0x0F)) + (1234).to_bytes(4, "little") + bytes(4)
    seg = WiredSegment([SimMeter(primary=5, telegrams=[(0x73, data)], delay_bits=30)])
    reading = _master(seg).readout(PRIMARY)
    assert reading.meter.serial == "12345678" and reading.meter.manufacturer is None
    by_id = Meter(Interface.MBUS, serial="12345678", address_mode=AddressMode.SECONDARY)
    assert _master(seg).readout(by_id).meter.serial == "12345678"


def test_verify_tells_one_meter_from_two_answering_in_step() -> None:
    from sonocli.engine.master import identity_of

    one, two = _telegram(1, False, "87654321"), _telegram(1, False, "87654322")
    seg = WiredSegment([SimMeter(primary=5, telegrams=[one], delay_bits=30),
                        SimMeter(primary=5, telegrams=[two], delay_bits=30)])
    master = _master(seg, max_retry=0)
    got = master.transact(L.req_ud2(5, True))
    assert isinstance(got.frame, L.LongFrame)  # merged bit by bit: a valid frame naming neither meter
    ident = identity_of(got.frame)
    assert ident is not None and ident.id == "87654320"
    assert not master.verify(ident, got.frame)
    seg = _segment()
    master = _master(seg)
    got = master.transact(L.req_ud2(5, True))
    assert isinstance(got.frame, L.LongFrame)
    ident = identity_of(got.frame)
    assert ident is not None and master.verify(ident, got.frame)
