"""Real-world wired M-Bus frames posted in issue threads of projects other than rscada/libmbus.

The cases (tests/data/realworld/wired_issues.json, provenance in wired_issues.md) come from
Valley.Net.Protocols.MeterBus, tmbus, wmbusmeters and ioBroker.mbus threads, each checked against
what its thread establishes: a value another decoder printed and the reporter accepts, a secondary
address a scan found, a text the thread's fix is about. Where a thread states no value, the header
(read by hand), the record count, storage/tariff chains counted by hand and a clean decode are
checked. These meters are the ones other decoders stumbled on (plain-text VIF, LVAR records a
maintainer took for a cut frame, VIFE scaling on INT64 energies, FB/FD extension codes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from realworld_corpus import assert_wired_header, corpus_hex, matches, param

from sonocli.codecs.mbus_app import decode_wired
from sonocli.codecs.mbus_link import LongFrame, decode_frame

DATA = Path(__file__).parents[1] / "data"
NAME = "wired_issues.json"
CASES: list[dict[str, Any]] = json.loads((DATA / "realworld" / NAME).read_text(encoding="utf-8"))

XFAIL: dict[str, str] = {}


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in CASES])
def test_wired_issue_frame(case: dict[str, Any]) -> None:
    frame = bytes.fromhex(case["hex"])
    link, _ = decode_frame(frame)
    assert isinstance(link, LongFrame)
    app = decode_wired(frame)
    expect = case["expect"]
    assert_wired_header(app, expect, optional=())
    assert app.more_records_follow is expect["more_records_follow"]
    assert len(app.values) == expect["records"]
    if "manufacturer_data" in case:
        assert app.manufacturer_data.hex() == case["manufacturer_data"]
    for check in case["checks"]:
        assert any(matches(check, v.unit, v.value) for v in app.values), (
            f"{check['field']} = {check['stated']} ({check['value']} {check['unit']}) not among "
            f"{[(v.unit, v.value) for v in app.values]}"
        )
    for text in case["texts"]:
        assert getattr(app.values[text["index"]], text["field"]) == text["stated"], text["basis"]
    if "raw_storage" in case:
        assert [v.storage for v in app.values] == case["raw_storage"]
    if "raw_tariffs" in case:
        assert [v.tariff for v in app.values] == case["raw_tariffs"]


def test_wired_issue_frames_are_new() -> None:
    """None of these frames is in another corpus file or among the libmbus test frames."""
    known = corpus_hex(NAME)
    assert not [c["name"] for c in CASES if c["hex"].upper() in known]
    assert len({c["hex"] for c in CASES}) == len(CASES)
    assert all(c["source"]["path"].startswith("issue #") for c in CASES)
