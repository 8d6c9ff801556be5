"""No secret in any output, log or --debug trace (issue 13, item 5): a whole daemon run with secrets set.

FTP_PASS, SMTP_PASSWORD, MQTT_PASS and a meter's AES key are configured; the daemon (``--once``, ``-v``
and ``--debug``), ``push --test``, ``readout``, ``config show/get/check`` and ``meters list`` run for real
(sim://demo, delivery to closed ports). Every byte they print and every file they leave in ext/ is grepped
for each secret in every spelling. Then invalid secrets: a too-long password is never echoed, and a 50 MB
one makes one short line, quickly.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sonocli.config.chipini import ChipIni
from sonocli.config.layout import init_root

FTP_PASS = "Ftp-S3cret-0815"
SMTP_PASSWORD = "Smtp-S3cret-4711"
MQTT_PASS = "Mqtt-S3cret-1234"
AES = "5EC12E7AB00D4C1F9A3B6D8E2F405A71"
SERIAL = "66660205"  # a sim://demo meter


def _spellings() -> list[str]:
    spaced = " ".join(f"0x{AES[i:i + 2]}" for i in range(0, 32, 2))
    return [FTP_PASS, SMTP_PASSWORD, MQTT_PASS, AES, AES.lower(), spaced, spaced.lower(), AES[:16], AES[16:]]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sonocli", "--root", str(root), *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("secrets-root")
    init_root(root)
    scan = _run(root, "scan", "--port", "sim://demo", "--save")
    assert scan.returncode == 0, scan.stderr
    keys = root / "keys.csv"
    keys.write_text(f"{SERIAL},{AES}\n")
    assert _run(root, "keys", "import", str(keys)).returncode == 0
    keys.unlink()
    chip = ChipIni.load(root / "app" / "chip.ini")
    settings = {
        "MBUS_PORT": "sim://demo", "WMBUS_ENABLE": "0", "MUC_CSVLOG_ENABLE": "1", "SHOW_KEYS": "0",
        "FTP_ENABLE": "1", "FTP_IP": "127.0.0.1", "FTP_PORT": str(_closed_port()), "FTP_USER": "muc",
        "FTP_PASS": FTP_PASS, "FTP_TIMEOUTSCALE": "1",
        "SMTP_ENABLE": "1", "SMTP_IP": f"127.0.0.1:{_closed_port()}", "SMTP_USER": "muc",
        "SMTP_PASSWORD": SMTP_PASSWORD, "SMTP_FROMADDRESS": "muc@example.org", "SMTP_TOADDRESS": "he@example.org",
        "MQTT_PASS": MQTT_PASS,
    }
    for key, value in settings.items():
        chip.set(key, value)
    chip.save(root / "app" / "chip.ini")
    return root


def _assert_clean(text: str, what: str) -> None:
    for secret in _spellings():
        assert secret not in text, f"{what} shows the secret {secret[:4]}...: {text[:2000]}"


def test_no_secret_in_any_output_or_file(root: Path) -> None:
    runs = [
        ("--debug", "-vv", "serve-daemon", "--once"),
        ("--debug", "-vv", "push", "--test"),
        ("--debug", "-vv", "readout"),
        ("--debug", "config", "show"),
        ("--debug", "config", "show", "--json"),
        ("config", "get", "FTP_PASS"),
        ("config", "get", "SMTP_PASSWORD", "--json"),
        ("config", "get", "MQTT_PASS"),
        ("config", "check"),
        ("--debug", "meters", "list"),
        ("--debug", "meters", "list", "--json"),
        ("config", "set", "SMTP_PASSWORD", SMTP_PASSWORD),
    ]
    for args in runs:
        run = _run(root, *args)
        _assert_clean(run.stdout + run.stderr, " ".join(args))
    assert _run(root, "config", "get", "FTP_PASS").stdout.strip() == "********"
    assert _run(root, "config", "get", "--secrets", "FTP_PASS").stdout.strip() == FTP_PASS
    for path in (root / "ext").rglob("*"):
        if path.is_file():
            _assert_clean(path.read_bytes().decode("latin-1"), str(path))
    for path in (root / "app").iterdir():
        if path.is_file() and path.name not in ("chip.ini", "device_handle.cfg"):
            _assert_clean(path.read_bytes().decode("latin-1"), str(path))


def test_secret_files_are_owner_only(root: Path) -> None:
    for name in ("chip.ini", "device_handle.cfg"):
        assert (root / "app" / name).stat().st_mode & 0o777 == 0o600, name


def test_an_invalid_password_is_never_echoed(root: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(root, bad)
    chip = bad / "app" / "chip.ini"
    wrong = "Wrong-S3cret-" + "x" * 60  # longer than FTP_PASS's 40 characters: invalid
    chip.write_text(chip.read_text().replace(f"FTP_PASS={FTP_PASS}", f"FTP_PASS={wrong}"))
    for args in (("--debug", "config", "check"), ("--debug", "config", "show"), ("--debug", "readout"),
                 ("--debug", "-v", "serve-daemon", "--once"), ("config", "get", "FTP_PASS")):
        run = _run(bad, *args)
        assert run.returncode == 2, (args, run.stderr)
        assert "FTP_PASS=<hidden, 73 characters>" in run.stderr, (args, run.stderr)
        assert "Wrong-S3cret" not in run.stdout + run.stderr, args
        _assert_clean(run.stdout + run.stderr, " ".join(args))


def test_a_50_mb_password_makes_one_short_line_quickly(root: Path, tmp_path: Path) -> None:
    big = tmp_path / "big"
    shutil.copytree(root, big)
    chip = big / "app" / "chip.ini"
    with chip.open("a") as handle:
        handle.write("FTP_PASS=" + "S" * 50_000_000 + "\n")
    for args in (("config", "check"), ("config", "show"), ("--debug", "serve-daemon", "--once")):
        started = time.monotonic()
        run = _run(big, *args, timeout=60)
        assert time.monotonic() - started < 20, args
        assert run.returncode == 2, (args, run.stderr)
        assert len(run.stdout) + len(run.stderr) < 20_000, args
        assert "S" * 100 not in run.stdout + run.stderr, args
