"""Real-world wireless M-Bus telegrams (not written by us) against values their sources state.

The corpus (tests/data/realworld/corpus.json, provenance in its README) holds captured telegrams from
many manufacturers with the meter id, medium and 1-3 physical values an independent decoder published.
A check passes when a decoded record has that unit and value (relative 1e-9, or half a unit of the last
stated decimal where the source printed a rounded value). Cases that fail today are strict xfails whose
reason names the root cause, so a decoder fix turns them into failures that ask for the marker's removal.
"""

from __future__ import annotations

from typing import Any

import pytest
from realworld_corpus import assert_link_header, assert_stated, cases, decode_keyed, param

CASES: list[dict[str, Any]] = cases("wmbus")

XFAIL: dict[str, str] = {}  # every case decodes; a regression shows as a plain failure


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in CASES])
def test_realworld_wmbus_telegram(case: dict[str, Any]) -> None:
    telegram = decode_keyed(bytes.fromhex(case["hex"]), case["key"])
    expect = case["expect"]
    assert telegram.security.error is None, telegram.security.error
    if case["key"]:
        assert telegram.security.state == "decrypted"
    assert_link_header(telegram.link, telegram.meter, expect)
    assert_stated(telegram.records, case)


def test_corpus_is_broad() -> None:
    """At least 40 telegrams from many manufacturers, some encrypted with published keys."""
    assert len(CASES) >= 40
    assert len({c["expect"]["manufacturer"] for c in CASES}) >= 10
    assert sum(1 for c in CASES if c["key"]) >= 10
