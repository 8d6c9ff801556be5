"""Real-world and standard example data from exmbus's tests (tudborg/exmbus), checked against sonocli.

tests/data/realworld/exmbus.json (provenance in exmbus.md next to it) holds three layers of data, as the
source gives them: whole wireless telegrams (``layer: link``), TPL+APL frames that start at the CI field
(``layer: tpl``: EN 13757-3 Annex G full, format and compact frames; a neutral link header is put in front
here because the source has none) and bare record blocks (``layer: apl``: compact profiles of Annex F,
plain-text VIFs, record-error VIFEs, a manufacturer's manual example).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from realworld_corpus import assert_link_header, assert_stated, decode_keyed, param

from sonocli.codecs.mbus_app import decode_record_block
from sonocli.codecs.wmbus import FormatCache
from sonocli.model.values import MeterValue

DATA = Path(__file__).parents[1] / "data" / "realworld" / "exmbus.json"
CASES: list[dict[str, Any]] = json.loads(DATA.read_text(encoding="utf-8"))
LINKED = [c for c in CASES if c["layer"] in ("link", "tpl")]
BLOCKS = [c for c in CASES if c["layer"] == "apl"]

# C 0x44, M 0x0000, ID 00000000, version 0, device type 0: a link header for frames the source gives from CI on.
NEUTRAL_DLL = bytes.fromhex("440000000000000000")

XFAIL: dict[str, str] = {}


def _frame(case_hex: str, layer: str) -> bytes:
    raw = bytes.fromhex(case_hex)
    if layer == "tpl":
        body = NEUTRAL_DLL + raw
        return bytes([len(body)]) + body
    return raw


def _stamp(raw: object) -> set[str]:
    if not isinstance(raw, datetime):
        return set()
    return {f"{raw:%Y-%m-%d}", f"{raw:%Y-%m-%d %H:%M}"}


def _fits(value: MeterValue, want: dict[str, Any]) -> bool:
    """One decoded record has every attribute ``want`` states (text: case-insensitive substrings)."""
    for attr in ("unit", "storage", "tariff", "subunit"):
        if attr in want and getattr(value, attr) != want[attr]:
            return False
    if "value" in want:
        got = value.value
        if not isinstance(got, float) or not math.isclose(got, want["value"], rel_tol=1e-9, abs_tol=1e-9):
            return False
    if "raw" in want and (not value.is_numeric or value.raw != want["raw"]):
        return False
    if "date" in want and want["date"] not in _stamp(value.raw):
        return False
    words = f"{value.description} {value.text or ''}".lower()
    texts = want.get("text_all", [want["text"]] if "text" in want else [])
    return all(t.lower() in words for t in texts)


def _assert_records(values: Sequence[MeterValue], case: dict[str, Any]) -> None:
    for want in case["record_checks"]:
        if "index" in want:
            value = values[want["index"]]
            assert _fits(value, want), f"record {want['index']} {value} does not fit {want}"
        else:
            assert any(_fits(v, want) for v in values), f"no record fits {want} among {values}"


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in LINKED])
def test_exmbus_telegram(case: dict[str, Any]) -> None:
    cache = FormatCache()
    priors = [decode_keyed(_frame(h, case["layer"]), case["key"], cache) for h in case["prior"]]
    telegram = decode_keyed(_frame(case["hex"], case["layer"]), case["key"], cache)
    expect = case["expect"]
    assert telegram.security.error is None, telegram.security.error
    assert telegram.security.state == expect["security"]
    if "id" in expect:
        assert_link_header(telegram.link, telegram.meter, expect)
    elif "medium" in expect:
        assert telegram.meter.device_type == expect["medium"]
    if "access_number" in expect:
        assert telegram.access_number == expect["access_number"]
    if "app_ci" in expect:
        assert telegram.app_ci == expect["app_ci"]
    if "records" in expect:  # a proprietary payload gives records only through its driver (sonocli.codecs.drivers)
        assert len(telegram.records) == expect["records"] or telegram.driver
    if case.get("same_layout_as_prior"):
        assert [v.dif_vif for v in telegram.records] == [v.dif_vif for v in priors[-1].records]
    _assert_records(telegram.records, case)
    assert_stated(telegram.records, case)


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in BLOCKS])
def test_exmbus_record_block(case: dict[str, Any]) -> None:
    block = decode_record_block(bytes.fromhex(case["hex"]), strict=True)
    assert not block.warnings and not block.manufacturer_data and not block.more_records_follow
    if "records" in case["expect"]:
        assert len(block.values) == case["expect"]["records"]
    _assert_records(block.values, case)
    assert_stated(block.values, case)


def test_exmbus_corpus_shape() -> None:
    """Every layer the source offers is represented, and no telegram is already in the earlier corpora."""
    assert {c["layer"] for c in CASES} == {"link", "tpl", "apl"}
    assert len({c["name"] for c in CASES}) == len(CASES)
    earlier = ("corpus.json", "wired_more.json", "wmbus_more.json")
    known = "".join((DATA.parent / name).read_text(encoding="utf-8").upper() for name in earlier)
    assert not [c["name"] for c in CASES if c["layer"] == "link" and c["hex"] in known]
