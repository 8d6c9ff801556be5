"""M-Bus scans (MBUS_SCANMODE): primary address sweep and the secondary-address wildcard tree search.

Secondary search: probe the configured mask (MBUS_SECMASK_*, all wildcards by default) first; only a
collision (several slaves answering) makes the search descend, one wildcard nibble at a time: the eight ID
digits (0-9), then the hex nibbles of manufacturer, version and medium, so meters that share an ID are
still told apart. SECONDARYSCANREVERSE walks the ID digits from the last to the first: fewer probes when
the meters differ only in their last digits (one small delivery batch), more for mixed populations
(benchmarks/scan.py shows both). A colliding node whose first nine
children were all silent must hold at least two meters in its last child, so that child is descended into
without probing it.

ALLOC variants (Table 25 SECONDARYSCANALLOC…): each meter found gets the next free primary address
(SND_UD to the selected slave, DIF 01 VIF 7A) and is then listed with that primary address but keeps
secondary addressing, as section 5.1.1 says meters keep the mode they were first found with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sonocli.codecs import mbus_link as link
from sonocli.engine.master import (
    Identity,
    Master,
    Outcome,
    check_mask,
    identity_of,
    meter_from_identity,
)
from sonocli.errors import UsageError
from sonocli.model import AddressMode, Meter

ID_DIGITS = "0123456789"
HEX_DIGITS = "0123456789ABCDE"  # F is the wildcard itself

Progress = Callable[[int, int | None, str], None]


@dataclass
class ScanResult:
    meters: list[Meter] = field(default_factory=list)
    probes: int = 0
    collisions_unresolved: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    stopped_at_limit: bool = False


def _noop(done: int, total: int | None, info: str = "") -> None:
    return None


def primary_scan(
    master: Master,
    first: int | None = None,
    last: int | None = None,
    *,
    limit: int | None = None,
    known: Iterable[Meter] = (),
    on_progress: Progress = _noop,
) -> ScanResult:
    """SND_NKE to each address in MBUS_MIN..MAXPRIMARYADDRESS; a found meter is read once for its ID.

    ``known`` is the meter list: METER_MAXDEVICECOUNT (or ``limit``) counts it, so the scan stops once the
    list would be full; meters already listed do not count twice.
    """
    s = master.settings
    lo = s.min_primary if first is None else first
    hi = s.max_primary if last is None else last
    if not 0 <= lo <= hi <= 250:
        raise UsageError(f"primary address range {lo}..{hi} is not within 0..250")
    listed = {_key(m.serial, m.manufacturer, m.version, m.medium) for m in known}
    room = _room(s.max_device_count if limit is None else limit, len(listed))
    new = 0
    result = ScanResult()
    start = master.clock.now()
    if s.wakeup:
        master.wakeup()
    total = hi - lo + 1
    for index, address in enumerate(range(lo, hi + 1)):
        result.probes += 1
        if master.probe_primary(address):
            ident, garbled = _read_identity(master, address)
            if ident is not None:
                result.meters.append(meter_from_identity(ident, primary=address, mode=AddressMode.PRIMARY))
                new += _key(ident.id, ident.manufacturer, ident.version, ident.medium) not in listed
            elif garbled:
                result.collisions_unresolved.append(f"primary address {address}")
            else:
                result.collisions_unresolved.append(
                    f"primary address {address}: a meter acknowledged SND_NKE but sent no address"
                )
            if room and new >= room:
                result.stopped_at_limit = True
                on_progress(total, total, f"{len(result.meters)} found (limit)")
                break
        on_progress(index + 1, total, f"{len(result.meters)} found")
    result.elapsed = master.clock.now() - start
    return result


def _read_identity(master: Master, address: int) -> tuple[Identity | None, bool]:
    """The address of the meter at ``address``, and whether the answer was garbled (several meters)."""
    master.nke(address)
    master.settle()  # a second meter at this address may still be acknowledging
    got = master.transact(link.req_ud2(address, not master.settings.first_fcb_neg))
    if isinstance(got.frame, link.LongFrame):
        return identity_of(got.frame), False
    return None, bool(got.raw) and not got.truncated


@dataclass
class _Mask:
    """16 nibbles as text: ID (8, most significant first), manufacturer (4), version (2), medium (2)."""

    chars: list[str]

    @classmethod
    def start(cls, serial: str, manufacturer: int, version: int, medium: int) -> _Mask:
        text = check_mask(serial) + f"{manufacturer:04X}{version:02X}{medium:02X}"
        return cls(list(text))

    def with_digit(self, pos: int, digit: str) -> _Mask:
        chars = list(self.chars)
        chars[pos] = digit
        return _Mask(chars)

    @property
    def text(self) -> str:
        return "".join(self.chars)

    def select_bytes(self) -> bytes:
        text = self.text
        return bytes.fromhex(text[0:8])[::-1] + bytes.fromhex(text[8:12])[::-1] + bytes.fromhex(text[12:16])


def secondary_scan(
    master: Master,
    *,
    reverse: bool = False,
    alloc: bool = False,
    mask: str | None = None,
    limit: int | None = None,
    used_primary: Iterable[int] = (),
    known: Iterable[Meter] = (),
    on_progress: Progress = _noop,
) -> ScanResult:
    """The wildcard tree search; ``reverse`` for SECONDARYSCANREVERSE, ``alloc`` for the ALLOC variants.

    ``known`` is the meter list: METER_MAXDEVICECOUNT (or ``limit``) counts it, as in primary_scan.

    ALLOC never hands out an address in ``used_primary`` (those of the meter list) and never re-addresses
    a meter of ``known`` (the meter list): such a meter keeps its listed primary address, so a primary
    scan followed by an ALLOC scan leaves the primary meters where the list says they are.
    """
    s = master.settings
    root = _Mask.start(mask or s.secmask_serial, s.secmask_manufacturer, s.secmask_version, s.secmask_medium)
    id_order = list(range(7, -1, -1)) if reverse else list(range(8))
    order = id_order + list(range(8, 16))
    result = ScanResult()
    seen: set[Identity] = set()
    listed = {_key(m.serial, m.manufacturer, m.version, m.medium): m for m in known}
    room = _room(s.max_device_count if limit is None else limit, len(listed))
    new = 0
    used = set(used_primary) | {m.primary_address for m in listed.values() if m.primary_address}
    free = [a for a in range(1, 251) if a not in used]
    start = master.clock.now()
    if s.wakeup:
        master.wakeup()

    def found(ident: Identity) -> None:
        if ident in seen:
            return
        nonlocal new
        seen.add(ident)
        primary = 0
        same = listed.get(_key(ident.id, ident.manufacturer, ident.version, ident.medium))
        if alloc and same is not None:
            primary = same.primary_address
        elif alloc and free:
            primary = free.pop(0)
            master.transact(link.snd_ud(link.ADDRESS_NETWORK, link.CI_DATA_SEND, bytes((0x01, 0x7A, primary))))
        result.meters.append(meter_from_identity(ident, primary=primary, mode=AddressMode.SECONDARY))
        new += same is None
        if room and new >= room:
            result.stopped_at_limit = True

    pending = 0  # sibling masks queued on the recursion stack, not yet probed

    def explore(node: _Mask, known_collision: bool) -> Outcome:
        nonlocal pending
        if result.stopped_at_limit:
            return Outcome.NOTHING
        if known_collision:
            outcome, ident = Outcome.COLLISION, None
        else:
            result.probes += 1
            outcome, ident = master.probe_secondary(node.select_bytes())
            # The tree's size is unknown in advance; probes done plus the masks already queued is the
            # least the scan still needs, which gives the progress bar a total and a time left.
            on_progress(result.probes, result.probes + pending, f"{len(result.meters)} found, mask {node.text}")
        if outcome is Outcome.SINGLE and ident is not None:
            found(ident)
        if outcome is Outcome.UNREADABLE:
            result.collisions_unresolved.append(f"{node.text}: a meter acknowledged the selection but sent no address")
        if outcome is not Outcome.COLLISION:
            return outcome
        pos = next((p for p in order if node.chars[p] == "F"), None)
        if pos is None:
            result.collisions_unresolved.append(node.text)
            return outcome
        digits = ID_DIGITS if pos < 8 else HEX_DIGITS
        all_silent = True
        pending += len(digits)
        for index, digit in enumerate(digits):
            pending -= 1
            child = node.with_digit(pos, digit)
            # Two or more BCD meters and nine silent digits: the last digit holds them all.
            inferred = pos < 8 and all_silent and index == len(digits) - 1
            if explore(child, inferred) is not Outcome.NOTHING:
                all_silent = False
        return outcome

    explore(root, False)
    result.elapsed = master.clock.now() - start
    return result


def _key(serial: str, manufacturer: str | None, version: int | None, medium: int | None) -> tuple[str, str, int, int]:
    return serial.upper().zfill(8), (manufacturer or "").upper(), version or 0, medium or 0


def _room(limit: int, listed: int) -> int:
    """New meters the list still takes (0 = no limit); a full list stops the scan at its first new meter."""
    return max(limit - listed, 1) if limit else 0
