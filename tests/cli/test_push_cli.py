"""`sonocli push` through click's CliRunner against a real FTP server and a real SFTP (OpenSSH) server."""

from __future__ import annotations

import json
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


def test_push_test_reports_each_step(tmp_path: Path, demo_meter_list: Path, ftp_peer: Any) -> None:
    root = make_root(tmp_path, demo_meter_list, **ftp(ftp_peer))
    result = CliRunner().invoke(cli, ["--root", str(root), "push", "--test"])
    assert result.exit_code == 0, result.output
    steps = [line.split()[2] for line in result.output.splitlines() if line.startswith("ok")]
    assert steps == ["resolve", "connect", "login", "upload", "confirm"]
    assert any(p.name.endswith("_test.csv") for p in (ftp_peer.home / "cli").iterdir())


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
