"""Rendered-value coercion: what a Jinja template rendered, read back into the typed value (operators only).

A Jinja template renders to a string, so ``"0.2"``, ``"256"`` or ``'{"type": "json_object"}'`` arrive where a
number or a dict is meant, from an operator's template fields and from a batch's inline rows alike. Every
function here takes the native type or its string form and returns the native value. Unset (see :func:`unset`)
is ``None``, a blank string (a template that rendered nothing) or the text a template renders for a missing
value, ``"None"`` or ``"null"``; it gives ``None`` (``False`` for a flag). A dict or list rendered without
``| tojson`` arrives as its Python repr (``{'order': ['OpenAI']}``): it is read too, when it is of the type
wanted.

Once read, a value passes the same rules the hook applies to the typed values its methods take
(:mod:`._values`), so a task and a direct hook call accept and refuse the same values; an error shows the
text as rendered. Who is asking words the error: each function takes ``fail`` (see :data:`Fail`); the
operators' names the task. Pure and cheap to import: DAG files import it.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from typing import Any

from airflow_provider_openrouter import _values
from airflow_provider_openrouter._values import (
    RESPONSE_FORMAT_SHORTCUTS,
    Fail,
    model_id_part,
    shown,
    unset,
)

__all__ = [
    "Fail",
    "boolean",
    "chat_parameters",
    "decode_json",
    "integer",
    "json_list",
    "mapping",
    "model_id_part",
    "number",
    "response_format",
    "shown",
    "stop",
    "string_list",
    "tool_choice",
    "unset",
]

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_TOJSON_HINT = "render it with `| tojson`"


def _showing(fail: Fail, rendered: Any) -> Fail:
    """``fail`` that shows the text as rendered, whatever value was read from it."""
    return lambda name, _value, expected: fail(name, rendered, expected)


def number(
    name: str, value: Any, fail: Fail, *, low: float | None = None, high: float | None = None
) -> float | None:
    """A float from a number or its text (unset: ``None``); ``bool`` and NaN are refused, bounds inclusive."""
    if unset(value):
        return None
    if isinstance(value, str):
        try:
            read = float(value.strip())
        except ValueError:
            raise fail(name, value, "a number" + _values.bounds(low, high)) from None
        return _values.number(name, read, _showing(fail, value), low=low, high=high)
    return _values.number(name, value, fail, low=low, high=high)


def integer(
    name: str, value: Any, fail: Fail, *, low: int | None = None, kind: str = "a whole number"
) -> int | None:
    """An int from an integer or its text (unset: ``None``); ``kind`` is the caller's word for an integer.

    ``bool`` and every float are refused, ``3.0`` like ``"3.0"``: nothing is rounded.
    """
    if unset(value):
        return None
    if isinstance(value, str):
        try:
            read = int(value.strip())
        except ValueError:
            raise fail(name, value, kind + (f" >= {low}" if low is not None else "")) from None
        return _values.integer(name, read, _showing(fail, value), low=low, kind=kind)
    return _values.integer(name, value, fail, low=low, kind=kind)


def boolean(name: str, value: Any, fail: Fail) -> bool:
    """A flag from a bool or its text: true/1/yes or false/0/no; unset (:func:`unset`) is false."""
    if isinstance(value, bool):
        return value
    if unset(value):
        return False
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise fail(name, value, "true or false")


def decode_json(name: str, value: Any, fail: Fail, described: str, wanted: type | tuple[type, ...]) -> Any:
    """A string is read as JSON text (what ``| tojson`` renders a dict or list to); other values pass as is.

    Text that is not JSON but is the Python repr of a ``wanted`` value (a dict or list rendered without
    ``| tojson``: single quotes, ``True``, ``None``) is read as that literal. Anything else is refused, with
    the hint to render the value with ``| tojson``.
    """
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as err:
        reason = err.msg
    literal = _python_literal(value)
    if isinstance(literal, wanted):
        return literal
    raise fail(name, value, f"{described} (not valid JSON: {reason}; {_TOJSON_HINT})")


def _python_literal(text: str) -> Any:
    """The Python literal a dict or list renders to without ``| tojson``, or ``None``."""
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def json_list(name: str, value: Any, fail: Fail, described: str) -> list[Any] | None:
    """A list, or its JSON text (unset: ``None``)."""
    if unset(value):
        return None
    read = decode_json(name, value, fail, described, list)
    return _values.items(name, read, _showing(fail, value), described)


def mapping(name: str, value: Any, fail: Fail, *, kind: str = "an object (dict)") -> dict[str, Any] | None:
    """A dict copied from any mapping or from its JSON text (unset: None); ``kind`` is the caller's word."""
    if unset(value):
        return None
    read = decode_json(name, value, fail, kind, dict)
    return _values.mapping(name, read, _showing(fail, value), kind=kind)


def string_list(name: str, value: Any, fail: Fail) -> list[str] | None:
    """Stripped non-empty strings from a list, its JSON text or a comma-separated string (unset: ``None``).

    An empty item (``"a,,b"``, ``["a", ""]``) is refused rather than dropped: it is most likely a typo.
    """
    if unset(value):
        return None
    read = value
    if isinstance(value, str):
        text = value.strip()
        read = text.split(",") if text[0] != "[" else decode_json(name, text, fail, "a list of strings", list)
    if not isinstance(read, list | tuple):
        raise fail(name, value, "a list of strings or a comma-separated string")
    return _values.string_list(name, read, _showing(fail, value))


def stop(value: Any, fail: Fail) -> str | list[str] | None:
    """``stop``: one string, or a list of at most 4 strings (natively or as JSON text starting with "[").

    Only the empty string is unset: a whitespace string such as ``"\\n\\n"`` is a real stop sequence.
    """
    if isinstance(value, str) and value.lstrip().startswith("["):
        read = decode_json("stop", value, fail, "a string or a list of strings", list)
        return _values.stop(read, fail, shown_as=value)
    return _values.stop(value, fail)


def tool_choice(value: Any, fail: Fail, *, kind: str = "an object (dict)") -> str | dict[str, Any] | None:
    """``tool_choice``: a bare choice ("auto", "none", "required") stays a stripped string; an object, or its
    JSON text starting with "{", becomes a dict. Blank and ``{}`` are unset."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        value = mapping("tool_choice", value, fail, kind=kind)
    return _values.tool_choice(value, fail, kind=kind)


def response_format(value: Any, fail: Fail, *, kind: str = "an object (dict)") -> dict[str, Any] | None:
    """``response_format``: a bare ``"text"`` or ``"json_object"`` becomes ``{"type": ...}``; otherwise an
    object (or its JSON text) whose ``type`` is one OpenRouter knows
    (:data:`._values.RESPONSE_FORMAT_TYPES`). Unset is ``None``."""
    if isinstance(value, str) and value.strip() not in RESPONSE_FORMAT_SHORTCUTS:
        value = mapping("response_format", value, fail, kind=_values.response_format_kind(kind))
    return _values.response_format(value, fail, kind=kind)


def chat_parameters(
    values: Mapping[str, Any],
    fail: Fail,
    *,
    integer_kind: str = "a whole number",
    object_kind: str = "an object (dict)",
) -> dict[str, Any]:
    """The chat request's parameters (``system_prompt``, ``temperature``, ... ``extra_body``) read from what
    templates rendered, as the hook's ``build_chat_request`` takes them; other keys pass unchanged.

    A ``system_prompt`` that rendered blank, ``"None"`` or ``"null"`` (a missing upstream value) is unset:
    sending it would pay for a system message saying "None". Ranges are the hook's to check.
    """
    readers: dict[str, Any] = {
        "system_prompt": lambda value: None if unset(value) else value,
        "temperature": lambda value: number("temperature", value, fail),
        "top_p": lambda value: number("top_p", value, fail),
        "max_tokens": lambda value: integer("max_tokens", value, fail, kind=integer_kind),
        "stop": lambda value: stop(value, fail),
        "seed": lambda value: integer("seed", value, fail, kind=integer_kind),
        "response_format": lambda value: response_format(value, fail, kind=object_kind),
        "tools": lambda value: json_list("tools", value, fail, "a JSON list"),
        "tool_choice": lambda value: tool_choice(value, fail, kind=object_kind),
        "models": lambda value: string_list("models", value, fail),
        "provider": lambda value: mapping("provider", value, fail, kind=object_kind),
        "reasoning": lambda value: mapping("reasoning", value, fail, kind=object_kind),
        "extra_body": lambda value: mapping("extra_body", value, fail, kind=object_kind),
    }
    return {name: readers[name](value) if name in readers else value for name, value in values.items()}
