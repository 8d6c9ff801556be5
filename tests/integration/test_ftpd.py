# ruff: noqa: F811 - the fixtures are imported from web_helpers and push/conftest by name
"""The FTP server of the logs (FTPD_ENABLE) with a real FTP client (ftplib).

The ftp user lists and downloads today's CSV log, and can neither leave ext/log nor write; admin logs in
over FTPS only and sees the whole root.
"""

from __future__ import annotations

import ftplib
import io
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sonocli.engine.core import Engine
from tests.integration.push.conftest import pki  # noqa: F401 (fixture)
from tests.integration.web_helpers import _prepared, root, sono  # noqa: F401 (fixtures)

pytest.importorskip("pyftpdlib")


@pytest.fixture()
def logged_root(root: Path, pki: Any) -> Path:
    sono(root, "config", "set", "MUC_CSVLOG_ENABLE", "1")
    sono(root, "config", "set", "WEB_CERT_FILE", str(pki.server_cert))
    sono(root, "config", "set", "WEB_KEY_FILE", str(pki.server_key))
    sono(root, "readout", "--all")
    assert list((root / "ext" / "log").iterdir()), "the readout wrote no CSV log"
    return root


@pytest.fixture()
def ftpd(logged_root: Path) -> Iterator[Any]:
    from sonocli.web.ftpd import start_ftpd

    server = start_ftpd(Engine(logged_root), host="127.0.0.1", port=0)
    try:
        yield server
    finally:
        server.stop()


def _plain(port: int) -> ftplib.FTP:
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=10)
    return ftp


def test_the_ftp_user_lists_and_downloads_todays_csv_log(ftpd: Any, logged_root: Path) -> None:
    from datetime import UTC, datetime

    logs = logged_root / "ext" / "log"
    today = next(logs.rglob("*.csv"))  # ext/log/YYYY/MM/Meter_YYYYMMDD.csv
    assert datetime.now(UTC).strftime("%Y%m%d") in today.name
    ftp = _plain(ftpd.port)
    ftp.login("ftp", "ftp")
    assert ftp.pwd() == "/"
    year, month = today.relative_to(logs).parts[:2]
    assert year in ftp.nlst()
    ftp.cwd(f"{year}/{month}")
    assert today.name in [n.rsplit("/", 1)[-1] for n in ftp.nlst()]
    data = io.BytesIO()
    ftp.retrbinary(f"RETR {today.name}", data.write)
    assert data.getvalue() == today.read_bytes()
    ftp.quit()


def test_the_ftp_user_cannot_leave_ext_log_or_write(ftpd: Any, logged_root: Path) -> None:
    ftp = _plain(ftpd.port)
    ftp.login("ftp", "ftp")
    ftp.cwd("..")  # pyftpdlib keeps the user below its home: .. of / is /
    assert ftp.pwd() == "/"
    assert "chip.ini" not in " ".join(ftp.nlst())
    with pytest.raises(ftplib.error_perm):
        ftp.retrbinary("RETR ../../app/chip.ini", io.BytesIO().write)
    with pytest.raises(ftplib.error_perm):
        ftp.storbinary("STOR evil.csv", io.BytesIO(b"x"))
    with pytest.raises(ftplib.error_perm):
        ftp.mkd("sub")
    with pytest.raises(ftplib.error_perm):
        ftp.delete(ftp.nlst()[0])
    ftp.quit()
    assert not (logged_root / "ext" / "log" / "evil.csv").exists()


def test_wrong_passwords_and_users_without_the_ftp_right_are_refused(ftpd: Any) -> None:
    for user, password in (("ftp", "wrong"), ("web", "web"), ("nobody", "x")):
        ftp = _plain(ftpd.port)
        with pytest.raises(ftplib.error_perm, match="530"):
            ftp.login(user, password)
        ftp.close()


def test_admin_over_ftps_only_sees_the_root(ftpd: Any, pki: Any) -> None:
    ftp = _plain(ftpd.port)
    with pytest.raises(ftplib.error_perm, match="530"):
        ftp.login("admin", "admin")  # plain FTP: refused
    ftp.close()
    tls = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=str(pki.ca)))
    tls.connect("127.0.0.1", ftpd.port, timeout=10)
    tls.login("admin", "admin")
    tls.prot_p()
    assert {"app", "ext"} <= set(tls.nlst())
    data = io.BytesIO()
    tls.retrbinary("RETR app/chip.ini", data.write)
    assert b"MUC_CSVLOG_ENABLE=1" in data.getvalue()
    tls.quit()
