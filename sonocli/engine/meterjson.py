"""The one JSON meter object, and the shapes built on it, for every face that hands meters to a script.

A meter appears in many places — ``scan``, ``readout``, ``listen``, ``readings``, ``meters list/show/heard``,
the MQTT messages and the web interface's ``/api`` — and a script should meet the same object in each, so
it is built here and only here (:func:`meter_object`)::

    {"device_id": "KAM-06855817-08-04", "serial": "06855817", "manufacturer": "KAM", "version": 8,
     "medium": {"code": 4, "text": "Heat (outlet)"}, "interface": "M-Bus",
     "primary_address": 0, "address_mode": "secondary"}

A meter-list entry *is* a meter: ``meters list/show`` and ``/api/meters`` give the meter object's keys at
the top level, with the list's own keys after them (:func:`meter_dict`); so do the heard meters
(:func:`heard_dict`). A reading *has* a meter: it is ``{"meter": {...}, "time": ISO 8601 UTC, ...}``
(sonocli.engine.messages). A meter that failed is ``{"meter": {...}, "error": {"message", "kind"}}``
(:func:`error_object`). The machine-readable form of all of it is sonocli/schema/meter.json, which the
tests hold every command's output to. The web layer may not import the CLI, so the shapes live here,
below both.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

# SonoError subclass name -> the "kind" of an error object (the rest: the class name in snake case)
_KINDS = {"SonoError": "error", "TimeoutError_": "timeout", "PartialFailure": "partial"}


def key_text(key: bytes | None, show: bool) -> str | None:
    """A meter-list key in the device's spelling (``82 B0 …``), or ``********`` unless keys are visible."""
    if key is None:
        return None
    return " ".join(f"{b:02X}" for b in key) if show else "********"


def medium_object(code: int | None) -> dict[str, Any] | None:
    """``{"code": 7, "text": "Water"}`` (the EN 13757-3 device type and its Table 16 text); null unknown."""
    if code is None:
        return None
    from sonocli.model.tables import medium_text

    return {"code": code, "text": medium_text(code)}


def meter_object(meter: Any) -> dict[str, Any]:
    """The one JSON meter object (see the module text) of a :class:`sonocli.model.values.Meter`."""
    return {
        "device_id": meter.device_id,
        "serial": meter.serial,
        "manufacturer": meter.manufacturer,
        "version": meter.version,
        "medium": medium_object(meter.medium),
        "interface": meter.interface.label,
        "primary_address": meter.primary_address,
        "address_mode": meter.address_mode.name.lower(),
    }


def iso_time(moment: datetime) -> str:
    """The ``time`` of every JSON object: ISO 8601 in UTC (``2026-12-03T16:42:49.203722+00:00``)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def error_kind(error: BaseException) -> str:
    """A short, stable word for what kind of failure an exception is (``timeout``, ``transport``, …)."""
    name = type(error).__name__
    if name in _KINDS:
        return _KINDS[name]
    from sonocli.errors import SonoError

    if not isinstance(error, SonoError):
        return "internal"
    stem = name.removesuffix("Error").removesuffix("_") or name
    return re.sub(r"(?<!^)(?=[A-Z])", "_", stem).lower()


def error_object(error: BaseException | str, kind: str | None = None) -> dict[str, Any]:
    """``{"message": ..., "kind": ...}``: how a failure appears beside the meter it belongs to."""
    if isinstance(error, BaseException):
        return {"message": str(error), "kind": kind or error_kind(error)}
    return {"message": error, "kind": kind or "error"}


def failed_meter(meter: Any, error: BaseException | str, kind: str | None = None) -> dict[str, Any]:
    """A meter that could not be read: ``{"meter": {...}, "error": {"message", "kind"}}``."""
    return {"meter": meter_object(meter), "error": error_object(error, kind)}


def meter_dict(number: int, meter: Any, show_keys: bool, status: Any = None) -> dict[str, Any]:
    """The ``meters list/show --json`` shape of one list entry (``number`` its 1-based position): ``index``,
    the meter object's keys, then the list's own.

    ``status`` is the engine's MeterStatus of the meter (``engine.meter_statuses()``), if any: ``limited``
    (the "*" state: the last readout had more records than the value limit) is always present, ``note`` (how
    the last readout's records were matched when the record layout changed) is null without one.
    """
    return {
        "index": number,
        **meter_object(meter),
        "readout_cycle": meter.readout_cycle,
        "max_value_count": meter.max_value_count,
        "key": key_text(meter.key, show_keys),
        "active": meter.active,
        "rssi": meter.rssi,
        "register": meter.register,
        "user": meter.user,
        "limited": bool(status is not None and status.limited),
        "note": None if status is None else status.note,
        "values": [value_dict(i + 1, v) for i, v in enumerate(meter.values)],
    }


def value_dict(number: int, value: Any) -> dict[str, Any]:
    """One value entry of the meter list (``number`` its 1-based position in the meter)."""
    return {
        "index": number,
        "description": value.description,
        "unit": value.unit,
        "scale": f"1e{value.exponent}",
        "encodetype": value.encodetype,
        "valuetype": str(value.valuetype.value),
        "storagenum": value.storagenum,
        "tariff": value.tariff,
        "obis": value.obis,
        "active": value.active,
        "register": value.register,
        "user": value.user,
        "value": value.value,
    }


def heard_dict(entry: Any) -> dict[str, Any]:
    """One heard wM-Bus meter (``meters heard --json``, a store HeardEntry): the meter object's keys, then
    what was heard (rssi, first/last seen in ISO 8601 UTC, telegrams, security, decrypts)."""
    from sonocli.model.values import Interface, Meter

    meter = Meter(Interface.WMBUS, serial=entry.id, manufacturer=entry.manufacturer, version=entry.version,
                  medium=entry.medium)
    return {
        **meter_object(meter),
        "rssi": entry.rssi,
        "first_seen": iso_time(entry.first_seen),
        "last_seen": iso_time(entry.last_seen),
        "telegrams": entry.telegrams,
        "security": entry.security,
        "decrypts": entry.decrypts,
    }
