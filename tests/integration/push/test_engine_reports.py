"""Reports built from the store and delivered by SMTP, HTTPS and the device-as-TCP-server mode."""

from __future__ import annotations

import email
import socket
import time
from email import policy
from pathlib import Path
from typing import Any

from lxml import etree

from sonocli.engine.core import Engine
from tests.integration.push.conftest import make_root, read_demo_meters


def meters_in(xml: bytes) -> list[etree._Element]:
    root = etree.fromstring(xml)
    assert root.tag == "interface"
    return root.findall("./muc/meter")


def test_smtp_reports_split_by_size_limit_with_subject_index(
    tmp_path: Path, demo_meter_list: Path, smtp_server: Any, pki: Any
) -> None:
    root = make_root(tmp_path, demo_meter_list, SMTP_ENABLE=1, SMTP_IP=f"127.0.0.1:{smtp_server.port}",
                     SMTP_USER=smtp_server.user, SMTP_PASSWORD=smtp_server.password,
                     SMTP_FROMADDRESS="muc@example.org", SMTP_TOADDRESS="head@example.org",
                     SMTP_SUBJECTBASENAME="Test MUC", REPORT_SIZELIMIT=4000)
    pki.install(root / "app")
    assert read_demo_meters(root) == 12
    engine = Engine(root, muc_id=0x1234567, now=lambda: 1372759627.0)
    before = len(smtp_server.messages)
    try:
        items = engine.build_reports()
        results = engine.deliver()
    finally:
        engine.close()
    assert len(items) >= 2 and results["smtp"].sent == len(items)
    mails = [email.message_from_bytes(e.original_content, policy=policy.default)
             for e in smtp_server.messages[before:]]
    subjects = [m["Subject"] for m in mails]
    assert subjects == [f"Test MUC ID: 1234567, Timestamp: 1372759627 ({i})" for i in range(1, len(items) + 1)]
    bodies = [m.get_payload(decode=True) for m in mails]
    assert all(len(b) <= 4000 or len(meters_in(b)) == 1 for b in bodies)
    ids = [meter.get("ID") or meter.attrib for b in bodies for meter in meters_in(b)]
    assert len(ids) == 12
    assert sum(item.readings for item in items) == 12


def test_https_report_carries_every_stored_reading(tmp_path: Path, demo_meter_list: Path, https_server: Any,
                                                   pki: Any) -> None:
    root = make_root(tmp_path, demo_meter_list, TLS_ENABLE=1, TLS_IP="127.0.0.1", TLS_PORT=https_server.port,
                     TLS_SITE="/meters")
    pki.install(root / "app")
    read_demo_meters(root)
    read_demo_meters(root)
    engine = Engine(root, muc_id=1)
    before = len(https_server.posts)
    try:
        engine.build_reports()
        assert engine.deliver()["https"].sent == 1
    finally:
        engine.close()
    path, headers, body = https_server.posts[before]
    assert path == "/meters" and headers["Content-Type"] == "application/xml"
    assert len(meters_in(body)) >= 12


def test_device_as_tcp_server(tmp_path: Path, demo_meter_list: Path) -> None:
    """XMLTOTCP_IP empty: the head-end connects and receives the pending reports."""
    import threading

    from sonocli.daemon.runner import Daemon
    from tests.integration.push.conftest import free_port

    port = free_port()
    root = make_root(tmp_path, demo_meter_list, XMLTOTCP_ENABLE=1, XMLTOTCP_IP="", XMLTOTCP_PORT=port,
                     XMLTOTCP_DISCONNECTTIMEOUT=5)
    read_demo_meters(root)
    engine = Engine(root, muc_id=1)
    engine.build_reports()
    daemon = Daemon(engine, wireless=False)
    thread = threading.Thread(target=daemon._tcp_server, daemon=True)
    thread.start()
    try:
        data = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                    while chunk := conn.recv(65536):
                        data += chunk
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        assert len(meters_in(data)) == 12
        assert engine.outbox.items(channel="tcp-server") == []
    finally:
        daemon.stop()
        thread.join(5)
        engine.close()


def test_csv_reports_split_by_size_limit(tmp_path: Path, demo_meter_list: Path, ftp_server: Any) -> None:
    root = make_root(tmp_path, demo_meter_list, FTP_ENABLE=1, FTP_IP="127.0.0.1", FTP_PORT=ftp_server.port,
                     FTP_USER="u", FTP_PASS="p", FTP_PATH="/split", REPORT_SIZELIMIT=3000)
    for _ in range(3):
        read_demo_meters(root)
    engine = Engine(root, now=lambda: 1700000000.0)
    try:
        items = engine.build_reports()
        assert engine.deliver()["ftp"].sent == len(items) >= 3
    finally:
        engine.close()
    # every part keeps the cycle's real time; the FTP name carries only that time, so parts are numbered
    assert {i.created for i in items} == {1700000000}
    assert [i.name for i in items] == ["SonoCollect_111_1700000000.csv"] + [
        f"SonoCollect_111_1700000000_{n}.csv" for n in range(2, len(items) + 1)]
    files = sorted((ftp_server.home / "split").glob("*.csv"))
    assert [f.name for f in files] == sorted(i.name for i in items)
    rows = 0
    for f in files:
        text = f.read_text()
        assert len(text.encode()) <= 3000 or text.count("\n") == 2  # one oversized reading may go alone
        lines = text.splitlines()
        assert lines[0].startswith("Timestamp;DeviceId;")
        rows += len(lines) - 1
    assert rows == 36 == sum(i.readings for i in items)


def test_split_reports_keep_real_timestamps_and_unique_names(tmp_path: Path, demo_meter_list: Path,
                                                             ftp_server: Any) -> None:
    """A report split by REPORT_SIZELIMIT on the real clock: no part claims a time in the future (the old
    outbox shifted each colliding part +1 s), and two cycles in one second never reuse a name."""
    root = make_root(tmp_path, demo_meter_list, FTP_ENABLE=1, FTP_IP="127.0.0.1", FTP_PORT=ftp_server.port,
                     FTP_USER="u", FTP_PASS="p", FTP_PATH="/split-now", REPORT_SIZELIMIT=2500)
    read_demo_meters(root)
    read_demo_meters(root)
    start = int(time.time())
    engine = Engine(root)
    try:
        first = engine.build_reports()
        after_first = time.time()
        read_demo_meters(root)
        frozen = first[0].created  # a second cycle in the same second as the first
        engine.now = lambda: float(frozen)
        second = engine.build_reports()
        results = engine.deliver()
    finally:
        engine.close()
    assert len(first) >= 4 and len(second) >= 2
    assert all(start <= i.created <= after_first for i in first), [i.created for i in first]
    assert {i.created for i in first} == {frozen} == {i.created for i in second}
    names = [i.name for i in first + second]
    assert len(set(names)) == len(names)
    assert all(f"_{frozen}" in n for n in names)
    assert results["ftp"].sent == len(names)
    arrived = {f.name: f.read_text() for f in (ftp_server.home / "split-now").glob("*.csv")}
    assert sorted(arrived) == sorted(names)
    rows = [line for text in arrived.values() for line in text.splitlines()[1:]]
    assert len(rows) == 36 == sum(i.readings for i in first + second)
