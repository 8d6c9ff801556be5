"""Wireless M-Bus reception as the engine drives it: a receiver from chip.ini, run on an open port.

The dongle framing and the telegram work are in sonocli.engine.receiver; here reception meets chip.ini
(WMBUS_*/WMBUS2_*), the meter list and the recorder: readings of listed meters are recorded (those of
active meters stored), and meters not in the list go to the temporary list in the store (guide 5.1.2).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sonocli import logs

if TYPE_CHECKING:
    from sonocli.engine.core import Engine
    from sonocli.engine.receiver import Heard, HeardMeter, Receiver
    from sonocli.engine.recording import Recorded
    from sonocli.model.values import Reading
    from sonocli.store.meterstate import HeardEntry

log = logs.logger("sonocli.engine")


def receiver_configs(engine: Engine) -> list[tuple[str, str, str]]:
    """(port URL, dongle, chip.ini mode) of each configured receiver: what SIGHUP compares to reopen."""
    out: list[tuple[str, str, str]] = []
    if not engine.get("WMBUS_ENABLE"):
        return out
    for prefix in ("WMBUS", "WMBUS2"):
        url = str(engine.get(f"{prefix}_PORT") or "").strip()
        if url:
            out.append((url, str(engine.get(f"{prefix}_DONGLE") or "im871a"), str(engine.get(f"{prefix}_MODE"))))
    return out


def receiver(
    engine: Engine, dongle: str, *, interface: int = 1, mode: str | None = None, listen_new: bool | None = None
) -> Receiver:
    """A receiver for ``dongle`` with chip.ini's settings of receiver ``interface`` and the meter list."""
    from sonocli.engine.receiver import Receiver, settings_from_chip
    from sonocli.model.valueclass import replace
    from sonocli.registry import DONGLES, load

    driver = load(DONGLES, dongle, "dongle")()
    settings = settings_from_chip(engine.chip, engine.layout.log_dir, interface)
    settings = replace(settings, listen_new=engine.listen_new if listen_new is None else listen_new)
    if mode is not None:
        settings = replace(settings, mode=mode.upper())
    made = Receiver(driver, settings, engine.meters)
    from sonocli.engine.decoding import attach_format_store, load_drivers

    # compact-frame formats learnt before (another run, another receiver) and stored from now on
    attach_format_store(made.formats, engine.layout.database)
    for problem in load_drivers(engine.layout.app):  # declarative drivers (app/drivers/*.toml)
        logs.logger("sonocli.drivers").warning("driver file skipped: %s", problem)
    return made


def run_receiver(
    engine: Engine,
    receiver: Receiver,
    port: Any,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    duration: float | None = None,
    count: int | None = None,
    on_heard: Callable[[Heard, Recorded | None], None] | None = None,
    store: bool = True,
) -> int:
    """Set up the stick and receive: readings of listed meters are matched to the list (values learned
    on the first one) and those of active meters stored; meters not in the list go to the temporary
    list in the store (guide 5.1.2), published at least every FASTRESCAN_TIME. Returns readings stored."""
    stored = 0
    flushed: dict[str, int] = {}
    last_flush = [engine.now()]

    def publish(force: bool = False) -> None:
        if not force and engine.now() - last_flush[0] < receiver.settings.fast_rescan:
            return
        last_flush[0] = engine.now()
        entries = []
        for heard in receiver.temporary():
            delta = heard.telegrams - flushed.get(heard.id, 0)
            if delta <= 0 and heard.id in flushed:
                continue
            entries.append(_heard_entry(heard, delta))
            flushed[heard.id] = heard.telegrams
        if entries:
            try:
                engine.meter_state.heard(entries)
            except Exception as exc:  # a full disk must not stop reception
                log.warning("temporary wM-Bus list not saved: %s", exc)

    def heard(item: Heard) -> None:
        nonlocal stored
        recorded = None
        if item.reading is not None and not item.duplicate:
            active = item.reading.meter.active
            recorded = engine.record([item.reading], store=store and active)
            if store and active:
                stored += 1
        if item.meter is not None and not item.meter.in_list and not item.duplicate:
            publish(force=item.new_meter)
        if on_heard is not None:
            on_heard(item, recorded)

    from sonocli.engine.recording import learning_held

    try:
        with learning_held(engine):  # 500 new meters: a few list writes, not one whole rewrite each
            receiver.setup(port)
            receiver.run(port, on_heard=heard, duration=duration, count=count, should_stop=should_stop)
    finally:
        publish(force=True)
        receiver.close()
    return stored


def listen(
    engine: Engine,
    url: str,
    dongle: str,
    *,
    should_stop: Callable[[], bool],
    duration: float | None = None,
    on_reading: Callable[[Reading], None] | None = None,
    interface: int | None = None,
) -> int:
    """Receive telegrams on one receiver until ``should_stop()`` (the daemon); returns readings stored."""
    if interface is None:
        second = url == str(engine.get("WMBUS2_PORT") or "").strip() != str(engine.get("WMBUS_PORT") or "").strip()
        interface = 2 if second else 1
    receiver = engine.receiver(dongle, interface=interface)
    port = engine.open_receiver_port(url, receiver)

    def heard(item: Heard, recorded: Recorded | None) -> None:
        if on_reading is not None and recorded is not None and item.reading is not None \
                and item.reading.meter.active:
            for reading in recorded.readings:
                on_reading(reading)

    try:
        return engine.run_receiver(receiver, port, should_stop=should_stop, duration=duration, on_heard=heard)
    finally:
        with contextlib.suppress(Exception):
            port.close()


def _heard_entry(heard: HeardMeter, telegrams: int) -> HeardEntry:
    from sonocli.store.meterstate import HeardEntry

    seen = heard.last_seen or datetime.now(UTC)
    return HeardEntry(heard.id, heard.manufacturer, heard.version, heard.medium, heard.rssi, seen, seen,
                      max(0, telegrams), heard.security, not heard.last_error)
