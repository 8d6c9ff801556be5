"""One JSON meter object everywhere (issue 15, item 2): every command's ``--json`` output, the MQTT message
and the stored history, held to the schema that ships in the package (sonocli.engine.meter_schema).

Real parts: the simulated wired bus ``sim://demo``, the simulated radio ``sim://air``, the simulated DLDE
meter, a real readings store written by those readouts. The checker (tests/cli/schema_check.py) is shown to
reject the old shapes first, so a test here can fail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sonocli.cli.root import cli
from tests.cli.schema_check import check, errors

METER_KEYS = ["device_id", "serial", "manufacturer", "version", "medium", "interface", "primary_address",
              "address_mode"]


def run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), *args])
    return result.exit_code, result.stdout, result.stderr


def _walk_keys(doc: Any) -> set[str]:
    if isinstance(doc, dict):
        return set(doc) | {k for v in doc.values() for k in _walk_keys(v)}
    if isinstance(doc, list):
        return {k for v in doc for k in _walk_keys(v)}
    return set()


@pytest.fixture(scope="module")
def wired(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with the sim://demo bus scanned into the list and read twice (readings stored)."""
    root = tmp_path_factory.mktemp("wired")
    assert run(root, "init")[0] == 0
    code, _, err = run(root, "scan", "--port", "sim://demo", "--mode", "primary", "--last", "15", "--save")
    assert code == 0, err
    for _ in range(2):
        code, _, err = run(root, "readout", "--port", "sim://demo", "--all")
        assert code == 0, err
    return root


def test_the_checker_rejects_the_old_shapes() -> None:
    meter = {"device_id": "KAM-06855817-08-04", "serial": "06855817", "manufacturer": "KAM", "version": 8,
             "medium": {"code": 4, "text": "Heat (outlet)"}, "interface": "M-Bus", "primary_address": 1,
             "address_mode": "secondary"}
    check(meter, "meter")
    assert errors({**meter, "medium": 4}, {"$ref": "#/$defs/meter"}, _schema())  # medium as a number
    old_listen = {k: v for k, v in meter.items() if k != "device_id"}
    assert errors(old_listen, {"$ref": "#/$defs/meter"}, _schema())  # listen had no device_id
    assert errors({**meter, "medium_text": "Heat"}, {"$ref": "#/$defs/meter"}, _schema())  # no extra keys
    reading = {"meter": meter, "taken_at": "2026-12-03T16:42:49+00:00", "telegrams": 1, "header": None,
               "records": []}
    assert any("missing key 'time'" in e for e in errors(reading, {"$ref": "#/$defs/reading"}, _schema()))
    assert errors({"meter": meter, "error": "no answer"}, {"$ref": "#/$defs/failed"}, _schema())
    assert errors({**reading, "time": "2026-12-03T17:42:49+01:00"}, {"$ref": "#/$defs/reading"}, _schema())


def _schema() -> dict[str, Any]:
    from sonocli.engine.meter_schema import SCHEMA

    return SCHEMA


def test_scan_readout_readings_meters_share_one_meter_object(wired: Path) -> None:
    code, out, err = run(wired, "scan", "--port", "sim://demo", "--mode", "primary", "--last", "15", "--json")
    assert code == 0, err
    scan = json.loads(out)
    check(scan, "scan")
    assert scan["meters"] and all(list(m) == METER_KEYS for m in scan["meters"])

    code, out, err = run(wired, "readout", "--port", "sim://demo", "--all", "--json")
    assert code == 0, err
    readout = json.loads(out)
    for item in readout:
        check(item, "reading")
        assert list(item)[:2] == ["meter", "time"] and isinstance(item["limited"], bool)

    code, out, err = run(wired, "meters", "list", "--json")
    assert code == 0, err
    listed = json.loads(out)
    for entry in listed:
        check(entry, "meter_entry")
        assert list(entry)[1:9] == METER_KEYS
    code, out, _ = run(wired, "meters", "show", listed[0]["device_id"], "--json")
    check(json.loads(out), "meter_entry")

    code, out, err = run(wired, "readings", "--json")
    assert code == 0, err
    stored = json.loads(out)
    assert len(stored) >= 2 * len(listed)
    for item in stored:
        check(item, "reading")
    # the same meter is the same object in every command (scan and readout by the addressing they used)
    by_id = {m["device_id"]: m for m in scan["meters"]}
    for item in readout:
        assert item["meter"] == by_id[item["meter"]["device_id"]]
    entries = {e["device_id"]: {k: e[k] for k in METER_KEYS} for e in listed}
    assert all(item["meter"] == entries[item["meter"]["device_id"]] for item in stored)
    assert "taken_at" not in _walk_keys([scan, readout, listed, stored])


def test_mqtt_messages_are_the_readout_objects(wired: Path) -> None:
    from sonocli.engine.core import Engine
    from sonocli.engine.messages import json_line, render_lines

    engine = Engine(wired)
    try:
        readings = list(engine.store.iter_readings())
    finally:
        engine.close()
    assert readings
    for reading in readings:
        check(json.loads(json_line(reading)), "reading")
    assert len(render_lines(readings).splitlines()) == len(readings)


def test_failed_meters_have_an_error_object_in_every_selector_mode(wired: Path) -> None:
    code, out, err = run(wired, "readout", "--port", "sim://demo?silent=2", "--all", "--retries", "0", "--json")
    assert code == 3, err
    doc = json.loads(out)
    failed = [item for item in doc if "error" in item]
    assert len(failed) == 1 and failed[0]["meter"]["primary_address"] == 2
    check(failed[0], "failed")
    assert failed[0]["error"]["kind"] == "timeout" and "no answer" in failed[0]["error"]["message"]
    for item in doc:
        if "error" not in item:
            check(item, "reading")

    code, out, err = run(wired, "readout", "--port", "sim://demo?silent=2", "--address", "2", "--retries", "0",
                         "--json")
    assert code == 1 and err.count("\n") == 1 and "no answer" in err
    (item,) = json.loads(out)
    check(item, "failed")
    assert (item["meter"]["primary_address"], item["meter"]["address_mode"]) == (2, "primary")

    code, out, err = run(wired, "readout", "--port", "sim://demo", "--id", "99999999", "--retries", "0",
                         "--json")
    assert code == 1, err
    (item,) = json.loads(out)
    check(item, "failed")
    assert item["meter"]["address_mode"] == "secondary"


def test_listen_lines_and_heard_meters(tmp_path: Path) -> None:
    assert run(tmp_path, "init")[0] == 0
    code, out, err = run(tmp_path, "listen", "--port", "sim://air?count=14", "--dongle", "im871a", "--duration", "5",
                         "--json")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines
    for line in lines:
        check(line, "listen_line")
        assert list(line)[:2] == ["meter", "time"] and line["meter"]["interface"] == "wM-Bus"
    undecrypted = [line for line in lines if "error" in line]
    assert undecrypted and all(line["error"]["kind"] for line in undecrypted)  # encrypted, no key
    code, out, err = run(tmp_path, "meters", "heard", "--json")
    assert code == 0, err
    heard = json.loads(out)
    assert heard
    for entry in heard:
        check(entry, "heard_entry")
        assert list(entry)[:8] == METER_KEYS
    # the meter object of a heard meter is the one its telegrams carried
    first = {line["meter"]["device_id"]: line["meter"] for line in lines}
    assert all({k: e[k] for k in METER_KEYS} == first[e["device_id"]] for e in heard)


def test_dlde_readout(tmp_path: Path) -> None:
    from tests.unit.test_dlde import dlde_root

    root = dlde_root(tmp_path)
    code, out, err = run(root, "readout", "--protocol", "dlde", "--port", "sim://dlde?address=62807889",
                         "--address", "62807889", "--json")
    assert code == 0, err
    (item,) = json.loads(out)
    check(item, "dlde_reading")
    assert item["meter"]["medium"] == {"code": 2, "text": "Electricity"} and item["meter"]["interface"] == "DLDE"


def test_sml_listen_lines(tmp_path: Path) -> None:
    assert run(tmp_path, "init")[0] == 0
    code, out, err = run(tmp_path, "listen", "--protocol", "sml", "--port", "sim://sml?count=2", "--count", "2",
                         "--json")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2
    for line in lines:
        check(line, "sml_line")
        assert list(line)[:2] == ["meter", "time"]
