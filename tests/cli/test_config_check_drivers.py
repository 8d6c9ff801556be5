"""``config check`` and driver files: the root's app/drivers/*.toml are checked with chip.ini; a driver file
given alone is checked as a driver; any mistake in one is a line naming the file and the key, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sonocli.cli.root import cli

GOOD = ('name = "mywater"\n[[match]]\nmanufacturer = "ABC"\ndevice_type = 0x07\n'
        '[[field]]\nname = "total_m3"\ndif_vif = "0413"\n')


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    assert CliRunner().invoke(cli, ["--root", str(root), "init"]).exit_code == 0
    (root / "app" / "drivers").mkdir()
    return root


def test_the_roots_drivers_are_checked_with_chip_ini(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "app" / "drivers" / "good.toml").write_text(GOOD)
    runner = CliRunner()
    result = runner.invoke(cli, ["--root", str(root), "config", "check"])
    assert result.exit_code == 0, result.output
    assert f"{root / 'app' / 'drivers' / 'good.toml'}: ok (driver)" in result.stdout
    (root / "app" / "drivers" / "bad.toml").write_text('name = "x"\n[match]\nmanufacturer = "ABC"\n')
    result = runner.invoke(cli, ["--root", str(root), "config", "check"])
    assert result.exit_code == 2
    assert "bad.toml: [match] must be written [[match]]" in result.stderr
    result = runner.invoke(cli, ["--root", str(root), "config", "check", "--json"])
    out = json.loads(result.stdout)
    assert out["ok"] is True and [d["ok"] for d in out["drivers"]] == [False, True]
    assert "[[match]]" in out["drivers"][0]["errors"][0]["message"]


@pytest.mark.parametrize(("text", "problem"), [
    ('name = "x"\n[match]\nmanufacturer = "ABC"\n', "[match] must be written [[match]]"),
    ('name = "x"\nmatch = 5\n', "'match' must be [[match]] tables"),
    ('name = "x"\n[[match]]\nmanufacturer = "ABC"\nci = "A0"\n[[field]]\nname = "a"\ndif_vif = "0413"\n',
     "match[0].ci: an integer or a list"),
    ('name = "x"\n[[match]]\nmanufacturer = "ABC"\n[field]\nname = "a"\n', "[field] must be written [[field]]"),
    ("name = \n", "not valid TOML"),
])
def test_a_driver_file_given_alone_names_its_mistake(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "d.toml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["--root", str(_root(tmp_path)), "config", "check", str(path)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and problem in lines[0] and str(path) in lines[0], lines
