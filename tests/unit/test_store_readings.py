"""The readings store: write -> read is identity, filters, ordering, history kept across config changes."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sonocli.model.values import AddressMode, Interface, Meter, MeterValue, Reading, ValueConfig, ValueType
from sonocli.store.db import SCHEMA_VERSION, StoreError, connect
from sonocli.store.readings import ReadingStore

texts = st.text(max_size=12)
opt_texts = st.none() | texts
aware = st.datetimes(timezones=st.just(UTC))
naive = st.datetimes()
small = st.integers(0, 2**31 - 1)

value_configs = st.builds(
    ValueConfig,
    description=texts,
    unit=texts,
    encodetype=texts,
    exponent=st.integers(-12, 12),
    valuetype=st.sampled_from(ValueType),
    storagenum=small,
    tariff=small,
    obis=opt_texts,
    active=st.booleans(),
    register=small,
    user=opt_texts,
    value=st.none() | st.floats(allow_nan=False),
    extra=st.lists(st.tuples(texts, texts), max_size=2).map(tuple),
)

meters = st.builds(
    Meter,
    interface=st.sampled_from(Interface),
    serial=st.text("0123456789ABCDEF", min_size=8, max_size=8),
    manufacturer=st.none() | st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3),
    version=st.none() | st.integers(0, 255),
    medium=st.none() | st.integers(0, 255),
    primary_address=st.integers(0, 255),
    address_mode=st.sampled_from(AddressMode),
    readout_cycle=small,
    max_value_count=small,
    key=st.none() | st.binary(min_size=16, max_size=16),
    active=st.booleans(),
    rssi=st.integers(-150, 0),
    register=small,
    user=opt_texts,
    values=st.lists(value_configs, max_size=3).map(tuple),
    extra=st.lists(st.tuples(texts, texts), max_size=2).map(tuple),
)

raws = (
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats()  # NaN is excluded below only where equality matters
    | texts
    | st.binary(max_size=16)
    | aware
    | naive
)

meter_values = st.builds(
    MeterValue,
    index=st.integers(0, 50),
    measurement=st.integers(0, 255),
    unit=texts,
    exponent=st.integers(-12, 12),
    raw=raws.filter(lambda r: not (isinstance(r, float) and r != r)),
    function=st.sampled_from(ValueType),
    storage=small,
    tariff=small,
    subunit=small,
    timestamp=st.none() | aware | naive,
    dif_vif=st.binary(max_size=6),
    data=st.binary(max_size=8),
    encoding=texts,
    text=opt_texts,
    qualifiers=st.lists(texts, max_size=3).map(tuple),
)

readings = st.builds(
    Reading,
    meter=meters,
    taken_at=aware,
    values=st.lists(meter_values, max_size=5).map(tuple),
    rssi=st.none() | st.integers(-150, 0),
    raw_frames=st.lists(st.binary(max_size=40), max_size=3).map(tuple),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(readings, min_size=1, max_size=6))
def test_write_read_is_identity(tmp_path: Path, batch: list[Reading]) -> None:
    db = tmp_path / f"r{abs(hash(repr(batch))) % 10**9}.db"
    with ReadingStore(db) as store:
        ids = store.add_many(batch)
        assert len(ids) == len(batch) and ids == sorted(ids)
        got = list(store.iter_readings())
    expected = sorted(zip(ids, batch, strict=True), key=lambda pair: (pair[1].taken_at, pair[0]))
    assert got == [reading for _id, reading in expected]


def test_nan_is_stored_as_nan(tmp_path: Path) -> None:
    meter = Meter(Interface.MBUS, serial="12345678")
    value = MeterValue(index=0, measurement=9, unit="Wh", raw=float("nan"))
    with ReadingStore(tmp_path / "x.db") as store:
        store.add(Reading(meter, datetime(2024, 1, 1, tzinfo=UTC), (value,)))
        (got,) = store.iter_readings()
    raw = got.values[0].raw
    assert isinstance(raw, float) and raw != raw


def _reading(meter: Meter, minute: int, raw: int = 1) -> Reading:
    at = datetime(2024, 3, 1, tzinfo=UTC) + timedelta(minutes=minute)
    return Reading(meter, at, (MeterValue(index=0, measurement=9, unit="Wh", exponent=3, raw=raw),))


A = Meter(Interface.MBUS, serial="00127550", manufacturer="DFS", version=2, medium=4, user="A",
          values=(ValueConfig(user="energy", obis="6-0:1.0.0*255"),))
B = Meter(Interface.WMBUS, serial="00185550", manufacturer="DFS", version=2, medium=0x12, rssi=-70)


def test_filters_and_order(tmp_path: Path) -> None:
    with ReadingStore(tmp_path / "x.db") as store:
        # stored out of time order: iteration must sort by time, then id
        store.add(_reading(A, 30, raw=3))
        store.add(_reading(B, 10, raw=2))
        store.add(_reading(A, 10, raw=1))
        store.add(_reading(A, 50, raw=4))
        raws = [r.values[0].raw for r in store.iter_readings()]
        assert raws == [2, 1, 3, 4]
        since = datetime(2024, 3, 1, 0, 10, tzinfo=UTC)
        until = datetime(2024, 3, 1, 0, 30, tzinfo=UTC)
        assert [r.values[0].raw for r in store.iter_readings(since=since, until=until)] == [2, 1, 3]
        assert [r.values[0].raw for r in store.iter_readings(meter="00127550")] == [1, 3, 4]
        assert [r.values[0].raw for r in store.iter_readings(meter="dfs-00185550-02-12")] == [2]
        assert list(store.iter_readings(meter="99999999")) == []
        assert [r.values[0].raw for r in store.iter_readings(after_id=2)] == [1, 4]
        assert store.latest_id() == 4
        assert store.count(meter="00127550") == 3
        assert store.max_value_count() == 1
        assert store.meter_known("DFS-00127550-02-04") and not store.meter_known("nope")


def test_changed_configuration_keeps_history(tmp_path: Path) -> None:
    relabelled = dataclasses.replace(A, user="B", values=(ValueConfig(user="heat", obis="6-0:2.0.0*255"),))
    with ReadingStore(tmp_path / "x.db") as store:
        store.add(_reading(A, 0))
        store.add(_reading(relabelled, 15))
        store.add(_reading(A, 30))
        got = list(store.iter_readings())
        configs = store.connection.execute("SELECT count(*) FROM meter_configs").fetchone()[0]
        meters_rows = store.connection.execute("SELECT count(*) FROM meters").fetchone()[0]
    assert [r.meter for r in got] == [A, relabelled, A]
    assert configs == 2 and meters_rows == 1


def test_rssi_varies_without_new_configuration(tmp_path: Path) -> None:
    with ReadingStore(tmp_path / "x.db") as store:
        for minute, rssi in enumerate((-70, -71, -90)):
            store.add(dataclasses.replace(_reading(dataclasses.replace(B, rssi=rssi), minute), rssi=rssi))
        got = [(r.meter.rssi, r.rssi) for r in store.iter_readings()]
        configs = store.connection.execute("SELECT count(*) FROM meter_configs").fetchone()[0]
    assert got == [(-70, -70), (-71, -71), (-90, -90)] and configs == 1


def test_failed_batch_stores_nothing(tmp_path: Path) -> None:
    bad = Reading(A, datetime(2024, 1, 1, tzinfo=UTC), (MeterValue(0, 9, "Wh", raw=object()),))  # type: ignore[arg-type]
    with ReadingStore(tmp_path / "x.db") as store:
        with pytest.raises(TypeError):
            store.add_many([_reading(A, 0), bad])
        assert list(store.iter_readings()) == []
        store.add(_reading(A, 1))  # the caches must not point at rolled-back rows
        assert len(list(store.iter_readings())) == 1


def test_streaming_is_chunked_and_survives_concurrent_writer(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    with ReadingStore(db) as store:
        store.add_many(_reading(A, minute, raw=minute) for minute in range(5000))
        iterator = store.iter_readings()
        first = next(iterator)
        # a second connection writes while the first one streams (WAL: neither blocks)
        with ReadingStore(db) as other:
            other.add(_reading(B, 99999))
        rest = list(iterator)
    assert first.values[0].raw == 0 and len(rest) == 4999


def test_wal_and_schema_version(tmp_path: Path) -> None:
    conn = connect(tmp_path / "x.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()
    conn2 = connect(tmp_path / "x.db")  # reopening an up-to-date database migrates nothing
    conn2.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StoreError, match="schema version"):
        connect(path)


def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        connect(path)


def test_every_value_type_has_a_stored_code() -> None:
    from sonocli.store import readings

    assert set(readings._FUNCTION_CODES) == set(ValueType)
    assert sorted(readings._FUNCTION_CODES.values()) == list(range(len(ValueType)))


def test_meter_order_groups_each_meter_in_time_order(tmp_path: Path) -> None:
    with ReadingStore(tmp_path / "x.db") as store:
        store.add(_reading(B, 30, raw=1))
        store.add(_reading(A, 20, raw=2))
        store.add(_reading(B, 10, raw=3))
        store.add(_reading(A, 40, raw=4))
        got = [(r.meter.serial, r.values[0].raw) for r in store.iter_readings(order="meter")]
        assert got == [("00185550", 3), ("00185550", 1), ("00127550", 2), ("00127550", 4)]
        since = datetime(2024, 3, 1, 0, 15, tzinfo=UTC)
        assert [r.values[0].raw for r in store.iter_readings(order="meter", since=since)] == [1, 2, 4]
        assert [r.values[0].raw for r in store.iter_readings(order="meter", meter="00127550")] == [2, 4]
        with pytest.raises(ValueError, match="order"):
            list(store.iter_readings(order="size"))


def test_newest_per_meter_and_meter_order_without_a_per_meter_index(tmp_path: Path) -> None:
    """The store keeps no (meter, time) index (flash wear, migration 7): the newest reading of each meter
    comes from its row, meter order from the time index that carries the meter — over more readings than
    one chunk of ids, stored out of time order — and a per-meter query reads that index alone."""
    C = dataclasses.replace(A, serial="00127551")
    meters = (A, B, C)
    batch = [_reading(meters[n % 3], minute=(n * 37) % 1201, raw=n) for n in range(1200)]
    with ReadingStore(tmp_path / "x.db") as store:
        for start in range(0, len(batch), 100):
            store.add_many(batch[start:start + 100])
        newest = {r.meter.serial: r.values[0].raw for r in store.latest_readings()}
        got = list(store.iter_readings(order="meter"))
        plan = " ".join(str(row[-1]) for row in store.connection.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM readings WHERE meter_id = 1 AND taken_at >= 0"))
        names = {row[0] for row in store.connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert newest == {m.serial: max(n for n in range(1200) if n % 3 == i) for i, m in enumerate(meters)}
    serials = [r.meter.serial for r in got]
    assert len(got) == 1200 and serials == sorted(serials, key=[A.serial, B.serial, C.serial].index)
    for serial in (A.serial, B.serial, C.serial):
        times = [r.taken_at for r in got if r.meter.serial == serial]
        assert times == sorted(times) and len(times) == 400
    assert "readings_meter_time" not in names and "COVERING INDEX readings_time" in plan, plan


def test_migration_7_keeps_the_newest_reading_of_each_meter(tmp_path: Path) -> None:
    """A database made before migration 7 (per-meter index, no last_reading) is brought up to date: the
    newest reading of each meter is found at once afterwards, as before."""
    db = tmp_path / "old.db"
    with ReadingStore(db) as store:
        store.add_many([_reading(A, 1, 10), _reading(B, 2, 20), _reading(A, 3, 30)])
    raw = sqlite3.connect(db)
    raw.executescript(
        "ALTER TABLE meters DROP COLUMN last_reading; DROP INDEX readings_time;"
        "CREATE INDEX readings_time ON readings(taken_at, id);"
        "CREATE INDEX readings_meter_time ON readings(meter_id, taken_at, id); PRAGMA user_version = 6;")
    raw.close()
    with ReadingStore(db) as store:
        assert {r.meter.serial: r.values[0].raw for r in store.latest_readings()} == {A.serial: 30, B.serial: 20}
        assert store.connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_threads_opening_a_fresh_database_at_once_all_get_it(tmp_path: Path) -> None:
    """The daemon's threads (S0 counter, receivers, delivery) open their connections to a fresh root's
    database at the same moment: switching it to WAL must wait for the other, not fail with "locked"."""
    import threading

    from sonocli.store.outbox import Outbox
    from sonocli.store.pulses import PulseStore

    for attempt in range(12):
        path = tmp_path / f"fresh{attempt}.db"
        errors: list[BaseException] = []
        start = threading.Barrier(4)

        def open_one(kind: int, path: Path = path, errors: list[BaseException] = errors,
                     start: threading.Barrier = start) -> None:
            start.wait()
            try:
                store: Any = (ReadingStore, PulseStore, Outbox, PulseStore)[kind](path)
                store.close()
            except BaseException as exc:  # the test reports any failure
                errors.append(exc)

        threads = [threading.Thread(target=open_one, args=(kind,)) for kind in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], (attempt, errors)
