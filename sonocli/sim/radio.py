"""Simulated radio traffic, delivered through a simulated receiver stick (``sim://air?dongle=im871a``).

The peer answers the stick's set-up commands as the real firmware does, so drivers run their real code
path, and only starts reporting telegrams once the stick has been put into a receive mode (sticks that
need no set-up, rtl-wmbus and hex lines, report from the start). Telegrams are wrapped in the stick's own
framing. Faults can be injected: ``garbage=N`` puts noise before every Nth telegram, ``badcrc=N`` breaks
every Nth telegram, ``mute=1`` makes the stick ignore its commands. ``rate=`` telegrams a second (default
20). Plain ``sim://air`` is paced on the real clock (a demo daemon idles); with ``count=`` or ``rate=`` it
runs on the virtual clock, as fast as it is read, unless ``clock=real`` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sonocli.codecs.wmbus_link import (
    ELL_CIS,
    LONG_TPL_CIS,
    SHORT_TPL_CIS,
    add_format_a_crcs,
    add_format_b_crcs,
    normalise_frame,
)
from sonocli.errors import UsageError
from sonocli.model.valueclass import valueclass
from sonocli.registry import dongle_names
from sonocli.sim.peer import Clock

if TYPE_CHECKING:
    import random

DONGLES = dongle_names()  # the registry's receiver names: every stick sonocli drives can be simulated

# Public example telegrams (see tests/data/wmbus/README.md for their sources), with their published keys.
DEFAULT_TELEGRAMS: tuple[tuple[str, str | None], ...] = (
    # (OMS Annex N.2.1 is left out: its meter ID/manufacturer equal the CEN F.3 example's, with another key.)
    # OMS Vol.2 Annex N.5.3, partial encryption
    ("304493444433221155378C00757288776655934455080004100500DFE2A782146D1513581CD2F83F39040CFD1078563412",
     "000102030405060708090A0B0C0D0E0F"),
    # CEN/TR 17167 F.3, mode 7 with AFL MAC
    ("530824484433221103378E80753A63665544330A31900F002C25B30A0000AF5D74DF73A600D9727856341293153303750020"
     "07109058475F4BC91DF878B80A1B0F98B629024AAC727942BFC549233C0140829B93",
     "000102030405060708090A0B0C0D0E0F"),
    # Kamstrup ELL AES-CTR (exmbus)
    ("35442D2C1131342733028D20E9603A102008C67C819AAE99B4DE753AA136EF64917ED9D8B2E2D35840BDEA173B8FE14CCE3F14"
     "06B7CF", "0102030405060708090A0B0C0D0E0F10"),
    # Lansen, plain
    ("26443330670001000B1E7A070003002F2F02FD1B000002FD971D000002FD3AFF038240FD3AFF03", None),
    # LSE warm water, plain (jMBus)
    ("2C446532821851582C067AE1000000046D1906D9180C1334120000426CBF1C4C1300000000326CFFFF01FD7300", None),
    # ELV room sensor, plain (jMBus)
    ("6044961599030023021B7A2B0000202F2F0265A5FA426566FA8201655FFA22650DFA1265C9FA6265FBF95265F2FA02FB1A"
     "CC0242FB1A0B038201FB1A040322FB1A850212FB1A270362FB1A810252FB1A380302FD1B30830DFD0F05312E302E310F", None),
    # Sontex HCA, real capture, mode 5 (exmbus)
    ("BE44EE4D1955332816087A9200B025351FF8F999176A2E38DD8C6AC62B8D9453009F42A0828C23F6F0602AAE7101912A309C"
     "1570FFD519785FEB5A7AF908515775C9947A6F7EC16214A666E0685BD5FF162A28B32C9F9ED67500ECA19EB4873D837DB219A2"
     "E865574A5D0D34E00DE45E0DC3FB2767E5CF7881B674719CC84C8C89D73C55779A7D37DDBD439D6B402B0912BEA8DA5207379148"
     "8224334C48188AAA7DBD83A0A856657B649C40B809DF325CFA0C39D817466847F4CB83E623BA",
     "1AC8BD4C1421E45C4D11456AC0467A83"),
)


@valueclass(frozen=True, slots=True)
class SimTelegram:
    telegram: bytes  # L C M A ..., no CRCs
    key: bytes | None = None


def parse_telegram_lines(text: str, source: str = "telegrams") -> list[SimTelegram]:
    """``HEX [KEY]`` per line (``#`` comments); CRCs, if present, are checked and removed."""
    out: list[SimTelegram] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.replace(";", " ").replace(",", " ").split()
        try:
            data = bytes.fromhex(parts[0])
            key = bytes.fromhex(parts[1].removeprefix("key=")) if len(parts) > 1 else None
            telegram, _ = normalise_frame(data)
        except (ValueError, UsageError) as exc:
            raise UsageError(f"{source}:{number}: not a telegram line ({exc}); expected HEX [KEY]") from None
        if key is not None and len(key) != 16:
            raise UsageError(f"{source}:{number}: key must be 32 hex digits")
        out.append(SimTelegram(telegram, key))
    if not out:
        raise UsageError(f"{source}: no telegrams in the file")
    return out


def default_telegrams() -> list[SimTelegram]:
    return [
        SimTelegram(normalise_frame(bytes.fromhex(h))[0], bytes.fromhex(k) if k else None)
        for h, k in DEFAULT_TELEGRAMS
    ]


def vary_access_number(item: SimTelegram, cycle: int) -> bytes:
    """The telegram as the meter sends it the ``cycle``-th time: access number advanced by ``cycle``.

    Real meters count ACC up with every transmission, and receivers rely on it to tell repeats from new
    telegrams. Plain and mode-5 telegrams (re-encrypted with their key) are varied; others (mode 7, whose
    MAC covers the header, and ELL-encrypted ones) are sent unchanged.
    """
    telegram = item.telegram
    if cycle == 0:
        return telegram
    out = bytearray(telegram)
    pos = 10
    ci = out[pos]
    if ci in ELL_CIS:
        if ci in (0x8D, 0x8F):
            return telegram  # ACC inside the CTR-protected part may be repeated; keep it simple and exact
        out[pos + 2] = (out[pos + 2] + cycle) & 0xFF
        pos += 1 + ELL_CIS[ci]
        if pos >= len(out):
            return bytes(out)
        ci = out[pos]
    if ci == 0x90:
        return telegram
    if ci in SHORT_TPL_CIS:
        acc_at = pos + 1
    elif ci in LONG_TPL_CIS:
        acc_at = pos + 9
    else:
        return bytes(out)
    if acc_at + 3 >= len(out):
        return telegram
    cfg = int.from_bytes(out[acc_at + 2 : acc_at + 4], "little")
    mode = (cfg >> 8) & 0x1F
    old_acc = out[acc_at]
    new_acc = (old_acc + cycle) & 0xFF
    out[acc_at] = new_acc
    if mode == 0:
        return bytes(out)
    if mode != 5 or item.key is None:
        return telegram
    blocks = (cfg >> 4) & 0x0F
    start = acc_at + 4
    size = blocks * 16 if blocks else (len(out) - start) // 16 * 16
    address = bytes(out[pos + 1 : pos + 9]) if ci in LONG_TPL_CIS else bytes(out[2:10])
    if ci in LONG_TPL_CIS:
        address = address[4:6] + address[0:4] + address[6:8]
    from sonocli.codecs import crypto

    plain = crypto.aes_cbc_decrypt(item.key, crypto.mode5_iv(address, old_acc), bytes(out[start : start + size]))
    if plain[:2] != b"\x2f\x2f":
        return telegram  # already plaintext (pre-decrypted capture) or a wrong key in the file
    out[start : start + size] = crypto.aes_cbc_encrypt(item.key, crypto.mode5_iv(address, new_acc), plain)
    return bytes(out)


def _int_param(params: dict[str, str], name: str, default: int, low: int = 0) -> int:
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"sim://air parameter {name}={text!r} is not a whole number") from None
    if value < low:
        raise UsageError(f"sim://air parameter {name}={value} must be at least {low}")
    return value


DEFAULT_RATE = 20.0  # telegrams per second: a busy T1 channel in a block of flats, not a CPU benchmark


def paced_in_real_time(params: dict[str, str]) -> bool:
    """Whether ``sim://air`` runs on the real clock when no ``clock=`` is given: plain ``sim://air`` does.

    On the virtual clock the simulated air delivers telegrams as fast as they can be decoded: that makes
    tests and benchmarks fast (they say ``count=`` or ``rate=``), but a demo daemon on plain ``sim://air``
    would spin at full CPU and log without pause. Real meters on one T1 channel send a few dozen telegrams
    a second at most, so the plain air is paced in real time at :data:`DEFAULT_RATE`.
    """
    return not params.get("count") and not params.get("rate")


class RadioPeer:
    """The far end of ``sim://air``: a receiver stick hearing simulated meters (implements SimPeer)."""

    def __init__(self, params: dict[str, str], clock: Clock) -> None:
        self.dongle = params.get("dongle", "im871a").lower()
        if self.dongle not in DONGLES:
            raise UsageError(f"sim://air parameter dongle={self.dongle!r}; allowed: {', '.join(DONGLES)}")
        try:
            rate = float(params.get("rate", str(DEFAULT_RATE)))
        except ValueError:
            raise UsageError(f"sim://air parameter rate={params.get('rate')!r} is not a number") from None
        if not 0 < rate <= 100000:
            raise UsageError(f"sim://air parameter rate={rate} must be in (0, 100000] telegrams per second")
        self.interval = 1.0 / rate
        self.count = _int_param(params, "count", 0)  # 0 = repeat the set forever
        self.mode = params.get("mode", "T1").upper()
        self.garbage_every = _int_param(params, "garbage", 0)
        self.badcrc_every = _int_param(params, "badcrc", 0)
        self.mute = params.get("mute", "0") not in ("0", "", "false")
        self.seed = _int_param(params, "seed", 1)
        self._rng: random.Random | None = None  # made with the first noise: random costs ~1 ms to import
        if params.get("file"):
            path = Path(params["file"])
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"sim://air file={path}: {exc.strerror}") from None
            self.telegrams = parse_telegram_lines(text, str(path))
        else:
            self.telegrams = default_telegrams()
        self.clock = clock
        self._pending: list[tuple[float, bytes]] = []
        self._inbox = bytearray()
        self._sent = 0
        self._next_telegram: float | None = None
        if self.dongle in ("rtlwmbus", "hex"):
            self._next_telegram = clock.now()

    # --- SimPeer -------------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        self._inbox += data
        for command in self._split_commands():
            if self.mute:
                continue
            reply = self._answer(command)
            if reply is not None:
                self._pending.append((now + 0.002, reply))
                if self._is_mode_command(command) and self._next_telegram is None:
                    self._next_telegram = now + 0.01

    def poll(self, now: float) -> bytes:
        self._schedule_until(now)
        ready = [item for item in self._pending if item[0] <= now]
        if not ready:
            return b""
        self._pending = [item for item in self._pending if item[0] > now]
        ready.sort(key=lambda item: item[0])
        return b"".join(chunk for _, chunk in ready)

    def next_event(self) -> float | None:
        times = [when for when, _ in self._pending]
        if self._next_telegram is not None and not self._exhausted():
            times.append(self._next_telegram)
        return min(times) if times else None

    # --- internals -----------------------------------------------------------------------------

    def _exhausted(self) -> bool:
        return self.count > 0 and self._sent >= self.count

    def _schedule_until(self, now: float) -> None:
        while self._next_telegram is not None and self._next_telegram <= now and not self._exhausted():
            when = self._next_telegram
            index = self._sent
            item = self.telegrams[index % len(self.telegrams)]
            chunk = self._wrap(vary_access_number(item, index // len(self.telegrams)), index)
            if self.badcrc_every and (index + 1) % self.badcrc_every == 0:
                chunk = self._break(chunk)
            if self.garbage_every and (index + 1) % self.garbage_every == 0:
                chunk = self._noise() + chunk
            self._pending.append((when, chunk))
            self._sent += 1
            self._next_telegram = when + self.interval

    def _rssi(self, telegram: bytes) -> int:
        return -40 - (sum(telegram[2:10]) % 50)

    def _wrap(self, telegram: bytes, index: int) -> bytes:
        # each stick's framing is imported where it is used: a simulated stick loads only its own (~0.6 ms less
        # before the first telegram than all five); after the first telegram the import is a dict look-up
        rssi = self._rssi(telegram)
        if self.dongle == "im871a":
            from sonocli.codecs.dongles import im871a

            return im871a.encode_indication(telegram, rssi)
        if self.dongle == "amb8465":
            from sonocli.codecs.dongles import amb8465

            return amb8465.encode_indication(telegram, rssi)
        if self.dongle == "cul":
            from sonocli.codecs.dongles import cul

            if self.mode == "C1" and index % 2:
                return cul.encode_indication(add_format_b_crcs(telegram), "B", rssi)
            return cul.encode_indication(add_format_a_crcs(telegram), "A", rssi)
        if self.dongle == "rtlwmbus":
            from sonocli.codecs.dongles import rtlwmbus

            return rtlwmbus.encode_indication(telegram, self.mode if self.mode in ("T1", "C1", "S1") else "T1", -rssi)
        from sonocli.codecs.dongles import hexlines

        return hexlines.encode_indication(add_format_a_crcs(telegram), rssi)

    def _break(self, chunk: bytes) -> bytes:
        """Corrupt a frame so the stick framing (or, for text framings, the DLL CRC) detects it."""
        if self.dongle in ("im871a", "amb8465"):
            return chunk[:-1] + bytes([chunk[-1] ^ 0x5A])
        if self.dongle == "rtlwmbus":
            return chunk.replace(b";1;1;", b";0;1;", 1)
        # cul / hex carry DLL CRCs in the hex text: change one digit of the payload
        text = bytearray(chunk)
        pos = 30
        text[pos] = ord("0") if text[pos] != ord("0") else ord("1")
        return bytes(text)

    @property
    def rng(self) -> random.Random:
        if self._rng is None:
            import random

            self._rng = random.Random(self.seed)
        return self._rng

    def _noise(self) -> bytes:
        if self.dongle in ("im871a", "amb8465"):
            return bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 24)))
        return b"~noise " + bytes(self.rng.choice(b"0123456789XYZ") for _ in range(12)) + b"\r\n"

    def _split_commands(self) -> list[bytes]:
        buf = self._inbox
        out: list[bytes] = []
        while buf:
            if self.dongle in ("cul", "rtlwmbus", "hex"):
                end = buf.find(b"\n")
                if end < 0:
                    break
                out.append(bytes(buf[: end + 1]))
                del buf[: end + 1]
                continue
            start = 0xA5 if self.dongle == "im871a" else 0xFF
            if buf[0] != start:
                del buf[0]
                continue
            if len(buf) < 4:
                break
            size = 4 + (buf[3] + (2 if buf[1] & 0x80 else 0) if self.dongle == "im871a" else buf[2])
            if len(buf) < size:
                break
            out.append(bytes(buf[:size]))
            del buf[:size]
        return out

    def _answer(self, command: bytes) -> bytes | None:
        if self.dongle == "im871a":
            from sonocli.codecs.dongles import im871a

            return im871a.answer(command)
        if self.dongle == "amb8465":
            from sonocli.codecs.dongles import amb8465

            return amb8465.answer(command)
        if self.dongle == "cul":
            from sonocli.codecs.dongles import cul

            return cul.answer(command)
        return None

    def _is_mode_command(self, command: bytes) -> bool:
        if self.dongle == "im871a":
            from sonocli.codecs.dongles import im871a

            return command[2] == im871a.MSG_SET_CONFIG_REQ
        if self.dongle == "amb8465":
            from sonocli.codecs.dongles import amb8465

            return command[1] == amb8465.CMD_SET_MODE_REQ
        return command.strip().startswith(b"br")


class RadioPort:
    """A minimal pyserial-like port onto a RadioPeer (tests, and ``listen`` when no sim:// handler exists)."""

    def __init__(self, peer: RadioPeer, clock: Clock, timeout: float = 0.1) -> None:
        self.peer = peer
        self.clock = clock
        self.timeout = timeout
        self._rx = bytearray()
        self.is_open = True

    def write(self, data: bytes) -> int:
        self.peer.receive(bytes(data), self.clock.now())
        return len(data)

    def read(self, size: int = 1) -> bytes:
        deadline = self.clock.now() + self.timeout
        while len(self._rx) < size:
            self._rx += self.peer.poll(self.clock.now())
            if len(self._rx) >= size:
                break
            nxt = self.peer.next_event()
            if nxt is None or nxt > deadline:
                self.clock.sleep_until(deadline)
                self._rx += self.peer.poll(self.clock.now())
                break
            self.clock.sleep_until(nxt)
        data = bytes(self._rx[:size])
        del self._rx[:size]
        return data

    @property
    def in_waiting(self) -> int:
        self._rx += self.peer.poll(self.clock.now())
        return len(self._rx)

    def reset_input_buffer(self) -> None:
        self._rx.clear()

    def close(self) -> None:
        self.is_open = False
