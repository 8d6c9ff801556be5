"""The daemon's status snapshot (sonocli.engine.status.StatusTracker, sonocli.store.status): what it keeps,
when it writes, and that a store that cannot take it costs one warning, never the daemon."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from sonocli.config.layout import init_root
from sonocli.engine.core import Engine
from sonocli.engine.status import StatusTracker, collect
from sonocli.store.status import StatusStore


def tracker(root: Path, clock: list[float], mono: list[float]) -> tuple[Engine, StatusTracker]:
    init_root(root)
    engine = Engine(root)
    return engine, StatusTracker(engine, clock=lambda: clock[0], wall=lambda: clock[0] + 5.0,
                                 monotonic=lambda: mono[0], heartbeat=120.0)


def test_snapshot_round_trip_and_heartbeat(tmp_path: Path) -> None:
    clock, mono = [1_750_000_000.0], [0.0]
    engine, status = tracker(tmp_path, clock, mono)
    try:
        status.interface("mbus", "mbus", "sim://demo")
        status.event("mbus", True, "12 of 12 meter(s) read")
        status.reception("wmbus1", "LAS-00010067-0B-1E")
        status.delivery("ftp", 0, 1, "connect failed")
        clock[0] += 60
        status.delivery("ftp", 2, 0, None)
        status.schedule(clock[0] + 900, clock[0] + 300)
        assert status.write()
        snap = StatusStore(engine.layout.database).load()
        assert snap is not None and snap.written_at == pytest.approx(clock[0] + 5.0)
        body = snap.body
        assert body["interfaces"]["mbus"] == {"kind": "mbus", "port": "sim://demo", "last": clock[0] - 60,
                                              "result": "12 of 12 meter(s) read", "ok": True}
        assert body["interfaces"]["wmbus1"]["received"] == 1
        assert body["channels"]["ftp"] == {"last_delivery": clock[0], "delivered": 2,
                                           "last_error": "connect failed", "last_error_at": clock[0] - 60}
        assert body["seen"] == {"LAS-00010067-0B-1E": clock[0] - 60}
        assert body["clock_offset"] == pytest.approx(-5.0)
        # heartbeat: a forced write always, an unforced one only once the heartbeat is due
        assert not status.write(force=False)
        mono[0] += 119.0
        assert not status.write(force=False)
        mono[0] += 1.0
        assert status.write(force=False)
        # an hour later the reception has left the "heard in the last hour" window
        clock[0] += 3601
        assert status.write()
        assert StatusStore(engine.layout.database).load().body["seen"] == {}  # type: ignore[union-attr]
        status.stop()
        report = collect(engine, wall=lambda: clock[0] + 5.0)
        assert report["daemon"]["state"] == "stopped" and not report["daemon"]["running"]
        assert report["channels"][0]["channel"] == "ftp" and report["channels"][0]["delivered"] == 2
    finally:
        engine.close()


def test_a_store_that_cannot_take_the_snapshot_is_one_warning(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    clock, mono = [1_750_000_000.0], [0.0]
    engine, status = tracker(tmp_path, clock, mono)
    db = engine.layout.database
    try:
        db.mkdir(parents=True)  # where the database should be: a directory (as unusable as a full disk)
        with caplog.at_level(logging.WARNING, "sonocli.daemon"):
            assert not status.write()
            assert not status.write()
        warnings = [r for r in caplog.records if "status snapshot not saved" in r.getMessage()]
        assert len(warnings) == 1 and str(db) in warnings[0].getMessage()
        shutil.rmtree(db)
        with caplog.at_level(logging.INFO, "sonocli.daemon"):
            assert status.write()
        assert "status snapshot saved again" in caplog.text
    finally:
        engine.close()
