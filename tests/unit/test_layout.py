"""The root directory: shape, idempotent creation, and where it is found."""

from __future__ import annotations

from pathlib import Path

import pytest

from sonocli.config.chipini import ChipIni, load_for_root
from sonocli.config.device_handle import load_meter_list
from sonocli.config.layout import RootLayout, default_root, init_root, resolve_root


def test_layout_paths_follow_the_device(tmp_path: Path) -> None:
    layout = RootLayout(tmp_path)
    assert layout.chip_ini == tmp_path / "app" / "chip.ini"
    assert layout.device_handle == tmp_path / "app" / "device_handle.cfg"
    assert layout.log_dir == tmp_path / "ext" / "log"
    assert layout.tmp_dir == tmp_path / "ext" / "tmp"
    assert layout.upd_dir == tmp_path / "ext" / "Upd"
    assert layout.database == tmp_path / "ext" / "sonocli.db"


def test_init_creates_directories_and_default_files(tmp_path: Path) -> None:
    layout = init_root(tmp_path / "root")
    for directory in layout.directories:
        assert directory.is_dir()
    ini = ChipIni.load(layout.chip_ini)
    assert ini.unknown() == []
    assert ini.get("METER_TIME") == 900
    assert ini.is_set("METER_TIME")
    assert not ini.is_set("WATCHDOG_READOUT")  # computed default stays commented out
    assert load_meter_list(layout.device_handle).meters == ()


def test_init_never_overwrites(tmp_path: Path) -> None:
    layout = init_root(tmp_path)
    layout.chip_ini.write_text("[CONFIG]\nMETER_TIME=60\n")
    layout.device_handle.write_bytes(b"<root><version>0x01</version></root>")
    again = init_root(tmp_path)
    assert again.chip_ini.read_text() == "[CONFIG]\nMETER_TIME=60\n"
    assert again.device_handle.read_bytes() == b"<root><version>0x01</version></root>"


def test_resolve_root_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SONOCLI_ROOT", str(tmp_path / "env"))
    assert resolve_root(tmp_path / "opt") == tmp_path / "opt"
    assert resolve_root(None) == tmp_path / "env"
    monkeypatch.delenv("SONOCLI_ROOT")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    expected = Path("/") if Path("/app/chip.ini").is_file() else tmp_path / "xdg" / "sonocli"
    assert resolve_root(None) == expected == default_root()


def test_load_for_root_reads_the_roots_chip_ini(tmp_path: Path) -> None:
    layout = init_root(tmp_path)
    ini = ChipIni.load(layout.chip_ini)
    ini.set("MBUS_PORT", "socket://127.0.0.1:10001")
    ini.save(layout.chip_ini)
    assert load_for_root(tmp_path)["MBUS_PORT"] == "socket://127.0.0.1:10001"
    assert load_for_root(tmp_path / "empty")["MBUS_PORT"] == ""
