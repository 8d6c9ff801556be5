"""Real-world wired M-Bus long frames (not written by us) against values their sources state.

The corpus (tests/data/realworld/corpus.json, provenance in its README) holds RSP_UD frames from
several manufacturers with the secondary address and 1-3 physical values an independent decoder
published. A check passes when a decoded record has that unit and value (relative 1e-9, or half a unit
of the last stated decimal where the source printed a rounded value, e.g. REAL32 energies in kWh).
Cases that fail today are strict xfails whose reason names the root cause.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from sonocli.codecs.mbus_app import decode_wired

CORPUS = Path(__file__).parents[1] / "data" / "realworld" / "corpus.json"
CASES: list[dict[str, Any]] = [c for c in json.loads(CORPUS.read_text(encoding="utf-8")) if c["kind"] == "wired"]

# Seconds per unit, for durations stated in another time unit than the record's.
_TIME = {"s": 1, "min": 60, "H": 3600, "D": 86400}

XFAIL: dict[str, str] = {}


def _matches(check: dict[str, Any], unit: str, value: object) -> bool:
    if not isinstance(value, float):
        return False
    want = float(check["value"])
    tol = max(float(check["abs_tol"]), 1e-12)
    if unit == check["unit"]:
        return math.isclose(value, want, rel_tol=1e-9, abs_tol=tol)
    if unit in _TIME and check["unit"] in _TIME:
        return math.isclose(value * _TIME[unit], want * _TIME[check["unit"]], rel_tol=1e-9, abs_tol=tol)
    return False


def _param(case: dict[str, Any]) -> Any:
    reason = XFAIL.get(case["name"])
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(case, id=case["name"], marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_realworld_wired_frame(case: dict[str, Any]) -> None:
    app = decode_wired(bytes.fromhex(case["hex"]))
    expect = case["expect"]
    assert app.header is not None
    assert app.header.id == expect["id"]
    for field in ("manufacturer", "version", "medium"):
        if field in expect:
            assert getattr(app.header, field) == expect[field], field
    decoded = [(v.unit, v.value) for v in app.values]
    for check in case["checks"]:
        assert any(_matches(check, unit, value) for unit, value in decoded), (
            f"{check['field']} = {check['stated']} ({check['value']} {check['unit']}) not among {decoded}"
        )


def test_corpus_has_several_wired_makers() -> None:
    assert len(CASES) >= 10
    assert len({c["source"]["path"] for c in CASES}) >= 8
