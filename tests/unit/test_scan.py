"""Scans on the simulator: primary sweep, secondary tree search (forward, reverse, alloc), limits."""

from __future__ import annotations

import random

import pytest

from sonocli.engine.master import Master, MasterSettings
from sonocli.engine.scan import primary_scan, secondary_scan
from sonocli.model import AddressMode
from sonocli.sim.wired import SimMeter, WiredSegment, load_segment
from sonocli.transports import open_link
from tests.unit.test_master import _master


def _meter(primary: int, ident: str, man: int = 0x2C2D, version: int = 1, medium: int = 7, delay: int = 0) -> SimMeter:
    """Real slaves start answering at different times within the 11..330 bit window; so do these."""
    head = bytes.fromhex(ident)[::-1] + man.to_bytes(2, "little") + bytes((version, medium, 0, 0, 0, 0))
    delay = delay or 11 + (int(ident) * 7919 + man + medium) % 300
    return SimMeter(primary=primary, telegrams=[(0x72, head + b"\x04\x13\x01\x00\x00\x00")], delay_bits=delay)


def _ids(result: object) -> set[str]:
    return {m.serial for m in result.meters}  # type: ignore[attr-defined]


def test_primary_scan_of_the_demo_finds_every_meter_with_its_address() -> None:
    master = Master(open_link("sim://demo"), MasterSettings(max_retry=0))
    seen: list[tuple[int, int | None]] = []
    result = primary_scan(master, 0, 20, on_progress=lambda d, t, i="": seen.append((d, t)))
    assert [m.primary_address for m in result.meters] == list(range(1, 13))
    assert all(m.address_mode is AddressMode.PRIMARY for m in result.meters)
    assert seen[-1] == (21, 21)
    assert result.probes == 21


def test_primary_scan_of_an_empty_bus_takes_exactly_the_wire_time() -> None:
    master = _master(WiredSegment([]), max_retry=1)
    result = primary_scan(master, 0, 9)
    per_try = 5 * 11 / 2400 + 330 / 2400 + 0.050
    assert result.meters == []
    assert result.elapsed == pytest.approx(10 * 2 * per_try)


@pytest.mark.parametrize("reverse", [False, True])
def test_secondary_scan_finds_the_demo(reverse: bool) -> None:
    master = Master(open_link("sim://demo"), MasterSettings())
    result = secondary_scan(master, reverse=reverse)
    demo = load_segment("demo")
    assert _ids(result) == {m.secondary_id for m in demo.meters}
    assert result.collisions_unresolved == []


def test_secondary_scan_of_random_ids_and_probe_count_is_below_exhaustive() -> None:
    rng = random.Random(7)
    ids = sorted({f"{rng.randrange(10**8):08d}" for _ in range(40)})
    seg = WiredSegment([_meter(0, i) for i in ids])
    result = secondary_scan(_master(seg, max_retry=0))
    assert sorted(_ids(result)) == ids
    assert result.probes < 10 * len(ids)


def test_reverse_scan_resolves_consecutive_serials_with_fewer_probes() -> None:
    ids = [f"{44551200 + n:08d}" for n in range(10)]
    forward = secondary_scan(_master(WiredSegment([_meter(0, i) for i in ids]), max_retry=0))
    backward = secondary_scan(_master(WiredSegment([_meter(0, i) for i in ids]), max_retry=0), reverse=True)
    assert _ids(forward) == _ids(backward) == set(ids)
    assert backward.probes < forward.probes


def test_same_id_different_manufacturer_and_medium_is_resolved_in_the_hex_fields() -> None:
    seg = WiredSegment(
        [_meter(0, "11111111", man=0x2C2D), _meter(0, "11111111", man=0x15A8), _meter(0, "11111111", medium=2)]
    )
    result = secondary_scan(_master(seg, max_retry=0))
    assert sorted((m.manufacturer, m.medium) for m in result.meters) == [("EMH", 7), ("KAM", 2), ("KAM", 7)]


def test_identical_addresses_are_reported_unresolved() -> None:
    seg = WiredSegment([_meter(0, "22222222", delay=20), _meter(0, "22222222", delay=90)])
    result = secondary_scan(_master(seg, max_retry=0))
    assert result.meters == []
    assert result.collisions_unresolved == ["222222222C2D0107"]


def test_mask_limits_the_search_and_device_count_stops_it() -> None:
    seg = WiredSegment([_meter(0, i) for i in ("10000001", "10000002", "20000003", "20000004")])
    result = secondary_scan(_master(seg), mask="1FFFFFFF")
    assert _ids(result) == {"10000001", "10000002"}
    seg = WiredSegment([_meter(0, i) for i in ("10000001", "10000002", "20000003", "20000004")])
    result = secondary_scan(_master(seg, max_device_count=3))
    assert len(result.meters) == 3 and result.stopped_at_limit


def test_alloc_gives_free_primary_addresses_to_the_meters() -> None:
    seg = WiredSegment([_meter(0, i) for i in ("30000001", "30000002", "30000003")])
    result = secondary_scan(_master(seg), alloc=True, used_primary=[1, 3])
    assert [m.primary_address for m in result.meters] == [2, 4, 5]
    assert all(m.address_mode is AddressMode.SECONDARY for m in result.meters)
    assert sorted(m.primary for m in seg.meters) == [2, 4, 5]


def test_retries_find_a_meter_that_ignores_the_first_request() -> None:
    seg = WiredSegment([SimMeter(primary=9, telegrams=_meter(9, "00000009").telegrams, flaky=1)])
    assert [m.primary_address for m in primary_scan(_master(seg, max_retry=1), 8, 10).meters] == [9]
    seg = WiredSegment([SimMeter(primary=9, telegrams=_meter(9, "00000009").telegrams, flaky=1)])
    assert primary_scan(_master(seg, max_retry=0), 8, 10).meters == []


def test_two_meters_on_one_primary_address_are_reported() -> None:
    seg = WiredSegment([_meter(4, "40000001", delay=15), _meter(4, "40000002", delay=120), _meter(5, "50000005")])
    result = primary_scan(_master(seg, max_retry=0), 3, 6)
    assert [m.primary_address for m in result.meters] == [5]
    assert result.collisions_unresolved == ["primary address 4"]


@pytest.mark.parametrize("mode", ["primary", "secondary"])
def test_wakeup_before_a_scan_finds_sleepy_meters(mode: str) -> None:
    def bus() -> WiredSegment:
        meters = [_meter(3, "11110000"), _meter(7, "22220000")]
        meters[1].sleepy = True
        return WiredSegment(meters)

    def scan(master: Master) -> set[str]:
        return _ids(primary_scan(master, 0, 10) if mode == "primary" else secondary_scan(master))

    assert scan(_master(bus(), max_retry=0)) == {"11110000"}
    assert scan(_master(bus(), max_retry=0, wakeup=True)) == {"11110000", "22220000"}


def test_sleepy_fault_in_the_sim_url() -> None:
    asleep = Master(open_link("sim://demo?sleepy=4"), MasterSettings(max_retry=0))
    awake = Master(open_link("sim://demo?sleepy=4"), MasterSettings(max_retry=0, wakeup=True))
    assert 4 not in {m.primary_address for m in primary_scan(asleep, 3, 5).meters}
    assert 4 in {m.primary_address for m in primary_scan(awake, 3, 5).meters}


def test_alloc_keeps_listed_meters_and_their_addresses() -> None:
    from sonocli.model import Interface, Meter

    seg = WiredSegment([_meter(1, "11111111"), _meter(0, "22222222"), _meter(0, "33333333")])
    listed = Meter(Interface.MBUS, serial="11111111", manufacturer="KAM", version=1, medium=7, primary_address=1)
    result = secondary_scan(_master(seg, max_retry=0), alloc=True, known=[listed], used_primary=[2])
    by_id = {m.serial: m.primary_address for m in result.meters}
    assert by_id == {"11111111": 1, "22222222": 3, "33333333": 4}
    assert [m.primary for m in seg.meters] == [1, 3, 4]  # the listed meter was not re-addressed


def test_secondary_progress_has_a_growing_total_for_the_time_left() -> None:
    seen: list[tuple[int, int | None]] = []
    master = _master(load_segment("demo"), max_retry=0)
    result = secondary_scan(master, on_progress=lambda d, t, i="": seen.append((d, t)))
    assert [d for d, _ in seen] == list(range(1, result.probes + 1))
    assert all(t is not None and t >= d for d, t in seen)
    assert seen[-1][1] is not None and seen[-1][1] - result.probes <= 1  # at most one inferred mask left
    assert max(t for _, t in seen if t is not None) > seen[0][1]  # type: ignore[operator]


@pytest.mark.parametrize("mode", ["primary", "secondary"])
def test_device_count_counts_the_meter_list_but_not_twice(mode: str) -> None:
    from sonocli.model import Interface, Meter

    seg = WiredSegment([_meter(a, f"{a:08d}") for a in (1, 2, 3, 4, 5)])
    listed = [Meter(Interface.MBUS, serial=f"{a:08d}", manufacturer="KAM", version=1, medium=7) for a in (1, 2)]

    def scan(limit: int, known: list[Meter]) -> list[str]:
        master = _master(seg, max_retry=0, max_device_count=limit)
        result = primary_scan(master, 0, 10, known=known) if mode == "primary" else secondary_scan(master, known=known)
        return [m.serial for m in result.meters]

    assert len(scan(3, [])) == 3  # no list: three meters
    assert len(scan(4, listed)) == 4  # two listed found again + two new = a full list of four
    assert len(scan(2, listed)) == 3  # list already full: stop at the first new meter
    assert len(scan(0, listed)) == 5


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("reverse", [False, True])
def test_secondary_scan_never_misses_a_meter(seed: int, reverse: bool) -> None:
    """Clustered IDs (shared prefixes and suffixes), equal IDs told apart by manufacturer, version or
    medium, and slaves answering at the same instant (their E5s overlap into one): every meter is found."""
    rng = random.Random(seed)
    base = rng.randrange(10**8)
    addresses: set[tuple[str, int, int, int]] = set()
    while len(addresses) < rng.randint(2, 30):
        kind = rng.random()
        if kind < 0.4:
            ident = f"{(base + rng.randrange(30)) % 10**8:08d}"  # one delivery batch
        elif kind < 0.6:
            ident = f"{rng.randrange(10**4):04d}{base % 10**4:04d}"  # same last four digits
        else:
            ident = f"{rng.randrange(10**8):08d}"
        man = rng.choice((0x2C2D, 0x15A8, 0x0442))
        addresses.add((ident, man, rng.choice((1, 2, 0x99)), rng.choice((4, 7, 6))))
    delays = (20, 20, 20, 150, 330) if seed % 2 else tuple(range(11, 331, 7))
    seg = WiredSegment([_meter(0, i, man, v, m, delay=rng.choice(delays)) for i, man, v, m in sorted(addresses)])
    result = secondary_scan(_master(seg, max_retry=0, max_device_count=0), reverse=reverse)
    got = {(m.serial, m.manufacturer, m.version, m.medium) for m in result.meters}
    want = {(m.secondary_id, _man_text(m.address_bytes), m.address_bytes[6], m.address_bytes[7]) for m in seg.meters}
    assert got == want
    assert result.collisions_unresolved == []


def _man_text(head: bytes) -> str:
    from sonocli.engine.master import manufacturer_text

    return manufacturer_text(int.from_bytes(head[4:6], "little"))


@pytest.mark.parametrize("stop_after", [9, 0])  # breaks off mid-telegram / never answers REQ_UD2
def test_a_meter_that_acks_the_selection_but_gives_no_address_is_reported(stop_after: int) -> None:
    good, bad = _meter(0, "51000001"), _meter(0, "52000002")
    bad.stop_after = stop_after
    result = secondary_scan(_master(WiredSegment([good, bad]), max_retry=0))
    assert _ids(result) == {"51000001"}
    assert result.collisions_unresolved == ["52FFFFFFFFFFFFFF: a meter acknowledged the selection but sent no address"]


def test_primary_scan_tells_a_broken_meter_from_a_collision() -> None:
    broken = _meter(6, "60000006")
    broken.stop_after = 9
    seg = WiredSegment([_meter(4, "40000001", delay=15), _meter(4, "40000002", delay=120), broken])
    result = primary_scan(_master(seg, max_retry=0), 3, 7)
    assert result.meters == []
    assert result.collisions_unresolved == [
        "primary address 4",
        "primary address 6: a meter acknowledged SND_NKE but sent no address",
    ]


@pytest.mark.parametrize("seed", range(6))
def test_primary_scan_shared_addresses_never_spill_into_the_next_address(seed: int) -> None:
    rng = random.Random(seed)
    meters = []
    for address in range(1, 20, 2):  # odd addresses used, even ones empty
        for n in range(rng.choice((1, 1, 2, 3))):
            meters.append(_meter(address, f"{address:04d}{n:04d}", delay=rng.randint(11, 330)))
    seg = WiredSegment(meters)
    result = primary_scan(_master(seg, max_retry=0), 0, 20)
    shared = {m.primary for m in meters if sum(o.primary == m.primary for o in meters) > 1}
    assert {m.primary_address for m in result.meters} == {m.primary for m in meters} - shared
    assert result.collisions_unresolved == [f"primary address {a}" for a in sorted(shared)]


# ---- issue 12: hex IDs, meters in step, fixed structure, verification, diagnosis ----------------------


def _hex_meter(primary: int, ident: str, man: int = 0x2C2D, version: int = 1, medium: int = 7, delay: int = 0,
               value: int = 1) -> SimMeter:
    head = bytes.fromhex(ident)[::-1] + man.to_bytes(2, "little") + bytes((version, medium, 0, 0, 0, 0))
    delay = delay or 11 + (int(ident, 16) * 7919 + man + medium) % 300
    records = b"\x04\x13" + value.to_bytes(4, "little")
    return SimMeter(primary=primary, telegrams=[(0x72, head + records)], delay_bits=delay)


def _fixed_meter(primary: int, ident: str, delay: int = 50) -> SimMeter:
    data = bytes.fromhex(ident)[::-1] + bytes((0x01, 0x00, 0x0F, 0x0F)) + (1234).to_bytes(4, "little") + bytes(4)
    return SimMeter(primary=primary, telegrams=[(0x73, data)], delay_bits=delay)


def _in_step(primary: int, ident: str) -> SimMeter:
    """The issue's pair: same header, same value, same delay; only the last ID digit differs."""
    head = bytes.fromhex(ident)[::-1] + bytes.fromhex("2D2C0804") + bytes((0x11, 0, 0, 0))
    return SimMeter(primary=primary, telegrams=[(0x72, head + bytes.fromhex("041301000000"))], delay_bits=30)


MODES = [(False, False), (True, False), (False, True), (True, True)]  # (reverse, alloc)


@pytest.mark.parametrize(("reverse", "alloc"), MODES)
def test_hex_ids_are_found_also_with_a_hex_first_digit(reverse: bool, alloc: bool) -> None:
    seg = WiredSegment([_hex_meter(0, i) for i in ("1234ABCD", "1234ABCE", "A0000001", "E9999999", "12345678")])
    result = secondary_scan(_master(seg, max_retry=0), reverse=reverse, alloc=alloc)
    assert _ids(result) == {"1234ABCD", "1234ABCE", "A0000001", "E9999999", "12345678"}
    assert result.collisions_unresolved == [] and not result.partial


def test_the_issues_mixed_segment_of_eight_meters_is_found_whole() -> None:
    """Shared IDs told apart by version or manufacturer, hex IDs, two meters in step on one primary address."""
    meters = [
        _hex_meter(1, "11111111", version=1), _hex_meter(2, "11111111", version=2),
        _hex_meter(3, "22222222", man=0x2C2D), _hex_meter(4, "22222222", man=0x15A8),
        _hex_meter(6, "1234ABCD"), _hex_meter(7, "1234ABCE"),
        _in_step(5, "87654321"), _in_step(5, "87654322"),
    ]  # fmt: skip
    for reverse in (False, True):
        result = secondary_scan(_master(WiredSegment(meters), max_retry=0), reverse=reverse)
        got = {(m.serial, m.manufacturer, m.version) for m in result.meters}
        assert len(got) == len(result.meters) == 8
        assert {m.serial for m in result.meters} == {"11111111", "22222222", "1234ABCD", "1234ABCE", "87654321",
                                                     "87654322"}
        assert result.collisions_unresolved == []


@pytest.mark.parametrize("reverse", [False, True])
def test_meters_answering_in_step_are_never_taken_for_a_meter(reverse: bool) -> None:
    seg = WiredSegment([_in_step(5, "87654321"), _in_step(5, "87654322")])
    result = secondary_scan(_master(seg, max_retry=0), reverse=reverse)
    assert _ids(result) == {"87654321", "87654322"}  # never the merged 87654320
    primary = primary_scan(_master(WiredSegment([_in_step(5, "87654321"), _in_step(5, "87654322")]), max_retry=0),
                           4, 6)
    assert primary.meters == []
    assert primary.collisions_unresolved == [
        "primary address 5: address 5 answers for more than one meter (their merged answer names 87654320, which "
        "no single meter answers to)"
    ]
    assert primary.partial


def test_secondary_scan_keeps_the_primary_address_the_answer_carries() -> None:
    seg = WiredSegment([_hex_meter(17, "30000001"), _hex_meter(0, "30000002"), _hex_meter(250, "30000003")])
    result = secondary_scan(_master(seg, max_retry=0))
    assert {m.serial: m.primary_address for m in result.meters} == {"30000001": 17, "30000002": 0, "30000003": 250}
    assert all(m.address_mode is AddressMode.SECONDARY for m in result.meters)


@pytest.mark.parametrize("mode", ["primary", "secondary", "reverse"])
def test_a_fixed_structure_meter_resolves_with_its_id(mode: str) -> None:
    seg = WiredSegment([_fixed_meter(3, "12345678"), _hex_meter(4, "12345679"), _hex_meter(5, "99999999")])
    master = _master(seg, max_retry=0)
    result = primary_scan(master, 0, 6) if mode == "primary" else secondary_scan(master, reverse=mode == "reverse")
    assert _ids(result) == {"12345678", "12345679", "99999999"}
    fixed = next(m for m in result.meters if m.serial == "12345678")
    assert fixed.manufacturer is None and fixed.version is None and fixed.primary_address == 3
    assert result.collisions_unresolved == []


def test_a_broken_checksum_says_checksum_where_it_cannot_be_resolved() -> None:
    bad = _hex_meter(6, "60000006")
    bad.corrupt = True
    result = primary_scan(_master(WiredSegment([bad, _hex_meter(7, "70000007")]), max_retry=0), 5, 8)
    assert _ids(result) == {"70000007"}
    assert len(result.collisions_unresolved) == 1
    assert result.collisions_unresolved[0].startswith("primary address 6: checksum 0x")


def test_a_meter_answering_every_address_is_diagnosed() -> None:
    """libmbus users' most common report, "collision at address N" on every address: the scan says what
    that usually means and what to try."""
    liar = _hex_meter(1, "10000001", delay=40)
    liar.answers_all = True
    result = primary_scan(_master(WiredSegment([liar, _hex_meter(9, "90000009", delay=200)]), max_retry=0), 0, 20)
    assert result.diagnosis is not None and "a meter answering every address" in result.diagnosis
    assert "wrong baud rate or parity" in result.diagnosis and "converter" in result.diagnosis
    noisy = [_hex_meter(1, "10000001", delay=40), _hex_meter(2, "20000002", delay=200)]
    for meter in noisy:
        meter.answers_all = True
    result = secondary_scan(_master(WiredSegment(noisy), max_retry=0))
    assert result.diagnosis is not None and "masks collide" in result.diagnosis
    assert result.probes < 100 and result.partial  # stopped, and says where


def test_an_ordinary_scan_has_no_diagnosis() -> None:
    assert primary_scan(_master(load_segment("demo"), max_retry=0), 0, 20).diagnosis is None
    assert secondary_scan(_master(load_segment("demo"), max_retry=0)).diagnosis is None


def test_a_short_mask_is_padded_with_leading_zeros() -> None:
    seg = WiredSegment([_hex_meter(0, i) for i in ("00000841", "00000842", "10000843")])
    result = secondary_scan(_master(seg, max_retry=0), mask="084F")
    assert _ids(result) == {"00000841", "00000842"}
    result = secondary_scan(_master(WiredSegment([_hex_meter(0, "00000841")]), max_retry=0, secmask_serial="84F"))
    assert _ids(result) == {"00000841"}


def test_reverse_is_not_worse_than_forward_on_several_batches() -> None:
    rng = random.Random(3)
    ids: set[str] = set()
    for _ in range(3):
        base = rng.randrange(10**7)
        ids.update(f"{base + n:08d}" for n in range(20))

    def probes(reverse: bool) -> int:
        seg = WiredSegment([_hex_meter(0, i) for i in sorted(ids)])
        result = secondary_scan(_master(seg, max_retry=0, max_device_count=0), reverse=reverse)
        assert _ids(result) == ids
        return result.probes

    assert probes(True) <= probes(False) + 2
