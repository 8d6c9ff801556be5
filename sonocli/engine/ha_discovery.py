"""Home Assistant MQTT discovery computed from the meter list (chip.ini MQTT_HA_DISCOVERY=1).

One retained config message per *active value of an active meter*, under
``homeassistant/sensor/sonocli_<muc_id>/<device_id>_<index>/config``: the meter is the device, the value
entry gives the name, the unit and, where the unit and the function allow it, ``device_class`` and
``state_class`` (an energy or volume counter is ``total_increasing``; a temperature, power or flow is a
``measurement``; a maximum or minimum of a counter gets no state class, since it is no counter). The state
is read from the reading's message on ``{MQTT_TOPIC}/{device_id}``, picking the record whose ``index`` is
the value's position in the meter list — the same index ``readout --json`` prints.

Computed afresh at every report from the meter list as it is then, so an edit to the list (a value or meter
deactivated) shows in the next report; values that are in the list but inactive are returned as
``retired`` so the channel removes their entities. What was published before is remembered by the channel
(sonocli.push.mqtt, ``ext/mqtt-discovery.json``), which also removes the entities of deleted meters.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sonocli import __version__
from sonocli.model.values import Meter, ValueConfig, ValueType
from sonocli.push.mqtt import Discovery, discovery_topic, object_id

if TYPE_CHECKING:
    from sonocli.engine.core import Engine

# sonocli unit -> (Home Assistant unit, device_class, state class of the instantaneous value)
_UNITS: dict[str, tuple[str, str | None, str]] = {
    "Wh": ("Wh", "energy", "total_increasing"),
    "kWh": ("kWh", "energy", "total_increasing"),
    "MWh": ("MWh", "energy", "total_increasing"),
    "J": ("J", "energy", "total_increasing"),
    "kJ": ("kJ", "energy", "total_increasing"),
    "MJ": ("MJ", "energy", "total_increasing"),
    "GJ": ("GJ", "energy", "total_increasing"),
    "m³": ("m³", "volume", "total_increasing"),
    "l": ("L", "volume", "total_increasing"),
    "W": ("W", "power", "measurement"),
    "kW": ("kW", "power", "measurement"),
    "m³/h": ("m³/h", "volume_flow_rate", "measurement"),
    "l/h": ("L/h", "volume_flow_rate", "measurement"),
    "degree C": ("°C", "temperature", "measurement"),
    "°C": ("°C", "temperature", "measurement"),
    "K": ("K", None, "measurement"),  # a temperature difference is not a temperature
    "V": ("V", "voltage", "measurement"),
    "A": ("A", "current", "measurement"),
    "bar": ("bar", "pressure", "measurement"),
    "s": ("s", "duration", "measurement"),
    "min": ("min", "duration", "measurement"),
    "H": ("h", "duration", "measurement"),
    "D": ("d", "duration", "measurement"),
    "kg": ("kg", "weight", "measurement"),
}
_COUNTING_DURATIONS = ("Operating time", "On-time")  # counters, unlike an averaging or actuality duration
# media whose volume is water or gas (EN 13757-3 device types): a more telling device class than "volume"
_WATER = {0x06, 0x07, 0x15, 0x16, 0x28}
_GAS = {0x03}


def classes(value: ValueConfig, medium: int | None) -> dict[str, str]:
    """unit_of_measurement, device_class and state_class where the unit and the function allow them."""
    if value.description == "%RH":
        out = {"unit_of_measurement": "%", "device_class": "humidity"}
        if value.valuetype is ValueType.INSTANTANEOUS:
            out["state_class"] = "measurement"
        return out
    known = _UNITS.get(value.unit)
    if known is None:
        return {}  # "None", "Bin", "UTC", text: no unit Home Assistant could plot
    unit, device_class, state_class = known
    if device_class == "volume" and medium in _WATER:
        device_class = "water"
    elif device_class == "volume" and medium in _GAS:
        device_class = "gas"
    if device_class == "duration" and value.description in _COUNTING_DURATIONS:
        state_class = "total_increasing"
    out = {"unit_of_measurement": unit}
    if device_class is not None:
        out["device_class"] = device_class
    if value.valuetype is ValueType.INSTANTANEOUS:
        out["state_class"] = state_class
    elif state_class == "measurement" and value.valuetype in (ValueType.MAXIMUM, ValueType.MINIMUM):
        out["state_class"] = "measurement"
    return out


def value_name(value: ValueConfig) -> str:
    """The entity name: the description, then what tells two values of one meter apart."""
    parts = [value.description if value.description not in ("", "None") else "Value"]
    if value.valuetype is not ValueType.INSTANTANEOUS:
        parts.append(value.valuetype.value)
    if value.tariff:
        parts.append(f"tariff {value.tariff}")
    if value.storagenum:
        parts.append(f"storage {value.storagenum}")
    if value.subunit:
        parts.append(f"subunit {value.subunit}")
    return " ".join(parts)


def device(meter: Meter) -> dict[str, Any]:
    from sonocli.model.tables import medium_text

    out: dict[str, Any] = {
        "identifiers": [f"sonocli_{object_id(meter.device_id)}"],
        "name": f"{meter.manufacturer or 'Meter'} {meter.serial}",
        "serial_number": meter.serial,
    }
    if meter.manufacturer:
        out["manufacturer"] = meter.manufacturer
    if meter.medium is not None:
        out["model"] = f"{medium_text(meter.medium)} meter, version {meter.version or 0}"
    return out


def config(meter: Meter, index: int, value: ValueConfig, base: str) -> dict[str, Any]:
    """The discovery config of value ``index`` of ``meter`` (states on ``{base}/{device_id}``)."""
    template = (f"{{% set r = value_json.records | selectattr('index', 'eq', {index}) | list %}}"
                f"{{{{ r[0].value if r else none }}}}")
    out: dict[str, Any] = {
        "name": value_name(value),
        "unique_id": f"sonocli_{object_id(meter.device_id)}_{index}",
        "state_topic": f"{base}/{meter.device_id}",
        "value_template": template,
        "availability_topic": f"{base}/status",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device(meter),
        "origin": {"name": "sonocli", "sw_version": __version__},
        **classes(value, meter.medium),
    }
    return out


def discovery(engine: Engine, base: str) -> Discovery:
    """The discovery of the meter list as it is on disk now: configs of active values, retired topics of the
    inactive ones (see the module docstring)."""
    muc = f"{engine.muc_id:x}"
    configs: dict[str, bytes] = {}
    retired: list[str] = []
    for meter in engine.meter_list().meters:
        for index, value in enumerate(meter.values):
            topic = discovery_topic(muc, meter.device_id, index)
            if meter.active and value.active:
                payload = json.dumps(config(meter, index, value, base), sort_keys=True, ensure_ascii=False)
                configs[topic] = payload.encode("utf-8")
            else:
                retired.append(topic)
    return Discovery(configs, tuple(retired))
