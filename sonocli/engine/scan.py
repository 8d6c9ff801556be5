"""M-Bus scans (MBUS_SCANMODE): primary address sweep and the secondary-address wildcard tree search.

Secondary search: probe the configured mask (MBUS_SECMASK_*, all wildcards by default) first; only a
collision (several slaves answering) makes the search descend, one wildcard nibble at a time: the eight ID
digits, then the hex nibbles of manufacturer, version and medium, so meters that share an ID are still told
apart. The search is complete for hex IDs too: an ID digit may be A-E (F is the wildcard), so before the
first node of an ID position is split, the five masks "A..E at this position, the rest as configured" are
probed once for the whole scan (a silent one rules that digit out at every node of the position; a single
one is a meter found, and tells every node whether it holds it). A node's children are the ten decimal
digits and the hex digits not ruled out, so every collision is either split or reported in ``unresolved``.
A colliding node whose other children were all silent must hold at least two meters in its last child, so
that child is descended into without probing it.

Every meter found under a wildcard is verified before it is listed (Master.verify): two meters answering in
step merge into one answer that may name an address neither has; such a node is split like any collision.

SECONDARYSCANREVERSE walks the ID digits from the last to the first: few probes when the meters differ only
in their last digit (one delivery batch of up to ten). When the root's last-digit split shows two colliding
children, the last digit does not tell this bus's meters apart (many meters, or several batches, where the
reverse tree costs several times the forward one): the search goes on in forward order, so reverse is never
much worse than forward (benchmarks/scan.py compares both with libmbus' algorithm).

ALLOC variants (Table 25 SECONDARYSCANALLOC…): each meter found gets the next free primary address
(SND_UD to the selected slave, DIF 01 VIF 7A) and is then listed with that primary address but keeps
secondary addressing, as section 5.1.1 says meters keep the mode they were first found with. Other meters
found by secondary scan keep the primary address their answer carries (the RSP_UD's A field).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sonocli.codecs import mbus_link as link
from sonocli.engine.master import (
    Identity,
    Master,
    Outcome,
    Received,
    check_mask,
    identity_of,
    meter_from_identity,
    primary_of,
)
from sonocli.errors import UsageError
from sonocli.model import AddressMode, Meter

ID_DIGITS = "0123456789"
HEX_ONLY = "ABCDE"  # hex ID digits; F is the wildcard itself
HEX_DIGITS = ID_DIGITS + HEX_ONLY
# a scan whose probes nearly all collide, with no meter found, is listening to noise (see _NOISE)
NOISE_PROBES = 60
CHAINS = 1  # splits with one busy child at a position before its digits are probed scan-wide
NOISE_SHARE = 0.9
_NOISE = (
    "{lead}: that usually means a level converter echoing the request, a "
    "wrong baud rate or parity (MBUS_BAUDRATE, MBUS_PARITY: the meters' rate is often 2400 or 300 baud, 8E1), "
    "or a meter answering every address; try --baud with the meters' rate, switch off the converter's echo, "
    "and disconnect meters one by one to find one that answers everything"
)

Progress = Callable[[int, int | None, str], None]


@dataclass
class ScanResult:
    """What a scan found. ``diagnosis``: when most probes collided or answered garbage, what that usually
    means and what to try (one sentence, printed as a warning)."""

    meters: list[Meter] = field(default_factory=list)
    probes: int = 0
    collisions_unresolved: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    stopped_at_limit: bool = False
    diagnosis: str | None = None

    @property
    def partial(self) -> bool:
        """Some collision stayed unexplained: meters may be missing (exit code 3)."""
        return bool(self.collisions_unresolved)


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

    Each meter read is verified by selecting it by its secondary address (Master.verify): two meters on one
    address answering in step merge into one answer naming an address neither has, which is reported
    ("address 5 answers for more than one meter"), never listed.

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
    answered = garbled = 0
    result = ScanResult()
    start = master.clock.now()
    if s.wakeup:
        master.wakeup()
    total = hi - lo + 1
    for index, address in enumerate(range(lo, hi + 1)):
        result.probes += 1
        if master.probe_primary(address):
            answered += 1
            got = _read_identity(master, address)
            ident = identity_of(got.frame) if isinstance(got.frame, link.LongFrame) else None
            if ident is not None and isinstance(got.frame, link.LongFrame) and master.verify(ident, got.frame):
                result.meters.append(meter_from_identity(ident, primary=address, mode=AddressMode.PRIMARY))
                new += _key(ident.id, ident.manufacturer, ident.version, ident.medium) not in listed
            elif ident is not None:
                result.collisions_unresolved.append(
                    f"primary address {address}: address {address} answers for more than one meter (their "
                    f"merged answer names {ident.id}, which no single meter answers to)"
                )
            elif got.bad:
                garbled += 1
                result.collisions_unresolved.append(
                    f"primary address {address}: {got.bad} (one meter's broken telegram, or several meters "
                    "answering in step)"
                )
            elif got.raw and not got.truncated:
                garbled += 1
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
    if answered >= max(8, total // 2) and (garbled * 2 >= answered or answered * 10 >= total * 9):
        result.diagnosis = _NOISE.format(
            lead=f"{answered} of {total} primary addresses answer" + (f", {garbled} of them garbled" if garbled else "")
        )
    result.elapsed = master.clock.now() - start
    return result


def _read_identity(master: Master, address: int) -> Received:
    """The answer of the meter(s) at ``address`` to REQ_UD2 (garbled when several answer out of step)."""
    master.nke(address)
    master.settle()  # a second meter at this address may still be acknowledging
    return master.transact(link.req_ud2(address, not master.settings.first_fcb_neg))


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

    @property
    def exact(self) -> bool:
        return "F" not in self.chars

    def select_bytes(self) -> bytes:
        text = self.text
        return bytes.fromhex(text[0:8])[::-1] + bytes.fromhex(text[8:12])[::-1] + bytes.fromhex(text[12:16])

    def holds(self, ident: Identity) -> bool:
        """Would the meter ``ident`` answer this mask (F = any; a fixed-structure meter matches on its ID)?"""
        have = _address_text(ident)
        return all(want in ("F", got) or (got == "F" and ident.fixed and pos >= 8)
                   for pos, (want, got) in enumerate(zip(self.text, have, strict=True)))


def _address_text(ident: Identity) -> str:
    """An identity as the 16 nibbles of a mask (what _Mask.text spells)."""
    raw = ident.select_bytes
    return raw[0:4][::-1].hex().upper() + raw[4:6][::-1].hex().upper() + raw[6:8].hex().upper()


class _Search:
    """One secondary search: the tree walk, the scan-wide hex-digit probes, verification and the limit."""

    def __init__(
        self,
        master: Master,
        root: _Mask,
        reverse: bool,
        on_found: Callable[[Identity, link.LongFrame], None],
        result: ScanResult,
        on_progress: Progress,
    ) -> None:
        self.master = master
        self.root = root
        self.reverse = reverse
        self.order = self._order(reverse)
        self.on_found = on_found
        self.result = result
        self.on_progress = on_progress
        self.pending = 0  # sibling masks queued on the recursion stack, not yet probed
        self.collisions = 0
        self.scan_wide: dict[tuple[int, str], tuple[Outcome, Identity | None]] = {}
        self.present: set[tuple[int, str]] = set()  # (ID position, digit) of the meters found so far
        self.chains: dict[int, int] = {}  # per ID position: splits that had a single non-silent child
        self.stop = False

    @staticmethod
    def _order(reverse: bool) -> list[int]:
        return (list(range(7, -1, -1)) if reverse else list(range(8))) + list(range(8, 16))

    def probe(self, node: _Mask) -> tuple[Outcome, Identity | None]:
        """Probe one mask; a meter found under a wildcard is listed only once verified."""
        result = self.result
        result.probes += 1
        outcome, ident, frame = self.master.identify(node.select_bytes())
        # The tree's size is unknown in advance; probes done plus the masks already queued is the least
        # the scan still needs, which gives the progress bar a total and a time left.
        self.on_progress(result.probes, result.probes + self.pending, f"{len(result.meters)} found, mask {node.text}")
        if outcome is Outcome.SINGLE and ident is not None and frame is not None:
            if not node.holds(ident) or not (node.exact or self.master.verify(ident, frame)):
                outcome, ident = Outcome.COLLISION, None  # a merged answer of meters in step
            else:
                self.present.update(enumerate(_address_text(ident)[:8]))
                self.on_found(ident, frame)
        if outcome is Outcome.UNREADABLE:
            result.collisions_unresolved.append(f"{node.text}: a meter acknowledged the selection but sent no address")
        if outcome is Outcome.COLLISION:
            self.collisions += 1
            if result.probes >= NOISE_PROBES and not result.meters and self.collisions >= NOISE_SHARE * result.probes:
                self.stop = True
                result.diagnosis = _NOISE.format(
                    lead=f"{self.collisions} of {result.probes} masks collide and no meter answers alone"
                )
                result.collisions_unresolved.append(f"{node.text}: search stopped, every mask collides")
        return outcome, ident

    def hex_digits(self, node: _Mask, pos: int, digits: str = HEX_ONLY) -> list[tuple[str, Outcome | None]]:
        """The children of ``node`` at ID position ``pos`` (of ``digits``) that may hold a meter, with their
        outcome when the scan-wide probe already tells it (None: probe the child)."""
        out: list[tuple[str, Outcome | None]] = []
        is_root = node.chars == self.root.chars
        for digit in digits:
            if (pos, digit) in self.present and (pos, digit) not in self.scan_wide:
                out.append((digit, None))  # a meter found has it: no scan-wide probe needed
                continue
            key = (pos, digit)
            if key not in self.scan_wide:
                if self.stop or self.result.stopped_at_limit:
                    return out
                self.pending += 1
                self.scan_wide[key] = self.probe(self.root.with_digit(pos, digit))
                self.pending -= 1
            outcome, ident = self.scan_wide[key]
            if outcome is Outcome.NOTHING:
                continue
            if is_root:
                out.append((digit, outcome))  # the scan-wide mask is this very child
            elif outcome is Outcome.SINGLE and ident is not None:
                # the only meter with this digit here: the child holds it (found already) or nothing
                out.append((digit, Outcome.SINGLE if node.with_digit(pos, digit).holds(ident) else Outcome.NOTHING))
            elif outcome is Outcome.COLLISION:
                out.append((digit, None))
            # UNREADABLE: the one meter with this digit is reported under the scan-wide mask already
        return out

    def explore(self, node: _Mask, known: Outcome | None = None) -> Outcome:
        """Probe ``node`` (unless ``known``) and split it while it collides."""
        if self.stop or self.result.stopped_at_limit:
            return Outcome.NOTHING
        outcome = self.probe(node)[0] if known is None else known
        if outcome is not Outcome.COLLISION or self.stop:
            return outcome
        pos = next((p for p in self.order if node.chars[p] == "F"), None)
        if pos is None:
            reason = self.master.last_bad
            self.result.collisions_unresolved.append(f"{node.text}: {reason}" if reason else node.text)
            return outcome
        self.split(node, pos)
        return outcome

    def split(self, node: _Mask, pos: int) -> None:
        children: list[tuple[str, Outcome | None]] = [(d, None) for d in (ID_DIGITS if pos < 8 else HEX_DIGITS)]
        if pos < 8 and self.chains.get(pos, 0) >= CHAINS and node.chars != self.root.chars:
            # Splits at this position keep finding one busy child among silent ones (runs of consecutive
            # serials share their leading digits): one scan-wide probe per decimal digit no meter found has
            # yet rules a digit out at every node of the position at once.
            children = self.hex_digits(node, pos, ID_DIGITS)
        if self.reverse and pos < 8 and node.chars == self.root.chars and self.order[0] == pos:
            children = self.reverse_root(node, pos, children)
            if not children:
                return
        if pos < 8:
            children += self.hex_digits(node, pos)
        silent = True
        busy = 0
        self.pending += len(children)
        for index, (digit, known) in enumerate(children):
            self.pending -= 1
            if self.stop or self.result.stopped_at_limit:
                self.pending -= len(children) - index - 1
                return
            if known is None and silent and index == len(children) - 1:
                known = Outcome.COLLISION  # every other child was silent: the last holds them all
            got = self.explore(node.with_digit(pos, digit), known)
            busy += got is not Outcome.NOTHING
            silent = silent and got is Outcome.NOTHING
        if pos < 8 and busy == 1:
            self.chains[pos] = self.chains.get(pos, 0) + 1

    def reverse_root(
        self, node: _Mask, pos: int, children: list[tuple[str, Outcome | None]]
    ) -> list[tuple[str, Outcome | None]]:
        """SECONDARYSCANREVERSE's first split, probed level-wise: two colliding last digits mean the last
        digit does not tell this bus's meters apart, and the rest of the search runs in forward order
        (the meters found so far stay found). Only the decimal digits are probed here (the hex ones follow
        if the search stays reverse). Returns the children still to explore, with their outcomes."""
        probed: list[tuple[str, Outcome | None]] = []
        collided = 0
        self.pending += len(children)
        for index, (digit, known) in enumerate(children):
            self.pending -= 1
            if self.stop or self.result.stopped_at_limit:
                return []
            got = self.probe(node.with_digit(pos, digit))[0] if known is None else known
            probed.append((digit, got))
            collided += got is Outcome.COLLISION
            if collided == 2:
                self.pending -= len(children) - index - 1
                self.reverse = False
                self.order = self._order(False)
                self.split(node, self.order[0])
                return []
        return probed


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

    def found(ident: Identity, frame: link.LongFrame) -> None:
        if ident in seen:
            return
        nonlocal new
        seen.add(ident)
        primary = primary_of(frame)
        same = listed.get(_key(ident.id, ident.manufacturer, ident.version, ident.medium))
        if alloc and same is not None:
            primary = same.primary_address
        elif alloc and free:
            primary = free.pop(0)
            master.select(ident.select_bytes)  # verification may have selected another meter since
            master.transact(link.snd_ud(link.ADDRESS_NETWORK, link.CI_DATA_SEND, bytes((0x01, 0x7A, primary))))
        result.meters.append(meter_from_identity(ident, primary=primary, mode=AddressMode.SECONDARY))
        new += same is None
        if room and new >= room:
            result.stopped_at_limit = True

    search = _Search(master, root, reverse, found, result, on_progress)
    search.explore(root)
    exact = [t for t in result.collisions_unresolved if len(t) == 16]
    if result.diagnosis is None and len(exact) >= 2:
        # several full addresses collide: duplicates happen, but more than one usually means noise
        result.diagnosis = _NOISE.format(
            lead=f"{len(exact)} full secondary addresses answer for more than one meter"
        )
    result.elapsed = master.clock.now() - start
    return result


def _key(serial: str, manufacturer: str | None, version: int | None, medium: int | None) -> tuple[str, str, int, int]:
    return serial.upper().zfill(8), (manufacturer or "").upper(), version or 0, medium or 0


def _room(limit: int, listed: int) -> int:
    """New meters the list still takes (0 = no limit); a full list stops the scan at its first new meter."""
    return max(limit - listed, 1) if limit else 0
