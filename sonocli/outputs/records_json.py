"""Decoded application data as the JSON shape `decode`, `readout` and `listen` print.

Shape (key order is part of the contract)::

    {"kind": "mbus", "header": {"id", "manufacturer", "version", "medium", "access_number", "status"},
     "records": [{"index", "function", "storage", "tariff", "subunit", "description", "unit", "scale",
                  "raw", "value", "dif_vif"}, ...],
     "more_records_follow": false}

``value`` is raw × scale for numbers, ISO 8601 for dates, the text for text; ``raw`` is the number as
sent (dates ISO 8601, binary data hex). Application errors (CI 0x70) add ``application_error``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sonocli.codecs.mbus_app import AppData, Header
from sonocli.model.tables import medium_text
from sonocli.model.values import MeterValue


def header_to_dict(header: Header | None) -> dict[str, Any] | None:
    if header is None:
        return None
    has_address = bool(header.id)  # short headers (CI 0x7A) carry no secondary address
    return {
        "id": header.id if has_address else None,
        "manufacturer": (header.manufacturer or None) if has_address else None,
        "version": header.version if has_address else None,
        "medium": medium_text(header.medium) if has_address else None,
        "access_number": header.access_number,
        "status": header.status,
    }


def _json_raw(raw: object) -> Any:
    if isinstance(raw, datetime):
        return raw.isoformat()
    if isinstance(raw, bytes):
        return raw.hex().upper()
    return raw


def value_to_dict(value: MeterValue) -> dict[str, Any]:
    return {
        "index": value.index,
        "function": value.function.value,
        "storage": value.storage,
        "tariff": value.tariff,
        "subunit": value.subunit,
        "description": value.description,
        "unit": value.unit,
        "scale": value.scale,
        "raw": _json_raw(value.raw),
        "value": value.value,
        "dif_vif": value.dif_vif.hex(" ").upper(),
    }


def app_to_dict(app: AppData) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": "mbus",
        "header": header_to_dict(app.header),
        "records": [value_to_dict(v) for v in app.values],
        "more_records_follow": app.more_records_follow,
    }
    if app.application_error is not None:
        out["application_error"] = {"code": app.application_error, "text": app.application_error_text}
    if app.alarm is not None:
        out["alarm"] = app.alarm
    return out
