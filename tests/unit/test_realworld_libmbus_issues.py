"""Real-world wired M-Bus frames that users posted in rscada/libmbus issue threads.

The cases (tests/data/realworld/libmbus_issues.json, provenance in libmbus_issues.md) are meter
replies copied from ``mbus-*-request-data -d`` logs, each checked against what its thread establishes:
the secondary address a scan found, the value the reporter says the meter means (a negative BCD
power, MWh energies behind VIF FB 01, the meter's type name), libmbus output the reporter accepts,
and the record count. Meters in these threads are the ones libmbus stumbled on (CI 0x76, first VIF
extension table, manufacturer VIFE chains, DIFE storage chains), so they exercise the same corners in
sonocli. A frame with an intact checksum but a CI that is no EN 13757-3 response must be rejected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from realworld_corpus import assert_wired_header, corpus_hex, matches, param

from sonocli.codecs.mbus_app import decode_wired
from sonocli.codecs.mbus_link import LongFrame, decode_frame
from sonocli.errors import DecodeError

DATA = Path(__file__).parents[1] / "data"
CASES: list[dict[str, Any]] = json.loads(
    (DATA / "realworld" / "libmbus_issues.json").read_text(encoding="utf-8")
)
GOOD = [c for c in CASES if "expect_error" not in c]
BAD = [c for c in CASES if "expect_error" in c]

XFAIL: dict[str, str] = {}


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in GOOD])
def test_libmbus_issue_frame(case: dict[str, Any]) -> None:
    frame = bytes.fromhex(case["hex"])
    app = decode_wired(frame)
    expect = case["expect"]
    assert_wired_header(app, expect, optional=("manufacturer", "version", "medium", "access_number"))
    link, _ = decode_frame(frame)
    assert isinstance(link, LongFrame)
    assert app.more_records_follow is expect["more_records_follow"]
    assert len(app.values) == expect["records"]
    if "manufacturer_data" in case:
        assert app.manufacturer_data.hex() == case["manufacturer_data"]
    for check in case["checks"]:
        assert any(matches(check, v.unit, v.value) for v in app.values), (
            f"{check['field']} = {check['stated']} ({check['value']} {check['unit']}) not among "
            f"{[(v.unit, v.value) for v in app.values]}"
        )
    for raw in case.get("raw_checks", []):
        assert app.values[raw["index"]].raw == raw["raw"], raw["stated"]
    for text in case.get("texts", []):
        hits = [v.raw for v in app.values if v.dif_vif.hex() == text["dif_vif"]]
        assert hits == [text["stated"]]
    if "raw_storage" in case:
        assert [v.storage for v in app.values] == case["raw_storage"]


@pytest.mark.parametrize("case", [pytest.param(c, id=c["name"]) for c in BAD])
def test_libmbus_issue_frame_with_unknown_ci_is_rejected(case: dict[str, Any]) -> None:
    frame = bytes.fromhex(case["hex"])
    link, _ = decode_frame(frame)  # the link layer is intact: checksum and lengths are right
    assert isinstance(link, LongFrame)
    with pytest.raises(DecodeError, match=case["expect_error"]):
        decode_wired(frame)


def test_libmbus_issue_frames_are_new() -> None:
    """None of these frames is in another corpus file or among the libmbus test frames."""
    known = corpus_hex("libmbus_issues.json")
    assert not [c["name"] for c in CASES if c["hex"].upper() in known]
    assert len({c["hex"] for c in CASES}) == len(CASES)
    assert all(c["source"]["path"].startswith("issue #") for c in CASES)
