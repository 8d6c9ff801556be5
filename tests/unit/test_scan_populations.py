"""Issue 12's proof: over random populations, every scan mode finds every meter and lists no meter that
is not there.

Hex digits in every field (ID, manufacturer, version, medium; 0-E, F being the wildcard), shared IDs that
differ elsewhere, some fixed-structure meters (CI 0x73, selected by ID alone), response delays anywhere
in the EN 13757-2 window with per-answer jitter (so meters sometimes answer in step and merge), and
distinct values per meter.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sonocli.engine.master import manufacturer_text
from sonocli.engine.scan import primary_scan, secondary_scan
from sonocli.sim.wired import SimMeter, WiredSegment
from tests.unit.test_master import _master

NIBBLE = "0123456789ABCDE"
MODES = ("primary", "secondary", "secondary-reverse", "secondary-alloc", "secondary-alloc-reverse")


def _hexes(size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=NIBBLE, min_size=size, max_size=size)


@st.composite
def populations(draw: st.DrawFn) -> list[dict[str, object]]:
    """2..8 meters; IDs often share a prefix or suffix with an earlier one (one delivery batch)."""
    count = draw(st.integers(2, 8))
    meters: list[dict[str, object]] = []
    addresses: set[tuple[str, ...]] = set()
    for _ in range(count * 3):
        if len(meters) == count:
            break
        ident = draw(_hexes(8))
        if meters and draw(st.booleans()):
            other = str(draw(st.sampled_from(meters))["id"])
            keep = draw(st.integers(1, 8))
            ident = other[:keep] + ident[keep:] if draw(st.booleans()) else ident[: 8 - keep] + other[8 - keep :]
        fixed = draw(st.integers(0, 9)) == 0
        man, version, medium = (draw(_hexes(4)), draw(_hexes(2)), draw(_hexes(2))) if not fixed else ("", "", "")
        key = (ident,) if fixed else (ident, man, version, medium)
        # a fixed-structure meter is selected by ID alone: no other meter may share its ID
        if key in addresses or (ident,) in addresses or (fixed and any(a[0] == ident for a in addresses)):
            continue
        addresses.add(key)
        meters.append(
            {
                "id": ident, "man": man, "version": version, "medium": medium, "fixed": fixed,
                "delay": draw(st.integers(11, 330)), "jitter": draw(st.sampled_from((0, 0, 5, 40))),
            }
        )  # fmt: skip
    return meters


def _segment(population: list[dict[str, object]], seed: int) -> WiredSegment:
    sims = []
    for index, entry in enumerate(population):
        ident = bytes.fromhex(str(entry["id"]))[::-1]
        value = (1000 + index).to_bytes(4, "little")
        if entry["fixed"]:
            telegram = (0x73, ident + bytes((index, 0x00, 0x0F, 0x0F)) + value + bytes(4))
        else:
            fields = bytes.fromhex(str(entry["version"]) + str(entry["medium"]))
            head = ident + bytes.fromhex(str(entry["man"]))[::-1] + fields
            telegram = (0x72, head + bytes((index, 0, 0, 0)) + b"\x04\x13" + value)
        delay = int(str(entry["delay"]))
        sims.append(
            SimMeter(primary=index + 1, telegrams=[telegram], delay_bits=delay,
                     jitter_bits=min(int(str(entry["jitter"])), 330 - delay))
        )  # fmt: skip
    return WiredSegment(sims, seed=seed)


def _want(population: list[dict[str, object]]) -> set[tuple[str, str | None, int | None]]:
    out: set[tuple[str, str | None, int | None]] = set()
    for entry in population:
        if entry["fixed"]:
            out.add((str(entry["id"]), None, None))
        else:
            out.add((str(entry["id"]), manufacturer_text(int(str(entry["man"]), 16)), int(str(entry["version"]), 16)))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(population=populations(), mode=st.sampled_from(MODES), seed=st.integers(0, 2**16))
def test_every_mode_finds_every_meter_and_invents_none(population: list[dict[str, object]], mode: str,
                                                       seed: int) -> None:
    master = _master(_segment(population, seed), max_retry=0, max_device_count=0)
    if mode == "primary":
        result = primary_scan(master, 0, len(population) + 1)
    else:
        result = secondary_scan(master, reverse=mode.endswith("reverse"), alloc="alloc" in mode)
    got = [(m.serial, m.manufacturer, m.version) for m in result.meters]
    assert set(got) == _want(population)
    assert len(got) == len(population)  # nothing listed twice, nothing invented
    assert result.collisions_unresolved == []
    for meter, entry in ((m, e) for m in result.meters for e in population if e["id"] == m.serial):
        if not entry["fixed"] and meter.manufacturer is not None:
            assert meter.medium is not None
