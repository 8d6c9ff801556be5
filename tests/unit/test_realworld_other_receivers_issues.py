"""Telegrams posted in issue threads of wM-Bus receiver projects other than wmbusmeters (real receptions).

tests/data/realworld/other_receivers_issues.json (provenance in other_receivers_issues.md) holds telegrams from the
ESPHome wmbus component, rtl_433, ESPHome gateways and small decoders' threads, each with the key the thread
publishes (or the manufacturer default key the thread's decoder used), the link header and security state read from
its bytes, and the values the thread establishes. Receivers deliver frames in many shapes (CRCs kept, L-fields that
disagree with the bytes, plaintext under a security mode): those must decode cleanly or give a clean error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from realworld_corpus import assert_link_header, assert_stated, corpus_hex, decode_keyed, param

from sonocli.codecs.wmbus import FormatCache, WmbusTelegram
from sonocli.errors import DecodeError

DATA = Path(__file__).parents[1] / "data" / "realworld" / "other_receivers_issues.json"
CASES: list[dict[str, Any]] = json.loads(DATA.read_text(encoding="utf-8"))
BY_NAME = {c["name"]: c for c in CASES}

XFAIL: dict[str, str] = {}


def _decode(case: dict[str, Any]) -> WmbusTelegram:
    cache = FormatCache(builtin=False)  # what full frames teach; built-in formats: test_drivers_corpus
    for full in case["prior"]:
        decode_keyed(bytes.fromhex(full), case["key"], cache)
    return decode_keyed(bytes.fromhex(case["hex"]), case["key"], cache)


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in CASES])
def test_other_receiver_issue_telegram(case: dict[str, Any]) -> None:
    expect = case["expect"]
    if "expect_error" in case:
        with pytest.raises(DecodeError, match=case["expect_error"]):
            _decode(case)
        return
    telegram = _decode(case)
    assert_link_header(telegram.link, telegram.meter, expect, optional=())
    assert telegram.security.state == expect["security"], telegram.security
    if "expect_warning" in case:
        assert any(case["expect_warning"] in w for w in telegram.warnings), telegram.warnings
    elif case.get("broken"):
        assert telegram.warnings, "bad input decoded without an error or a warning"
    if expect["security"] in ("no key", "wrong key", "unsupported"):
        assert telegram.security.error is not None and not telegram.records
        return
    assert telegram.security.error is None, telegram.security.error
    if "app_ci" in case:
        # a proprietary payload gives records only through its driver (values: test_drivers_corpus)
        assert telegram.app_ci == case["app_ci"] and (telegram.driver or not telegram.records)
        return
    assert telegram.records, "no records decoded"
    if "plaintext_prefix" in case:
        assert telegram.payload.hex().upper().startswith(case["plaintext_prefix"])
    if "same_as" in case:
        other = _decode(BY_NAME[case["same_as"]])
        assert [(r.unit, r.value) for r in telegram.records] == [(r.unit, r.value) for r in other.records]
    if case["checks"] or case["dates"]:
        assert_stated(telegram.records, case)


def test_other_receivers_corpus_shape() -> None:
    """New to the repository's data, every case cites a thread outside wmbusmeters' own tracker."""
    seen = corpus_hex(DATA.name)
    assert len(CASES) >= 20
    assert not seen & {c["hex"].upper() for c in CASES}
    assert len(BY_NAME) == len(CASES)
    for case in CASES:
        url = case["source"]["url"]
        assert url.startswith("https://github.com/") and "/issues/" in url
        assert not url.startswith("https://github.com/wmbusmeters/wmbusmeters/")
    assert sum(1 for c in CASES if c.get("broken")) >= 3
