"""`sonocli meters heard` and `meters activate ID`: the temporary list of heard wM-Bus meters (guide 5.1.2).

The list is filled the real way: `sonocli listen` (a subprocess) or `Engine.run_receiver` on the simulated
radio `sim://air`; both publish unlisted meters to the store, where every other command sees them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sonocli.cli.root import cli
from sonocli.config.device_handle import load_meter_list
from sonocli.engine.core import Engine

AIR_IDS = {"55667788", "12345678", "27343111", "00010067", "58511882", "23000399", "28335519"}
# the one meter object's keys (sonocli.engine.meterjson), then what was heard
FIELDS = ["device_id", "serial", "manufacturer", "version", "medium", "interface", "primary_address", "address_mode",
          "rssi", "first_seen", "last_seen", "telegrams", "security", "decrypts"]


def sonocli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sonocli", "--root", str(root), *args],
                          capture_output=True, text=True, timeout=60)


def run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), "meters", *args])
    return result.exit_code, result.stdout, result.stderr


def heard(root: Path) -> dict[str, dict[str, Any]]:
    code, out, err = run(root, "heard", "--json")
    assert code == 0, err
    return {entry["serial"]: entry for entry in json.loads(out)}


def cfg(root: Path) -> Path:
    return root / "app" / "device_handle.cfg"


@pytest.fixture
def listened(tmp_path: Path) -> Path:
    """A root on which `sonocli listen` heard the 7 meters of sim://air three times each (21 telegrams)."""
    assert sonocli(tmp_path, "init").returncode == 0
    done = sonocli(tmp_path, "listen", "--port", "sim://air?count=21", "--dongle", "im871a", "--duration", "5")
    assert done.returncode == 0, done.stderr
    return tmp_path


def test_empty_list_is_a_note_with_a_hint(tmp_path: Path) -> None:
    assert run(tmp_path, "heard")[0:2] == (0, "")
    code, out, err = run(tmp_path, "heard", "--json")
    assert (code, json.loads(out)) == (0, [])
    assert err.startswith("sonocli: note: ") and "sonocli listen --port sim://air" in err and "daemon" in err


def test_heard_lists_what_listen_received(listened: Path) -> None:
    started = datetime.now(UTC)
    entries = heard(listened)
    assert set(entries) == AIR_IDS
    for entry in entries.values():
        assert list(entry) == FIELDS
        first, last = datetime.fromisoformat(entry["first_seen"]), datetime.fromisoformat(entry["last_seen"])
        assert first.utcoffset() == timedelta(0) and first <= last <= started + timedelta(seconds=1)
        assert entry["telegrams"] >= 1 and isinstance(entry["rssi"], int)
    plain = entries["58511882"]
    assert (plain["manufacturer"], plain["medium"], plain["version"]) == ("LSE", {"code": 6, "text": "Hot water"}, 44)
    assert (plain["device_id"], plain["interface"]) == ("LSE-58511882-2C-06", "wM-Bus")
    assert (plain["telegrams"], plain["decrypts"]) == (3, True)
    assert entries["28335519"]["decrypts"] is False  # encrypted, no key yet
    code, out, _ = run(listened, "heard")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "# 7 heard meter(s) not in the meter list"
    assert lines[1].split("\t") == ["ID", "MAN", "Medium", "Version", "RSSI", "First seen", "Last seen",
                                    "Telegrams", "Decrypts"]
    row = next(line.split("\t") for line in lines[2:] if line.startswith("58511882"))
    assert row[1:5] == ["LSE", "Hot water", "44", str(plain["rssi"])] and row[7:] == ["3", "yes"]
    # a second listen adds to the counts (the daemon and `listen` share one list)
    assert sonocli(listened, "listen", "--port", "sim://air?count=7", "--dongle", "im871a",
                   "--duration", "5").returncode == 0
    assert heard(listened)["58511882"]["telegrams"] == 4


def test_activate_moves_a_heard_meter_into_the_list(listened: Path) -> None:
    done = sonocli(listened, "meters", "activate", "58511882")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "activated LSE-58511882-2C-06 (moved from the heard meters into the meter list)\n"
    listed = json.loads(sonocli(listened, "meters", "list", "--json").stdout)
    assert [(m["device_id"], m["interface"], m["active"]) for m in listed] == [
        ("LSE-58511882-2C-06", "wM-Bus", True)
    ]
    assert "58511882" not in heard(listened) and len(heard(listened)) == 6
    # the next reception of the now listed meter records its values in the list (learned), and they can be
    # labelled and deactivated like any other; single values still cannot be deleted
    assert sonocli(listened, "listen", "--port", "sim://air?count=7", "--dongle", "im871a",
                   "--duration", "5").returncode == 0
    assert "58511882" not in heard(listened)
    values = json.loads(run(listened, "show", "1", "--json")[1])["values"]
    assert values and values[0]["description"] == "Volume"
    assert run(listened, "edit", "1/1", "--user", "Bad", "--obis", "8-0:1.0.0")[0] == 0
    assert run(listened, "deactivate", "1/2")[0] == 0
    values = json.loads(run(listened, "show", "1", "--json")[1])["values"]
    assert (values[0]["user"], values[0]["obis"], values[1]["active"]) == ("Bad", "8-0:1.0.0*255", False)
    code, _, err = run(listened, "delete", "1/1")
    assert code == 2 and "deleting single values of a wM-Bus meter is not allowed" in err


def test_activate_several_and_list_refs_in_one_call(listened: Path) -> None:
    assert run(listened, "activate", "23000399")[0] == 0
    assert run(listened, "deactivate", "1") == (0, "deactivated 1\n", "")
    code, out, err = run(listened, "activate", "1", "00010067", "28335519")
    assert code == 0, err
    assert out.splitlines() == [
        "activated 1",
        "activated LAS-00010067-0B-1E (moved from the heard meters into the meter list)",
        "activated SON-28335519-16-08 (moved from the heard meters into the meter list)",
    ]
    meters = load_meter_list(cfg(listened)).meters
    assert [(m.serial, m.active) for m in meters] == [("23000399", True), ("00010067", True), ("28335519", True)]
    assert set(heard(listened)) == AIR_IDS - {"23000399", "00010067", "28335519"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("activate", "99999999"), "meter '99999999' is neither in the meter list nor in the temporary list"),
        (("activate", "58511882", "99999999"), "'99999999'"),  # all or nothing: 58511882 stays heard
        (("deactivate", "58511882"), "meter '58511882' does not exist"),  # heard meters are inactive already
        (("activate", "58511882/1"), "meter '58511882' does not exist"),
    ],
)
def test_unknown_ids_exit_2_and_change_nothing(listened: Path, args: tuple[str, ...], message: str) -> None:
    before = cfg(listened).read_bytes()
    listed_before = heard(listened)
    done = sonocli(listened, "meters", *args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("sonocli: error: ") and message in done.stderr
    assert cfg(listened).read_bytes() == before
    assert heard(listened) == listed_before


def test_engine_receiver_fills_the_list_other_commands_read(tmp_path: Path) -> None:
    """What the daemon does (Engine.run_receiver) is what `meters heard` shows; with wM-Bus listen off
    (WMBUS_LISTEN=0) unknown meters are not listed at all."""
    engine = Engine(tmp_path)
    receiver = engine.receiver("im871a")
    port = engine.open_receiver_port("sim://air?count=14", receiver)
    try:
        engine.run_receiver(receiver, port, duration=5)
    finally:
        port.close()
        engine.close()
    entries = heard(tmp_path)
    assert set(entries) == AIR_IDS and entries["23000399"]["telegrams"] == 2
    assert run(tmp_path, "activate", "23000399")[0] == 0
    assert "23000399" not in heard(tmp_path)
    quiet = tmp_path / "quiet"
    quiet.mkdir()  # the commands refuse a root that does not exist
    engine = Engine(quiet)
    receiver = engine.receiver("im871a", listen_new=False)
    port = engine.open_receiver_port("sim://air?count=7", receiver)
    try:
        engine.run_receiver(receiver, port, duration=5)
    finally:
        port.close()
        engine.close()
    assert heard(quiet) == {}
