"""A small JSON Schema validator for the subset sonocli.engine.meter_schema uses (the ``jsonschema``
package is not a dependency): type, enum, const, pattern, minimum/maximum, properties, required,
additionalProperties (a boolean), items, $ref into ``#/$defs``, allOf, anyOf, oneOf."""

from __future__ import annotations

import re
from typing import Any

_TYPES: dict[str, Any] = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def errors(value: Any, schema: dict[str, Any], root: dict[str, Any], path: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema`` (empty: valid), each with the JSON path where it does."""
    found: list[str] = []
    known = {"$schema", "$id", "title", "description", "$defs", "$ref", "type", "enum", "const", "pattern",
             "minimum", "maximum", "properties", "required", "additionalProperties", "items", "allOf", "anyOf",
             "oneOf"}
    unknown = set(schema) - known
    if unknown:  # a keyword this checker would silently ignore: refuse instead
        raise ValueError(f"schema keyword(s) {sorted(unknown)} at {path} are not supported")
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        found += errors(value, root["$defs"][name], root, path)
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, n) for n in names):
            return [*found, f"{path}: {value!r} is not of type {names}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        found.append(f"{path}: {value!r} is not {schema['const']!r}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        found.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if "minimum" in schema and _is_type(value, "number") and value < schema["minimum"]:
        found.append(f"{path}: {value!r} < {schema['minimum']}")
    if "maximum" in schema and _is_type(value, "number") and value > schema["maximum"]:
        found.append(f"{path}: {value!r} > {schema['maximum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                found.append(f"{path}: missing key {key!r}")
        for key, item in value.items():
            if key in props:
                found += errors(item, props[key], root, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                found.append(f"{path}: unexpected key {key!r}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += errors(item, schema["items"], root, f"{path}[{i}]")
    for sub in schema.get("allOf", []):
        found += errors(value, sub, root, path)
    if "anyOf" in schema and all(errors(value, s, root, path) for s in schema["anyOf"]):
        found.append(f"{path}: matches none of anyOf")
    if "oneOf" in schema:
        matching = sum(1 for s in schema["oneOf"] if not errors(value, s, root, path))
        if matching != 1:
            found.append(f"{path}: matches {matching} of oneOf, not exactly 1")
    return found


def check(value: Any, shape: str) -> None:
    """Assert that ``value`` is a valid ``shape`` (a ``$defs`` name of sonocli's schema)."""
    from sonocli.engine.meter_schema import SCHEMA

    problems = errors(value, {"$ref": f"#/$defs/{shape}"}, SCHEMA)
    assert not problems, f"not a valid {shape}:\n" + "\n".join(problems[:20])
