"""Telegrams and frames from wmbusmeters' shell tests (tests/*.sh and the simulation files they read).

tests/data/realworld/wmbusmeters_sh.json (provenance in wmbusmeters_sh.md next to it) adds what the scripts
feed wmbusmeters and no other data file holds: a radio converter with ELL, AFL and long TPL header, a
Kamstrup AES-CTR full and compact frame with their key, frame format B with its CRCs, format A frames with
their CRCs, wired frames, and the scripts' bad input. Values are the ones the scripts compare against.

Bad input (``broken``) must never crash or raise anything but a ``DecodeError``: a case with
``expect_error`` must be rejected with that message; one with ``expect_warning`` must decode with a
warning holding that text; any other broken case may do either, but must not pass silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from realworld_corpus import assert_link_header, assert_stated, assert_wired_header, decode_keyed, param

from sonocli.cli.decode import parse_hex
from sonocli.codecs.mbus_app import decode_wired
from sonocli.codecs.wmbus import FormatCache
from sonocli.errors import DecodeError

DATA = Path(__file__).parents[1] / "data" / "realworld" / "wmbusmeters_sh.json"
CASES: list[dict[str, Any]] = json.loads(DATA.read_text(encoding="utf-8"))
WIRELESS = [c for c in CASES if c["kind"] == "wmbus"]
WIRED = [c for c in CASES if c["kind"] == "wired"]
TEXT = [c for c in CASES if c["kind"] == "text"]

XFAIL: dict[str, str] = {}


def _assert_outcome(case: dict[str, Any], warnings: tuple[str, ...]) -> None:
    """A broken case that decoded must say so in a warning (wmbusmeters warns or refuses)."""
    if "expect_warning" in case:
        assert any(case["expect_warning"] in w for w in warnings), warnings
    elif case.get("broken"):
        assert warnings, "bad input decoded without an error or a warning"


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in WIRELESS])
def test_wmbusmeters_sh_telegram(case: dict[str, Any]) -> None:
    cache = FormatCache()
    for full in case["prior"]:
        decode_keyed(bytes.fromhex(full), case["key"], cache)
    if "expect_error" in case:
        with pytest.raises(DecodeError, match=case["expect_error"]):
            decode_keyed(bytes.fromhex(case["hex"]), case["key"], cache)
        return
    telegram = decode_keyed(bytes.fromhex(case["hex"]), case["key"], cache)
    expect = case["expect"]
    assert_link_header(telegram.link, telegram.meter, expect, optional=())
    assert telegram.security.state == expect["security"]
    if expect["security"] in ("no key", "wrong key"):
        assert telegram.security.error is not None and not telegram.records
        return
    assert telegram.security.error is None, telegram.security.error
    if "app_ci" in case:
        assert telegram.app_ci == case["app_ci"]
    _assert_outcome(case, telegram.warnings)
    if case["checks"] or case["dates"]:
        assert_stated(telegram.records, case)


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in WIRED])
def test_wmbusmeters_sh_wired_frame(case: dict[str, Any]) -> None:
    raw = bytes.fromhex(case["hex"])
    if "expect_error" in case:
        with pytest.raises(DecodeError, match=case["expect_error"]):
            decode_wired(raw)
        return
    app = decode_wired(raw)
    assert_wired_header(app, case["expect"])
    assert app.values, "no records decoded"
    assert_stated(app.values, case)


@pytest.mark.parametrize("case", TEXT, ids=[c["name"] for c in TEXT])
def test_wmbusmeters_sh_bad_hex(case: dict[str, Any]) -> None:
    with pytest.raises(DecodeError, match=case["expect_error"]):
        parse_hex(case["hex"])


def test_sh_corpus_shape() -> None:
    """New to the repository's data (bar the prior full frame), from the shell tests, bad input included."""
    data = Path(__file__).parents[1] / "data" / "realworld"
    seen = {
        c["hex"].upper()
        for path in data.glob("*.json")
        if path != DATA
        for c in json.loads(path.read_text(encoding="utf-8"))
    }
    assert len(CASES) >= 30 and len(WIRED) >= 3
    assert not seen & {c["hex"] for c in CASES}
    assert len({c["name"] for c in CASES}) == len(CASES)
    assert sum(len(c["checks"]) for c in CASES) >= 35
    assert sum(1 for c in CASES if c.get("broken")) >= 8
    assert all(c["source"]["path"].startswith(("tests/", "simulations/")) for c in CASES)
