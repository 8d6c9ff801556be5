"""MUC_LOG levels (Table 25: DEFAULT, NONE, ERRORONLY, ALL) and the syslog copy of serve-daemon's log."""

from __future__ import annotations

import io
import logging
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sonocli.cli.daemon import configure_daemon_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_daemon_logging changes the process-wide "sonocli" logger: put it back for other tests."""
    names = ("sonocli", "sonocli.receiver")
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers), logging.getLogger(n).propagate)
             for n in names}
    yield
    for name, (level, handlers, propagate) in saved.items():
        logger = logging.getLogger(name)
        for h in list(logger.handlers):
            logger.removeHandler(h)
            h.close()
        for h in handlers:
            logger.addHandler(h)
        logger.setLevel(level)
        logger.propagate = propagate


def emit_all(monkeypatch: pytest.MonkeyPatch, level: str, verbosity: int = 0) -> str:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    configure_daemon_logging(level, False, verbosity)
    log = logging.getLogger("sonocli.daemon")
    log.debug("d-line")
    log.info("i-line")
    log.error("e-line")
    log.critical("c-line")
    return err.getvalue()


@pytest.mark.parametrize(
    ("level", "shown", "hidden"),
    [
        ("DEFAULT", ["i-line", "e-line", "c-line"], ["d-line"]),
        ("ALL", ["d-line", "i-line", "e-line"], []),
        ("ERRORONLY", ["e-line", "c-line"], ["d-line", "i-line"]),
        ("NONE", [], ["d-line", "i-line", "e-line", "c-line"]),
        ("errorOnly", ["e-line"], ["i-line"]),
    ],
)
def test_muc_log_levels(monkeypatch: pytest.MonkeyPatch, restore_logging: None, level: str,
                        shown: list[str], hidden: list[str]) -> None:
    text = emit_all(monkeypatch, level)
    for line in shown:
        assert line in text
    for line in hidden:
        assert line not in text


def test_verbose_forces_all(monkeypatch: pytest.MonkeyPatch, restore_logging: None) -> None:
    assert "d-line" in emit_all(monkeypatch, "NONE", verbosity=1)


def test_syslog_copy_goes_to_a_real_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          restore_logging: None) -> None:
    path = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(5)
        monkeypatch.setattr(sys, "stderr", io.StringIO())
        configure_daemon_logging("ERRORONLY", True, 0, syslog_address=path)
        logging.getLogger("sonocli.daemon").info("not sent")
        logging.getLogger("sonocli.daemon").error("upload failed: ftp: connect: refused")
        data = server.recv(4096).decode()
    # <27> = facility daemon (3) * 8 + severity error (3)
    assert data.startswith("<27>sonocli[") and "ERROR sonocli.daemon: upload failed: ftp: connect: refused" in data
    assert "not sent" not in data
