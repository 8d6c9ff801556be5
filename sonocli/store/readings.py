"""Readings in SQLite: every readout and every received telegram, rebuilt exactly for export.

Each reading stores its values as rows (value index, measurement, unit, exponent, typed raw value, function,
storage, tariff, subunit, meter timestamp, DIF/VIF and data bytes, qualifiers) and points at the meter-list
configuration it was taken with (user labels, OBIS IDs, …). Configurations are kept as immutable,
content-addressed snapshots: editing the meter list adds a snapshot and never rewrites or drops history —
unlike the device, which empties its log when the configuration changes.

Timestamps are stored as integer microseconds since the epoch (UTC). ``Reading.taken_at`` should be
timezone-aware; a naive one is taken to be UTC (and comes back aware). Meter timestamps and date values may
be naive (meters send local time without a zone); they come back naive.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import json
import math
import sqlite3
import struct
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from sonocli.model.values import (
    AddressMode,
    Interface,
    Meter,
    MeterValue,
    Reading,
    ValueConfig,
    ValueType,
)
from sonocli.store.db import connect, mapped, reopened, store_error, write_transaction

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO: Final = timedelta(microseconds=1)
FETCH_CHUNK: Final = 2000
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


class RawType(enum.IntEnum):
    """Tag telling how ``reading_values.raw`` is to be read back."""

    NONE = 0
    INT = 1
    BIGINT = 2  # beyond SQLite's signed 64 bits (unsigned 64-bit or 12-digit+ BCD): decimal text
    FLOAT = 3
    FLOAT_TEXT = 4  # NaN, which SQLite would turn into NULL
    STR = 5
    BYTES = 6
    DATETIME = 7
    BOOL = 8


# DIF function field as stored: fixed codes, independent of the enum's declaration order.
_FUNCTION_CODES: Final = {
    ValueType("instantaneous"): 0,
    ValueType("maximum"): 1,
    ValueType("minimum"): 2,
    ValueType("errorgate"): 3,
}
_FUNCTIONS: Final = {code: member for member, code in _FUNCTION_CODES.items()}
_TS_NAIVE: Final = 1
_RAW_NAIVE: Final = 2


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch; a naive datetime counts as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // _MICRO


def from_micros(value: int, *, naive: bool = False) -> datetime:
    moment = EPOCH + timedelta(microseconds=value)
    return moment.replace(tzinfo=None) if naive else moment


# --- meter configuration snapshots -------------------------------------------------------------------------

_METER_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Meter))
_VALUE_FIELDS: Final = tuple(f.name for f in dataclasses.fields(ValueConfig))
# Fields that vary per telegram are kept in the readings row, not in the snapshot.
_PER_READING: Final = frozenset({"rssi"})


def _encode_value_config(config: ValueConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _VALUE_FIELDS:
        value = getattr(config, name)
        if name == "valuetype":
            value = ValueType(value).value
        elif name == "extra":
            value = [list(pair) for pair in value]
        out[name] = value
    return out


def _decode_value_config(data: dict[str, Any]) -> ValueConfig:
    kwargs = dict(data)
    kwargs["valuetype"] = ValueType(kwargs["valuetype"])
    kwargs["extra"] = tuple(tuple(pair) for pair in kwargs["extra"])
    return ValueConfig(**kwargs)


def encode_meter(meter: Meter) -> str:
    """The meter's configuration as canonical JSON (sorted keys), without the per-telegram RSSI."""
    out: dict[str, Any] = {}
    for name in _METER_FIELDS:
        if name in _PER_READING:
            continue
        value = getattr(meter, name)
        if name in ("interface", "address_mode"):
            value = int(value)
        elif name == "key":
            value = None if value is None else bytes(value).hex()
        elif name == "values":
            value = [_encode_value_config(config) for config in value]
        elif name == "extra":
            value = [list(pair) for pair in value]
        out[name] = value
    return json.dumps(out, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def decode_meter(body: str, *, rssi: int) -> Meter:
    data = json.loads(body)
    data["interface"] = Interface(data["interface"])
    data["address_mode"] = AddressMode(data["address_mode"])
    data["key"] = None if data["key"] is None else bytes.fromhex(data["key"])
    data["values"] = tuple(_decode_value_config(item) for item in data["values"])
    data["extra"] = tuple(tuple(pair) for pair in data["extra"])
    data["rssi"] = rssi
    return Meter(**data)


def _device_key(meter: Meter) -> str:
    def part(value: object) -> str:
        return "" if value is None else str(value)

    return "|".join(
        (str(int(meter.interface)), meter.serial, part(meter.manufacturer), part(meter.version), part(meter.medium))
    )


# --- values ------------------------------------------------------------------------------------------------


def _encode_raw(raw: object) -> tuple[int, object, int]:
    """(type tag, SQLite value, flags) for a raw value."""
    if raw is None:
        return RawType.NONE, None, 0
    if isinstance(raw, bool):
        return RawType.BOOL, int(raw), 0
    if isinstance(raw, int):
        if _INT64_MIN <= raw <= _INT64_MAX:
            return RawType.INT, raw, 0
        return RawType.BIGINT, str(raw), 0
    if isinstance(raw, float):
        if math.isnan(raw):
            return RawType.FLOAT_TEXT, repr(raw), 0
        return RawType.FLOAT, raw, 0
    if isinstance(raw, str):
        return RawType.STR, raw, 0
    if isinstance(raw, bytes | bytearray | memoryview):
        return RawType.BYTES, bytes(raw), 0
    if isinstance(raw, datetime):
        return RawType.DATETIME, to_micros(raw), _RAW_NAIVE if raw.tzinfo is None else 0
    raise TypeError(f"raw value of type {type(raw).__name__} cannot be stored")


def _decode_raw(tag: int, value: Any, flags: int) -> int | float | str | bytes | datetime | None:
    # plain int comparisons: this runs once per stored value on every export
    if tag == RawType.INT:
        return int(value)
    if tag == RawType.NONE:
        return None
    if tag == RawType.FLOAT or tag == RawType.FLOAT_TEXT:
        return float(value)
    if tag == RawType.STR:
        return str(value)
    if tag == RawType.BYTES:
        return bytes(value)
    if tag == RawType.BIGINT:
        return int(value)
    if tag == RawType.BOOL:
        return bool(value)
    if tag == RawType.DATETIME:
        return from_micros(int(value), naive=bool(flags & _RAW_NAIVE))
    raise ValueError(f"unknown raw type tag {tag}")


def _value_row(reading_id: int, position: int, value: MeterValue) -> tuple[object, ...]:
    tag, raw, flags = _encode_raw(value.raw)
    ts = None
    if value.timestamp is not None:
        ts = to_micros(value.timestamp)
        if value.timestamp.tzinfo is None:
            flags |= _TS_NAIVE
    return (
        reading_id,
        position,
        value.index,
        value.measurement,
        value.unit,
        value.exponent,
        tag,
        raw,
        _FUNCTION_CODES[ValueType(value.function)],
        value.storage,
        value.tariff,
        value.subunit,
        ts,
        flags,
        bytes(value.dif_vif),
        bytes(value.data),
        value.encoding,
        value.text,
        json.dumps(value.qualifiers, ensure_ascii=False) if value.qualifiers else "",
    )


def _value_from_row(row: Sequence[Any]) -> MeterValue:
    (idx, measurement, unit, exponent, tag, raw, function, storage, tariff, subunit, ts, flags, dif_vif, data,
     encoding, text, qualifiers) = row  # fmt: skip
    return MeterValue(
        index=idx,
        measurement=measurement,
        unit=unit,
        exponent=exponent,
        raw=_decode_raw(tag, raw, flags),
        function=_FUNCTIONS[function],
        storage=storage,
        tariff=tariff,
        subunit=subunit,
        timestamp=None if ts is None else from_micros(ts, naive=bool(flags & _TS_NAIVE)),
        dif_vif=bytes(dif_vif),
        data=bytes(data),
        encoding=encoding,
        text=text,
        qualifiers=_qualifiers(qualifiers, dif_vif),
    )


def _qualifiers(stored: str | None, dif_vif: bytes) -> tuple[str, ...]:
    """The stored qualifiers; for a row from before schema 3 (NULL) those its DIF/VIF bytes give, which
    is what the decoder gave the value (the qualifiers are a function of those bytes alone)."""
    if stored is None:
        from sonocli.codecs.mbus_app import qualifiers_of

        return qualifiers_of(bytes(dif_vif))
    return tuple(json.loads(stored)) if stored else ()


def pack_frames(frames: Sequence[bytes]) -> bytes | None:
    if not frames:
        return None
    return b"".join(struct.pack(">I", len(frame)) + bytes(frame) for frame in frames)


def unpack_frames(blob: bytes | None) -> tuple[bytes, ...]:
    if not blob:
        return ()
    frames: list[bytes] = []
    offset = 0
    while offset < len(blob):
        (length,) = struct.unpack_from(">I", blob, offset)
        offset += 4
        frames.append(bytes(blob[offset : offset + length]))
        offset += length
    return tuple(frames)


_SELECT: Final = """
SELECT r.id, r.config_id, r.taken_at, r.rssi, r.meter_rssi, r.frames,
       v.position, v.idx, v.measurement, v.unit, v.exponent, v.raw_type, v.raw, v.function, v.storage,
       v.tariff, v.subunit, v.ts, v.flags, v.dif_vif, v.data, v.encoding, v.text, v.qualifiers
FROM readings AS r LEFT JOIN reading_values AS v ON v.reading_id = r.id
"""

_MEMO_LIMIT: Final = 4096
_ID_CHUNK: Final = 500  # readings per query when streaming by meter (SQLite allows 32766 parameters)


class ReadingStore:
    """The readings table of the sonocli database; one instance per thread (sqlite3's rule)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn = connect(path)
        # Lookup caches filled only after a successful commit, so a rolled-back id never lingers.
        self._meter_ids: dict[str, int] = {}
        self._config_ids: dict[bytes, int] = {}

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ReadingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

    # --- writing ---------------------------------------------------------------------------------------------

    def add(self, reading: Reading) -> int:
        """Store one reading in one transaction and return its id."""
        return self.add_many((reading,))[0]

    def add_many(self, readings: Iterable[Reading]) -> list[int]:
        """Store readings in one transaction (all or none) and return their ids in order."""
        self._conn = conn = reopened(self._conn, self.path)  # read-only since a full disk: writable again?
        ids: list[int] = []
        new_meters: dict[str, int] = {}
        new_configs: dict[bytes, int] = {}
        newest: dict[int, int] = {}  # meter id -> its newest reading of this batch (meters.last_reading)
        with write_transaction(conn, self.path, "store readings"):
            for reading in readings:
                meter = reading.meter
                key = _device_key(meter)
                meter_id = self._meter_ids.get(key) or new_meters.get(key)
                if meter_id is None:
                    meter_id = self._meter_id(meter, key)
                    new_meters[key] = meter_id
                body = encode_meter(meter)
                digest = hashlib.sha256(body.encode("utf-8")).digest()
                config_id = self._config_ids.get(digest) or new_configs.get(digest)
                if config_id is None:
                    config_id = self._config_id(meter_id, digest, body)
                    new_configs[digest] = config_id
                cursor = conn.execute(
                    "INSERT INTO readings (meter_id, config_id, taken_at, rssi, meter_rssi, n_values, frames) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        meter_id,
                        config_id,
                        to_micros(reading.taken_at),
                        reading.rssi,
                        meter.rssi,
                        len(reading.values),
                        pack_frames(reading.raw_frames),
                    ),
                )
                reading_id = cursor.lastrowid
                assert reading_id is not None
                conn.executemany(
                    "INSERT INTO reading_values VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [_value_row(reading_id, position, value) for position, value in enumerate(reading.values)],
                )
                ids.append(reading_id)
                newest[meter_id] = reading_id
            conn.executemany("UPDATE meters SET last_reading = ? WHERE id = ?",
                             [(reading_id, meter_id) for meter_id, reading_id in newest.items()])
        self._meter_ids.update(new_meters)
        self._config_ids.update(new_configs)
        return ids

    def _meter_id(self, meter: Meter, key: str) -> int:
        row = self._conn.execute("SELECT id FROM meters WHERE device_key = ?", (key,)).fetchone()
        if row is not None:
            return int(row[0])
        cursor = self._conn.execute(
            "INSERT INTO meters (device_key, interface, serial, manufacturer, version, medium, device_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, int(meter.interface), meter.serial, meter.manufacturer, meter.version, meter.medium,
             meter.device_id),
        )  # fmt: skip
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _config_id(self, meter_id: int, digest: bytes, body: str) -> int:
        row = self._conn.execute("SELECT id FROM meter_configs WHERE digest = ?", (digest,)).fetchone()
        if row is not None:
            return int(row[0])
        cursor = self._conn.execute(
            "INSERT INTO meter_configs (meter_id, digest, body) VALUES (?, ?, ?)", (meter_id, digest, body)
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    # --- reading ---------------------------------------------------------------------------------------------

    def latest_id(self) -> int:
        """The id of the newest reading, 0 for an empty store (ids only grow)."""
        with mapped(self.path, "read readings"):
            row = self._conn.execute("SELECT max(id) FROM readings").fetchone()
        return int(row[0] or 0)

    def id_range(self) -> tuple[int, int]:
        """(oldest id, newest id), (0, 0) for an empty store; both from the primary key, O(log n)."""
        with mapped(self.path, "read readings"):
            row = self._conn.execute("SELECT min(id), max(id) FROM readings").fetchone()
        return int(row[0] or 0), int(row[1] or 0)

    def prune(self, limit: int, *, delivered_upto: int | None = None) -> tuple[int, int]:
        """Keep at most ``limit`` readings (STORE_MAXREADINGS): delete the oldest, in one transaction.

        Ids only grow and readings are deleted only here, oldest first, so the ids form one run and
        ``newest - limit`` (less 1 %) is the cut (O(log n), no count over a big table). The readings already in every
        channel's reports (id <= ``delivered_upto``) are the oldest, so they go first by construction.
        Returns (deleted, of those not yet delivered)."""
        oldest, newest = self.id_range()
        if not newest or newest - oldest + 1 <= limit:
            return 0, 0
        # 1 % below the limit: a store at its limit deletes (and warns) every hundredth of it, not every cycle
        cut = newest - (limit - limit // 100)
        conn = self._conn
        with write_transaction(conn, self.path, "delete the oldest readings"):
            deleted = int(conn.execute("DELETE FROM readings WHERE id <= ?", (cut,)).rowcount)
            undelivered = 0
            if delivered_upto is not None and cut > delivered_upto:
                undelivered = min(deleted, cut - delivered_upto)
            # the configurations and meters no reading refers to any more are kept: they are small, and a
            # meter's identity is needed again at its next reading
        return deleted, undelivered

    def iter_stored(self, *, after_id: int, upto_id: int | None = None) -> Iterator[tuple[int, Reading]]:
        """(id, reading) of the readings with ``after_id < id <= upto_id``, in id order (what the CSV log
        catches up on: the order they were stored in)."""
        params: list[object] = [after_id]
        where = "WHERE r.id > ?"
        if upto_id is not None:
            where += " AND r.id <= ?"
            params.append(upto_id)
        ids: list[int] = []
        configs: dict[int, Meter] = {}

        def note(head: tuple[Any, ...]) -> None:
            ids.append(int(head[0]))

        for reading in self._stream(f"{_SELECT} {where} ORDER BY r.id, v.position", params, configs, on_head=note):
            yield ids.pop(0), reading

    def count(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        meter: str | None = None,
        after_id: int | None = None,
    ) -> int:
        with mapped(self.path, "read readings"):
            where, params = _where(since, until, self._meter_ids_for(meter), after_id)
            row = self._conn.execute(f"SELECT count(*) FROM readings AS r {where}", params).fetchone()
        return int(row[0])

    def max_value_count(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        meter: str | None = None,
        after_id: int | None = None,
    ) -> int:
        """The largest number of values of one reading in the selection (the CSV header's width)."""
        with mapped(self.path, "read readings"):
            where, params = _where(since, until, self._meter_ids_for(meter), after_id)
            row = self._conn.execute(f"SELECT max(r.n_values) FROM readings AS r {where}", params).fetchone()
        return int(row[0] or 0)

    def meter_known(self, meter: str) -> bool:
        with mapped(self.path, "read meters"):
            row = self._conn.execute(
                "SELECT 1 FROM meters WHERE serial = ? OR device_id = ? COLLATE NOCASE LIMIT 1", (meter, meter)
            ).fetchone()
        return row is not None

    def iter_readings(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        meter: str | None = None,
        after_id: int | None = None,
        order: str = "time",
    ) -> Iterator[Reading]:
        """Readings with ``since <= taken_at <= until`` (both inclusive), ordered by time then id
        (``order="meter"``: by meter, then time and id — what the XML writer groups best).

        Streams: rows are fetched in chunks from one cursor, so memory stays flat for any selection.
        ``meter`` matches the serial number or the Device-ID (``MAN-SERIAL-VV-MM``); ``after_id`` keeps only
        readings stored after that id (the push outbox's high-water mark).
        """
        if order not in ("time", "meter"):
            raise ValueError(f"order {order!r} is not one of time, meter")
        configs: dict[int, Meter] = {}
        meter_ids = self._meter_ids_for(meter)
        if order == "time":
            where, params = _where(since, until, meter_ids, after_id)
            yield from self._stream(f"{_SELECT} {where} ORDER BY r.taken_at, r.id, v.position", params, configs)
            return
        # By meter: the ids of the selection come sorted from the time index alone (it carries the meter:
        # no table row is read to sort), then the readings are streamed in chunks of those ids, each chunk
        # in the same order. Memory holds one chunk; SQLite sorts the ids with its own temporary storage.
        where, params = _where(since, until, meter_ids, after_id)
        with mapped(self.path, "read readings"):
            cursor = self._conn.execute(
                f"SELECT r.id FROM readings AS r {where} ORDER BY r.meter_id, r.taken_at, r.id", params)
        while True:
            with mapped(self.path, "read readings"):
                chunk = [int(row[0]) for row in cursor.fetchmany(_ID_CHUNK)]
            if not chunk:
                return
            marks = ", ".join("?" * len(chunk))
            yield from self._stream(
                f"{_SELECT} WHERE r.id IN ({marks}) ORDER BY r.meter_id, r.taken_at, r.id, v.position",
                list(chunk), configs)

    def latest_readings(self) -> list[Reading]:
        """The newest reading of every meter, in meter order (``push --test``: the latest data, now)."""
        with mapped(self.path, "read readings"):
            ids = [int(row[0]) for row in self._conn.execute(
                "SELECT last_reading FROM meters WHERE last_reading IS NOT NULL ORDER BY id").fetchall()]
        configs: dict[int, Meter] = {}
        out: list[Reading] = []
        for reading_id in ids:
            out.extend(self._stream(f"{_SELECT} WHERE r.id = ? ORDER BY v.position", [reading_id], configs))
        return out

    def _meter_ids_for(self, meter: str | None) -> list[int] | None:
        """The meters matching a serial number or Device-ID; None for no filter."""
        if meter is None:
            return None
        with mapped(self.path, "read meters"):
            rows = self._conn.execute(
                "SELECT id FROM meters WHERE serial = ? OR device_id = ? COLLATE NOCASE ORDER BY id", (meter, meter)
            ).fetchall()
        return [int(row[0]) for row in rows]

    def _stream(self, sql: str, params: list[object], configs: dict[int, Meter],
                on_head: Any = None) -> Iterator[Reading]:
        try:
            yield from self._stream_rows(sql, params, configs, on_head)
        except sqlite3.Error as exc:
            raise store_error(exc, self.path, "read readings") from exc

    def _stream_rows(self, sql: str, params: list[object], configs: dict[int, Meter],
                     on_head: Any) -> Iterator[Reading]:
        cursor = self._conn.execute(sql, params)
        current: int | None = None
        head: tuple[Any, ...] = ()
        values: list[MeterValue] = []
        try:
            while True:
                rows = cursor.fetchmany(FETCH_CHUNK)
                if not rows:
                    break
                for row in rows:
                    if row[0] != current:
                        if current is not None:
                            if on_head is not None:
                                on_head(head)
                            yield self._build(head, values, configs)
                        current = row[0]
                        head = row[:6]
                        values = []
                    if row[6] is not None:
                        values.append(_value_from_row(row[7:]))
            if current is not None:
                if on_head is not None:
                    on_head(head)
                yield self._build(head, values, configs)
        finally:
            # an abandoned generator may be finalised after the store was closed
            with contextlib.suppress(sqlite3.ProgrammingError):
                cursor.close()

    def _build(self, head: tuple[Any, ...], values: list[MeterValue], configs: dict[int, Meter]) -> Reading:
        _id, config_id, taken_at, rssi, meter_rssi, frames = head
        meter = configs.get(config_id)
        if meter is None:
            row = self._conn.execute("SELECT body FROM meter_configs WHERE id = ?", (config_id,)).fetchone()
            meter = decode_meter(row[0], rssi=meter_rssi)
            if len(configs) >= _MEMO_LIMIT:
                configs.clear()
            configs[config_id] = meter
        if meter.rssi != meter_rssi:
            meter = dataclasses.replace(meter, rssi=meter_rssi)
        return Reading(
            meter=meter,
            taken_at=from_micros(taken_at),
            values=tuple(values),
            rssi=rssi,
            raw_frames=unpack_frames(frames),
        )


def _where(
    since: datetime | None, until: datetime | None, meter_ids: list[int] | None, after_id: int | None
) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if since is not None:
        clauses.append("r.taken_at >= ?")
        params.append(to_micros(since))
    if until is not None:
        clauses.append("r.taken_at <= ?")
        params.append(to_micros(until))
    if meter_ids is not None:
        if len(meter_ids) == 1:  # filtered in the (taken_at, meter_id, id) index, no table row read
            clauses.append("r.meter_id = ?")
        else:
            clauses.append(f"r.meter_id IN ({', '.join('?' * len(meter_ids))})")
        params.extend(meter_ids)
    if after_id is not None:
        clauses.append("r.id > ?")
        params.append(after_id)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params
