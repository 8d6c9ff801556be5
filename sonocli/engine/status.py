"""The daemon's state as ``sonocli status`` shows it: a snapshot the daemon keeps in the store, plus what the
store knows by itself.

Why a snapshot in the store (sonocli.store.status) rather than asking the process: ``status`` has to work
over SSH, as another user, while the daemon is busy with a long scan or hung - exactly when a control
socket would not answer. The daemon's :class:`StatusTracker` collects what only the daemon knows (its
start, the last readout or reception per interface and its result, the last delivery and error per
channel, the schedule, where the XML pull server listens) and writes it after every step and at least
every :data:`HEARTBEAT` seconds; :func:`collect` reads it and adds the outbox, the meters heard in the last
hour and the store's disk use, and decides whether the daemon runs: its PID file names a live process
(sonocli.service.daemonctl) and the snapshot is younger than :data:`STALE_AFTER`.

Flash wear: one small row replaced per step and per heartbeat, about 2 MB a day of page writes at the
default heartbeat, against the readings' own writes; receptions are only counted in memory between writes.

Times: the daemon may run on a virtual clock (tests, benchmarks), so every event time in the snapshot is
on the daemon's clock, and the snapshot carries that clock's offset from the wall clock; staleness is
judged on the wall clock (``written_at``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sonocli import logs
from sonocli.errors import SonoError

if TYPE_CHECKING:
    from sonocli.engine.core import Engine
    from sonocli.store.status import Snapshot

log = logs.logger("sonocli.daemon")

HEARTBEAT = 120.0  # seconds between snapshot writes while nothing else happens
STALE_AFTER = 3 * HEARTBEAT + 60.0  # a snapshot older than this, of a live process: the daemon is hung
HEARD_WINDOW = 3600.0  # "meters heard in the last hour"
TOP_KEYS = ("daemon", "interfaces", "channels", "outbox", "heard", "store")


def iso(when: float | None) -> str | None:
    """UNIX seconds as ``2026-12-03T16:45:54Z`` (None stays None)."""
    if when is None:
        return None
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version() -> str:
    from sonocli import __version__

    return str(__version__)


class StatusTracker:
    """The daemon's side: the scheduler and its threads report events here; the main thread writes.

    Event methods may be called from any thread (receivers report receptions); :meth:`write` only from the
    main thread. A write that fails (disk full, read-only root) is logged once and retried at the next one:
    the status is an aid, never a reason for the daemon to stop reading meters.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], float], wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic, heartbeat: float = HEARTBEAT) -> None:
        self.engine = engine
        self.clock = clock
        self.wall = wall
        self.monotonic = monotonic
        self.heartbeat = heartbeat
        self._lock = threading.Lock()
        self._last_write: float | None = None
        self._failing = False
        self.started = clock()
        self.started_wall = wall()
        self.state = "running"
        self.stopped: float | None = None
        self.next_readout: float | None = None
        self.next_report: float | None = None
        self.interfaces: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.seen: dict[str, float] = {}  # listed wM-Bus meters: device_id -> last reception (clock)
        self.tcp_server: str | None = None

    # -- events (any thread) ------------------------------------------------------------------------------
    def interface(self, name: str, kind: str, port: str) -> None:
        """An interface the daemon runs (wired bus, wireless receiver, DLDE port), before its first event."""
        with self._lock:
            entry = self.interfaces.setdefault(name, {"last": None, "result": None, "ok": None})
            entry.update(kind=kind, port=port)

    def drop_interface(self, name: str) -> None:
        with self._lock:
            self.interfaces.pop(name, None)

    def event(self, name: str, ok: bool, result: str, at: float | None = None) -> None:
        """The last readout or reception of interface ``name`` and its result (one line)."""
        with self._lock:
            entry = self.interfaces.setdefault(name, {"kind": name, "port": ""})
            entry.update(last=self.clock() if at is None else at, result=result, ok=ok)

    def reception(self, name: str, device_id: str) -> None:
        """A reading of a listed wM-Bus meter received on interface ``name`` (the hot path: memory only)."""
        now = self.clock()
        with self._lock:
            self.seen[device_id] = now
            entry = self.interfaces.setdefault(name, {"kind": "wmbus", "port": ""})
            entry["received"] = int(entry.get("received") or 0) + 1
            entry.update(last=now, result=f"reading of {device_id} stored", ok=True)

    def delivery(self, channel: str, sent: int, failed: int, error: str | None) -> None:
        """One delivery run of ``channel``: reports sent, failed, and the error of the last failure."""
        now = self.clock()
        with self._lock:
            entry = self.channels.setdefault(channel, {"last_delivery": None, "last_error": None,
                                                       "last_error_at": None, "delivered": 0})
            if sent:
                entry["last_delivery"] = now
                entry["delivered"] = int(entry.get("delivered") or 0) + sent
            if failed or error:
                entry["last_error"] = error or f"{failed} report(s) failed"
                entry["last_error_at"] = now

    def schedule(self, next_readout: float | None, next_report: float | None) -> None:
        with self._lock:
            self.next_readout, self.next_report = next_readout, next_report

    def listening(self, description: str | None) -> None:
        """Where the XML pull server listens (``TcpServer.describe()``), None when it stopped."""
        with self._lock:
            self.tcp_server = description

    # -- writing (main thread) ----------------------------------------------------------------------------
    def body(self) -> dict[str, Any]:
        with self._lock:
            return {
                "pid": os.getpid(),
                "version": _version(),
                "state": self.state,
                "started": self.started,
                "started_wall": self.started_wall,
                "stopped": self.stopped,
                "clock_offset": self.clock() - self.wall(),
                "heartbeat": self.heartbeat,
                "next_readout": self.next_readout,
                "next_report": self.next_report,
                "interfaces": {k: dict(v) for k, v in self.interfaces.items()},
                "channels": {k: dict(v) for k, v in self.channels.items()},
                "seen": {k: v for k, v in self.seen.items() if v >= self.clock() - HEARD_WINDOW},
                "tcp_server": self.tcp_server,
            }

    def due(self) -> bool:
        return self._last_write is None or self.monotonic() - self._last_write >= self.heartbeat

    def write(self, *, force: bool = True) -> bool:
        """Save the snapshot (``force=False``: only when a heartbeat is due). True when written."""
        if not force and not self.due():
            return False
        from sonocli.store.status import StatusStore

        self._last_write = self.monotonic()
        try:
            self.engine.layout.ext.mkdir(parents=True, exist_ok=True)
            store = StatusStore(self.engine.layout.database)
            try:
                store.save(self.body(), self.wall())
            finally:
                store.close()
        except (SonoError, OSError) as exc:
            if not self._failing:
                log.warning("status snapshot not saved (sonocli status shows an old state): %s", exc)
            self._failing = True
            return False
        if self._failing:
            log.info("status snapshot saved again")
        self._failing = False
        return True

    def stop(self) -> None:
        """The daemon ends: the last snapshot says so (``status`` then reports "stopped", exit 1)."""
        with self._lock:
            self.state = "stopped"
            self.stopped = self.clock()
            self.next_readout = self.next_report = None
            self.tcp_server = None
        self.write()


# -- reading: ``sonocli status`` ----------------------------------------------------------------------------
def load_snapshot(engine: Engine) -> Snapshot | None:
    from sonocli.store.status import StatusStore

    if not engine.layout.database.is_file():
        return None
    store = StatusStore(engine.layout.database)
    try:
        return store.load()
    finally:
        store.close()


def _process(engine: Engine) -> tuple[int | None, str | None]:
    """(pid, None) of the daemon running on this root, or (None, why not)."""
    from sonocli.service.daemonctl import DaemonNotRunning, find_daemon

    try:
        return find_daemon(engine.layout).pid, None
    except DaemonNotRunning as exc:
        return None, str(exc)


def _daemon_section(engine: Engine, snap: Snapshot | None, body: dict[str, Any], wall: float,
                    warnings: list[str]) -> tuple[dict[str, Any], float]:
    pid, why = _process(engine)
    offset = float(body.get("clock_offset") or 0.0)
    now = wall + offset  # the daemon's clock, now
    age = None if snap is None else max(0.0, wall - snap.written_at)
    stale_after = 3 * float(body.get("heartbeat") or HEARTBEAT) + 60.0
    if pid is not None:
        if snap is None or body.get("pid") != pid:
            state, message = "starting", f"process {pid} runs but has not written its status yet"
        elif body.get("state") == "stopped":
            state, message = "stopping", f"process {pid} is shutting down"
        elif age is not None and age > stale_after:
            state, message = "stale", (f"process {pid} runs but its status is {age:.0f} s old (limit "
                                       f"{stale_after:.0f} s): hung, or it cannot write {engine.layout.database}")
        else:
            state, message = "running", f"running as process {pid}"
    elif snap is None:
        state, message = "never", "no daemon has run on this root (start it: sonocli serve-daemon)"
    elif body.get("state") == "stopped":
        state, message = "stopped", f"stopped at {iso(body.get('stopped'))}"
    else:
        state, message = "down", f"the daemon died without stopping ({why})"
    running = state == "running"
    started = body.get("started") if snap is not None else None
    section: dict[str, Any] = {
        "state": state,
        "running": running,
        "message": message,
        "pid": pid if pid is not None else body.get("pid"),
        "version": body.get("version") or _version(),
        "started": iso(started),
        "uptime": round(now - float(started), 1) if running and started is not None else None,
        "updated": iso(snap.written_at) if snap is not None else None,
        "age": round(age, 1) if age is not None else None,
        "next_readout": iso(body.get("next_readout")) if running else None,
        "next_report": iso(body.get("next_report")) if running else None,
        "warnings": warnings,
    }
    return section, now


def _interfaces(engine: Engine, body: dict[str, Any], running: bool, unlisted: list[dict[str, Any]]
                ) -> list[dict[str, Any]]:
    """Per interface its last readout or reception. A receiver's own events are readings of listed meters
    and errors; telegrams of meters not in the list reach only the temporary list (no interface recorded
    there), so with one receiver the newest of those counts as its last reception too."""
    known: dict[str, dict[str, Any]] = dict(body.get("interfaces") or {})
    if not known:  # no daemon yet: what chip.ini configures, nothing heard
        if engine.get("MBUS_ENABLE") and str(engine.get("MBUS_PORT") or "").strip():
            known["mbus"] = {"kind": "mbus", "port": str(engine.get("MBUS_PORT"))}
        for slot, (url, dongle, _mode) in enumerate(engine.receiver_configs(), 1):
            known[f"wmbus{slot}"] = {"kind": f"wmbus ({dongle})", "port": url}
        if str(engine.get("DLDE_PORT") or "").strip():
            known["dlde"] = {"kind": "dlde", "port": str(engine.get("DLDE_PORT"))}
    receivers = [name for name in known if name.startswith("wmbus")]
    newest = max(unlisted, key=lambda m: str(m["last_seen"]), default=None)
    if len(receivers) == 1 and newest is not None and str(newest["last_seen"]) > str(iso(
            known[receivers[0]].get("last")) or ""):
        entry = known[receivers[0]] = dict(known[receivers[0]])
        entry.update(last=_parse(str(newest["last_seen"])), ok=True,
                     result=f"telegram of {newest['id']} (not in the meter list) heard")
    out = []
    for name, entry in known.items():
        scheduled = name in ("mbus", "dlde", "manual")
        out.append({
            "interface": name,
            "kind": entry.get("kind", name),
            "port": entry.get("port", ""),
            "last": iso(entry.get("last")),
            "result": entry.get("result"),
            "ok": entry.get("ok"),
            "received": entry.get("received"),
            "next_readout": iso(body.get("next_readout")) if running and scheduled else None,
        })
    return out


def _parse(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _channels(engine: Engine, body: dict[str, Any], running: bool) -> list[dict[str, Any]]:
    from sonocli.store.outbox import DONE, PENDING

    recorded: dict[str, dict[str, Any]] = dict(body.get("channels") or {})
    keys = [spec.key for spec in engine.channel_specs()]
    keys += [k for k in recorded if k not in keys]
    out = []
    for key in keys:
        entry = recorded.get(key, {})
        pending = engine.outbox.items(states=(PENDING,), channel=key)
        done = engine.outbox.items(states=(DONE,), channel=key)
        sent = [i.sent_at for i in done if i.sent_at is not None]
        last_delivery = max([*sent, *([entry["last_delivery"]] if entry.get("last_delivery") else [])], default=None)
        failing = [i for i in pending if i.last_error]
        last_error: str | None = entry.get("last_error") or (failing[-1].last_error if failing else None)
        error_at = entry.get("last_error_at")
        # failing: reports wait with an error now; recovered: an error was seen, delivery works again
        last_error_state = "failing" if failing else ("recovered" if last_error else None)
        item: dict[str, Any] = {
            "channel": key,
            "last_delivery": iso(last_delivery),
            "delivered": entry.get("delivered", 0),
            "last_error": last_error,
            "last_error_at": iso(error_at),
            "error_state": last_error_state,
            "pending": len(pending),
            "next_report": iso(body.get("next_report")) if running else None,
        }
        if key == "tcp-server":
            item["listen"] = body.get("tcp_server") if running else None
        out.append(item)
    return out


def _outbox(engine: Engine, now: float) -> dict[str, Any]:
    """Pending reports: how many and how old the oldest (``created`` is on the daemon's clock, as ``now``)."""
    from sonocli.store.outbox import PENDING

    pending = engine.outbox.items(states=(PENDING,))
    oldest = min((i.created for i in pending), default=None)
    by_channel: dict[str, int] = {}
    for item in pending:
        by_channel[item.channel] = by_channel.get(item.channel, 0) + 1
    return {
        "depth": len(pending),
        "oldest": iso(oldest),
        "oldest_age": round(max(0.0, now - oldest), 1) if oldest is not None else None,
        "by_channel": by_channel,
        "limit": int(engine.get("OUTBOX_MAXITEMS")),
    }


def _heard(engine: Engine, body: dict[str, Any], now: float) -> dict[str, Any]:
    since = now - HEARD_WINDOW
    meters: list[dict[str, Any]] = []
    for device_id, when in sorted((body.get("seen") or {}).items()):
        if float(when) >= since:
            meters.append({"id": device_id, "listed": True, "last_seen": iso(float(when))})
    for entry in engine.heard_meters():
        seen = entry.last_seen.timestamp()
        if seen >= since:
            meters.append({"id": entry.id, "listed": False, "manufacturer": entry.manufacturer,
                           "last_seen": iso(seen), "telegrams": entry.telegrams, "security": entry.security,
                           "rssi": entry.rssi})
    return {"window": int(HEARD_WINDOW), "count": len(meters), "listed": sum(m["listed"] for m in meters),
            "unlisted": sum(not m["listed"] for m in meters), "meters": meters}


def _tree_bytes(path: Path) -> int:
    total = 0
    for base, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                continue
    return total


def _store(engine: Engine) -> dict[str, Any]:
    db = engine.layout.database
    size = 0
    for suffix in ("", "-wal", "-shm"):
        try:
            size += os.stat(f"{db}{suffix}").st_size
        except OSError:
            continue
    readings = engine.store.count() if db.is_file() else 0
    probe = engine.layout.ext if engine.layout.ext.exists() else engine.root
    try:
        st = os.statvfs(probe)
        total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    except OSError:
        total = free = 0
    return {
        "database": str(db),
        "database_bytes": size,
        "readings": readings,
        "csv_log_bytes": _tree_bytes(engine.layout.log_dir) if engine.layout.log_dir.is_dir() else 0,
        "disk_total": total,
        "disk_free": free,
        "disk_used_percent": round(100.0 * (total - free) / total, 1) if total else None,
    }


def _warnings(engine: Engine) -> list[str]:
    from sonocli.engine.users import default_password_users

    try:
        users = default_password_users(engine)
    except SonoError as exc:
        return [f"users file unreadable: {exc}"]
    if not users:
        return []
    names = ", ".join(users)
    return [f"default password unchanged for user(s) {names}: anyone who read the guide can log in "
            f"(sonocli users passwd NAME)"]


def collect(engine: Engine, *, wall: Callable[[], float] = time.time) -> dict[str, Any]:
    """The status of the daemon on ``engine``'s root, with the six sections of :data:`TOP_KEYS`."""
    snap = load_snapshot(engine)
    body = snap.body if snap is not None else {}
    now_wall = wall()
    daemon, now = _daemon_section(engine, snap, body, now_wall, _warnings(engine))
    running = bool(daemon["running"])
    heard = _heard(engine, body, now)
    unlisted = [m for m in heard["meters"] if not m["listed"]] if snap is not None else []
    return {
        "daemon": daemon,
        "interfaces": _interfaces(engine, body, running, unlisted),
        "channels": _channels(engine, body, running),
        "outbox": _outbox(engine, now),
        "heard": heard,
        "store": _store(engine),
    }
