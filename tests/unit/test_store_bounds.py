"""Bounded, oldest first, loudly (issue 13, Build 3): STORE_MAXREADINGS, OUTBOX_MAXITEMS, CSVLOG_MAXSIZE."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from sonocli.engine.core import Engine
from sonocli.store.outbox import DONE, DROPPED, PENDING, NewReport, Outbox
from tests.integration.push.conftest import demo_meter_list, make_root, read_demo_meters

__all__ = ["demo_meter_list"]  # the session fixture, used here too


def test_readings_beyond_store_maxreadings_go_oldest_first(tmp_path: Path, demo_meter_list: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    root = make_root(tmp_path / "root", demo_meter_list, STORE_MAXREADINGS=100)
    caplog.set_level(logging.WARNING)
    for _cycle in range(9):  # 12 meters: 108 readings
        read_demo_meters(root)
    engine = Engine(root)
    try:
        oldest, newest = engine.store.id_range()
        kept = engine.store.count()
    finally:
        engine.close()
    assert 99 <= kept <= 100 and newest == 108 and oldest == newest - kept + 1  # the oldest went
    counts = [int(m.group(1)) for r in caplog.records
              for m in [re.search(r"STORE_MAXREADINGS 100: deleted the (\d+) oldest \(all already in every "
                                  r"channel's reports\)", r.getMessage())] if m]
    assert sum(counts) == 108 - kept and len(counts) < 8  # loudly, but not at every reading


def test_store_prune_counts_the_undelivered(tmp_path: Path, demo_meter_list: Path) -> None:
    root = make_root(tmp_path / "root", demo_meter_list)
    for _cycle in range(3):
        read_demo_meters(root)
    engine = Engine(root)
    try:
        assert engine.store.prune(20, delivered_upto=10) == (16, 6)  # ids 1-16 go (36 - 20); 11-16 unreported
        assert engine.store.prune(20, delivered_upto=10) == (0, 0)
        assert engine.store.count() == 20
    finally:
        engine.close()


def _report(n: int) -> NewReport:
    return NewReport(f"report {n}\n".encode() * 50, "text/csv", readings=1)


def test_outbox_bound_deletes_delivered_then_dropped_then_oldest_pending(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "sonocli.db")
    try:
        items = [box.enqueue("ftp", [_report(n)], name=lambda c, i, n=n: f"r{n}.csv", now=1000 + n)[0]
                 for n in range(12)]
        box.mark_done(items[5].id)
        box.mark_done(items[7].id)
        box.drop([items[1].id])
        assert box.bound(12) == {}
        assert box.bound(10) == {DONE: 2}
        assert box.bound(8) == {DROPPED: 1, PENDING: 1}
        left = [item.name for item in box.items(states=(PENDING, DONE, DROPPED))]
        assert left == [f"r{n}.csv" for n in (2, 3, 4, 6, 8, 9, 10, 11)]
        use = box.use()
        assert (use.items, use.pending, use.done, use.dropped) == (8, 8, 0, 0)
        assert use.payload_bytes == sum(len(_report(n).payload) for n in (2, 3, 4, 6, 8, 9, 10, 11))
        assert box.payload(items[11].id) == _report(11).payload  # stored compressed, given back whole
        # the payloads of deleted reports go with them
        assert box._conn.execute("SELECT count(*) FROM outbox_payload").fetchone()[0] == 8
    finally:
        box.close()


def test_outbox_over_its_limit_warns_loudly(tmp_path: Path, demo_meter_list: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    from sonocli.engine.delivery import bound_outbox

    root = make_root(tmp_path / "root", demo_meter_list, OUTBOX_MAXITEMS=10)
    engine = Engine(root)
    try:
        for n in range(11):
            engine.outbox.enqueue("ftp", [_report(n)], name=lambda c, i, n=n: f"r{n}.csv", now=1000 + n)
        caplog.set_level(logging.WARNING)
        assert bound_outbox(engine) == {PENDING: 1}
    finally:
        engine.close()
    assert any(r.levelno == logging.ERROR and "1 undelivered report(s) are lost" in r.getMessage()
               for r in caplog.records)


def test_csv_log_limit_comes_from_csvlog_maxsize(tmp_path: Path, demo_meter_list: Path) -> None:
    """CSVLOG_MAXSIZE (KiB) replaces the hard-coded 256 MiB: the log is cut to it, oldest files first."""
    from dataclasses import replace
    from datetime import timedelta

    from sonocli.engine.recording import record

    root = make_root(tmp_path / "root", demo_meter_list, MUC_CSVLOG_ENABLE=1, CSVLOG_MAXSIZE=64)
    read_demo_meters(root)
    engine = Engine(root)
    try:
        first = engine.store.latest_readings()
        for day in range(1, 15):  # fourteen more days of the same readings: far more than 64 KiB
            record(engine, [replace(r, taken_at=r.taken_at + timedelta(days=day)) for r in first])
        files, size = engine.csvlog().use()
        assert engine.csvlog().partition_limit == 64 * 1024
        assert size <= 64 * 1024 and engine.csvlog().dropped_files > 0 and files >= 1
    finally:
        engine.close()
