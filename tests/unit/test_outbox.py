"""The durable outbox: atomic queueing with the cursor, order, back-off, retry/drop, crash safety."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sonocli.errors import NotFoundError
from sonocli.store.outbox import DONE, DROPPED, PENDING, NewReport, Outbox, backoff


def name(created: int, index: int) -> str:
    return f"Meter_{created}.csv"


def test_enqueue_moves_cursor_and_names_are_unique(tmp_path: Path) -> None:
    with Outbox(tmp_path / "db.sqlite") as box:
        assert box.cursor("ftp") == 0
        items = box.enqueue("ftp", [NewReport(b"a", "text/csv"), NewReport(b"b", "text/csv")], name=name,
                            now=1000, cursor=7)
        # names are made unique with a counter; the parts keep the real time (no +1 s per part)
        assert [i.name for i in items] == ["Meter_1000.csv", "Meter_1000_2.csv"]
        assert [i.created for i in items] == [1000, 1000]
        more = box.enqueue("ftp", [NewReport(b"c", "text/csv")], name=name, now=1000, cursor=9)
        assert more[0].name == "Meter_1000_3.csv" and more[0].created == 1000
        assert box.cursor("ftp") == 9 and box.cursor("smtp") == 0
        assert box.payload(items[1].id) == b"b"


def test_failed_enqueue_keeps_cursor(tmp_path: Path) -> None:
    with Outbox(tmp_path / "db.sqlite") as box:
        def bad(created: int, index: int) -> str:
            if index == 2:
                raise RuntimeError("boom")
            return f"x{created}"

        with pytest.raises(RuntimeError):
            box.enqueue("ftp", [NewReport(b"a", "t"), NewReport(b"b", "t")], name=bad, now=5, cursor=3)
        assert box.cursor("ftp") == 0
        assert box.items() == []


def test_delivery_in_order_stops_at_failure_with_backoff(tmp_path: Path) -> None:
    with Outbox(tmp_path / "db.sqlite") as box:
        box.enqueue("ftp", [NewReport(bytes([i]), "t") for i in range(3)], name=name, now=100)
        sent: list[bytes] = []
        fail = {"on": True}

        def send(item: object, payload: bytes) -> None:
            if payload == b"\x01" and fail["on"]:
                raise OSError("server full")
            sent.append(payload)

        clock = [1000.0]
        result = box.deliver("ftp", send, now=lambda: clock[0])
        assert (result.sent, result.failed, result.waiting) == (1, 1, 2)
        assert "server full" in (result.error or "")
        waiting = box.items()
        assert waiting[0].attempts == 1 and waiting[0].next_try == 1000 + backoff(1)
        # not due yet: nothing happens; forced (a new report cycle): it goes
        assert box.deliver("ftp", send, now=lambda: clock[0]).sent == 0
        fail["on"] = False
        result = box.deliver("ftp", send, now=lambda: clock[0], force=True)
        assert result.sent == 2 and result.waiting == 0
        assert sent == [b"\x00", b"\x01", b"\x02"]
        assert {i.state for i in box.items(states=(DONE,))} == {DONE}


def test_backoff_grows_and_caps() -> None:
    assert [backoff(n) for n in (1, 2, 3)] == [30.0, 60.0, 120.0]
    assert backoff(40) == 3600.0


def test_retry_and_drop(tmp_path: Path) -> None:
    with Outbox(tmp_path / "db.sqlite") as box:
        items = box.enqueue("smtp", [NewReport(b"a", "t"), NewReport(b"b", "t")], name=name, now=1)
        box.mark_failed(items[0].id, "down", now=10)
        assert box.drop([items[1].id]) == 1
        assert [i.id for i in box.items()] == [items[0].id]
        assert box.items(states=(DROPPED,))[0].id == items[1].id
        assert box.retry([items[1].id]) == 1
        assert [i.next_try for i in box.items()] == [10 + 30, 0]
        assert box.retry() == 2
        assert all(i.next_try == 0 for i in box.items(states=(PENDING,)))
        with pytest.raises(NotFoundError):
            box.drop([999])


def test_kill_during_enqueue_loses_nothing(tmp_path: Path) -> None:
    """A writer SIGKILLed mid-stream: every committed report is whole and its cursor matches."""
    db = tmp_path / "db.sqlite"
    script = f"""
import os, signal
from sonocli.store.outbox import Outbox, NewReport
box = Outbox({str(db)!r})
for n in range(1, 10_000):
    box.enqueue("ftp", [NewReport(bytes(1000) + n.to_bytes(4, "big"), "t")],
                name=lambda c, i: f"r{{c}}", now=n, cursor=n)
    if n == 150:
        os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.returncode == -9
    with Outbox(db) as box:
        items = box.items()
        assert len(items) == 150 == box.cursor("ftp")
        assert all(box.payload(i.id)[-4:] == (n + 1).to_bytes(4, "big") for n, i in enumerate(items))
