"""The JSON Schema (draft 2020-12) of sonocli's ``--json`` output: the one meter object and what is built on it.

It ships with the package as data, so a script can validate against it (``python -c 'import json;
from sonocli.engine.meter_schema import SCHEMA; print(json.dumps(SCHEMA))'``), the man page's JSON SCHEMA
section is written from it (scripts/gen_docs.py), and tests/cli/test_json_schema.py holds every command's
output to it. The builders are sonocli.engine.meterjson and sonocli.engine.messages; a change there that
this schema does not describe fails that test.

``$defs`` names one shape per output: ``meter`` (nested in every reading), ``meter_entry`` (``meters
list/show``: the meter's keys at the top level), ``heard_entry``, ``reading`` (``readout``, ``readings``,
MQTT), ``failed`` (a meter that could not be read), ``dlde_reading``, ``listen_line``, ``sml_line``
and ``scan``.
"""

from __future__ import annotations

from typing import Any, Final

_TIME: Final = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$",
                "description": "ISO 8601, UTC"}
_INT_OR_NULL: Final = {"type": ["integer", "null"]}
_STR_OR_NULL: Final = {"type": ["string", "null"]}

# the keys of the meter object (sonocli.engine.meterjson.meter_object), in their order
_METER_KEYS: Final[dict[str, Any]] = {
    "device_id": {"type": "string", "description": "MAN-SERIAL-VV-MM (version and medium in hex)"},
    "serial": {"type": "string", "description": "8 digits as printed on the meter (F: any, in a mask)"},
    "manufacturer": {**_STR_OR_NULL, "description": "3-letter manufacturer code (FLAG id)"},
    "version": {**_INT_OR_NULL, "description": "generation / version byte"},
    "medium": {"oneOf": [{"type": "null"}, {"$ref": "#/$defs/medium"}]},
    "interface": {"enum": ["S0", "M-Bus", "wM-Bus", "DLDE"]},
    "primary_address": {"type": "integer", "minimum": 0, "maximum": 255},
    "address_mode": {"enum": ["primary", "secondary"]},
}

_RECORD_KEYS: Final[dict[str, Any]] = {
    "index": {"type": "integer", "minimum": -1,
              "description": "0-based position of the meter-list value entry (-1: not in the list)"},
    "function": {"enum": ["instantaneous", "maximum", "minimum", "errorgate"]},
    "storage": {"type": "integer", "minimum": 0},
    "tariff": {"type": "integer", "minimum": 0},
    "subunit": {"type": "integer", "minimum": 0},
    "description": {"type": "string"},
    "unit": {"type": "string", "description": "the guide's unit text (Table 18)"},
    "scale": {"type": "number"},
    "raw": {},
    "value": {"description": "raw x scale, exact; ISO 8601 for dates; text for text"},
    "dif_vif": {"type": "string"},
    "qualifiers": {"type": "array", "items": {"type": "string"}},
}

SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://sonocli.invalid/schema/meter.json",
    "title": "sonocli meter object",
    "$ref": "#/$defs/meter",
    "$defs": {
        "medium": {
            "type": "object",
            "properties": {"code": {"type": "integer", "minimum": 0, "maximum": 255},
                           "text": {"type": "string", "description": "Table 16 text"}},
            "required": ["code", "text"],
            "additionalProperties": False,
        },
        "meter": {
            "type": "object",
            "properties": _METER_KEYS,
            "required": list(_METER_KEYS),
            "additionalProperties": False,
        },
        "meter_keys": {"type": "object", "properties": _METER_KEYS, "required": list(_METER_KEYS)},
        "error": {
            "type": "object",
            "properties": {"message": {"type": "string"}, "kind": {"type": "string"}},
            "required": ["message", "kind"],
            "additionalProperties": False,
        },
        "record": {"type": "object", "properties": _RECORD_KEYS, "required": list(_RECORD_KEYS)},
        "header": {
            "oneOf": [{"type": "null"}, {
                "type": "object",
                "properties": {"id": _STR_OR_NULL, "manufacturer": _STR_OR_NULL, "version": _INT_OR_NULL,
                               "medium": _STR_OR_NULL, "access_number": _INT_OR_NULL, "status": _INT_OR_NULL},
                "required": ["id", "manufacturer", "version", "medium", "access_number", "status"],
            }],
        },
        "reading": {
            "type": "object",
            "properties": {
                "meter": {"$ref": "#/$defs/meter"},
                "time": _TIME,
                "telegrams": {"type": "integer", "minimum": 0},
                "header": {"$ref": "#/$defs/header"},
                "records": {"type": "array", "items": {"$ref": "#/$defs/record"}},
                "limited": {"type": "boolean", "description": "readout only"},
            },
            "required": ["meter", "time", "telegrams", "header", "records"],
        },
        "failed": {
            "type": "object",
            "properties": {"meter": {"$ref": "#/$defs/meter"}, "error": {"$ref": "#/$defs/error"}},
            "required": ["meter", "error"],
            "additionalProperties": False,
        },
        "dlde_reading": {
            "type": "object",
            "properties": {
                "meter": {"$ref": "#/$defs/meter"},
                "protocol": {"const": "dlde"},
                "identification": {"type": "string"},
                "mode": {"type": "string"},
                "baudrate": {"type": "integer"},
                "time": _TIME,
                "records": {"type": "array", "items": {"allOf": [
                    {"$ref": "#/$defs/record"},
                    {"type": "object", "properties": {"obis": {"type": "string"}}, "required": ["obis"]},
                ]}},
            },
            "required": ["meter", "protocol", "identification", "mode", "baudrate", "time", "records"],
        },
        "listen_line": {
            "type": "object",
            "properties": {
                "meter": {"$ref": "#/$defs/meter"},
                "time": _TIME,
                "rssi": _INT_OR_NULL,
                "in_list": {"type": "boolean"},
                "new": {"type": "boolean"},
                "kind": {"const": "wmbus"},
                "records": {"type": "array", "items": {"$ref": "#/$defs/record"}},
                "error": {"$ref": "#/$defs/error"},
            },
            "required": ["meter", "time", "rssi", "kind"],
        },
        "sml_line": {
            "type": "object",
            "properties": {
                "meter": {"$ref": "#/$defs/meter"},
                "time": _TIME,
                "kind": {"const": "sml"},
                "records": {"type": "array", "items": {"allOf": [
                    {"$ref": "#/$defs/record"},
                    {"type": "object", "properties": {"obis": {"type": "string"}}, "required": ["obis"]},
                ]}},
            },
            "required": ["meter", "time", "kind", "records"],
        },
        "value_entry": {
            "type": "object",
            "properties": {"index": {"type": "integer", "minimum": 1}, "description": {"type": "string"},
                           "unit": {"type": "string"}, "active": {"type": "boolean"}, "user": _STR_OR_NULL},
            "required": ["index", "description", "unit", "active"],
        },
        "meter_entry": {
            "allOf": [{"$ref": "#/$defs/meter_keys"}, {
                "type": "object",
                "properties": {
                    "index": {"type": "integer", "minimum": 1, "description": "1-based position in the list"},
                    "key": _STR_OR_NULL,
                    "active": {"type": "boolean"},
                    "limited": {"type": "boolean"},
                    "values": {"type": "array", "items": {"$ref": "#/$defs/value_entry"}},
                },
                "required": ["index", "key", "active", "limited", "values"],
            }],
        },
        "heard_entry": {
            "allOf": [{"$ref": "#/$defs/meter_keys"}, {
                "type": "object",
                "properties": {"rssi": _INT_OR_NULL, "first_seen": _TIME, "last_seen": _TIME,
                               "telegrams": {"type": "integer"}, "security": {"type": "string"},
                               "decrypts": {"type": "boolean"}},
                "required": ["rssi", "first_seen", "last_seen", "telegrams", "security", "decrypts"],
            }],
        },
        "scan": {
            "type": "object",
            "properties": {"meters": {"type": "array", "items": {"$ref": "#/$defs/meter"}},
                           "added": {"type": "array", "items": {"type": "string"}}},
            "required": ["mode", "probes", "meters", "added"],
        },
    },
}


def schema_for(name: str) -> dict[str, Any]:
    """A schema that validates one output shape (a ``$defs`` name), with the definitions it refers to."""
    if name not in SCHEMA["$defs"]:
        raise KeyError(f"no shape {name!r} in the schema; known: {', '.join(SCHEMA['$defs'])}")
    return {**{k: v for k, v in SCHEMA.items() if k != "$ref"}, "$ref": f"#/$defs/{name}"}
