"""Deterministic answers: text, JSON that fits a schema, tool calls, and the token estimate.

Everything here is a pure function of the request (model, messages, tools, response format, the request's
``seed``) and the emulator's ``--seed``; temperature and the other sampling parameters are ignored. So the
same request always gets the same answer, and tests can compare answers exactly.

Token estimate (documented in docs/emulator.md): a text of ``n`` characters is ``ceil(n / 4)`` tokens.
``prompt_tokens = 3 + sum over messages of (4 + tokens(text of the message) + 85 per image, file, audio or
video part) + tokens(JSON of tools) + tokens(JSON of response_format)``;
``completion_tokens = tokens(answer)``, where the answer of a tool call is the function name followed by the
JSON of its arguments.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any

_WORDS = (
    "the",
    "pipeline",
    "runs",
    "every",
    "night",
    "and",
    "reports",
    "its",
    "cost",
    "to",
    "a",
    "table",
    "of",
    "model",
    "answers",
    "with",
    "clear",
    "numbers",
    "for",
    "each",
    "task",
    "data",
    "flows",
    "from",
    "source",
    "into",
    "tidy",
    "rows",
    "that",
    "analysts",
    "read",
    "in",
    "the",
    "morning",
    "when",
    "scheduler",
    "wakes",
    "up",
    "queue",
    "drains",
    "quickly",
    "batch",
    "finishes",
    "on",
    "time",
    "budget",
    "stays",
    "within",
    "limits",
    "tokens",
    "are",
    "counted",
    "carefully",
    "retry",
    "waits",
    "patiently",
    "result",
    "is",
    "stored",
    "safely",
    "once",
    "summary",
    "lists",
    "three",
    "points",
    "first",
    "second",
    "third",
    "request",
    "returns",
    "a",
    "short",
    "reply",
    "about",
    "weather",
    "markets",
    "code",
    "review",
    "invoice",
    "customer",
    "ticket",
    "priority",
    "high",
    "low",
    "medium",
    "status",
    "green",
    "orange",
    "report",
    "draft",
    "final",
    "version",
    "checks",
    "pass",
    "quietly",
    "graph",
    "shows",
    "steady",
    "growth",
    "across",
    "regions",
    "team",
    "ships",
    "small",
    "changes",
    "often",
    "log",
    "line",
    "explains",
)
_WORD_OF_BYTE = tuple(_WORDS[byte % len(_WORDS)] for byte in range(256))
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
_MEDIA_PART_TOKENS = 85
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


def tokens(text: str) -> int:
    return (len(text) + 3) // 4


def _part_text_and_media(content: Any) -> tuple[str, int]:
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        return "", 0
    texts: list[str] = []
    media = 0
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        else:
            media += 1
    return "\n".join(texts), media


def message_text(message: dict[str, Any]) -> str:
    """The text a message carries (content, name, tool-call arguments): what the token estimate counts."""
    text, _ = _part_text_and_media(message.get("content"))
    extra = [str(message["name"])] if message.get("name") else []
    for call in message.get("tool_calls") or ():
        function = (call.get("function") or {}) if isinstance(call, dict) else {}
        extra.append(f"{function.get('name', '')}{function.get('arguments', '')}")
    return "\n".join([text, *extra]) if extra else text


def prompt_tokens(messages: list[dict[str, Any]], tools: Any = None, response_format: Any = None) -> int:
    total = 3
    for message in messages:
        text, media = _part_text_and_media(message.get("content"))
        total += 4 + tokens(text) + media * _MEDIA_PART_TOKENS
        if message.get("name") or message.get("tool_calls"):
            total += tokens(message_text(message)) - tokens(text)
    if tools:
        total += tokens(json.dumps(tools, separators=(",", ":")))
    if response_format:
        total += tokens(json.dumps(response_format, separators=(",", ":")))
    return total


def answer_digest(model: str, messages: Any, request_seed: Any, emulator_seed: int) -> bytes:
    """64 bytes that determine one answer: a pure function of its inputs (dict key order does not matter)."""
    canonical = json.dumps(messages, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(
        f"{model}\x00{emulator_seed}\x00{request_seed}\x00{canonical}".encode(), digest_size=64
    ).digest()


def sentence_text(digest: bytes) -> str:
    """Sentences of 4 to 12 plain words, 12 to 39 words in all, read straight from the digest's bytes.

    Plain text is the hot path of the emulator, so it takes no random generator: byte 0 gives the word count,
    bytes 1-39 the words, bytes 41-50 the sentence lengths.
    """
    count = 12 + digest[0] % 28
    words = [_WORD_OF_BYTE[byte] for byte in digest[1 : 1 + count]]
    sentences = []
    position = 0
    for length_byte in digest[41:]:
        if position >= count:
            break
        length = 4 + length_byte % 9
        sentences.append(" ".join(words[position : position + length]).capitalize() + ".")
        position += length
    return " ".join(sentences)


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


_NATIVE_FINISH = {
    "anthropic": {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"},
    "google": {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"},
}


def native_finish_reason(model_id: str, finish_reason: str | None) -> str | None:
    if finish_reason is None:
        return None
    return _NATIVE_FINISH.get(model_id.split("/", 1)[0], {}).get(finish_reason, finish_reason)


@dataclass(slots=True)
class Answer:
    """What the model 'said'. ``content`` is None for a tool call and a refusal.

    The optional parts (see :mod:`.extras`) are None unless the request asked for them; ``completion_tokens``
    counts the reasoning and image tokens too, as OpenRouter bills them.
    """

    content: str | None
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str
    completion_tokens: int
    reasoning: str | None = None
    reasoning_details: list[dict[str, Any]] | None = None
    refusal: str | None = None
    annotations: list[dict[str, Any]] | None = None
    images: list[dict[str, Any]] | None = None
    logprobs: list[dict[str, Any]] | None = None  # one entry per token of content (or of refusal)
    reasoning_tokens: int = 0
    image_tokens: int = 0


def cut_text(text: str, stop: Any, max_tokens: int | None) -> tuple[str, str]:
    """Apply ``stop`` sequences and ``max_tokens``; returns (text, finish_reason)."""
    stops = [stop] if isinstance(stop, str) else [s for s in (stop or ()) if isinstance(s, str)]
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    if cut >= 0:
        text = text[:cut]
    if max_tokens is not None and tokens(text) > max_tokens:
        return text[: max_tokens * 4], "length"
    return text, "stop"


def chosen_tool(tools: Any, tool_choice: Any) -> dict[str, Any] | None:
    """The function tool the request forces, or None when the model may answer in text."""
    functions = [t for t in tools or () if isinstance(t, dict) and t.get("type") == "function"]
    if not functions:
        return None
    if tool_choice == "required":
        return functions[0]
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        wanted = (tool_choice.get("function") or {}).get("name")
        return next((t for t in functions if (t.get("function") or {}).get("name") == wanted), None)
    return None


def answer(
    *,
    model_id: str,
    messages: Any,
    request_seed: Any,
    emulator_seed: int,
    response_format: Any = None,
    tool: dict[str, Any] | None = None,
    stop: Any = None,
    max_tokens: int | None = None,
    break_schema: bool = False,
) -> Answer:
    """The answer to one input; ``break_schema`` makes a ``json_schema`` answer one its schema rejects."""
    digest = answer_digest(model_id, messages, request_seed, emulator_seed)
    if tool is not None:
        function = tool.get("function") or {}
        name = str(function.get("name", ""))
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        arguments = schema_json(parameters, digest, f"tools: function {name!r} parameters", (",", ":"))
        call_id = "call_" + hashlib.blake2b(f"{name}{arguments}".encode(), digest_size=12).hexdigest()
        calls = [
            {
                "id": call_id,
                "type": "function",
                "index": 0,
                "function": {"name": name, "arguments": arguments},
            }
        ]
        return Answer(None, calls, "tool_calls", tokens(name + arguments))
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
        where = "response_format.json_schema.schema"
        text = schema_json(schema, digest, where, (", ", ": "), broken=break_schema)
        stop = (
            None  # a stop sequence that cut the JSON would make it invalid; providers apply it to text only
        )
    elif kind == "json_object":
        text = json.dumps({"answer": sentence_text(digest)}, separators=(", ", ": "))
        stop = None
    else:
        text = sentence_text(digest)
    text, finish = cut_text(text, stop, max_tokens)
    return Answer(text, None, finish, tokens(text))
