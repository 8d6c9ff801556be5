"""`sonocli decode` with drivers, built-in and learnt compact formats, --format, --driver and --explain;
`config check` on a declarative driver file."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sonocli.cli.root import cli

IZAR = "1944304C72242421D401A2013D4013DD8B46A4999C1293E582CC"  # wmbusmeters izar test: total 3.488 m³
# EN 13757-3:2018 G.5.2: a compact frame (signature 3B31) of a meter with M 0x0000, ID 00000000
COMPACT = "14440000000000000000" + "79313B42A6D2042E163423"
HEADERS = "02020215022A"  # the record headers of format 3B31 (the standard's format frame)


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_driver_values_and_named_fields_in_json() -> None:
    code, out, err = _run("decode", IZAR, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["driver"] == "izar" and data["fields"]["total_m3"] == 3.488
    assert data["records"][0]["description"] == "Volume" and data["records"][0]["value"] == 3.488


def test_explain_shows_the_bytes() -> None:
    code, out, err = _run("decode", IZAR, "--explain")
    assert code == 0, err
    assert "CI-field 0xA2" in out and "M-field: manufacturer SAP" in out
    assert "izar+16" in out and "total 3488 l" in out
    code, out, err = _run("decode", IZAR, "--explain", "--json")
    first = json.loads(out)["explain"][0]
    assert code == 0 and first == {"offset": 0, "bytes": "19", "meaning": "L-field: 25 bytes follow"}


def test_format_for_one_compact_frame() -> None:
    code, _, err = _run("decode", COMPACT)
    assert code == 2 and "no full frame with this format seen yet" in err and "--format" in err
    code, out, err = _run("decode", COMPACT, "--format", HEADERS, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["compact_format"] == "given" and len(data["records"]) == 3
    code, _, err = _run("decode", COMPACT, "--format", "0202")
    assert code == 2 and "the compact frame's is 3B31" in err


def test_later_decode_knows_a_format_the_daemon_learnt(tmp_path: Path) -> None:
    from sonocli.config.layout import RootLayout, init_root
    from sonocli.store.formats import FormatStore

    init_root(tmp_path)
    FormatStore(RootLayout(tmp_path).database).save((0, 0, 0, 0x3B31), bytes.fromhex(HEADERS))
    code, out, err = _run("--root", str(tmp_path), "decode", COMPACT, "--json")
    assert code == 0, err
    assert json.loads(out)["compact_format"] == "learnt"


def test_driver_by_name_and_bad_use() -> None:
    code, _, err = _run("decode", IZAR, "--driver", "nosuch")
    assert code == 2 and "no driver called 'nosuch'" in err
    code, out, err = _run("decode", IZAR, "--driver", "zenner0b", "--json")  # wrong driver: one clear line
    assert code == 0 and "driver zenner0b" in err and json.loads(out)["records"][-1]["description"]
    code, _, err = _run("decode", "E5", "--explain")
    assert code == 2 and "apply to wireless telegrams" in err


def test_config_check_a_driver_file(tmp_path: Path) -> None:
    good = tmp_path / "mine.toml"
    good.write_text('name = "mine"\n[[match]]\nmanufacturer = "ABC"\n[[field]]\nname = "total_m3"\ndif_vif = "0413"\n')
    code, _, err = _run("--root", str(tmp_path), "config", "check", str(good))
    assert code == 0, err
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[[match]]\nmanufacturer = "ABCD"\n')
    code, _, err = _run("--root", str(tmp_path), "config", "check", str(bad))
    assert code == 2 and "match[0].manufacturer" in err
