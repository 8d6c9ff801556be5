"""One error voice: every mistake is one line ``sonocli: error: … (hint: …)`` on stderr with the documented
exit code (2: usage or bad input), nothing on stdout; real processes, as a shell runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# an encrypted wireless telegram (security mode 5, as tests/cli/test_decode_wireless.py): --key is parsed first
WMBUS_N21 = "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3"


def sonocli(root: Path | None, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    base = [sys.executable, "-m", "sonocli"] + (["--root", str(root)] if root is not None else [])
    environment = {k: v for k, v in os.environ.items() if k != "SONOCLI_ROOT"}
    proc = subprocess.run([*base, *args], capture_output=True, text=True, timeout=60, check=False,
                          env={**environment, **(env or {})})
    return proc.returncode, proc.stdout, proc.stderr


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sonocli: error: ") and "Traceback" not in err
    return lines[0]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    assert sonocli(tmp_path, "init")[0] == 0
    code, _, err = sonocli(tmp_path, "meters", "add", "--interface", "M-Bus", "--serial", "12345678")
    assert code == 0, err
    return tmp_path


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (("readout", "--bogus"), "no such option '--bogus'", "sonocli readout --help"),
        (("readout", "--address", "300"), "invalid value for '--address': 300 is not in the range",
         "sonocli readout --help"),
        (("meters", "edit"), "missing argument", "sonocli meters edit --help"),
        (("meters", "no-such"), "no such command 'no-such'", "sonocli meters --help"),
        (("--bogus", "meters", "list"), "no such option '--bogus'", "sonocli --help"),
        (("no-such-command",), "no such command 'no-such-command'", "sonocli --help"),
        (("scan", "--mode", "sideways"), "invalid value for '--mode'", "sonocli scan --help"),
    ],
)
def test_click_usage_errors_are_one_line_with_a_hint(root: Path, args: tuple[str, ...], message: str,
                                                     hint: str) -> None:
    code, out, err = sonocli(root, *args)
    assert code == 2 and out == ""
    line = one_line(err)
    assert message in line and line.endswith(f"(hint: {hint})"), line
    assert "Usage:" not in err and "Try '" not in err


def test_a_bare_group_still_shows_its_help(root: Path) -> None:
    code, _, err = sonocli(root, "meters")
    assert code == 2 and "Usage: sonocli meters" in err and "sonocli: error" not in err


def test_a_root_that_does_not_exist_is_refused_except_by_init(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    for args in (("meters", "list"), ("config", "show"), ("outbox", "list"), ("readout", "--all")):
        code, out, err = sonocli(missing, *args)
        assert code == 2 and out == "", (args, out)
        line = one_line(err)
        assert f"root directory {missing} does not exist" in line and "sonocli init" in line
    code, out, err = sonocli(None, "meters", "list", env={"SONOCLI_ROOT": str(missing)})
    assert code == 2 and f"root directory {missing} does not exist" in one_line(err)
    assert not missing.exists()  # refused, not created on the way
    code, out, err = sonocli(missing, "init")
    assert code == 0 and missing.is_dir(), err
    code, out, err = sonocli(missing, "meters", "list")
    assert code == 0 and "0 meter(s)" in out


def test_a_file_as_root_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "file"
    plain.write_text("x")
    code, _, err = sonocli(None, "meters", "list", env={"SONOCLI_ROOT": str(plain)})
    assert code == 2 and f"'{plain}' is a file" in one_line(err)  # click's directory check, in sonocli's voice


@pytest.mark.parametrize("key", ["12345", "0x01 0x02", "zz" * 16])
def test_one_key_parser_for_every_key_option(root: Path, key: str) -> None:
    keys = root / "keys.csv"
    keys.write_text(f"12345678,{key}\n")
    lines = []
    for args in (
        ("meters", "edit", "1", "--key", key),
        ("meters", "add", "--interface", "M-Bus", "--serial", "87654321", "--key", key),
        ("decode", "--key", key, WMBUS_N21),
    ):
        code, out, err = sonocli(root, *args)
        assert code == 2 and out == "", (args, err)
        lines.append(one_line(err))
    code, _, err = sonocli(root, "keys", "import", str(keys))
    assert code == 2 and "keys.csv:1:" in err
    lines.append(err.strip().splitlines()[0])
    for line in lines:
        assert "fromhex" not in line and "non-hexadecimal" not in line
        assert "32 hex digits" in line or "not hexadecimal" in line, line
    # the three --key options say it in the same words (keys import names the line and the meter instead)
    assert len({line.split("--key", 1)[1] for line in lines[:3]}) == 1
    assert "(hint: a key is 16 bytes: 32 hex digits" in lines[0]


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (("readout", "--port", "tcp://10.0.0.1:10001", "--address", "1", "--no-store"), None),
        (("scan", "--port", "foo://x"), None),
        (("listen", "--port", "tcp://10.0.0.1:10001", "--dongle", "im871a", "--no-store"), "file:PATH"),
    ],
)
def test_an_unknown_url_scheme_lists_the_supported_ones(root: Path, args: tuple[str, ...],
                                                        extra: str | None) -> None:
    code, out, err = sonocli(root, *args)
    assert code == 2 and out == ""
    line = one_line(err)
    assert "unknown URL scheme" in line
    for scheme in ("socket://", "rfc2217://", "sim://", "a device path"):
        assert scheme in line
    assert extra is None or extra in line


@pytest.mark.parametrize(
    ("frame", "shape"),
    [
        ("68", "a long frame is 68 L L 68 C A CI data… CS 16"),
        ("68 05 05 68 08", "a long frame is 68 L L 68 C A CI data… CS 16"),
        ("10 5B", "a short frame is 10 C A CS 16"),
    ],
)
def test_a_cut_short_frame_says_what_a_frame_looks_like(root: Path, frame: str, shape: str) -> None:
    code, out, err = sonocli(root, "decode", *frame.split())
    assert code == 2 and out == ""
    line = one_line(err)
    assert "frame incomplete" in line and shape in line
    example = line.rsplit("e.g. ", 1)[1].rstrip(")")
    code, out, err = sonocli(root, "decode", *example.split())  # the example given is a valid frame
    assert code == 0, err
