"""End to end, as an engineer commissions a site: what is configured is exactly what the head-end receives.

scan --save on sim://demo -> the meters' values are listed -> an OBIS-ID and a label are set on a value ->
one value and one meter are deactivated -> readout -> CSV and XML export and a push to a real FTP server
(pyftpdlib on 127.0.0.1): the delivered files hold exactly the active values, with the labels and OBIS-IDs
set, and one XML ``data`` element per value. Every step is the real ``sonocli`` command in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from lxml import etree

pytest_plugins = ["tests.integration.push.conftest"]


def sonocli(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SONOCLI_ROOT": str(root)}
    done = subprocess.run([sys.executable, "-m", "sonocli", *args], capture_output=True, text=True, env=env,
                          timeout=300)
    if check:
        assert done.returncode == 0, f"sonocli {' '.join(args)}: exit {done.returncode}\n{done.stderr}"
    return done


def _json(root: Path, *args: str) -> Any:
    return json.loads(sonocli(root, *args, "--json").stdout)


def test_commissioned_configuration_is_what_is_delivered(tmp_path: Path, ftp_server: Any) -> None:
    root = tmp_path / "root"
    sonocli(root, "init")
    sonocli(root, "scan", "--port", "sim://demo", "--save")
    listed = _json(root, "meters", "list")
    wired = [m for m in listed if m["interface"] == "M-Bus"]
    assert len(wired) >= 3
    first = _json(root, "meters", "show", "1")
    assert len(first["values"]) >= 3, "scan --save records the meter's value entries (Table 26)"
    # the engineer's configuration: label and OBIS-ID on value 1/1, value 1/2 off, meter 2 off
    sonocli(root, "meters", "edit", "1/1", "--obis", "8-0:1.0.0", "--user", "Main-Energy")
    sonocli(root, "meters", "deactivate", "1/2")
    sonocli(root, "meters", "deactivate", "2")
    first = _json(root, "meters", "show", "1")
    assert first["values"][0]["obis"] == "8-0:1.0.0*255" and first["values"][0]["user"] == "Main-Energy"
    assert first["values"][1]["active"] is False
    active_values = [v for v in first["values"] if v["active"]]
    meter1, meter2 = first["device_id"], wired[1]["device_id"]

    sonocli(root, "readout", "--port", "sim://demo", "--all")

    # CSV export (protocol version 3: Value, Scale, Unit, Description, User, Timestamp, ObsId per value)
    csv_path = tmp_path / "out.csv"
    sonocli(root, "export", "csv", "--protocol-version", "3", "-o", str(csv_path))
    rows = [line.split(";") for line in csv_path.read_text(encoding="utf-8").splitlines()[1:] if line]
    by_meter = {row[1]: row for row in rows}
    assert meter2 not in by_meter, "an inactive meter is not exported"
    row = by_meter[meter1]
    groups = (len(row) - 2) // 7
    assert groups == len(active_values), "only the active values of meter 1"
    assert row[2 + 4] == "Main-Energy" and row[2 + 6] == "8-0-1.0.0*255"

    # XML export: one <data> per value, with the label and the OBIS-ID
    xml_path = tmp_path / "out.xml"
    sonocli(root, "export", "xml", "--protocol-version", "5", "-o", str(xml_path))
    tree = etree.parse(str(xml_path))
    meters = {m.get("METER_ID"): m for m in tree.iter("meter")}
    serial1 = meter1.split("-")[1]
    assert meter2.split("-")[1] not in meters
    data = meters[serial1].findall("data")
    assert len(data) == len(active_values)
    assert data[0].get("OBIS_ID") == "8-0:1.0.0*255" and data[0].get("USER") == "Main-Energy"

    # a push to a real FTP server delivers the same
    for key, value in {"FTP_ENABLE": "1", "FTP_IP": "127.0.0.1", "FTP_PORT": str(ftp_server.port),
                       "FTP_USER": "u", "FTP_PASS": "p", "FTP_PATH": f"/e2e-{os.getpid()}",
                       "MUC_PROTOCOL_VER": "3"}.items():
        sonocli(root, "config", "set", key, value)
    sonocli(root, "push", "--once")
    delivered = sorted((ftp_server.home / f"e2e-{os.getpid()}").glob("*.csv"))
    assert delivered, "the report reached the FTP server"
    pushed = [line.split(";") for f in delivered for line in f.read_text(encoding="utf-8").splitlines()[1:] if line]
    assert {r[1] for r in pushed} == {r[1] for r in rows}
    pushed1 = next(r for r in pushed if r[1] == meter1)
    assert (len(pushed1) - 2) // 7 == len(active_values) and pushed1[6] == "Main-Energy"
