"""Radio facts kept honest (issue 14): RSSI only in dBm, rtl-wmbus's relative level apart, the link mode of
each telegram, a telegram of another link mode refused the same way on every stick, and WMBUS_MODE values a
dongle cannot do refused by ``config check``."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sonocli.cli.root import cli
from sonocli.codecs.dongles import Received
from sonocli.codecs.dongles.cul import CulDriver
from sonocli.codecs.dongles.cul import encode_indication as cul_line
from sonocli.codecs.dongles.im871a import Im871aDriver
from sonocli.codecs.dongles.rtlwmbus import RtlWmbusDriver
from sonocli.codecs.dongles.rtlwmbus import encode_indication as rtl_line
from sonocli.codecs.wmbus_link import add_format_a_crcs, add_format_b_crcs
from sonocli.engine.receiver import LINK_MODE, Receiver, ReceiverSettings
from sonocli.registry import DONGLE_WMBUS_MODES, dongle_names


def _telegram() -> bytes:
    from sonocli.sim.radio import default_telegrams

    return next(t.telegram for t in default_telegrams() if t.key is None)


def test_rtlwmbus_level_is_not_dbm() -> None:
    telegram = _telegram()
    events = RtlWmbusDriver().feed(rtl_line(telegram, "C1", rssi=87))
    assert events == [Received(telegram, None, "none", rssi_rel=87, link_mode="C1")]


def test_listening_in_t1_refuses_c1_on_every_stick() -> None:
    telegram = _telegram()
    rtl = Receiver(RtlWmbusDriver(), ReceiverSettings(mode="T1"))
    c1, t1 = rtl.feed(rtl_line(telegram, "C1", rssi=80) + rtl_line(telegram, "T1", rssi=81))
    assert c1.meter is None and c1.error_kind == LINK_MODE and c1.link_mode == "C1"
    assert "C1 telegram heard while listening in T1" in c1.error and "listen in C1T1" in c1.error
    assert t1.meter is not None and not t1.error and t1.link_mode == "T1"
    assert (t1.rssi, t1.rssi_rel, t1.meter.rssi) == (None, 81, None)  # no level that is not dBm as rssi
    assert rtl.stats.bad[LINK_MODE] == 1 and rtl.stats.telegrams == 1
    cul = Receiver(CulDriver(), ReceiverSettings(mode="T1"))
    (heard,) = cul.feed(cul_line(add_format_b_crcs(telegram), "B", -60))  # frame format B exists in C mode only
    assert heard.error_kind == LINK_MODE and heard.link_mode == "C1" and "C1 telegram" in heard.error
    (heard,) = cul.feed(cul_line(add_format_a_crcs(telegram), "A", -61))
    assert not heard.error and heard.link_mode == "T1" and heard.rssi == -61


def test_link_mode_when_the_stick_does_not_say() -> None:
    from sonocli.codecs.dongles.im871a import encode_indication

    telegram = _telegram()
    both = Receiver(RtlWmbusDriver(), ReceiverSettings(mode="C1T1"))
    assert [h.link_mode for h in both.feed(rtl_line(telegram, "C1") + rtl_line(telegram, "T1"))] == ["C1", "T1"]
    assert not any(h.error for h in both.feed(rtl_line(telegram, "C1")))
    for mode, told in (("C1", "C1"), ("C1T1", None)):
        receiver = Receiver(Im871aDriver(), ReceiverSettings(mode=mode))
        assert receiver.feed(encode_indication(telegram))[0].link_mode == told


def test_listen_json_has_link_mode_and_rssi_rel(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "listen", "--port", "sim://air?count=3",
                                      "--dongle", "rtlwmbus", "--mode", "T1", "--count", "3", "--json"])
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3
    assert all(line["link_mode"] == "T1" and line["rssi"] is None and line["rssi_rel"] > 0 for line in lines)
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "listen", "--port", "sim://air?count=2",
                                      "--dongle", "im871a", "--mode", "C1", "--count", "2", "--json"])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(line["link_mode"] == "C1" and line["rssi"] < 0 and "rssi_rel" not in line for line in lines)


def test_config_check_refuses_modes_a_dongle_cannot_do(tmp_path: Path) -> None:
    assert set(DONGLE_WMBUS_MODES) == set(dongle_names())
    chip = tmp_path / "chip.ini"

    def check(text: str) -> tuple[int, str]:
        chip.write_text(text)
        result = CliRunner().invoke(cli, ["config", "check", str(chip)])
        return result.exit_code, result.stderr

    code, err = check("WMBUS_DONGLE=rtlwmbus\nWMBUS_MODE=T2_OTHER_REQ\n")
    assert code == 2
    assert (f"{chip}:2: WMBUS_MODE T2_OTHER_REQ is not supported by the rtlwmbus dongle; "
            "it can do T1_OTHER_REQ or C1_OTHER_REQ") in err
    code, err = check("WMBUS_DONGLE=rtlwmbus\n")  # the default T2_OTHER_REQ counts too, and says so
    assert code == 2 and "WMBUS_MODE is not set: its default is T2_OTHER_REQ" in err
    code, err = check("WMBUS_DONGLE=im871a\nWMBUS2_DONGLE=amb8465\nWMBUS2_MODE=R2_OTHER_REQ\n")
    assert code == 2 and "WMBUS2_MODE R2_OTHER_REQ is not supported by the amb8465 dongle" in err
    assert "WMBUS_MODE T2" not in err  # the iM871A is a transceiver with a T2-other mode
    assert check("WMBUS_DONGLE=cul\nWMBUS_MODE=C1_OTHER_REQ\n")[0] == 0
    assert check("WMBUS_MODE=R2_OTHER_REQ\n")[0] == 0  # no dongle named: nothing to check against
