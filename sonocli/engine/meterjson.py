"""The JSON shape of meter-list entries, for every face that hands meters to a script.

``sonocli meters list --json`` (sonocli/cli/common.py) and the web interface's ``GET /api/meters`` give
the same objects. The web layer may not import the CLI, so the shape lives here, below both;
tests/integration/test_web_api.py checks that the two agree field for field.
"""

from __future__ import annotations

from typing import Any


def key_text(key: bytes | None, show: bool) -> str | None:
    """A meter-list key in the device's spelling (``82 B0 …``), or ``********`` unless keys are visible."""
    if key is None:
        return None
    return " ".join(f"{b:02X}" for b in key) if show else "********"


def meter_dict(number: int, meter: Any, show_keys: bool, status: Any = None) -> dict[str, Any]:
    """The ``meters list/show --json`` shape of one list entry (``number`` its 1-based position).

    ``status`` is the engine's MeterStatus of the meter (``engine.meter_statuses()``), if any: ``limited``
    (the "*" state: the last readout had more records than the value limit) is always present, ``note`` (how
    the last readout's records were matched when the record layout changed) is null without one.
    """
    return {
        "index": number,
        "device_id": meter.device_id,
        "interface": meter.interface.label,
        "serial": meter.serial,
        "manufacturer": meter.manufacturer,
        "version": meter.version,
        "medium": meter.medium,
        "medium_text": None if meter.medium is None else meter.identity.medium_text,
        "primary_address": meter.primary_address,
        "address_mode": meter.address_mode.name.lower(),
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
