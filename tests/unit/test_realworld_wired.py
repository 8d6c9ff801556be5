"""Real-world wired M-Bus long frames (not written by us) against values their sources state.

The corpus (tests/data/realworld/corpus.json, provenance in its README) holds RSP_UD frames from
several manufacturers with the secondary address and 1-3 physical values an independent decoder
published. A check passes when a decoded record has that unit and value (relative 1e-9, or half a unit
of the last stated decimal where the source printed a rounded value, e.g. REAL32 energies in kWh).
Cases that fail today are strict xfails whose reason names the root cause.
"""

from __future__ import annotations

from typing import Any

import pytest
from realworld_corpus import assert_stated, cases, param

from sonocli.codecs.mbus_app import decode_wired

CASES: list[dict[str, Any]] = cases("wired")

XFAIL: dict[str, str] = {}


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in CASES])
def test_realworld_wired_frame(case: dict[str, Any]) -> None:
    app = decode_wired(bytes.fromhex(case["hex"]))
    expect = case["expect"]
    assert app.header is not None
    assert app.header.id == expect["id"]
    for field in ("manufacturer", "version", "medium"):
        if field in expect:
            assert getattr(app.header, field) == expect[field], field
    assert_stated(app.values, case)


def test_corpus_has_several_wired_makers() -> None:
    assert len(CASES) >= 10
    assert len({c["source"]["path"] for c in CASES}) >= 8
