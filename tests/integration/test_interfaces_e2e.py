"""End to end: a DLDE meter of the meter list, read by the daemon on DLDE_PORT (sim://dlde), reaches the CSV
report on a real FTP server and the XML report on a real HTTPS server, with its OBIS-IDs and INTERFACE 06."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path
from typing import Any

from lxml import etree

from sonocli.daemon.runner import Daemon
from sonocli.daemon.schedule import FastClock
from sonocli.engine.core import Engine
from sonocli.model.values import Interface, Meter
from tests.integration.push.conftest import FtpPeer, https_server, pki, world_dir  # noqa: F401 (fixtures)

START = 1_750_000_000.0


def dlde_root(tmp_path: Path, **settings: Any) -> Path:
    from sonocli.config.chipini import ChipIni
    from sonocli.config.layout import init_root
    from sonocli.engine.meterlist import add_meters

    root = tmp_path / "root"
    layout = init_root(root)
    chip = ChipIni.load(layout.chip_ini)
    values = {"MBUS_ENABLE": "0", "WMBUS_ENABLE": "0", "METER_TIME": "900", "REPORT_TIME": "15",
              "REPORT_RANDOMDELAY": "1", "DLDE_PORT": "sim://dlde?address=62807889",
              **{k: str(v) for k, v in settings.items()}}
    for key, value in values.items():
        chip.set(key, value)
    chip.save(layout.chip_ini)
    engine = Engine(root)
    try:
        meter = Meter(Interface.DLDE, serial="62807889", manufacturer="ISK", medium=2, user="flat 3")
        engine.update_meters(lambda ml: add_meters(ml, meter, 1, engine.limits()))
    finally:
        engine.close()
    return root


def test_dlde_meter_reaches_csv_on_ftp_and_xml_on_https(
    tmp_path: Path, https_server: Any, pki: Any  # noqa: F811 - the push fixtures imported above
) -> None:
    home = world_dir("sonocli-dlde-")
    peer = FtpPeer(home, None)
    root = dlde_root(tmp_path, FTP_ENABLE=1, FTP_IP="127.0.0.1", FTP_PORT=peer.port, FTP_USER="u", FTP_PASS="p",
                     FTP_PATH="/in", FTP_PASSIVE=1, TLS_ENABLE=1, TLS_IP="127.0.0.1", TLS_PORT=https_server.port,
                     TLS_SITE="/meters")
    pki.install(root / "app")
    before = len(https_server.posts)
    engine = Engine(root)
    try:
        daemon = Daemon(engine, clock=FastClock(START), wireless=False, until=START + 1800, rng=random.Random(1))
        daemon.run()
        listed = engine.meter_list().meters[0]
        assert [v.obis for v in listed.values][2:] == ["1-0:1.8.0*255", "1-0:2.8.0*255"]  # learned
        assert engine.store.count() >= 1
    finally:
        engine.close()
        peer.stop()
    rows = [row for path in sorted((home / "in").glob("*.csv"))
            for row in list(csv.reader(io.StringIO(path.read_text()), delimiter=";"))[1:]]
    assert rows, "no CSV report arrived"
    text = ";".join(rows[0])
    assert "ISK-62807889-00-02" in text and "502853" in text and "1-0-1.8.0*255" in text
    posts = https_server.posts[before:]
    assert posts, "no XML report arrived"
    meters = etree.fromstring(posts[0][2]).findall("./muc/meter")
    dlde_meters = [m for m in meters if m.get("INTERFACE") == "06"]
    assert dlde_meters, etree.tostring(meters[0]) if meters else posts[0][2][:400]
    obis = {d.get("OBIS_ID") for d in dlde_meters[0].iter("data")}
    assert {"1-0:1.8.0*255", "1-0:2.8.0*255"} <= obis
