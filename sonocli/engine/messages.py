"""A reading as one JSON object: the shape ``readout --json`` and ``readings --json`` print and every MQTT
message carries.

One function builds it (:func:`reading_message`), so a script written against ``readout --json`` reads the
broker's messages and the stored history unchanged: ``{"meter": {...}, "time", "telegrams", "header",
"records"}`` with the one meter object of sonocli.engine.meterjson and ``time`` in ISO 8601 UTC.

MQTT reports are JSON Lines: one reading per line, in reading order, each line
published as one message to ``{MQTT_TOPIC}/{device_id}`` (sonocli.push.mqtt).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sonocli.engine.decoding import json_text, reading_header, records_to_dicts
from sonocli.engine.meterjson import iso_time, meter_object
from sonocli.errors import SonoError
from sonocli.model.values import Meter, MeterValue, Reading

__all__ = ["CONTENT_TYPE", "dlde_message", "json_line", "line_chunks", "meter_object", "reading_message",
           "render_lines"]

CONTENT_TYPE = "application/x-ndjson"


def reading_message(reading: Reading, meter: Meter | None = None,
                    values: Iterable[MeterValue] | None = None) -> dict[str, Any]:
    """``{"meter": {...}, "time", "telegrams", "header", "records"}`` of one reading.

    ``meter`` is the entry to show (readout passes the list's entry with the addressing it read by); the
    reading's own meter otherwise. ``values`` are the records to show (``readings --value``: a selection of
    the reading's), all by default. A first telegram that is not a wired frame (a wM-Bus reading) has no
    wired application header: ``header`` is then null, as for a manual S0/DLDE reading.
    """
    try:
        header = reading_header(reading)
    except (SonoError, ValueError, IndexError):
        header = None
    return {
        "meter": meter_object(meter if meter is not None else reading.meter),
        "time": iso_time(reading.taken_at),
        "telegrams": len(reading.raw_frames),
        "header": header,
        "records": records_to_dicts(tuple(reading.values if values is None else values)),
    }


def dlde_message(reading: Reading, details: dict[str, Any]) -> dict[str, Any]:
    """``readout --protocol dlde --json``: the meter, ``details`` (protocol, identification, mode, baudrate
    as sonocli.engine.dlde gives them, less its own time key), ``time`` and records with ``"obis"``."""
    from sonocli.engine.dlde import record_dicts

    body = {k: v for k, v in details.items() if k not in ("time", "records", "meter")}
    return {"meter": meter_object(reading.meter), **body, "time": iso_time(reading.taken_at),
            "records": record_dicts(reading.values)}


def json_line(reading: Reading) -> bytes:
    """One reading as one compact JSON line (no newline), with exact numbers as ``readout --json`` has them."""
    return json_text(reading_message(reading), compact=True).encode("utf-8")


def render_lines(readings: Iterable[Reading]) -> bytes:
    """Readings as JSON Lines (each line ends with a newline; no readings: empty)."""
    return b"".join(json_line(r) + b"\n" for r in readings)


def line_chunks(readings: Iterable[Reading], limit: int) -> Iterator[tuple[bytes, int]]:
    """JSON Lines payloads of at most ``limit`` bytes, in reading order; (payload, reading count).

    A reading longer than the limit goes out alone (dropping it would lose data); the broker's own limit is
    checked when it is published.
    """
    lines: list[bytes] = []
    size = 0
    for reading in readings:
        line = json_line(reading) + b"\n"
        if lines and size + len(line) > limit:
            yield b"".join(lines), len(lines)
            lines, size = [], 0
        lines.append(line)
        size += len(line)
    if lines:
        yield b"".join(lines), len(lines)

