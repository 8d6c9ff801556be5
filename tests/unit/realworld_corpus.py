"""Shared by the real-world corpus tests: loading cases and comparing decoded values with stated ones."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sonocli.codecs.mbus_app import AppData
from sonocli.codecs.wmbus import DecodeOptions, FormatCache, WmbusTelegram, decode_telegram
from sonocli.codecs.wmbus_link import Address, LinkHeader

CORPUS = Path(__file__).parents[1] / "data" / "realworld" / "corpus.json"

# Units a source may state in another unit than the record's: (quantity, factor to Wh / W / s).
_CONVERT = {
    "Wh": ("energy", 1.0), "J": ("energy", 1 / 3600),
    "W": ("power", 1.0), "J/h": ("power", 1 / 3600),
    "s": ("time", 1.0), "min": ("time", 60.0), "H": ("time", 3600.0), "D": ("time", 86400.0),
}  # fmt: skip


def cases(kind: str) -> list[dict[str, Any]]:
    return [c for c in json.loads(CORPUS.read_text(encoding="utf-8")) if c["kind"] == kind]


def matches(check: dict[str, Any], unit: str, value: object) -> bool:
    """A decoded (unit, value) equals a stated value: same unit, or a known conversion of the same quantity."""
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


def param(case: dict[str, Any], xfail: dict[str, str]) -> Any:
    """A pytest param named after the case; strict xfail where ``xfail`` names a known root cause."""
    reason = xfail.get(case["name"])
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(case, id=case["name"], marks=marks)


def assert_stated(values: Sequence[Any], case: dict[str, Any]) -> None:
    """Every value and date a source states for ``case`` is among the decoded ``values`` (MeterValues)."""
    decoded = [(v.unit, v.value) for v in values]
    for check in case["checks"]:
        assert any(matches(check, unit, value) for unit, value in decoded), (
            f"{check['field']} = {check['stated']} ({check['value']} {check['unit']}) not among {decoded}"
        )
    stamps = {f"{v.raw:%Y-%m-%d}" for v in values if isinstance(v.raw, datetime)}
    stamps |= {f"{v.raw:%Y-%m-%d %H:%M}" for v in values if isinstance(v.raw, datetime)}
    for date in case["dates"]:
        assert date["stated"] in stamps, f"{date['field']} = {date['stated']} not among {sorted(stamps)}"


def decode_keyed(raw: bytes, key_hex: str | None, cache: FormatCache | None = None) -> WmbusTelegram:
    """Decode a wireless case with its published key, given for the meter id and the link address id
    (which differ behind a radio converter); a first pass without application data finds both ids."""
    keys: dict[str, bytes] = {}
    if key_hex:
        probe = decode_telegram(raw, DecodeOptions(decode_application=False, cache=FormatCache()))
        key = bytes.fromhex(key_hex)
        keys = {probe.meter.id: key, probe.link.address.id: key}
    return decode_telegram(raw, DecodeOptions(keys=keys, cache=cache if cache is not None else FormatCache()))


def assert_link_header(
    link: LinkHeader, meter: Address, expect: dict[str, Any], *, optional: Sequence[str] = ("medium",)
) -> None:
    """The wireless header a case states: meter id, DLL manufacturer, version and device type, medium.

    Every field is required except those in ``optional``, which are checked where the case has them.
    """
    fields = {
        "id": meter.id,
        "manufacturer": link.address.manufacturer_text,
        "dll_version": link.address.dll_version,  # as sent, before a manufacturer address quirk
        "dll_device_type": link.address.dll_device_type,
        "medium": meter.device_type,
    }
    for name, have in fields.items():
        if name in expect or name not in optional:
            assert have == expect[name], name


def assert_wired_header(app: AppData, expect: dict[str, Any], *, optional: Sequence[str] = ("access_number",)) -> None:
    """The long data header a wired case states: id, manufacturer, version, medium, access number.

    Every field is required except those in ``optional``, which are checked where the case has them.
    """
    assert app.header is not None
    for field in ("id", "manufacturer", "version", "medium", "access_number"):
        if field in expect or field not in optional:
            assert getattr(app.header, field) == expect[field], field


def corpus_hex(exclude: str) -> set[str]:
    """Every frame and telegram (upper-case hex) of the libmbus test frames and of the real-world corpus
    files except ``exclude``: what a new corpus file must not repeat."""
    data = Path(__file__).parents[1] / "data"
    known = {"".join(p.read_text().split()).upper() for p in (data / "libmbus").rglob("*.hex")}
    for corpus in (data / "realworld").glob("*.json"):
        if corpus.name != exclude:
            known |= {str(c.get("hex", "")).upper() for c in json.loads(corpus.read_text(encoding="utf-8"))}
    return known
