"""Schedule arithmetic of serve-daemon (METER_*, REPORT_*), no clock needed."""

from __future__ import annotations

import threading

import pytest

from sonocli.daemon.schedule import FastClock, meter_due, next_aligned, report_jitter


def test_next_aligned() -> None:
    assert next_aligned(0, 900) == 900
    assert next_aligned(899.5, 900) == 900
    assert next_aligned(900, 900) == 1800
    assert next_aligned(1000, 900, offset=30) == 1830
    with pytest.raises(ValueError):
        next_aligned(0, 0)


def test_report_jitter_default_is_one_eighth() -> None:
    assert report_jitter(15, 0, lambda: 1.0) == pytest.approx(15 * 60 * 0.125)
    assert report_jitter(15, 4, lambda: 0.5) == pytest.approx(120)
    assert report_jitter(15, 0, lambda: 0.0) == 0


def test_meter_own_cycle() -> None:
    assert meter_due(None, 3600, 0)
    assert not meter_due(0, 3600, 2700)
    assert meter_due(0, 3600, 3600)
    assert meter_due(0, 300, 300)  # shorter than METER_TIME: read more often
    assert not meter_due(0, 300, 200)


def test_fast_clock_jumps_unless_woken() -> None:
    clock = FastClock(100.0)
    wake = threading.Event()
    clock.wait_until(160, wake)
    assert clock.now() == 160
    wake.set()
    clock.wait_until(500, wake)
    assert clock.now() == 160
