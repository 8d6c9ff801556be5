"""The XML pull server (XMLTOTCP_ENABLE=1, XMLTOTCP_IP empty; issue 13, item 8) with real sockets and TLS.

It listens only on XMLTOTCP_LISTENIP (default 127.0.0.1), says where, logs every client, and with
XMLTOTCP_LISTENTLS=1 hands reports only to a head-end with a client certificate from TLS_ROOT_CERT_FILE's CA.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest

from sonocli.config.chipini import ChipIni
from sonocli.config.layout import init_root
from sonocli.engine.core import Engine
from sonocli.engine.tcpserver import CHANNEL, TcpServer
from sonocli.errors import ConfigError
from sonocli.store.outbox import NewReport
from tests.integration.push.conftest import Pki, _make_pki

XML = b'<?xml version="1.0"?><MUC><ID>1</ID></MUC>\n'


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _make_pki(tmp_path_factory.mktemp("pull-pki"))


def _engine(root: Path, **settings: str) -> Engine:
    layout = init_root(root)
    chip = ChipIni.load(layout.chip_ini)
    for key, value in {"XMLTOTCP_ENABLE": "1", "XMLTOTCP_IP": "", **settings}.items():
        chip.set(key, value)
    chip.save(layout.chip_ini)
    engine = Engine(root)
    engine.outbox.enqueue(CHANNEL, [NewReport(XML, "application/xml")], name=lambda created, index: f"r{index}")
    return engine




def _fetch(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_listens_only_on_the_configured_address(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = _engine(tmp_path)
    try:
        with caplog.at_level(logging.INFO, logger="sonocli.tcpserver"):
            server = TcpServer(engine, port=0, poll=0.1)
        try:
            assert server._listener.getsockname()[0] == "127.0.0.1"  # the default: not every interface
            assert f"listening on 127.0.0.1:{server.port}, plain TCP, no authentication" in caplog.text
            got: list[int | None] = []
            thread = threading.Thread(target=lambda: got.append(server.serve_one()))
            thread.start()
            with caplog.at_level(logging.INFO, logger="sonocli.tcpserver"), \
                    socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                local = sock.getsockname()
                assert _fetch(sock) == XML
                thread.join(5)
            assert got == [1]
            assert f"client {local[0]}:{local[1]} connected" in caplog.text
            assert engine.outbox.items(channel=CHANNEL) == []
        finally:
            server.close()
    finally:
        engine.close()


def test_tls_with_client_certificates(tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    pki.install(tmp_path / "app", ftp=False)
    import shutil

    shutil.copy(pki.server_cert, tmp_path / "app" / "srvcert.pem")
    shutil.copy(pki.server_key, tmp_path / "app" / "srvkey.pem")
    engine = _engine(tmp_path, XMLTOTCP_LISTENTLS="1", TLS_CLI_CERT_FILE="/app/srvcert.pem",
                     TLS_CLI_KEY_FILE="/app/srvkey.pem")
    try:
        server = TcpServer(engine, port=0, poll=0.1)
        try:
            assert "TLS with client certificates" in server.describe()
            # without a client certificate: refused, the report stays pending, the client is logged
            anonymous = ssl.create_default_context(cafile=str(pki.ca))
            thread = threading.Thread(target=server.serve_one)
            thread.start()
            with caplog.at_level(logging.INFO, logger="sonocli.tcpserver"):
                with pytest.raises((ssl.SSLError, OSError)):
                    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
                            anonymous.wrap_socket(raw, server_hostname="localhost") as sock:
                        assert _fetch(sock) == b""
                        raise OSError("nothing served")
                thread.join(5)
            assert "refused: TLS failed" in caplog.text
            assert len(engine.outbox.items(channel=CHANNEL)) == 1
            # with one: served
            client = ssl.create_default_context(cafile=str(pki.ca))
            client.load_cert_chain(str(pki.client_cert), str(pki.client_key))
            thread = threading.Thread(target=server.serve_one)
            thread.start()
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
                    client.wrap_socket(raw, server_hostname="localhost") as sock:
                assert _fetch(sock) == XML
            thread.join(5)
            assert engine.outbox.items(channel=CHANNEL) == []
        finally:
            server.close()
    finally:
        engine.close()


def test_tls_without_its_files_is_a_config_error(tmp_path: Path) -> None:
    engine = _engine(tmp_path, XMLTOTCP_LISTENTLS="1")
    try:
        with pytest.raises(ConfigError, match="TLS_ROOT_CERT_FILE"):
            TcpServer(engine, port=0)
    finally:
        engine.close()


def test_listen_address_is_a_documented_parameter() -> None:
    from sonocli.config.chipini_schema import param

    listen: Any = param("XMLTOTCP_LISTENIP")
    assert listen.default == "127.0.0.1" and listen.help.startswith("sonocli:")
