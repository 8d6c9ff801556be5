"""More real-world wireless M-Bus telegrams (wmbusmeters simulations and generated tests, jMBus wireless tests).

tests/data/realworld/wmbus_more.json (provenance in the README next to it) adds telegrams the first corpus
does not hold: C1 Kamstrup frames behind an ELL (CI 0x8D), compact frames (CI 0x79) decoded after their full
frame (``prior``), telegrams whose ELL announces AES-CTR over a payload the receiver already decrypted, a
radio converter's C1 frame with a long TPL header, Diehl frames with the manufacturer default key, mode-5
telegrams with published keys and frames whose values sit in manufacturer-specific data (header checks only).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from realworld_corpus import assert_link_header, assert_stated, decode_keyed

from sonocli.codecs.wmbus import FormatCache
from sonocli.errors import DecodeError

DATA = Path(__file__).parents[1] / "data" / "realworld" / "wmbus_more.json"
CASES: list[dict[str, Any]] = json.loads(DATA.read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_realworld_wmbus_more(case: dict[str, Any]) -> None:
    cache = FormatCache(builtin=False)  # what full frames teach; built-in formats: test_drivers_corpus
    for full in case.get("prior", []):
        decode_keyed(bytes.fromhex(full), case["key"], cache)
    if "expect_error" in case:
        with pytest.raises(DecodeError) as info:
            decode_keyed(bytes.fromhex(case["hex"]), case["key"], cache)
        assert "format signature" in str(info.value) and "2F2F" not in str(info.value)
        return
    telegram = decode_keyed(bytes.fromhex(case["hex"]), case["key"], cache)
    expect = case["expect"]
    assert telegram.security.error is None, telegram.security.error
    assert telegram.security.state == expect["security"]
    assert_link_header(telegram.link, telegram.meter, expect, optional=("id", "medium"))
    if "records" in expect:
        assert len(telegram.records) == expect["records"]
    for check in case.get("record_checks", []):
        value = telegram.records[check["index"]].value
        assert isinstance(value, float) and math.isclose(value, check["value"], abs_tol=check["abs_tol"]), value
    assert_stated(telegram.records, case)


def test_more_corpus_is_broad() -> None:
    """Many new telegrams from three sources; keys, compact frames and ELL frames among them."""
    assert len(CASES) >= 30
    assert len({c["source"]["path"].split("/")[0] + c["source"]["repo"] for c in CASES}) >= 3
    assert sum(1 for c in CASES if c["key"]) >= 10
    assert sum(1 for c in CASES if c.get("prior")) >= 5
    assert sum(1 for c in CASES if c["hex"][20:22] in ("8C", "8D")) >= 5
