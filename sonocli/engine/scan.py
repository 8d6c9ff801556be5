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

A node's children are probed first, then its colliding ones are split. When several collide, the node's
"columns" (the node with the next position fixed and the split position open) may be probed first: a
silent column rules its digit out in every colliding child at once, a single one names its one meter, and
in the last colliding child a colliding column none of whose meters is found elsewhere must collide there.
Columns pay when the colliding children hold few meters each (random serials), not when they are full
(runs of consecutive serials): the search expects what the colliding children at that position held so
far in this scan. This is what brings the search below libmbus' probe count on both kinds of population
although it also tries the hex digits (benchmarks/scan.py).

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

import math
import statistics
from collections.abc import Callable, Iterable
from typing import Any

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
from sonocli.model.valueclass import field, valueclass

ID_DIGITS = "0123456789"
HEX_ONLY = "ABCDE"  # hex ID digits; F is the wildcard itself
HEX_DIGITS = ID_DIGITS + HEX_ONLY
# a scan whose probes nearly all collide, with no meter found, is listening to noise (see _NOISE)
NOISE_PROBES = 60
CHAINS = 1  # splits with one busy child at a position before its digits are probed scan-wide
NOISE_SHARE = 0.9
COLUMN_PRIOR = 4.0  # weight of the children's quiet share in the expected share of quiet columns
COLUMN_GAIN = 1.0  # a column is probed while it is expected to save more probes than this
COLUMN_SIZE = 3.0  # meters a colliding child is expected to hold before the scan has seen any
COLUMN_MEMORY = 8  # colliding children (the latest) whose size the expectation is taken from
_NOISE = (
    "{lead}: that usually means a level converter echoing the request, a "
    "wrong baud rate or parity (MBUS_BAUDRATE, MBUS_PARITY: the meters' rate is often 2400 or 300 baud, 8E1), "
    "or a meter answering every address; try --baud with the meters' rate, switch off the converter's echo, "
    "and disconnect meters one by one to find one that answers everything"
)

Progress = Callable[[int, int | None, str], None]


@valueclass
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


class Journal:
    """The steps of one scan as they happen (a probe, a primary address), for ``scan --resume``.

    A scan is deterministic given what the bus answered: replaying the answers of an interrupted run, in
    order, walks the same way without a byte on the wire, and the search goes on live from the first step
    the journal does not hold (or from the first that differs, should the walk change: the rest is then
    done again). Each step is ``[key, wire seconds, *what was learned]``, JSON-serialisable; ``on_step``
    is told after each live step (the caller saves the journal). ``replayed``: steps answered from it.
    """

    def __init__(self, steps: Iterable[list[Any]] = (), on_step: Callable[[Journal], None] | None = None) -> None:
        self.steps: list[list[Any]] = [list(step) for step in steps]
        self.position = 0
        self.replayed = 0
        self.replayed_seconds = 0.0
        self.on_step = on_step

    def replay(self, key: str) -> list[Any] | None:
        """What the step ``key`` learned the first time, or None: do it live (and ``record`` it)."""
        if self.position < len(self.steps):
            step = self.steps[self.position]
            if step[0] == key:
                self.position += 1
                self.replayed += 1
                self.replayed_seconds += float(step[1])
                return list(step[2:])
            del self.steps[self.position:]  # the walk differs from here: redo the rest live
        return None

    def record(self, key: str, seconds: float, *values: Any) -> None:
        self.steps.append([key, round(seconds, 6), *values])
        self.position = len(self.steps)
        if self.on_step is not None:
            self.on_step(self)


def _ident_json(ident: Identity | None) -> list[Any] | None:
    return None if ident is None else [ident.id, ident.manufacturer, ident.version, ident.medium, ident.fixed]


def _ident_of(data: Any) -> Identity | None:
    if not data:
        return None
    ident, manufacturer, version, medium, fixed = data
    return Identity(str(ident), str(manufacturer), int(version), int(medium), bool(fixed))


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
    journal: Journal | None = None,
) -> ScanResult:
    """SND_NKE to each address in MBUS_MIN..MAXPRIMARYADDRESS; a found meter is read once for its ID.

    Each meter read is verified by selecting it by its secondary address (Master.verify): two meters on one
    address answering in step merge into one answer naming an address neither has, which is reported
    ("address 5 answers for more than one meter"), never listed.

    ``known`` is the meter list: METER_MAXDEVICECOUNT (or ``limit``) counts it, so the scan stops once the
    list would be full; meters already listed do not count twice. ``journal`` as in secondary_scan.
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
    started = master.clock.now()
    total = hi - lo + 1
    for index, address in enumerate(range(lo, hi + 1)):
        result.probes += 1
        step = journal.replay(f"P{address}") if journal is not None else None
        if step is None:
            step = _probe_address(master, address)
            if journal is not None:
                journal.record(f"P{address}", master.clock.now() - started, *step)
            started = master.clock.now()
        heard, broken, ident_data, unresolved = bool(step[0]), bool(step[1]), step[2], str(step[3])
        answered += heard
        garbled += broken
        ident = _ident_of(ident_data)
        if ident is not None:
            result.meters.append(meter_from_identity(ident, primary=address, mode=AddressMode.PRIMARY))
            new += _key(ident.id, ident.manufacturer, ident.version, ident.medium) not in listed
        if unresolved:
            result.collisions_unresolved.append(unresolved)
        if heard and room and new >= room:
            result.stopped_at_limit = True
            on_progress(total, total, f"{len(result.meters)} found (limit)")
            break
        on_progress(index + 1, total, f"{len(result.meters)} found")
    if answered >= max(8, total // 2) and (garbled * 2 >= answered or answered * 10 >= total * 9):
        result.diagnosis = _NOISE.format(
            lead=f"{answered} of {total} primary addresses answer" + (f", {garbled} of them garbled" if garbled else "")
        )
    result.elapsed = master.clock.now() - start + (journal.replayed_seconds if journal is not None else 0.0)
    return result


def _probe_address(master: Master, address: int) -> list[Any]:
    """One address of the primary scan: [answered, garbled, the verified meter (or None), the unresolved
    text (or "")], as the journal keeps it."""
    if not master.probe_primary(address):
        return [False, False, None, ""]
    got = _read_identity(master, address)
    ident = identity_of(got.frame) if isinstance(got.frame, link.LongFrame) else None
    if ident is not None and isinstance(got.frame, link.LongFrame) and master.verify(ident, got.frame):
        return [True, False, _ident_json(ident), ""]
    if ident is not None:
        return [True, False, None, f"primary address {address}: address {address} answers for more than one meter "
                f"(their merged answer names {ident.id}, which no single meter answers to)"]
    if got.bad:
        return [True, True, None, f"primary address {address}: {got.bad} (one meter's broken telegram, or several "
                "meters answering in step)"]
    if got.raw and not got.truncated:
        return [True, True, None, f"primary address {address}"]
    return [True, False, None, f"primary address {address}: a meter acknowledged SND_NKE but sent no address"]


def _read_identity(master: Master, address: int) -> Received:
    """The answer of the meter(s) at ``address`` to REQ_UD2 (garbled when several answer out of step)."""
    master.nke(address)
    master.settle()  # a second meter at this address may still be acknowledging
    return master.transact(link.req_ud2(address, not master.settings.first_fcb_neg))


@valueclass
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


@valueclass
class _Columns:
    """The columns of a colliding node: the node with digit ``q`` fixed (the split position open), probed.
    They tell the outcome of some children of its colliding children without a probe."""

    node: _Mask
    q: int
    probed: dict[str, tuple[Outcome, Identity | None]]

    def preset(self, child: _Mask, *, last: bool, found: set[Identity]) -> dict[str, Outcome]:
        """Known outcomes of ``child``'s children at ``q``. A silent column: silent; a single one: the
        meter's own cell holds it, the others nothing. In the ``last`` colliding child (every other one
        explored, so every meter of the node outside it is found), a colliding column none of whose meters
        is found yet collides in this child's cell."""
        out: dict[str, Outcome] = {}
        for digit, (outcome, ident) in self.probed.items():
            cell = child.with_digit(self.q, digit)
            if outcome is Outcome.NOTHING:
                out[digit] = Outcome.NOTHING
            elif outcome is Outcome.SINGLE and ident is not None:
                out[digit] = Outcome.SINGLE if cell.holds(ident) else Outcome.NOTHING
            elif outcome is Outcome.COLLISION and last and not cell.exact:
                column = self.node.with_digit(self.q, digit)
                if not any(column.holds(m) for m in found):
                    out[digit] = Outcome.COLLISION
        return out


class _Search:
    """One secondary search: the tree walk, the scan-wide hex-digit probes, verification and the limit."""

    def __init__(
        self,
        master: Master,
        root: _Mask,
        reverse: bool,
        on_found: Callable[[Identity, int, bool], None],
        result: ScanResult,
        on_progress: Progress,
        journal: Journal | None = None,
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
        self.found: set[Identity] = set()  # every meter a probe found (verified)
        self.sizes: dict[int, list[int]] = {}  # per split position: meters each colliding child held
        self.stop = False
        self.journal = journal
        self.last_bad = ""  # why the last probe's answer was refused (a checksum, say)
        self.started = master.clock.now()  # when the current step began (its wire time goes to the journal)

    @staticmethod
    def _order(reverse: bool) -> list[int]:
        return (list(range(7, -1, -1)) if reverse else list(range(8))) + list(range(8, 16))

    def identify(self, node: _Mask) -> tuple[Outcome, Identity | None, int]:
        """Select ``node`` and read who answers: a single answer counts only once verified (a merged answer
        of meters in step is a collision). Returns the outcome, the meter and the primary address its
        answer carries."""
        self.last_bad = ""
        outcome, ident, frame = self.master.identify(node.select_bytes())
        self.last_bad = self.master.last_bad
        if outcome is Outcome.SINGLE and (ident is None or frame is None):
            return Outcome.UNREADABLE, None, 0
        if outcome is not Outcome.SINGLE or ident is None or frame is None:
            return outcome, None, 0
        if not node.holds(ident) or not (node.exact or self.master.verify(ident, frame)):
            return Outcome.COLLISION, None, 0  # a merged answer of meters in step
        return outcome, ident, primary_of(frame)

    def probe(self, node: _Mask) -> tuple[Outcome, Identity | None]:
        """Probe one mask; a meter found under a wildcard is listed only once verified."""
        result = self.result
        result.probes += 1
        step = self.journal.replay(f"S{node.text}") if self.journal is not None else None
        if step is not None:
            outcome, ident, primary, self.last_bad = Outcome(step[0]), _ident_of(step[1]), int(step[2]), str(step[3])
        else:
            outcome, ident, primary = self.identify(node)
        if outcome is Outcome.SINGLE and ident is not None:
            self.present.update(enumerate(_address_text(ident)[:8]))
            self.found.add(ident)
            self.on_found(ident, primary, step is None)
        if step is None:
            if self.journal is not None:  # journalled once the meter is listed (and, ALLOC, addressed)
                self.journal.record(f"S{node.text}", self.master.clock.now() - self.started, outcome.value,
                                    _ident_json(ident), primary, self.last_bad)
            self.started = self.master.clock.now()
        # The tree's size is unknown in advance; probes done plus the masks already queued is the least
        # the scan still needs, which gives the progress bar a total and a time left.
        self.on_progress(result.probes, result.probes + self.pending, f"{len(result.meters)} found, mask {node.text}")
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
        if self.halted:
            return Outcome.NOTHING
        outcome = self.probe(node)[0] if known is None else known
        if outcome is Outcome.COLLISION and not self.stop:
            self.descend(node)
        return outcome

    @property
    def halted(self) -> bool:
        return self.stop or self.result.stopped_at_limit

    def descend(self, node: _Mask, preset: dict[str, Outcome] | None = None) -> None:
        """Split the colliding ``node`` at its next wildcard; ``preset``: children outcomes already known."""
        pos = next((p for p in self.order if node.chars[p] == "F"), None)
        if pos is None:
            reason = self.last_bad
            self.result.collisions_unresolved.append(f"{node.text}: {reason}" if reason else node.text)
            return
        self.split(node, pos, preset or {})

    def split(self, node: _Mask, pos: int, preset: dict[str, Outcome]) -> None:
        """Probe the children of the colliding ``node`` at ``pos`` level-wise, then split the colliding ones
        (with what the columns tell about their own children)."""
        children: list[tuple[str, Outcome | None]] = [(d, None) for d in (ID_DIGITS if pos < 8 else HEX_DIGITS)]
        if pos < 8 and self.chains.get(pos, 0) >= CHAINS and node.chars != self.root.chars:
            # Splits at this position keep finding one busy child among silent ones (runs of consecutive
            # serials share their leading digits): one scan-wide probe per decimal digit no meter found has
            # yet rules a digit out at every node of the position at once.
            rest = "".join(d for d in ID_DIGITS if d not in preset)
            children = sorted(self.hex_digits(node, pos, rest) + [(d, None) for d in preset], key=lambda c: c[0])
        if self.reverse and pos < 8 and node.chars == self.root.chars and self.order[0] == pos:
            children = self.reverse_root(node, pos, children)
            if not children:
                return
        if pos < 8:
            children += self.hex_digits(node, pos)
        children = [(d, preset.get(d, known)) for d, known in children]
        unresolved = len(self.result.collisions_unresolved)
        outcomes = self.probe_children(node, pos, children)
        if outcomes is None:
            return
        busy = sum(o is not Outcome.NOTHING for o in outcomes.values())
        if pos < 8 and busy == 1:
            self.chains[pos] = self.chains.get(pos, 0) + 1
        colliding = [d for d, o in outcomes.items() if o is Outcome.COLLISION]
        singles = sum(o is Outcome.SINGLE for o in outcomes.values())
        columns = self.columns(node, pos, colliding, singles)
        clean = not any(o is Outcome.UNREADABLE for o in outcomes.values())
        for index, digit in enumerate(colliding):
            if self.halted:
                return
            child = node.with_digit(pos, digit)
            told: dict[str, Outcome] = {}
            if columns is not None:
                last = index == len(colliding) - 1 and clean and len(self.result.collisions_unresolved) == unresolved
                told = columns.preset(child, last=last, found=self.found)
            before = len(self.found) - sum(o is Outcome.SINGLE for o in told.values())
            self.descend(child, told)
            # the meters of a colliding child at this position: what the next columns here expect
            self.sizes.setdefault(pos, []).append(len(self.found) - before)

    def probe_children(
        self, node: _Mask, pos: int, children: list[tuple[str, Outcome | None]]
    ) -> dict[str, Outcome] | None:
        """The outcome of each child (probed unless known); None when the search stopped meanwhile."""
        out: dict[str, Outcome] = {}
        silent = True
        unknown = sum(known is None for _, known in children)
        self.pending += unknown
        for index, (digit, known) in enumerate(children):
            if self.halted:
                self.pending -= unknown
                return None
            if known is None:
                unknown -= 1
                self.pending -= 1
                if silent and index == len(children) - 1:
                    known = Outcome.COLLISION  # every other child was silent: the last holds them all
            got = self.probe(node.with_digit(pos, digit))[0] if known is None else known
            out[digit] = got
            silent = silent and got is Outcome.NOTHING
        return out

    def columns(self, node: _Mask, pos: int, colliding: list[str], singles: int) -> _Columns | None:
        """Probe the columns of a node with several colliding children: the node with a digit fixed at the
        next position and a wildcard at ``pos``. A silent column rules its digit out in every colliding
        child at once, a single one names the one meter of it; either saves a probe per colliding child.

        Whether a column is worth its probe depends on how many meters the colliding children hold: few
        (random serials: about three) leave many columns quiet, many (runs of consecutive serials: ten per
        tens digit) fill every column. The expected size is what colliding children split at ``pos`` held
        so far in this scan (COLUMN_SIZE before any); columns are probed while the share of quiet ones,
        expected from it and then as seen, saves more than a probe per column."""
        if pos >= 8 or len(colliding) < 2:
            return None
        q = next((p for p in self.order if node.chars[p] == "F" and p != pos), None)
        if q is None or q >= 8:
            return None
        sizes = self.sizes.get(pos)
        size = statistics.fmean(sizes[-COLUMN_MEMORY:]) if sizes else COLUMN_SIZE
        load = (singles + len(colliding) * size) / 10  # expected meters per column
        prior = math.exp(-load) * (1 + load)  # a column with at most one meter (Poisson)
        probed: dict[str, tuple[Outcome, Identity | None]] = {}
        quiet = 0
        for digit in ID_DIGITS:
            share = (quiet + COLUMN_PRIOR * prior) / (len(probed) + COLUMN_PRIOR)
            if share * len(colliding) <= COLUMN_GAIN or self.halted:
                break
            got = self.probe(node.with_digit(q, digit))
            probed[digit] = got
            quiet += got[0] in (Outcome.NOTHING, Outcome.SINGLE)
        return _Columns(node, q, probed) if probed else None

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
                self.split(node, self.order[0], {})
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
    journal: Journal | None = None,
) -> ScanResult:
    """The wildcard tree search; ``reverse`` for SECONDARYSCANREVERSE, ``alloc`` for the ALLOC variants.

    ``journal``: the steps of an interrupted run of this very scan to replay, and where new ones go.

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

    def found(ident: Identity, primary: int, live: bool) -> None:
        if ident in seen:
            return
        nonlocal new
        seen.add(ident)
        same = listed.get(_key(ident.id, ident.manufacturer, ident.version, ident.medium))
        if alloc and same is not None:
            primary = same.primary_address
        elif alloc and free:
            primary = free.pop(0)
            if live:  # a replayed step (--resume) addressed the meter in the interrupted run already
                master.select(ident.select_bytes)  # verification may have selected another meter since
                master.transact(link.snd_ud(link.ADDRESS_NETWORK, link.CI_DATA_SEND, bytes((0x01, 0x7A, primary))))
        result.meters.append(meter_from_identity(ident, primary=primary, mode=AddressMode.SECONDARY))
        new += same is None
        if room and new >= room:
            result.stopped_at_limit = True

    search = _Search(master, root, reverse, found, result, on_progress, journal)
    search.explore(root)
    exact = [t for t in result.collisions_unresolved if len(t) == 16]
    if result.diagnosis is None and len(exact) >= 2:
        # several full addresses collide: duplicates happen, but more than one usually means noise
        result.diagnosis = _NOISE.format(
            lead=f"{len(exact)} full secondary addresses answer for more than one meter"
        )
    result.elapsed = master.clock.now() - start + (journal.replayed_seconds if journal is not None else 0.0)
    return result


def _key(serial: str, manufacturer: str | None, version: int | None, medium: int | None) -> tuple[str, str, int, int]:
    return serial.upper().zfill(8), (manufacturer or "").upper(), version or 0, medium or 0


def _room(limit: int, listed: int) -> int:
    """New meters the list still takes (0 = no limit); a full list stops the scan at its first new meter."""
    return max(limit - listed, 1) if limit else 0
