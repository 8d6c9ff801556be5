"""``sonocli status`` before, during and after a real serve-daemon run, with the daemon under a systemd-like
environment: NOTIFY_SOCKET bound by the test (READY, WATCHDOG, STOPPING arrive as datagrams), WATCHDOG_USEC,
and JOURNAL_STREAM naming the daemon's stderr file (lines carry <N> priorities, no time or PID).

The daemon reads sim://demo on the wired port, listens on sim://air (one listed active wM-Bus meter, the
others unlisted), has a second receiver on a port that does not exist (an error per retry, priority err),
and serves the XML pull server on a free port; ``status`` must show each of these from the store alone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sonocli.cli.root import cli
from sonocli.engine.status import TOP_KEYS
from tests.integration.push.conftest import demo_meter_list, free_port, make_root

__all__ = ["demo_meter_list"]  # the fixture, imported for this module

LISTED = "00010067"  # a plain (unencrypted) meter of sim://air, put on the list and activated


def status(root: Path) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["--root", str(root), "status", "--json"], catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout)


def sono(root: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--root", str(root), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def root(tmp_path: Path, demo_meter_list: Path) -> Path:
    root = make_root(tmp_path / "root", demo_meter_list, WMBUS_ENABLE=1, WMBUS_PORT="sim://air",
                     WMBUS_DONGLE="im871a", WMBUS2_PORT=str(tmp_path / "no-such-stick"), WMBUS2_DONGLE="amb8465",
                     XMLTOTCP_ENABLE=1, XMLTOTCP_IP="", XMLTOTCP_PORT=free_port())
    sono(root, "listen", "--port", "sim://air?count=7", "--dongle", "im871a", "--count", "7")  # heard, unlisted
    sono(root, "meters", "activate", LISTED)  # from the temporary list into the meter list, active
    return root


class Systemd:
    """The service manager's side: a notification socket and the daemon's stderr file (its journal stream)."""

    def __init__(self, directory: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.path = str(directory / "notify.sock")
        self.sock.bind(self.path)
        self.messages: list[dict[str, str]] = []
        self.journal = directory / "journal.txt"

    def start(self, root: Path, watchdog_usec: int = 1_000_000) -> subprocess.Popen[bytes]:
        err = self.journal.open("ab")
        st = os.fstat(err.fileno())
        env = {**os.environ, "NOTIFY_SOCKET": self.path, "WATCHDOG_USEC": str(watchdog_usec),
               "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        env.pop("WATCHDOG_PID", None)
        proc = subprocess.Popen([sys.executable, "-m", "sonocli", "--root", str(root), "serve-daemon",
                                 "--status-every", "0.5"],
                                stdout=subprocess.DEVNULL, stderr=err, env=env)
        err.close()
        return proc

    def wait_for(self, key: str, timeout: float = 30.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            message = dict(line.split("=", 1) for line in data.split("\n") if "=" in line)
            self.messages.append(message)
            if key in message:
                return message
        raise AssertionError(f"no {key} from the daemon; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[Systemd]:
    manager = Systemd(tmp_path)
    yield manager
    manager.close()


def poll_status(root: Path, ready: Any, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    report: dict[str, Any] = {}
    while time.monotonic() < deadline:
        code, report = status(root)
        if code == 0 and ready(report):
            return report
        time.sleep(0.3)
    raise AssertionError(f"status never showed the expected state: {json.dumps(report, indent=1)[:3000]}")


def interface(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(i for i in report["interfaces"] if i["interface"] == name)


def test_status_before_during_and_after_a_daemon_run(root: Path, systemd: Systemd) -> None:
    # before: never ran; what chip.ini configures, nothing heard yet by a daemon; exit 1
    code, before = status(root)
    assert code == 1 and tuple(before) == TOP_KEYS
    assert before["daemon"]["state"] == "never" and not before["daemon"]["running"]
    assert {i["interface"] for i in before["interfaces"]} == {"mbus", "wmbus1", "wmbus2"}
    assert all(i["last"] is None for i in before["interfaces"])
    assert any("admin" in w and "default password" in w for w in before["daemon"]["warnings"])
    port = int(sono(root, "config", "get", "XMLTOTCP_PORT").strip())

    proc = systemd.start(root)
    try:
        ready = systemd.wait_for("READY")
        assert ready["MAINPID"] == str(proc.pid) and "next readout" in ready["STATUS"]
        for _ in range(3):  # WATCHDOG_USEC=1 s: a kick every half second from the main loop
            systemd.wait_for("WATCHDOG", timeout=3)

        def complete(r: dict[str, Any]) -> bool:
            return (interface(r, "mbus")["last"] is not None and bool(interface(r, "wmbus1")["received"])
                    and interface(r, "wmbus2")["ok"] is False and r["heard"]["unlisted"] > 0
                    and bool(r["channels"]) and r["channels"][0].get("listen"))

        during = poll_status(root, complete)
        d = during["daemon"]
        assert tuple(during) == TOP_KEYS
        assert d["state"] == "running" and d["running"] and d["pid"] == proc.pid and d["version"]
        assert d["uptime"] is not None and d["uptime"] >= 0 and d["next_readout"] and d["next_report"]
        mbus = interface(during, "mbus")
        assert mbus["ok"] is True and mbus["port"] == "sim://demo" and mbus["result"] == "12 of 12 meter(s) read"
        assert mbus["next_readout"] == d["next_readout"]
        air = interface(during, "wmbus1")
        assert air["port"] == "sim://air" and air["ok"] is True and air["received"] >= 1
        assert LISTED in air["result"] or "not in the meter list" in air["result"]
        dead = interface(during, "wmbus2")
        assert dead["result"].startswith("receiver error: ") and "no-such-stick" in dead["result"]
        (server,) = during["channels"]
        assert server["channel"] == "tcp-server" and server["listen"].startswith(f"127.0.0.1:{port}, plain TCP")
        assert server["pending"] == during["outbox"]["depth"]
        heard = during["heard"]
        assert heard["listed"] == 1 and any(LISTED in m["id"] and m["listed"] for m in heard["meters"])
        assert heard["count"] == heard["listed"] + heard["unlisted"] == len(heard["meters"])
        store = during["store"]
        assert store["readings"] >= 12 and store["database_bytes"] > 0 and store["disk_free"] > 0
        assert 0 < store["disk_used_percent"] < 100
        human = CliRunner().invoke(cli, ["--root", str(root), "status"])
        assert human.exit_code == 0 and human.stdout.startswith(f"daemon: running - running as process {proc.pid}")
        assert f"listening on 127.0.0.1:{port}" in human.stdout and "warning: default password" in human.stdout

        proc.send_signal(signal.SIGTERM)
        systemd.wait_for("STOPPING", timeout=10)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # after: stopped cleanly; the last results stay visible; exit 1
    code, after = status(root)
    assert code == 1 and after["daemon"]["state"] == "stopped" and after["daemon"]["uptime"] is None
    assert interface(after, "mbus")["result"] == "12 of 12 meter(s) read"
    assert after["channels"][0]["listen"] is None and after["daemon"]["next_readout"] is None

    # journald: every line a <N> priority, no time or PID of its own; the dead stick's errors are priority err
    lines = systemd.journal.read_text().splitlines()
    assert lines and all(re.match(r"<[2-7]>sonocli\.[a-z.]+: ", line) for line in lines), lines[:5]
    assert not any(re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d sonocli\[", line) for line in lines)
    assert any(line.startswith("<6>sonocli.daemon: daemon started") for line in lines)
    errors = [line for line in lines if line.startswith("<3>")]
    assert errors and all("no-such-stick" in line for line in errors)


def test_status_says_down_after_a_crash_and_stale_when_the_daemon_hangs(root: Path, systemd: Systemd) -> None:
    from sonocli.store.status import StatusStore

    proc = systemd.start(root)
    try:
        systemd.wait_for("READY")
        poll_status(root, lambda r: r["daemon"]["running"])
        proc.send_signal(signal.SIGSTOP)  # hung: alive, but writes nothing any more
        store = StatusStore(root / "ext" / "sonocli.db")
        try:
            snap = store.load()
            assert snap is not None
            store.save(snap.body, snap.written_at - 3600)  # as if its last heartbeat was an hour ago
        finally:
            store.close()
        code, hung = status(root)
        assert code == 1 and hung["daemon"]["state"] == "stale" and hung["daemon"]["pid"] == proc.pid
        assert "hung" in hung["daemon"]["message"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        code, dead = status(root)
        assert code == 1 and dead["daemon"]["state"] == "down" and not dead["daemon"]["running"]
        assert "died" in dead["daemon"]["message"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_failing_channel_shows_its_last_error_and_the_outbox_its_oldest_report(tmp_path: Path,
                                                                                 demo_meter_list: Path) -> None:
    """In-process daemon on a virtual clock, FTP to a port where nobody listens: four report cycles fail."""
    import random

    from sonocli.daemon.runner import Daemon
    from sonocli.daemon.schedule import FastClock
    from sonocli.engine.core import Engine

    start = 1_750_000_000.0
    root = make_root(tmp_path / "root", demo_meter_list, FTP_ENABLE=1, FTP_IP="127.0.0.1", FTP_PORT=free_port(),
                     FTP_USER="u", FTP_PASS="p", FTP_PATH="/in")
    engine = Engine(root)
    try:
        Daemon(engine, clock=FastClock(start), wireless=False, until=start + 3600, rng=random.Random(1)).run()
        pending = engine.outbox.items()
    finally:
        engine.close()
    code, report = status(root)
    assert code == 1 and report["daemon"]["state"] == "stopped"  # the run ended (no PID file in-process)
    (ftp,) = report["channels"]
    assert ftp["channel"] == "ftp" and ftp["last_delivery"] is None and ftp["error_state"] == "failing"
    assert "connect" in ftp["last_error"] and ftp["last_error_at"].startswith("2025-06-15")
    assert ftp["pending"] == report["outbox"]["depth"] == len(pending) >= 4
    assert report["outbox"]["by_channel"] == {"ftp": len(pending)}
    oldest = min(item.created for item in pending)
    # ages are on the daemon's (virtual) clock: the oldest report waited about the hour the daemon ran
    assert report["outbox"]["oldest"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(oldest))
    assert 2400 <= report["outbox"]["oldest_age"] <= 3700
    mbus = interface(report, "mbus")
    assert mbus["ok"] is True and mbus["result"] == "12 of 12 meter(s) read"
