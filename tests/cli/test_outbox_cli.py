"""`sonocli outbox list|retry|drop` on a real outbox filled by a failing push."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sonocli.cli.root import cli
from tests.integration.push.conftest import free_port, make_root, read_demo_meters

pytest_plugins = ["tests.integration.push.conftest"]


def test_outbox_list_retry_drop(tmp_path: Path, demo_meter_list: Path) -> None:
    root = make_root(tmp_path, demo_meter_list, FTP_ENABLE=1, FTP_IP="127.0.0.1", FTP_PORT=free_port())
    runner = CliRunner()
    base = ["--root", str(root)]
    read_demo_meters(root)
    failed = runner.invoke(cli, [*base, "push", "--once"])
    assert failed.exit_code == 1 and "connect" in failed.stderr and "outbox" in failed.stderr
    listed = json.loads(runner.invoke(cli, [*base, "outbox", "list", "--json"]).stdout)
    items = listed["items"]
    assert listed["limit"] == 2000 and listed["use"]["items"] == listed["use"]["pending"] == 1
    assert listed["use"]["payload_bytes"] == items[0]["size"] > 0
    assert len(items) == 1 and items[0]["attempts"] == 1 and items[0]["channel"] == "ftp"
    assert items[0]["name"].startswith("SonoCollect_111_") and items[0]["readings"] == 12
    table = runner.invoke(cli, [*base, "outbox", "list"])
    assert items[0]["name"] in table.output and "1 of 2000 report(s) (OUTBOX_MAXITEMS): 1 pending" in table.output
    assert json.loads(runner.invoke(cli, [*base, "outbox", "retry", "--all", "--json"]).stdout) == {"retried": 1}
    assert runner.invoke(cli, [*base, "outbox", "drop"]).exit_code == 2
    assert runner.invoke(cli, [*base, "outbox", "drop", "99"]).exit_code == 2
    assert json.loads(runner.invoke(cli, [*base, "outbox", "drop", str(items[0]["id"]), "--json"]).stdout) == {
        "dropped": 1}
    assert json.loads(runner.invoke(cli, [*base, "outbox", "list", "--json"]).stdout)["items"] == []
    everything = json.loads(runner.invoke(cli, [*base, "outbox", "list", "--all", "--json"]).stdout)["items"]
    assert everything[0]["state"] == "dropped"
