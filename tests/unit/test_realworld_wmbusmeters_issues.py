"""Telegrams people posted in wmbusmeters' GitHub issue threads (real receptions, not test data).

tests/data/realworld/wmbusmeters_issues.json (provenance in wmbusmeters_issues.md) holds each telegram with
the key the thread publishes, the link header and security state read from its bytes, and the values the
thread establishes (the reporter's meter, the maintainer's reply, analyzer output nobody disputes).
Broken receptions must never crash: a clean ``DecodeError`` or a decode with a warning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from realworld_corpus import assert_link_header, assert_stated, assert_wired_header, corpus_hex, decode_keyed, param

from sonocli.codecs.mbus_app import decode_wired
from sonocli.codecs.wmbus import FormatCache
from sonocli.errors import DecodeError

DATA = Path(__file__).parents[1] / "data" / "realworld" / "wmbusmeters_issues.json"
CASES: list[dict[str, Any]] = json.loads(DATA.read_text(encoding="utf-8"))
WIRELESS = [c for c in CASES if c["kind"] == "wmbus"]
WIRED = [c for c in CASES if c["kind"] == "wired"]

XFAIL: dict[str, str] = {}


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in WIRELESS])
def test_wmbusmeters_issue_telegram(case: dict[str, Any]) -> None:
    cache = FormatCache(builtin=False)  # what full frames teach; built-in formats: test_drivers_corpus
    for full in case["prior"]:
        decode_keyed(bytes.fromhex(full), case["key"], cache)
    raw = bytes.fromhex(case["hex"])
    expect = case["expect"]
    if "expect_error" in case:
        # A wrong or missing key gives a telegram with a security error, not an exception: an error raised by
        # the compact expansion ("no full frame") shows the security layer accepted the payload first.
        with pytest.raises(DecodeError, match=case["expect_error"]):
            decode_keyed(raw, case["key"], cache)
        return
    telegram = decode_keyed(raw, case["key"], cache)
    assert_link_header(telegram.link, telegram.meter, expect, optional=())
    assert telegram.security.state == expect["security"], telegram.security
    if expect["security"] in ("no key", "wrong key"):
        assert telegram.security.error is not None and not telegram.records
        return
    assert telegram.security.error is None, telegram.security.error
    if "app_ci" in case:
        # a proprietary payload gives records only through its driver (values: test_drivers_corpus)
        assert telegram.app_ci == case["app_ci"] and (telegram.driver or not telegram.records)
    if "expect_warning" in case:
        assert any(case["expect_warning"] in w for w in telegram.warnings), telegram.warnings
    elif case.get("broken"):
        assert telegram.warnings, "bad input decoded without an error or a warning"
    if case["checks"] or case["dates"]:
        assert_stated(telegram.records, case)


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in WIRED])
def test_wmbusmeters_issue_wired_frame(case: dict[str, Any]) -> None:
    app = decode_wired(bytes.fromhex(case["hex"]))
    assert_wired_header(app, case["expect"])
    assert app.values, "no records decoded"
    assert_stated(app.values, case)


def test_issues_corpus_shape() -> None:
    """New to the repository's data, every case cites its issue thread, broken receptions included."""
    seen = corpus_hex(DATA.name)
    assert len(CASES) >= 25
    assert not seen & {c["hex"].upper() for c in CASES}
    assert len({c["name"] for c in CASES}) == len(CASES)
    assert all(c["source"]["url"].startswith("https://github.com/wmbusmeters/wmbusmeters/issues/") for c in CASES)
    assert sum(1 for c in CASES if c["key"]) >= 8
    assert sum(1 for c in CASES if c.get("broken")) >= 2
