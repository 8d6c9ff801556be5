"""SML and DLDE meters behind real ptys: ``sonocli simulate --pty sim://sml`` / ``sim://dlde?mode=B`` served by a
real process, ``listen --protocol sml`` and ``readout --protocol dlde`` against them (modes A, B and C, slow,
wrong BCC), a bad-CRC file on a pty one clear stderr line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sonocli.codecs import sml
from sonocli.engine.dlde import DldeSettings, open_dlde_link, read_meter
from sonocli.errors import ProtocolError
from sonocli.sim.dlde import DldePtyServer
from sonocli.sim.dlde import peer_from_params as dlde_peer
from sonocli.sim.sml import peer_from_params as sml_peer

EMH = bytes.fromhex((Path(__file__).parent.parent / "data" / "sml" / "EMH_eHZ-GW8E2A500AK2.hex").read_text().strip())


def sonocli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sonocli", *args], capture_output=True, text=True, timeout=timeout)


def test_simulate_pty_serves_sml_files_byte_for_byte() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "sonocli", "simulate", "--pty", "sim://sml?interval=0.3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/pts/"), path
        import serial

        with serial.Serial(path, 9600, timeout=0.5) as port:
            stream = sml.SmlStream()
            got: list[sml.SmlFile] = []
            for _ in range(40):
                got += [f for f in stream.feed(port.read(512)) if isinstance(f, sml.SmlFile)]
                if len(got) >= 2:
                    break
        assert len(got) >= 2 and all(f.raw in EMH for f in got)  # the recorded files, unchanged
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert proc.returncode == 0


def test_listen_protocol_sml_on_a_pty(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert sonocli("--root", str(root), "init").returncode == 0
    server = DldePtyServer(sml_peer({"interval": "0.2"})).start()  # type: ignore[arg-type]
    try:
        out = sonocli("--root", str(root), "listen", "--protocol", "sml", "--port", server.path, "--count", "2",
                      "--json")
        assert out.returncode == 0, out.stderr
        lines = [json.loads(line) for line in out.stdout.splitlines()]
        assert len(lines) == 2
        assert {r["obis"]: r["value"] for r in lines[0]["records"]}["1-0:1.8.2*255"] == 2012.4
    finally:
        server.stop()
    server = DldePtyServer(sml_peer({"interval": "0.2", "crc": "bad"})).start()  # type: ignore[arg-type]
    try:
        out = sonocli("--root", str(root), "listen", "--protocol", "sml", "--port", server.path, "--duration", "1")
        assert out.returncode == 1
        bad = [line for line in out.stderr.splitlines() if "bad SML file" in line]
        assert bad and all("CRC" in line and "computed" in line for line in bad)
    finally:
        server.stop()


@pytest.mark.parametrize(("mode", "baud", "rate"), [("A", "300", 300), ("B", "4800", 4800), ("C", "9600", 9600)])
def test_dlde_modes_on_a_pty(mode: str, baud: str, rate: int) -> None:
    server = DldePtyServer(dlde_peer({"mode": mode, "baud": baud})).start()
    try:
        settings = DldeSettings()
        with open_dlde_link(server.path, settings) as link:
            ident, message, got = read_meter(link, "", settings)
        assert ident.mode == mode and got == rate and len(message.data_sets) == 4
    finally:
        server.stop()


def test_dlde_slow_meter_and_wrong_bcc_on_a_pty() -> None:
    server = DldePtyServer(dlde_peer({"slow": "0.5"})).start()
    try:
        settings = DldeSettings(timeout=2.0)
        with open_dlde_link(server.path, settings) as link:
            ident, _message, _rate = read_meter(link, "", settings)
        assert ident.ident == "MT174-0002"
    finally:
        server.stop()
    proc = subprocess.Popen([sys.executable, "-m", "sonocli", "simulate", "--pty", "sim://dlde?bcc=bad"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        settings = DldeSettings()
        with open_dlde_link(path, settings) as link, pytest.raises(ProtocolError, match="BCC"):
            read_meter(link, "", settings)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def test_simulate_rejects_bad_sim_parameters() -> None:
    out = sonocli("simulate", "sim://sml?crc=maybe")
    assert out.returncode == 2 and "crc='maybe'" in out.stderr
