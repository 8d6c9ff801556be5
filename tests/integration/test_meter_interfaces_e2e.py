"""End to end (issue 18): a DLDE meter (sim://dlde on DLDE_PORT), an SML meter (sim://sml on SML_PORT, every
other file with a bad CRC) and an S0 meter (pulses counted from a fake edge source, the count kept over a
restart) of one meter list, run by the daemon, reach the CSV report on a real FTP server (pyftpdlib) and the
XML report on a real HTTPS server, with their values, OBIS-IDs and INTERFACE 06 / 06 / 01."""

from __future__ import annotations

import csv
import io
import queue
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

from lxml import etree

from sonocli.daemon.runner import Daemon
from sonocli.daemon.schedule import FastClock
from sonocli.engine.core import Engine
from sonocli.engine.s0 import PulseCounter
from sonocli.engine.sml import sml_meter
from sonocli.model.values import Interface, Meter, ValueConfig
from tests.integration.push.conftest import FtpPeer, https_server, pki, world_dir  # noqa: F401 (fixtures)

START = 1_750_000_000.0
S0_ID = "SLV-12345678-0C-02"


class Edges:
    def __init__(self, lines: list[str]) -> None:
        self.q: queue.Queue[str] = queue.Queue()
        for line in lines:
            self.q.put(line)

    def wait(self, timeout: float) -> list[str]:
        out: list[str] = []
        while True:
            try:
                out.append(self.q.get(timeout=timeout if not out else 0))
            except queue.Empty:
                return out

    def close(self) -> None:
        pass


def make_root(tmp_path: Path, **settings: Any) -> Path:
    from sonocli.config.chipini import ChipIni
    from sonocli.config.layout import init_root

    root = tmp_path / "root"
    layout = init_root(root)
    chip = ChipIni.load(layout.chip_ini)
    values = {"MBUS_ENABLE": "0", "WMBUS_ENABLE": "0", "METER_TIME": "900", "REPORT_TIME": "15",
              "REPORT_RANDOMDELAY": "1", "DLDE_PORT": "sim://dlde?address=62807889",
              "SML_PORT": "sim://sml?crc=bad&every=2", "SML_TIMEOUT": "5000", "S0_LINES": "1=17",
              "MUC_SETDEVICES": "S0", **{k: str(v) for k, v in settings.items()}}
    for key, value in values.items():
        chip.set(key, value)
    chip.save(layout.chip_ini)
    s0 = Meter(Interface.S0, serial="12345678", manufacturer="SLV", version=12, medium=2, primary_address=1,
               values=(ValueConfig(description="Energy", unit="Wh", exponent=-1, obis="1-0:1.8.0*255",
                                   user="Basement", value=280.09),))
    meters = (Meter(Interface.DLDE, serial="62807889", manufacturer="ISK", medium=2, user="flat 3"),
              sml_meter("02280816", "EMH", user="hall"), s0)
    engine = Engine(root)
    try:
        engine.update_meters(lambda ml: (replace(ml, meters=meters), None))
        # pulses counted before a restart: the daemon (a new process) must count on from them
        PulseCounter(engine, Edges(["17"] * 25)).step(0.5)
    finally:
        engine.close()
    return root


def test_dlde_sml_and_s0_meters_reach_csv_on_ftp_and_xml_on_https(
    tmp_path: Path, https_server: Any, pki: Any  # noqa: F811 - the push fixtures imported above
) -> None:
    home = world_dir("sonocli-interfaces-")
    peer = FtpPeer(home, None)
    root = make_root(tmp_path, FTP_ENABLE=1, FTP_IP="127.0.0.1", FTP_PORT=peer.port, FTP_USER="u", FTP_PASS="p",
                     FTP_PATH="/in", FTP_PASSIVE=1, TLS_ENABLE=1, TLS_IP="127.0.0.1", TLS_PORT=https_server.port,
                     TLS_SITE="/meters")
    pki.install(root / "app")
    before = len(https_server.posts)
    engine = Engine(root)
    try:
        daemon = Daemon(engine, clock=FastClock(START), wireless=False, until=START + 1800, rng=random.Random(1))
        daemon.s0_source = Edges(["17"] * 5)  # five more pulses while the daemon runs
        daemon.run()
        listed = {m.device_id: m for m in engine.meter_list().meters}
        assert [v.obis for v in listed["ISK-62807889-00-02"].values][2:] == ["1-0:1.8.0*255", "1-0:2.8.0*255"]
        assert [v.obis for v in listed["EMH-02280816-00-02"].values][2:4] == ["1-0:1.8.1*255", "1-0:1.8.2*255"]
        assert engine.store.count() >= 1
        assert engine.pulses.get(S0_ID).pulses in (25, 30)  # 25 before the restart (+5 if seen in time)
    finally:
        engine.close()
        peer.stop()
    rows = [row for path in sorted((home / "in").glob("*.csv"))
            for row in list(csv.reader(io.StringIO(path.read_text()), delimiter=";"))[1:]]
    assert rows, "no CSV report arrived"
    text = "\n".join(";".join(row) for row in rows)
    assert "ISK-62807889-00-02" in text and "502853" in text  # DLDE: 502.853 kWh
    dlde_rows = [";".join(row) for row in rows if "ISK-62807889-00-02" in ";".join(row)]
    assert any("502853" in row and "1-0-1.8.0*255" in row for row in dlde_rows)  # the value with its OBIS-ID
    assert "EMH-02280816-00-02" in text and "147981" in text and "1-0-1.8.1*255" in text  # SML: 14798112.9 Wh
    s0_rows = [";".join(row) for row in rows if S0_ID in ";".join(row)]
    # set value 280.09 + 25 pulses counted before the restart (+ 5 counted by the daemon's thread), scale 1e-1 Wh
    assert s0_rows and {row.split(";")[2] for row in s0_rows} <= {"305.09", "310.09"}
    assert all(row.split(";")[3:5] == ["1.00E-01", "Wh"] for row in s0_rows)
    posts = https_server.posts[before:]
    assert posts, "no XML report arrived"
    meters = [m for _path, _headers, body in posts for m in etree.fromstring(body).findall("./muc/meter")]
    by_id = {m.get("METER_ID"): m for m in meters}
    assert by_id["62807889"].get("INTERFACE") == "06" and by_id["02280816"].get("INTERFACE") == "06"
    assert by_id["12345678"].get("INTERFACE") == "01"
    sml_obis = {d.get("OBIS_ID") for d in by_id["02280816"].iter("data")}
    assert {"1-0:1.8.1*255", "1-0:1.8.2*255", "1-0:1.7.0*255"} <= sml_obis
    s0_data = list(by_id["12345678"].iter("data"))
    assert s0_data and s0_data[0].get("OBIS_ID") == "1-0:1.8.0*255"
    assert {"1-0:1.8.0*255", "1-0:2.8.0*255"} <= {d.get("OBIS_ID") for d in by_id["62807889"].iter("data")}
