"""Real-world wireless M-Bus telegrams (not written by us) against values their sources state.

The corpus (tests/data/realworld/corpus.json, provenance in its README) holds captured telegrams from
many manufacturers with the meter id, medium and 1-3 physical values an independent decoder published.
A check passes when a decoded record has that unit and value (relative 1e-9, or half a unit of the last
stated decimal where the source printed a rounded value). Cases that fail today are strict xfails whose
reason names the root cause, so a decoder fix turns them into failures that ask for the marker's removal.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sonocli.codecs.wmbus import DecodeOptions, WmbusTelegram, decode_telegram

CORPUS = Path(__file__).parents[1] / "data" / "realworld" / "corpus.json"
CASES: list[dict[str, Any]] = [c for c in json.loads(CORPUS.read_text(encoding="utf-8")) if c["kind"] == "wmbus"]

# Units a source may state in another unit than the record's: (quantity, factor to Wh / W / s).
_CONVERT = {
    "Wh": ("energy", 1.0), "J": ("energy", 1 / 3600),
    "W": ("power", 1.0), "J/h": ("power", 1 / 3600),
    "s": ("time", 1.0), "min": ("time", 60.0), "H": ("time", 3600.0), "D": ("time", 86400.0),
}  # fmt: skip

XFAIL: dict[str, str] = {}  # every case decodes; a regression shows as a plain failure


def _decode(case: dict[str, Any]) -> WmbusTelegram:
    raw = bytes.fromhex(case["hex"])
    keys: dict[str, bytes] = {}
    if case["key"]:
        probe = decode_telegram(raw, DecodeOptions(decode_application=False))
        key = bytes.fromhex(case["key"])
        keys = {probe.meter.id: key, probe.link.address.id: key}
    return decode_telegram(raw, DecodeOptions(keys=keys))


def _matches(check: dict[str, Any], unit: str, value: object) -> bool:
    if not isinstance(value, float):
        return False
    want = float(check["value"])
    tol = max(float(check["abs_tol"]), 1e-12)
    if unit == check["unit"]:
        return math.isclose(value, want, rel_tol=1e-9, abs_tol=tol)
    have, stated = _CONVERT.get(unit), _CONVERT.get(check["unit"])
    if have is None or stated is None or have[0] != stated[0]:
        return False
    return math.isclose(value * have[1], want * stated[1], rel_tol=1e-9, abs_tol=tol * stated[1])


def _param(case: dict[str, Any]) -> Any:
    reason = XFAIL.get(case["name"])
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(case, id=case["name"], marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_realworld_wmbus_telegram(case: dict[str, Any]) -> None:
    telegram = _decode(case)
    expect = case["expect"]
    assert telegram.security.error is None, telegram.security.error
    if case["key"]:
        assert telegram.security.state == "decrypted"
    assert telegram.meter.id == expect["id"]
    assert telegram.link.address.manufacturer_text == expect["manufacturer"]
    assert telegram.link.address.version == expect["dll_version"]
    assert telegram.link.address.device_type == expect["dll_device_type"]
    if "medium" in expect:
        assert telegram.meter.device_type == expect["medium"]
    decoded = [(v.unit, v.value) for v in telegram.records]
    for check in case["checks"]:
        assert any(_matches(check, unit, value) for unit, value in decoded), (
            f"{check['field']} = {check['stated']} ({check['value']} {check['unit']}) not among {decoded}"
        )
    stamps = {f"{v.raw:%Y-%m-%d}" for v in telegram.records if isinstance(v.raw, datetime)}
    stamps |= {f"{v.raw:%Y-%m-%d %H:%M}" for v in telegram.records if isinstance(v.raw, datetime)}
    for date in case["dates"]:
        assert date["stated"] in stamps, f"{date['field']} = {date['stated']} not among {sorted(stamps)}"


def test_corpus_is_broad() -> None:
    """At least 40 telegrams from many manufacturers, some encrypted with published keys."""
    assert len(CASES) >= 40
    assert len({c["expect"]["manufacturer"] for c in CASES}) >= 10
    assert sum(1 for c in CASES if c["key"]) >= 10
