"""DLDE over a real pseudo-terminal against sonocli.sim.dlde: the mode C baud switch byte by byte (the sim
reads the speed the client sets with termios), the BCC, multi-drop addresses, and the readout command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sonocli.engine.dlde import DldeSettings, open_dlde_link, read_meter
from sonocli.errors import ProtocolError
from sonocli.sim.dlde import DldePtyServer, peer_from_params

DATA = Path(__file__).parent.parent / "data" / "dlde" / "iskra_mt174_modec.bin"


def serve(**params: str) -> DldePtyServer:
    return DldePtyServer(peer_from_params(params)).start()


def test_mode_c_baud_switch_byte_by_byte_on_a_pty() -> None:
    server = serve()
    try:
        settings = DldeSettings()
        with open_dlde_link(server.path, settings) as link:
            ident, message, rate = read_meter(link, "", settings)
        assert ident.text == "/ISk5MT174-0002" and rate == 9600 and len(message.data_sets) == 4
        assert message.raw == DATA.read_bytes()[17:]  # the real data message, BCC 0x19, byte for byte
        heard = [(d, b, x) for _t, d, b, x in server.bus.log]
        rx = b"".join(x for d, b, x in heard if d == "rx")
        assert rx == b"/?!\r\n\x06050\r\n"
        # every byte the client sent went out at 300 baud; the meter's identification at 300, its data at 9600
        assert {b for d, b, _x in heard if d == "rx"} == {300}
        assert [(d, b) for d, b, _x in heard if d == "tx"] == [("tx", 300), ("tx", 9600)]
    finally:
        server.stop()


def test_wrong_bcc_and_multi_drop_on_a_pty() -> None:
    server = serve(bcc="bad")
    try:
        settings = DldeSettings()
        with open_dlde_link(server.path, settings) as link, pytest.raises(ProtocolError, match="BCC"):
            read_meter(link, "", settings)
    finally:
        server.stop()
    server = serve(address="11111111,62807889")
    try:
        settings = DldeSettings()
        with open_dlde_link(server.path, settings) as link:
            for address in ("62807889", "11111111"):  # one after the other on the same line, same open port
                ident, _message, rate = read_meter(link, address, settings)
                assert ident.ident == "MT174-0002" and rate == 9600
        signs = [x for _t, d, _b, x in server.bus.log if d == "rx" and x.startswith(b"/?")]
        assert signs == [b"/?62807889!\r\n", b"/?11111111!\r\n"]
    finally:
        server.stop()


def test_readout_command_on_a_pty(tmp_path: Path) -> None:
    server = serve()
    try:
        root = tmp_path / "root"
        subprocess.run([sys.executable, "-m", "sonocli", "--root", str(root), "init"], check=True,
                       stdout=subprocess.DEVNULL)
        out = subprocess.run([sys.executable, "-m", "sonocli", "--root", str(root), "readout", "--protocol", "dlde",
                              "--port", server.path, "--json"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert [r["obis"] for r in data[0]["records"]][2:] == ["1-0:1.8.0*255", "1-0:2.8.0*255"]
    finally:
        server.stop()
