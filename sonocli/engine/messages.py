"""A reading as one JSON object: the shape ``readout --json`` prints and every MQTT message carries.

One function builds it (:func:`reading_message`), so a script written against ``readout --json`` reads the
broker's messages unchanged. MQTT reports are JSON Lines: one reading per line, in reading order, each line
published as one message to ``{MQTT_TOPIC}/{device_id}`` (sonocli.push.mqtt).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sonocli.engine.decoding import json_text, reading_to_dict
from sonocli.errors import SonoError
from sonocli.model.values import Meter, Reading

CONTENT_TYPE = "application/x-ndjson"


def meter_object(meter: Meter) -> dict[str, Any]:
    """The ``meter`` object of ``readout --json`` (device_id, serial, manufacturer, version, medium,
    primary_address, address_mode)."""
    return {
        "device_id": meter.device_id,
        "serial": meter.serial,
        "manufacturer": meter.manufacturer,
        "version": meter.version,
        "medium": meter.medium,
        "primary_address": meter.primary_address,
        "address_mode": meter.address_mode.name.lower(),
    }


def reading_message(reading: Reading, meter: Meter | None = None) -> dict[str, Any]:
    """``{"meter": {...}, "taken_at", "telegrams", "header", "records"}`` of one reading.

    ``meter`` is the entry to show (readout passes the list's entry with the addressing it read by); the
    reading's own meter otherwise. A first telegram that is not a wired frame (a wM-Bus reading) has no
    wired application header: ``header`` is then null, as for a manual S0/DLDE reading.
    """
    try:
        body = reading_to_dict(reading)
    except (SonoError, ValueError, IndexError):
        from dataclasses import replace

        body = reading_to_dict(replace(reading, raw_frames=()))
        body["telegrams"] = len(reading.raw_frames)
    return {"meter": meter_object(meter if meter is not None else reading.meter), **body}


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

