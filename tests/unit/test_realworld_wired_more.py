"""More real-world wired M-Bus long frames: jMBus, m-bus-parser, gombus, a libmbus issue and newer libmbus frames.

The cases (tests/data/realworld/wired_more.json, provenance in the README next to it) come from sources
other than the main corpus and state different things: jMBus states the A field and how many data
records it decodes (multi-telegram ABB and Schneider electricity meters), m-bus-parser states record
values including 0xFB/0xFD extension VIFs and subunits, gombus and the libmbus issue state secondary
addresses. A record count is a strong check of DIF/DIFE/VIF/VIFE length handling: one wrongly sized
record shifts every later one. Frames whose bytes the source got wrong are kept and must be rejected.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from realworld_corpus import assert_wired_header, matches, param

from sonocli.codecs.mbus_app import decode_records, decode_wired
from sonocli.codecs.mbus_link import LongFrame, decode_frame
from sonocli.errors import DecodeError

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "data" / "realworld" / "wired_more.json").read_text(encoding="utf-8")
)
GOOD = [c for c in CASES if c["kind"] == "wired" and "expect_error" not in c]
BAD = [c for c in CASES if c["kind"] == "wired" and "expect_error" in c]
RECORDS = [c for c in CASES if c["kind"] == "record"]

XFAIL: dict[str, str] = {}


def _agrees(check: dict[str, Any], value: Any) -> bool:
    if check.get("subunit", value.subunit) != value.subunit:
        return False
    if "text" in check and value.text != check["text"]:
        return False
    return matches(check, value.unit, value.value)


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in GOOD])
def test_more_wired_frame(case: dict[str, Any]) -> None:
    frame = bytes.fromhex(case["hex"])
    app = decode_wired(frame)
    expect = case["expect"]
    assert_wired_header(app, expect, optional=("manufacturer", "version", "medium", "access_number"))
    if "address" in expect:
        link, _ = decode_frame(frame)
        assert isinstance(link, LongFrame)
        assert link.address == expect["address"]
    if "more_records_follow" in expect:
        assert app.more_records_follow is expect["more_records_follow"]
    if "records" in expect:
        mdh = 1 if expect["records_include_mdh"] and (app.more_records_follow or app.manufacturer_data) else 0
        assert len(app.values) + mdh == expect["records"]
    if "manufacturer_data" in case:
        assert app.manufacturer_data.hex() == case["manufacturer_data"]
    for check in case["checks"]:
        assert any(_agrees(check, v) for v in app.values), (
            f"{check['field']} = {check['stated']} ({check['value']} {check['unit']}) not among "
            f"{[(v.unit, v.value, v.subunit, v.text) for v in app.values]}"
        )
    for raw in case.get("raw_checks", []):
        assert app.values[raw["index"]].raw == raw["raw"]
    stamps = {f"{v.raw:%Y-%m-%d %H:%M}" for v in app.values if isinstance(v.raw, datetime)}
    for date in case["dates"]:
        assert date["stated"] in stamps, f"{date['field']} = {date['stated']} not among {sorted(stamps)}"
    for invalid in case.get("invalid_dates", []):
        hits = [v for v in app.values if v.dif_vif.hex() == invalid["dif_vif"]]
        assert hits and all(v.raw is None for v in hits), invalid["stated"]


@pytest.mark.parametrize("case", [pytest.param(c, id=c["name"]) for c in BAD])
def test_more_wired_frame_the_source_got_wrong_is_rejected(case: dict[str, Any]) -> None:
    with pytest.raises(DecodeError, match=case["expect_error"]):
        decode_wired(bytes.fromhex(case["hex"]))


@pytest.mark.parametrize("case", [pytest.param(c, id=c["name"]) for c in RECORDS])
def test_more_single_record(case: dict[str, Any]) -> None:
    values, more, mfr = decode_records(bytes.fromhex(case["hex"]))
    assert not more and not mfr
    assert [(v.raw, v.encoding, v.unit) for v in values] == [
        (case["expect"]["raw"], case["expect"]["encoding"], case["expect"]["unit"])
    ]


def test_more_wired_sources_are_new() -> None:
    """None of these frames is already in the main corpus or the libmbus test frames."""
    data = Path(__file__).parents[1] / "data"
    known = {c["hex"].upper() for c in json.loads((data / "realworld" / "corpus.json").read_text(encoding="utf-8"))}
    known |= {"".join(p.read_text().split()).upper() for p in (data / "libmbus").rglob("*.hex")}
    assert not [c["name"] for c in GOOD + BAD if c["hex"].upper() in known]
    assert len(GOOD) >= 20
    assert len({c["source"]["repo"] for c in CASES}) >= 4
