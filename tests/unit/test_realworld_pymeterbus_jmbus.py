"""Real-world cases from pyMeterBus's and jMBus's tests that the earlier rounds did not take.

tests/data/realworld/pymeterbus_jmbus.json (provenance in pymeterbus_jmbus.md next to it): pyMeterBus's
CI 0x76 frame (all fields MSB first), an Elvaco configuration readout with plain-text VIFs, a frame whose
L field its author forgot to update (rejected; its records are checked on their own), a CI 0x78 frame with
only manufacturer data, link-layer frames (control, short, a short frame with a wrong checksum, a cut
frame), manufacturer and secondary-address bytes; jMBus's TPL-only mode-5 telegram (given with its link
address) and its wrong-key test. Every pyMeterBus .blob frame is already in tests/data (libmbus's frames).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from realworld_corpus import decode_keyed, matches, param

from sonocli.codecs.mbus_app import decode_records, decode_wired, manufacturer_code, manufacturer_text
from sonocli.codecs.mbus_link import (
    ControlFrame,
    LongFrame,
    ShortFrame,
    StreamDecoder,
    decode_frame,
    decode_select,
    select_secondary,
)
from sonocli.errors import DecodeError, WrongKeyError
from sonocli.model import MeterValue

DATA = Path(__file__).parents[1] / "data" / "realworld" / "pymeterbus_jmbus.json"
CASES: list[dict[str, Any]] = json.loads(DATA.read_text(encoding="utf-8"))


def _kind(kind: str, *, error: bool = False) -> list[dict[str, Any]]:
    return [c for c in CASES if c["kind"] == kind and ("expect_error" in c) is error]


XFAIL: dict[str, str] = {}


def _check_values(values: tuple[MeterValue, ...] | list[MeterValue], case: dict[str, Any]) -> None:
    """The source states values per record position: each must be the record at that index."""
    for check in case.get("record_checks", []):
        value = values[check["index"]]
        assert matches(check, value.unit, value.value), f"{check['field']}: got {value.unit} {value.value}"
        for field in ("storage", "tariff", "subunit", "text"):
            if field in check:
                assert getattr(value, field) == check[field], f"{check['field']}: {field}"
        if "function" in check:
            assert value.function.value == check["function"], check["field"]
        if "vife" in check:
            assert value.dif_vif.hex().endswith(check["vife"]), check["field"]
    for raw in case.get("raw_checks", []):
        value = values[raw["index"]]
        if "raw_hex" in raw:
            assert isinstance(value.raw, bytes) and value.raw.hex().upper() == raw["raw_hex"], raw["field"]
        else:
            assert value.raw == raw["raw"], raw["field"]
    for date in case.get("dates", []):
        stamp = values[date["index"]].raw
        assert isinstance(stamp, datetime) and f"{stamp:%Y-%m-%d}" == date["stated"], date["field"]


def _check_count(count: int, more: bool, mfr: bytes, expect: dict[str, Any]) -> None:
    if "records" in expect:
        mdh = 1 if expect["records_include_mdh"] and (more or mfr) else 0
        assert count + mdh == expect["records"]
    if "more_records_follow" in expect:
        assert more is expect["more_records_follow"]


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in _kind("wired")])
def test_pymeterbus_wired_frame(case: dict[str, Any]) -> None:
    frame = bytes.fromhex(case["hex"])
    app = decode_wired(frame)
    expect = case["expect"]
    if "id" in expect:
        assert app.header is not None and app.header.id == expect["id"]
        for field in ("manufacturer", "version", "medium", "access_number", "status"):
            if field in expect:
                assert getattr(app.header, field) == expect[field], field
    else:
        assert app.header is None
    if "address" in expect:
        link, _ = decode_frame(frame)
        assert isinstance(link, LongFrame) and link.address == expect["address"]
    _check_count(len(app.values), app.more_records_follow, app.manufacturer_data, expect)
    assert app.manufacturer_data.hex().upper() == case.get("manufacturer_data", "")
    _check_values(app.values, case)


@pytest.mark.parametrize("case", [pytest.param(c, id=c["name"]) for c in _kind("wired", error=True)])
def test_pymeterbus_frame_the_source_got_wrong_is_rejected(case: dict[str, Any]) -> None:
    with pytest.raises(DecodeError, match=case["expect_error"]):
        decode_wired(bytes.fromhex(case["hex"]))


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in _kind("records")])
def test_pymeterbus_record_stream(case: dict[str, Any]) -> None:
    values, more, mfr = decode_records(bytes.fromhex(case["hex"]))
    _check_count(len(values), more, mfr, case["expect"])
    _check_values(values, case)


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in _kind("link")])
def test_pymeterbus_link_frame(case: dict[str, Any]) -> None:
    raw = bytes.fromhex(case["hex"])
    frame, used = decode_frame(raw)
    expect = case["expect"]
    assert used == len(raw)
    assert isinstance(frame, {"short": ShortFrame, "control": ControlFrame}[expect["frame"]])
    assert (frame.control, frame.address) == (expect["control"], expect["address"])
    if "ci" in expect:
        assert isinstance(frame, ControlFrame) and frame.ci == expect["ci"]


@pytest.mark.parametrize("case", [pytest.param(c, id=c["name"]) for c in _kind("link", error=True)])
def test_pymeterbus_bad_link_frame_is_rejected(case: dict[str, Any]) -> None:
    with pytest.raises(DecodeError, match=case["expect_error"]):
        decode_frame(bytes.fromhex(case["hex"]))


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in _kind("stream")])
def test_jmbus_reply_followed_by_garbage(case: dict[str, Any]) -> None:
    stream = StreamDecoder()
    frames = stream.feed(bytes.fromhex(case["hex"]))
    assert len(frames) == case["expect"]["frames"]
    assert isinstance(frames[0], LongFrame) and frames[0].address == case["expect"]["address"]
    assert not stream.pending


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in _kind("manufacturer")])
def test_manufacturer_bytes(case: dict[str, Any]) -> None:
    code = int.from_bytes(bytes.fromhex(case["hex"]), "little")
    assert manufacturer_text(code) == case["expect"]["manufacturer"]
    assert manufacturer_code(case["expect"]["manufacturer"]) == code


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in _kind("secondary_address")])
def test_secondary_address_bytes(case: dict[str, Any]) -> None:
    expect = case["expect"]
    code = manufacturer_code(expect["manufacturer"])
    assert code == expect["manufacturer_code"]
    frame, _ = decode_frame(select_secondary(expect["id"], code, expect["version"], expect["medium"]))
    assert isinstance(frame, LongFrame) and frame.data.hex().upper() == case["hex"]
    selection = decode_select(bytes.fromhex(case["hex"]))
    assert (selection.id_mask, selection.manufacturer, selection.version, selection.medium) == (
        expect["id"], code, expect["version"], expect["medium"],
    )  # fmt: skip


@pytest.mark.parametrize("case", [param(c, XFAIL) for c in _kind("wmbus")])
def test_jmbus_wireless(case: dict[str, Any]) -> None:
    telegram = decode_keyed(bytes.fromhex(case["hex"]), case["key"])
    expect = case["expect"]
    link = telegram.link.address
    assert link.manufacturer_text == expect["manufacturer"]
    if expect["security"] == "wrong key":
        assert isinstance(telegram.security.error, WrongKeyError)
        assert not telegram.records
        return
    assert (link.id, link.version, link.device_type) == (
        expect["dll_id"], expect["dll_version"], expect["dll_device_type"],
    )  # fmt: skip
    assert telegram.security.error is None
    assert (telegram.security.state, telegram.security.mode) == (expect["security"], expect["security_mode"])
    assert telegram.access_number == expect["access_number"]
    assert telegram.tpl is not None and telegram.tpl.status == expect["status"]
    assert (telegram.tpl.cfg >> 4) & 0x0F == expect["encrypted_blocks"]  # CFG bits 4-7: number of AES blocks
    first = telegram.records[0]
    assert first.dif_vif.hex().startswith(expect["first_dif_vif_starts"])
    assert first.encoding == expect["first_encoding"]


def test_pymeterbus_jmbus_cases_are_new() -> None:
    """No frame or telegram is already among the repository's test data, except the wrong-key case, which
    reuses wmbus_more.json's telegram for a statement that file does not make (the stream case, too, wraps a
    known frame: what is new there is the garbage after it)."""
    reused = {"jmbus-wireless:KamstrupEncrypted:wrong_key"}
    data = Path(__file__).parents[1] / "data"
    known = "\n".join(
        "".join(p.read_text(encoding="utf-8", errors="ignore").split()).upper()
        for p in data.rglob("*")
        if p.is_file() and p.name != DATA.name and p.suffix != ".md"  # provenance notes quote left-out frames
    )
    frames = [c for c in CASES if c["kind"] in {"wired", "wmbus", "records"} and c["name"] not in reused]
    assert not [c["name"] for c in frames if c["hex"].upper() in known]
    assert all(c["hex"].upper() in known for c in CASES if c["name"] in reused)
    assert len({c["hex"] for c in CASES}) == len(CASES)
