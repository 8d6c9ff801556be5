"""Decoded application data as the JSON shape `decode`, `readout` and `listen` print.

Shape (key order is part of the contract)::

    {"kind": "mbus", "header": {"id", "manufacturer", "version", "medium", "access_number", "status"},
     "records": [{"index", "function", "storage", "tariff", "subunit", "description", "unit", "scale",
                  "raw", "value", "dif_vif", "qualifiers"}, ...],
     "more_records_follow": false}

``value`` is raw × scale for numbers, exactly (an integer where it is whole, else the exact decimal: see
:func:`sonocli.model.values.json_number`; write it with :func:`sonocli.engine.decoding.json_text` so that
values beyond 15 significant digits stay exact), ISO 8601 for dates, the text for text; ``raw`` is the
number as sent (dates ISO 8601, binary data hex). ``description`` is the guide's Table 17 text, as in the
CSV and XML; ``qualifiers`` (always present, ``[]`` for a plain record) say what the combinable VIFEs
change in the meaning: ``["backward flow"]``, ``["per hour"]``, ``["start date(/time) of Volume"]``. A VIF
0x79 record (enhanced identification) has the address as ``value`` (``"ELR-29020256-FF-07"``) and adds
``identification``: ``{"id", "manufacturer", "version", "medium"}``. Application errors (CI 0x70) add
``application_error``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sonocli.codecs.mbus_app import AppData, Header, enhanced_identification
from sonocli.model.tables import measurement_index, medium_text
from sonocli.model.values import MeterValue, json_number

_IDENTIFICATION = measurement_index("Identification")  # Table 17: only VIF 0x79 decodes to it


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
    out = {
        "index": value.index,
        "function": value.function.value,
        "storage": value.storage,
        "tariff": value.tariff,
        "subunit": value.subunit,
        "description": value.description,
        "unit": value.unit,
        "scale": value.scale,
        "raw": _json_raw(value.raw),
        "value": json_number(value),
        "dif_vif": value.dif_vif.hex(" ").upper(),
        "qualifiers": [*value.qualifiers] if value.qualifiers else [],
    }
    if value.measurement == _IDENTIFICATION:
        ident = enhanced_identification(value)
        if ident is not None:
            out["value"] = ident.text
            out["identification"] = {
                "id": ident.id,
                "manufacturer": ident.manufacturer,
                "version": ident.version,
                "medium": None if ident.medium is None else medium_text(ident.medium),
            }
    return out


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
