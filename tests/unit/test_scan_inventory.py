"""Scan as inventory (issue 12, build 4): the journal that lets an interrupted scan resume, the comparison
with an installation list, and the list's format. Real simulated segments, no mocks."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from sonocli.engine.inventory import Expected, compare, load_installation
from sonocli.engine.scan import Journal, ScanResult, primary_scan, secondary_scan
from sonocli.errors import UsageError
from sonocli.model import AddressMode, Interface, Meter
from sonocli.sim.wired import SimMeter, WiredSegment
from tests.unit.test_master import _master


class Interrupt(Exception):
    """What Ctrl-C is to the scan: an exception out of the middle of the search."""


def _segment(ids: list[str], seed: int = 0) -> WiredSegment:
    rng = random.Random(seed)
    meters = []
    for index, ident in enumerate(ids):
        head = bytes.fromhex(ident)[::-1] + bytes.fromhex("2D2C0107") + bytes((index % 256, 0, 0, 0))
        meters.append(SimMeter(primary=index + 1 if index < 200 else 0,
                               telegrams=[(0x72, head + b"\x04\x13" + (index + 7).to_bytes(4, "little"))],
                               delay_bits=rng.randint(11, 330)))
    return WiredSegment(meters)


def _ids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < count:
        base = rng.randrange(10**8 - 30)
        out.update(f"{base + n:08d}" for n in range(rng.choice((1, 1, 5, 12))))  # runs and strays
    return sorted(out)[:count]


def _interrupted(run: object, after: int) -> list[list[object]]:
    """Run ``run(journal, on_progress)`` until ``after`` probes, then interrupt it; the journal's steps."""
    journal = Journal()

    def progress(done: int, total: int | None, info: str = "") -> None:
        if done >= after:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(journal, progress)  # type: ignore[operator]
    return journal.steps


def _same(a: ScanResult, b: ScanResult) -> None:
    assert [(m.device_id, m.primary_address) for m in a.meters] == [(m.device_id, m.primary_address) for m in b.meters]
    assert a.probes == b.probes and a.collisions_unresolved == b.collisions_unresolved
    assert a.elapsed == pytest.approx(b.elapsed, abs=1e-3)


@pytest.mark.parametrize(("reverse", "alloc"), [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("after", [1, 17, 90])
def test_a_resumed_secondary_scan_is_the_uninterrupted_one(reverse: bool, alloc: bool, after: int) -> None:
    ids = _ids(60, seed=after)
    whole = secondary_scan(_master(_segment(ids), max_retry=0, max_device_count=0), reverse=reverse, alloc=alloc)
    assert sorted(m.serial for m in whole.meters) == ids and whole.probes > after

    bus = _segment(ids)  # the same bus before and after the interruption (ALLOC changes its meters)

    def run(journal: Journal, progress: object) -> ScanResult:
        master = _master(bus, max_retry=0, max_device_count=0)
        return secondary_scan(master, reverse=reverse, alloc=alloc, journal=journal,
                              on_progress=progress)  # type: ignore[arg-type]

    steps = _interrupted(run, after)
    assert len(steps) == after
    master = _master(bus, max_retry=0, max_device_count=0)
    journal = Journal(steps)
    resumed = secondary_scan(master, reverse=reverse, alloc=alloc, journal=journal)
    _same(resumed, whole)
    assert journal.replayed == after
    # the replayed part costs no wire time: only the rest went over the bus
    assert master.clock.now() < whole.elapsed
    if alloc:  # each meter got its address once, in the interrupted run or after it, as the list says
        got = {m.serial: m.primary_address for m in resumed.meters}
        assert {m.secondary_id: m.primary for m in bus.meters} == got


def test_alloc_interrupted_just_after_a_meter_was_found_addresses_it_once() -> None:
    ids = _ids(25, seed=11)
    full = Journal()
    whole = secondary_scan(_master(_segment(ids), max_retry=0, max_device_count=0), alloc=True, journal=full)
    singles = [index + 1 for index, step in enumerate(full.steps) if step[2] == "single"]
    after = singles[len(singles) // 2]  # the progress call right after this meter was listed and addressed
    bus = _segment(ids)
    steps = _interrupted(lambda j, p: secondary_scan(_master(bus, max_retry=0, max_device_count=0), alloc=True,
                                                     journal=j, on_progress=p), after)
    assert steps[-1][2] == "single"
    resumed = secondary_scan(_master(bus, max_retry=0, max_device_count=0), alloc=True, journal=Journal(steps))
    _same(resumed, whole)
    assert {m.secondary_id: m.primary for m in bus.meters} == {m.serial: m.primary_address for m in resumed.meters}


def test_a_resumed_primary_scan_is_the_uninterrupted_one() -> None:
    ids = _ids(12, seed=3)
    whole = primary_scan(_master(_segment(ids), max_retry=0), 0, 20)

    def run(journal: Journal, progress: object) -> ScanResult:
        return primary_scan(_master(_segment(ids), max_retry=0), 0, 20, journal=journal,
                            on_progress=progress)  # type: ignore[arg-type]

    steps = _interrupted(run, 7)
    journal = Journal(steps)
    _same(primary_scan(_master(_segment(ids), max_retry=0), 0, 20, journal=journal), whole)
    assert journal.replayed == 7


def _meter(serial: str, manufacturer: str | None = "KAM", version: int | None = 8, medium: int | None = 4) -> Meter:
    return Meter(Interface.MBUS, serial=serial, manufacturer=manufacturer, version=version, medium=medium,
                 primary_address=0, address_mode=AddressMode.SECONDARY)


def test_compare_tells_missing_new_and_changed_and_unset_fields_match_anything() -> None:
    reference = [
        Expected("11111111", "KAM", 8, 4, "a:1"),  # answers as listed
        Expected("22222222", "KAM", 8, 4, "a:2"),  # answers with another version and medium
        Expected("33333333", None, None, None, "a:3"),  # any meter with this ID
        Expected("44444444", "KAM", None, None, "a:4"),  # does not answer
        Expected("55555555", "EMH", None, None, "a:5"),  # this ID answers, but from another manufacturer
    ]
    found = [_meter("11111111"), _meter("22222222", version=9, medium=6), _meter("33333333", "LUG", 1, 7),
             _meter("55555555"), _meter("66666666"), _meter("12345678", None, None, 7)]
    diff = compare(reference, found)
    assert [e.source for e in diff.missing] == ["a:4", "a:5"]
    assert sorted(m.serial for m in diff.new) == ["12345678", "55555555", "66666666"]
    assert [(c.expected.source, c.what) for c in diff.changed] == [("a:2", ("version 08 -> 09", "medium 04 -> 06"))]
    # a fixed-structure meter (no manufacturer, no version) matches an entry naming them
    assert compare([Expected("12345678", "KAM", 8, 7)], [_meter("12345678", None, None, 7)]).missing == ()


def test_the_installation_list_takes_a_header_in_any_order_comments_and_semicolons(tmp_path: Path) -> None:
    path = tmp_path / "plant.csv"
    path.write_text("\ufeff# plant A, staircase 2\nmedium;id\n\n04;06855817  # flat 1\n;1234abcd\n")
    got = load_installation(path)
    assert got == [Expected("06855817", None, None, 4, f"{path}:4"),
                   Expected("1234ABCD", None, None, None, f"{path}:5")]
    path.write_text("06855817,kam,0x08\n")
    assert load_installation(path) == [Expected("06855817", "KAM", 8, None, f"{path}:1")]


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("06855817\n0685581,KAM\n", 2, "id '0685581' is not a secondary ID (8 digits 0-9 or A-F)"),
        ("06855817,KA1\n", 1, "manufacturer 'KA1' is not three letters A-Z"),
        ("06855817,KAM,100\n", 1, "version '100' is not a hex byte 00-FF"),
        ("06855817,KAM,08,4G\n", 1, "medium '4G' is not a hex byte 00-FF"),
        ("06855817,KAM,08,04,1\n", 1, "5 fields, but the list has 4 columns (id,manufacturer,version,medium)"),
        ("id,medium\n06855817,04,1\n", 2, "3 fields, but the list has 2 columns (id,medium)"),
        ("id,serialnumber\n", 1, "unknown column 'serialnumber' in the header"),
        ("# x\n06855817\n\n06855817 # again\n", 4, "meter 06855817 is listed twice (first on line 2)"),
    ],
)
def test_a_bad_line_names_file_line_and_what_is_wrong(tmp_path: Path, text: str, line: int, what: str) -> None:
    path = tmp_path / "plant.csv"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        load_installation(path)
    assert str(info.value).startswith(f"{path}:{line}: ") and what in str(info.value)
    assert "\n" not in str(info.value)


def test_an_empty_or_missing_list_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "plant.csv"
    path.write_text("# nothing yet\n\n")
    with pytest.raises(UsageError, match="names no meter"):
        load_installation(path)
    with pytest.raises(UsageError, match="no such file"):
        load_installation(tmp_path / "nope.csv")


def test_a_new_scan_replaces_an_interrupted_one_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from sonocli.engine import inventory
    from sonocli.engine.core import Engine

    engine = Engine(tmp_path)

    def stop(done: int, total: int | None, info: str = "") -> None:
        if done >= 5:
            raise Interrupt

    with pytest.raises(Interrupt):
        inventory.scan(engine, url="sim://demo", mode="SECONDARYSCAN", on_progress=stop)
    state = inventory.state_path(engine)
    saved = inventory.load_state(state)
    assert saved["port"] == "sim://demo" and saved["mode"] == "SECONDARYSCAN" and len(saved["steps"]) == 5
    with caplog.at_level("WARNING", logger="sonocli.engine.inventory"):
        got = inventory.scan(engine, url="sim://demo", mode="SECONDARYSCAN")
    assert len(got.result.meters) == 12 and got.resumed == 0
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"an interrupted scan was saved in {state}; this scan replaces it (--resume continues one)"]
    assert not state.exists()
