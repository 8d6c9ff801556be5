"""``listen`` over many new listed meters: every meter's value entries are learned and saved (held and
written together, not one whole-list rewrite per meter), and the values looked at with ``--no-store`` reach
``meters show``. A CRC-less hex-line file is read whole, each line once."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from click.testing import CliRunner

from sonocli.cli.root import cli
from sonocli.engine.core import Engine
from sonocli.model.values import Interface, Meter

METERS = 60


def telegram(meter_id: int, acc: int, volume: int) -> bytes:
    """A plain T1 water telegram of SON meter ``meter_id`` (version 3Ch), CRC-less: volume BCD and a date."""
    bcd = bytes.fromhex(f"{meter_id:08d}")[::-1]
    address = bytes.fromhex("EE4D") + bcd + bytes((0x3C, 0x07))
    records = b"\x0c\x13" + bytes.fromhex(f"{volume:08d}")[::-1] + b"\x42\x6c" + bytes.fromhex("FE04")
    payload = b"\x44" + address + bytes((0x7A, acc, 0x00, 0x00, 0x00)) + records
    return bytes((len(payload),)) + payload


def test_listen_learns_every_new_meter_and_keeps_what_it_saw(tmp_path: Path) -> None:
    root = tmp_path / "root"
    runner = CliRunner()
    assert runner.invoke(cli, ["--root", str(root), "init"]).exit_code == 0
    meters = tuple(Meter(Interface.WMBUS, serial=f"{20_000_000 + n:08d}", manufacturer="SON", version=0x3C,
                         medium=7, active=True) for n in range(METERS))
    engine = Engine(root)
    try:
        engine.update_meters(lambda ml: (dataclasses.replace(ml, meters=meters), None))
    finally:
        engine.close()
    lines = [telegram(20_000_000 + n % METERS, n & 0xFF, 1000 + n).hex().upper() for n in range(3 * METERS)]
    (tmp_path / "t.hex").write_text("\n".join(lines) + "\n")
    result = runner.invoke(cli, ["--root", str(root), "listen", "--port", f"file:{tmp_path / 't.hex'}",
                                 "--dongle", "hex", "--no-store", "--json"])
    assert result.exit_code == 0, result.output
    heard = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(heard) == 3 * METERS  # every line once: none lost, none read twice
    assert all(item["records"] and "error" not in item for item in heard)
    engine = Engine(root)
    try:
        listed = engine.meter_list().meters
        assert all(len(m.values) == 2 for m in listed), [len(m.values) for m in listed]
        assert not engine.store.latest_readings()  # --no-store: nothing stored ...
    finally:
        engine.close()
    shown = runner.invoke(cli, ["--root", str(root), "meters", "show", str(METERS), "--json"])
    assert shown.exit_code == 0, shown.output
    values = json.loads(shown.stdout)["values"]
    assert values[0]["latest"] == "1.179"  # ... but the last values looked at are shown (1179 x 1e-3 m3)
    assert json.loads(shown.stdout)["values_of"]
