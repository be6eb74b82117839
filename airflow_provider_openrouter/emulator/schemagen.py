"""JSON that fits a JSON Schema (``response_format`` and tool parameters), deterministic for a given digest,
and, for the ``[[emulator: invalid-json]]`` directive, JSON that breaks one."""

from __future__ import annotations

import json
import random
from typing import Any

from airflow_provider_openrouter.emulator.words import WORDS as _WORDS

_FORMAT_EXAMPLES = {
    "date-time": "2025-01-15T09:30:00Z",
    "date": "2025-01-15",
    "time": "09:30:00",
    "email": "analyst@example.com",
    "uri": "https://example.com/report",
    "url": "https://example.com/report",
    "hostname": "example.com",
    "ipv4": "192.0.2.10",
    "uuid": "3f2b8c1e-9d4a-4e7b-8c21-5a6f0e9d1b42",
}
_MAX_SCHEMA_DEPTH = 8
# A schema asking for more than this (minItems 10**9, nested arrays, minLength 10**9) would hold the event
# loop for minutes; no model answers that much, so it is refused instead.
MAX_SCHEMA_VALUES = 20_000
MAX_SCHEMA_STRING = 100_000


class SchemaError(ValueError):
    """A JSON Schema (``response_format`` or a tool's ``parameters``) no value can be generated for."""


class _Budget(random.Random):
    """The answer's generator, counting the values a schema makes it generate."""

    left = MAX_SCHEMA_VALUES


def schema_json(
    schema: Any, digest: bytes, where: str, separators: tuple[str, str], *, broken: bool = False
) -> str:
    """The JSON text of a value valid against ``schema`` (with ``broken``, of one it rejects: see
    :func:`break_value`); SchemaError naming ``where`` if none can be made."""
    try:
        value = value_for_schema(schema, _Budget(digest))
        return json.dumps(break_value(value, schema) if broken else value, separators=separators)
    except SchemaError as exc:
        raise SchemaError(f"{where}: {exc}") from None
    except RecursionError:
        raise SchemaError(
            f"{where}: nested too deeply to follow (or a $ref that leads back to itself)"
        ) from None
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, ArithmeticError) as exc:
        raise SchemaError(f"{where}: not a JSON Schema this server can follow ({exc!r})") from None


def value_for_schema(schema: Any, rng: random.Random, root: Any = None, depth: int = 0) -> Any:
    """A JSON value valid against ``schema``.

    Supported: type (and type lists), object/properties/required, array/items/minItems/maxItems, string with
    enum/const/format/minLength/maxLength, number and integer with minimum/maximum (exclusive too)/multipleOf,
    boolean, null, anyOf/oneOf (the first non-null branch), allOf (merged), local ``$ref`` (#/$defs,
    #/definitions).
    ``pattern`` is not honoured.
    """
    root = schema if root is None else root
    if isinstance(rng, _Budget):
        rng.left -= 1
        if rng.left < 0:
            raise SchemaError(f"asks for more than {MAX_SCHEMA_VALUES:,} values; send a smaller schema")
    if not isinstance(schema, dict):
        return " ".join(rng.choices(_WORDS, k=3))
    if "$ref" in schema:
        return value_for_schema(_resolve_ref(root, schema["$ref"]), rng, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return rng.choice(schema["enum"])
    for combinator in ("anyOf", "oneOf"):
        options = schema.get(combinator)
        if options:
            chosen = next(
                (o for o in options if not (isinstance(o, dict) and o.get("type") == "null")), options[0]
            )
            return value_for_schema(chosen, rng, root, depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = _resolve_ref(root, part["$ref"]) if isinstance(part, dict) and "$ref" in part else part
            for key, value in (part or {}).items():
                if key in ("properties", "required") and key in merged:
                    merged[key] = {**merged[key], **value} if key == "properties" else [*merged[key], *value]
                else:
                    merged[key] = value
        return value_for_schema(merged, rng, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    return _VALUE_BUILDERS.get(kind, _string_value)(schema, rng, root, depth)


# Values of distinct JSON types, tried in order by break_value for one the schema's types exclude.
_WRONG_TYPES: tuple[tuple[str, Any], ...] = (
    ("array", ["not", "what", "the", "schema", "asks"]),
    ("string", "not what the schema asks"),
    ("boolean", True),
    ("null", None),
    ("object", {}),
)


def break_value(value: Any, schema: Any) -> Any:
    """A JSON value ``schema`` rejects, made from ``value`` (one it accepts): ``value`` without its first
    required property when the schema's top level requires one, else a value of a JSON type the schema does
    not allow. A schema that fixes no type at its top level (``{}``, or an ``anyOf`` with an untyped branch)
    accepts any value, so SchemaError says so.

    What the ``[[emulator: invalid-json]]`` directive answers, so clients can test their invalid-output path
    with the JSON a model really sends when it drifts from the schema: well-formed, of the wrong shape.
    """
    node = _top_level(schema, schema)
    required = [
        name
        for part in [node, *node.get("allOf", ())]
        for name in _top_level(part, schema).get("required") or ()
    ]
    if isinstance(value, dict) and required:
        return {key: item for key, item in value.items() if key != required[0]}
    allowed = _allowed_types(node, schema)
    if allowed is None:
        raise SchemaError("accepts any JSON value at its top level, so no answer can break it (invalid-json)")
    enum = node.get("enum", [node["const"]] if "const" in node else None)
    for kind, candidate in _WRONG_TYPES:
        if kind not in allowed and (enum is None or candidate not in enum):
            return candidate
    raise SchemaError("accepts every JSON type at its top level, so no answer can break it (invalid-json)")


def _top_level(node: Any, root: Any) -> dict[str, Any]:
    """``node`` with ``$ref`` followed (a pydantic schema may be only a ``$ref`` into ``$defs``)."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < _MAX_SCHEMA_DEPTH:
        node = _resolve_ref(root, node["$ref"])
        seen += 1
    return node if isinstance(node, dict) else {}


def _allowed_types(node: dict[str, Any], root: Any) -> set[str] | None:
    """The JSON types ``node`` admits at its top level, or None when any type may pass."""
    if "enum" in node or "const" in node:
        return set()  # checked by value, not by type
    kind = node.get("type")
    if kind is None and "properties" in node:
        kind = "object"
    if kind is not None:
        kinds = {kind} if isinstance(kind, str) else set(kind)
        return kinds | {"integer"} if "number" in kinds else kinds
    branches = node.get("anyOf") or node.get("oneOf")
    if not branches:
        return None
    allowed: set[str] = set()
    for branch in branches:
        found = _allowed_types(_top_level(branch, root), root)
        if found is None:
            return None
        allowed |= found
    return allowed


def _resolve_ref(root: Any, ref: str) -> Any:
    if not ref.startswith("#"):
        return {}
    node = root
    for part in ref.lstrip("#").strip("/").split("/"):
        if not part:
            continue
        if not isinstance(node, dict) or part not in node:
            return {}
        node = node[part]
    return node


def _object_value(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    out: dict[str, Any] = {}
    for name, sub in properties.items():
        if depth >= _MAX_SCHEMA_DEPTH and name not in required:
            continue
        out[name] = value_for_schema(sub, rng, root, depth + 1)
    extra = schema.get("additionalProperties")
    if not properties and isinstance(extra, dict):
        out["key"] = value_for_schema(extra, rng, root, depth + 1)
    return out


def _array_value(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> list[Any]:
    low = int(schema.get("minItems", 0))
    high = int(schema.get("maxItems", max(low, 3)))
    count = low if depth >= _MAX_SCHEMA_DEPTH else min(high, max(low, 1 + rng.randrange(3)))
    items = schema.get("items", {})
    if isinstance(schema.get("prefixItems"), list):
        prefix = [value_for_schema(s, rng, root, depth + 1) for s in schema["prefixItems"]]
        return prefix + [
            value_for_schema(items, rng, root, depth + 1) for _ in range(max(0, count - len(prefix)))
        ]
    values: list[Any] = []
    for _ in range(count):
        value = value_for_schema(items, rng, root, depth + 1)
        if schema.get("uniqueItems") and value in values:
            continue
        values.append(value)
    return values


def _string_value(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> str:
    text = _FORMAT_EXAMPLES.get(str(schema.get("format", "")))
    if text is None:
        text = " ".join(rng.choices(_WORDS, k=1 + rng.randrange(4)))
    low = int(schema.get("minLength", 0))
    if low > MAX_SCHEMA_STRING:
        raise SchemaError(
            f"minLength {low} is more than the {MAX_SCHEMA_STRING:,} characters this server writes"
        )
    high = schema.get("maxLength")
    while len(text) < low:
        text += " " + rng.choice(_WORDS)
    if high is not None:
        text = text[: int(high)]
    return text


def _number_bounds(schema: dict[str, Any], step: float) -> tuple[float, float]:
    low = schema.get("minimum")
    if low is None and schema.get("exclusiveMinimum") is not None:
        low = schema["exclusiveMinimum"] + step
    high = schema.get("maximum")
    if high is None and schema.get("exclusiveMaximum") is not None:
        high = schema["exclusiveMaximum"] - step
    low = 0 if low is None else low
    high = low + 100 if high is None else high
    return low, max(low, high)


def _integer_value(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> int:
    low, high = _number_bounds(schema, 1)
    low_int, high_int = int(-(-low // 1)), int(high // 1)
    value = rng.randint(low_int, max(low_int, high_int))
    multiple = schema.get("multipleOf")
    if isinstance(multiple, int) and multiple > 0:
        value = -(-low_int // multiple) * multiple
    return value


def _number_value(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> float:
    low, high = _number_bounds(schema, 0.01)
    multiple = schema.get("multipleOf")
    if isinstance(multiple, int | float) and multiple > 0:
        return float(-(-low // multiple) * multiple)
    value = round(low + (high - low) * rng.random(), 2)
    return min(max(value, low), high)


def _boolean_value(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> bool:
    return rng.random() < 0.5


def _null_value(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> None:
    return None


_VALUE_BUILDERS: dict[str, Any] = {
    "object": _object_value,
    "array": _array_value,
    "string": _string_value,
    "integer": _integer_value,
    "number": _number_value,
    "boolean": _boolean_value,
    "null": _null_value,
}
