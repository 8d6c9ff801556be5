"""The rest of wmbusmeters' driver test telegrams (drivers/src/*.xmq) that no other data file holds.

tests/data/realworld/wmbusmeters_rest.json (provenance in wmbusmeters_rest.md next to it) adds the driver
tests the first two rounds did not take: later telegrams of meters tested several times (IME Nemo and
IME power meters, a Schneider iEM3000), Kamstrup compact frames with their full frame (``prior``), Kamstrup
and Diehl frames that name backward energy, a REAL32 wired meter with subunits, and two Kamstrup compact
frames a standard decoder must refuse (``expect_error``). Wired cases are RSP_UD long frames; checks hold the
values wmbusmeters states, converted to sonocli's units.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from realworld_corpus import assert_link_header, assert_stated, assert_wired_header, decode_keyed, param

from sonocli.codecs.mbus_app import decode_wired
from sonocli.codecs.wmbus import FormatCache
from sonocli.codecs.wmbus_link import parse_link_header
from sonocli.errors import DecodeError

DATA = Path(__file__).parents[1] / "data" / "realworld" / "wmbusmeters_rest.json"
CASES: list[dict[str, Any]] = json.loads(DATA.read_text(encoding="utf-8"))
WIRED = [c for c in CASES if c["kind"] == "wired"]
WIRELESS = [c for c in CASES if c["kind"] == "wmbus"]

XFAIL: dict[str, str] = {}  # every case decodes as the source states; a regression shows as a plain failure


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in WIRELESS])
def test_wmbusmeters_rest_telegram(case: dict[str, Any]) -> None:
    cache = FormatCache(builtin=False)  # what full frames teach; built-in formats: test_drivers_corpus
    for full in case["prior"]:
        decode_keyed(bytes.fromhex(full), case["key"], cache)
    if "expect_error" in case:
        link = parse_link_header(bytes.fromhex(case["hex"]))  # a compact frame without TPL: the DLL is the meter
        assert_link_header(link, link.address, case["expect"], optional=())
        with pytest.raises(DecodeError, match=case["expect_error"]):
            decode_keyed(bytes.fromhex(case["hex"]), case["key"], cache)
        return
    telegram = decode_keyed(bytes.fromhex(case["hex"]), case["key"], cache)
    assert telegram.security.error is None, telegram.security.error
    assert telegram.security.state == case["expect"]["security"]
    assert_link_header(telegram.link, telegram.meter, case["expect"], optional=())
    assert_stated(telegram.records, case)


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in WIRED])
def test_wmbusmeters_rest_wired_frame(case: dict[str, Any]) -> None:
    app = decode_wired(bytes.fromhex(case["hex"]))
    assert_wired_header(app, case["expect"])
    assert app.values, "no records decoded"
    assert_stated(app.values, case)


def test_rest_corpus_shape() -> None:
    """Every case is new to the repository's data and comes from one named driver test."""
    others = Path(__file__).parents[1] / "data"
    seen = {
        c["hex"].upper()
        for name in ("corpus.json", "wmbus_more.json", "wired_more.json")
        for c in json.loads((others / "realworld" / name).read_text(encoding="utf-8"))
    }
    assert len(CASES) >= 20 and len(WIRED) >= 5 and len(WIRELESS) >= 10
    assert not seen & {c["hex"] for c in CASES}
    assert len({c["name"] for c in CASES}) == len(CASES)
    assert all(c["source"]["path"].startswith("drivers/src/") for c in CASES)
    assert sum(len(c["checks"]) for c in CASES) >= 80
