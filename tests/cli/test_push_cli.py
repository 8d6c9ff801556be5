"""`sonocli push` through click's CliRunner against a real FTP server and a real SFTP (OpenSSH) server."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sonocli.cli.root import cli
from tests.integration.push.conftest import FtpPeer, make_root, read_demo_meters, world_dir

pytest_plugins = ["tests.integration.push.conftest"]


@pytest.fixture(scope="module")
def ftp_peer() -> Any:
    peer = FtpPeer(world_dir("sonocli-cli-ftp-"), None)
    yield peer
    peer.stop()


def ftp(peer: Any, **extra: Any) -> dict[str, Any]:
    return {"FTP_ENABLE": 1, "FTP_IP": "127.0.0.1", "FTP_PORT": peer.port, "FTP_USER": "u", "FTP_PASS": "p",
            "FTP_PATH": "/cli", **extra}


def _export_rows(root: Path) -> dict[str, str]:
    """Device-ID -> the CSV row of its newest stored reading, as `sonocli export csv` writes it."""
    result = CliRunner().invoke(cli, ["--root", str(root), "export", "csv"])
    assert result.exit_code == 0, result.output
    latest: dict[str, str] = {}
    for row in result.stdout_bytes.decode("utf-8").split("\r\n")[1:-1]:
        latest[row.split(";")[1]] = row  # time order: the last row of a meter is its newest reading
    return latest


def test_push_test_reports_each_step(tmp_path: Path, demo_meter_list: Path, ftp_peer: Any) -> None:
    """The Test button sends the latest reading of every meter as a normal report, named like one."""
    root = make_root(tmp_path, demo_meter_list, **ftp(ftp_peer, FTP_PATH="/cli-test"))
    read_demo_meters(root)
    read_demo_meters(root)  # two readings per meter: only the newer one goes out
    result = CliRunner().invoke(cli, ["--root", str(root), "push", "--test"])
    assert result.exit_code == 0, result.output
    steps = [line.split()[2] for line in result.output.splitlines() if line.startswith("ok")]
    assert steps == ["resolve", "connect", "login", "upload", "confirm"]
    assert "test transmission delivered" in result.output
    files = list((ftp_peer.home / "cli-test").iterdir())
    assert len(files) == 1 and re.fullmatch(r"SonoCollect_111_\d+\.csv", files[0].name), files
    lines = files[0].read_bytes().decode("utf-8").split("\r\n")[:-1]
    assert lines[0].startswith("Timestamp;DeviceId;")
    latest = _export_rows(root)
    assert len(latest) == 12
    assert sorted(lines[1:]) == sorted(latest.values())  # the newest values of all 12 meters, nothing else
    # a test transmission is not a report cycle: nothing was queued, nothing marked delivered
    listed = CliRunner().invoke(cli, ["--root", str(root), "outbox", "list", "--all", "--json"]).stdout
    assert json.loads(listed)["items"] == []


def test_push_test_json_and_an_empty_store(tmp_path: Path, demo_meter_list: Path, ftp_peer: Any) -> None:
    """Before the first readout the Test button still checks the connection: a report with no readings."""
    root = make_root(tmp_path, demo_meter_list, **ftp(ftp_peer, FTP_PATH="/cli-empty"))
    result = CliRunner().invoke(cli, ["--root", str(root), "push", "--test", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["channels"] == [{"channel": "ftp", "ok": True, "error": None}]
    assert [s["step"] for s in doc["steps"]] == ["resolve", "connect", "login", "upload", "confirm"]
    (sent,) = (ftp_peer.home / "cli-empty").iterdir()
    assert not sent.name.endswith("_test.csv")
    assert sent.read_bytes().decode("utf-8").split("\r\n")[1:] == [""]  # the header line only


def test_push_test_split_by_size_limit_keeps_every_part(tmp_path: Path, demo_meter_list: Path,
                                                        ftp_peer: Any) -> None:
    root = make_root(tmp_path, demo_meter_list, **ftp(ftp_peer, FTP_PATH="/cli-split", REPORT_SIZELIMIT=3000))
    read_demo_meters(root)
    result = CliRunner().invoke(cli, ["--root", str(root), "push", "--test", "--json"])
    assert result.exit_code == 0, result.output
    uploads = [s["detail"] for s in json.loads(result.stdout)["steps"] if s["step"] == "upload"]
    files = sorted((ftp_peer.home / "cli-split").iterdir())
    assert len(uploads) >= 2 and len(files) == len(uploads)
    rows = [line for f in files for line in f.read_bytes().decode("utf-8").split("\r\n")[1:-1]]
    assert sorted(rows) == sorted(_export_rows(root).values())


def test_push_test_names_the_failing_step(tmp_path: Path, demo_meter_list: Path, ftp_peer: Any) -> None:
    root = make_root(tmp_path, demo_meter_list, **ftp(ftp_peer, FTP_PASS="wrong"))
    result = CliRunner().invoke(cli, ["--root", str(root), "push", "--test", "--json"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["channels"][0]["ok"] is False
    assert [s["step"] for s in doc["steps"] if not s["ok"]] == ["login"]
    assert "ftp: login:" in result.stderr


def test_push_once_sends_everything_not_yet_delivered(tmp_path: Path, demo_meter_list: Path, ftp_peer: Any) -> None:
    root = make_root(tmp_path, demo_meter_list, **ftp(ftp_peer, FTP_PATH="/once"))
    runner = CliRunner()
    read_demo_meters(root)
    result = runner.invoke(cli, ["--root", str(root), "push", "--once", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert len(doc["created"]) == 1 and doc["channels"][0]["sent"] == 1
    assert (ftp_peer.home / "once" / doc["created"][0]).is_file()
    # nothing new: a second run creates nothing and sends nothing
    again = json.loads(runner.invoke(cli, ["--root", str(root), "push", "--once", "--json"]).stdout)
    assert again["created"] == [] and again["channels"][0]["sent"] == 0


def test_push_without_channel_is_a_usage_error(tmp_path: Path, demo_meter_list: Path) -> None:
    root = make_root(tmp_path, demo_meter_list)
    result = CliRunner().invoke(cli, ["--root", str(root), "push", "--once"])
    assert result.exit_code == 2
    assert "FTP_ENABLE" in result.stderr


def test_push_accept_host_key_over_sftp(tmp_path: Path, demo_meter_list: Path, sshd_server: Any) -> None:
    root = make_root(tmp_path, demo_meter_list, FTP_ENABLE=1, FTP_IP=f"sftp://127.0.0.1:{sshd_server.port}",
                     FTP_USER=sshd_server.user, FTP_PASS=sshd_server.password, FTP_PATH=str(sshd_server.home / "cli"))
    runner = CliRunner()
    refused = runner.invoke(cli, ["--root", str(root), "push", "--test"])
    assert refused.exit_code == 1 and "hostkey" in refused.output and "--accept-host-key" in refused.stderr
    accepted = runner.invoke(cli, ["--root", str(root), "push", "--test", "--accept-host-key"])
    assert accepted.exit_code == 0, accepted.output
    assert runner.invoke(cli, ["--root", str(root), "push", "--test"]).exit_code == 0
