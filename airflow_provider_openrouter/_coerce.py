"""Rendered-value coercion: the one set of rules the operators and the hook apply to request parameters.

A Jinja template renders to a string, so ``"0.2"``, ``"256"`` or ``'{"type": "json_object"}'`` arrive where a
number or a dict is meant, from an operator's template fields and from a batch's inline rows alike. Every
function here takes the native type or its string form and returns the native value. Unset (see :func:`unset`)
is ``None``, a blank string (a template that rendered nothing) or the text a template renders for a missing
value, ``"None"`` or ``"null"``; it gives ``None`` (``False`` for a flag). A dict or list rendered without
``| tojson`` arrives as its Python repr (``{'order': ['OpenAI']}``): it is read too, when it is of the type
wanted.

Who is asking words the error: each function takes ``fail``, which builds the caller's one-line exception
from the parameter's name, the value and what was expected (the operators name the task, the hook names the
request). The functions only raise what ``fail`` returns. Pure and cheap to import: DAG files import it.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

Fail = Callable[[str, Any, str], Exception]
"""``fail(name, value, expected)``: the caller's error for a bad value; ``expected`` follows "must be"."""

MAX_STOP_SEQUENCES = 4
"""OpenRouter accepts at most this many stop sequences."""

_SHOWN_CHARS = 80
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_UNSET_TEXTS = frozenset({"", "none", "null"})
_TOJSON_HINT = "render it with `| tojson`"


def shown(value: Any) -> str:
    """``repr(value)`` cut to about 80 characters: an error about a long value stays one short line."""
    if isinstance(value, str):
        return repr(value) if len(value) <= _SHOWN_CHARS else repr(value[: _SHOWN_CHARS - 3] + "...")
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def unset(value: Any) -> bool:
    """The one rule for a missing value: ``None``, a blank string, or ``"None"``/``"null"`` (any case), which
    is what a template renders for a missing value (``{{ params.x }}`` of ``None``, ``| tojson`` of ``None``).
    """
    return value is None or (isinstance(value, str) and value.strip().lower() in _UNSET_TEXTS)


def _bounds(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" from {low:g} to {high:g}"
    if low is not None:
        return f" >= {low:g}"
    return f" <= {high:g}" if high is not None else ""


def number(
    name: str, value: Any, fail: Fail, *, low: float | None = None, high: float | None = None
) -> float | None:
    """A float from a number or its text (unset: ``None``); ``bool`` and NaN are refused, bounds inclusive."""
    if unset(value):
        return None
    expected = "a number" + _bounds(low, high)
    if isinstance(value, bool):
        raise fail(name, value, expected)
    try:
        result = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise fail(name, value, expected) from None
    if result != result or (low is not None and result < low) or (high is not None and result > high):
        raise fail(name, value, expected)
    return result


def integer(
    name: str, value: Any, fail: Fail, *, low: int | None = None, kind: str = "a whole number"
) -> int | None:
    """An int from an integer or its text (unset: ``None``); ``kind`` is the caller's word for an integer.

    ``bool`` and every float are refused, ``3.0`` like ``"3.0"``: nothing is rounded.
    """
    if unset(value):
        return None
    expected = kind + (f" >= {low}" if low is not None else "")
    if isinstance(value, bool):
        raise fail(name, value, expected)
    try:
        result = int(value.strip()) if isinstance(value, str) else operator.index(value)
    except (TypeError, ValueError):
        raise fail(name, value, expected) from None
    if low is not None and result < low:
        raise fail(name, value, expected)
    return result


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
    result = decode_json(name, value, fail, described, list)
    if not isinstance(result, list):
        raise fail(name, value, described)
    return result


def mapping(name: str, value: Any, fail: Fail, *, kind: str = "an object (dict)") -> dict[str, Any] | None:
    """A dict copied from any mapping or from its JSON text (unset: None); ``kind`` is the caller's word."""
    if unset(value):
        return None
    result = decode_json(name, value, fail, kind, dict)
    if not isinstance(result, Mapping):
        raise fail(name, value, kind)
    return dict(result)


def string_list(name: str, value: Any, fail: Fail) -> list[str] | None:
    """Stripped non-empty strings from a list, its JSON text or a comma-separated string (unset: ``None``).

    An empty item (``"a,,b"``, ``["a", ""]``) is refused rather than dropped: it is most likely a typo.
    """
    if unset(value):
        return None
    items = value
    if isinstance(value, str):
        text = value.strip()
        items = (
            text.split(",") if text[0] != "[" else decode_json(name, text, fail, "a list of strings", list)
        )
    if not isinstance(items, list | tuple):
        raise fail(name, value, "a list of strings or a comma-separated string")
    if not all(isinstance(item, str) for item in items):
        raise fail(name, value, "a list of strings")
    if not all(item.strip() for item in items):
        raise fail(name, value, "a list of non-empty strings")
    return [item.strip() for item in items]


def stop(value: Any, fail: Fail) -> str | list[str] | None:
    """``stop``: one string, or a list of at most 4 strings (natively or as JSON text starting with "[").

    Only the empty string is unset: a whitespace string such as ``"\\n\\n"`` is a real stop sequence.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str) and not value.lstrip().startswith("["):
        return value
    stops = decode_json("stop", value, fail, "a string or a list of strings", list)
    if not isinstance(stops, list | tuple) or not all(isinstance(item, str) for item in stops):
        raise fail("stop", value, "a string or a list of strings")
    if len(stops) > MAX_STOP_SEQUENCES:
        raise fail("stop", value, f"a string or a list of at most {MAX_STOP_SEQUENCES} strings")
    return list(stops)


def tool_choice(value: Any, fail: Fail, *, kind: str = "an object (dict)") -> str | dict[str, Any] | None:
    """``tool_choice``: a bare choice ("auto", "none", "required") stays a stripped string; an object, or its
    JSON text starting with "{", becomes a dict. Blank and ``{}`` are unset."""
    if isinstance(value, str) and not value.lstrip().startswith("{"):
        return value.strip() or None
    return mapping("tool_choice", value, fail, kind=kind) or None


RESPONSE_FORMAT_SHORTCUTS = ("text", "json_object")
"""Bare ``response_format`` types that stand for ``{"type": ...}`` (``json_schema`` needs its schema)."""

RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema", "grammar", "python")
"""The ``response_format`` types OpenRouter knows; any other is answered with a 400 after it was sent."""


def response_format(value: Any, fail: Fail, *, kind: str = "an object (dict)") -> dict[str, Any] | None:
    """``response_format``: a bare ``"text"`` or ``"json_object"`` becomes ``{"type": ...}``; otherwise an
    object (or its JSON text) whose ``type`` is one of :data:`RESPONSE_FORMAT_TYPES`. Unset is ``None``."""
    if isinstance(value, str) and value.strip() in RESPONSE_FORMAT_SHORTCUTS:
        return {"type": value.strip()}
    shortcuts = " or ".join(repr(name) for name in RESPONSE_FORMAT_SHORTCUTS)
    fmt = mapping("response_format", value, fail, kind=f"{kind} or {shortcuts}")
    if fmt is not None and fmt.get("type") not in RESPONSE_FORMAT_TYPES:
        raise fail("response_format", fmt, f"an object with a 'type' of {', '.join(RESPONSE_FORMAT_TYPES)}")
    return fmt


# OpenRouter's model ids are ``author/slug`` with an optional ``:variant`` (``meta-llama/llama-3-8b:free``);
# an alias author may start with ``~``. Neither part may hold a ``/``: the parts become URL path segments, and
# ``..`` there would send an authenticated GET outside ``/models``.
_MODEL_ID_PARTS = {
    "author": (re.compile(r"~?[A-Za-z0-9][A-Za-z0-9._-]*"), "openai"),
    "slug": (re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(?::[A-Za-z0-9._-]+)*"), "gpt-4o-mini"),
}


def model_id_part(name: str, value: Any, fail: Fail, *, part: str) -> str:
    """The ``author`` or ``slug`` (``part``) of a model id, stripped, in OpenRouter's id shape: letters,
    digits, ``.``, ``_``, ``-`` (a slug's ``:variant`` suffixes too), starting with a letter or digit."""
    pattern, example = _MODEL_ID_PARTS[part]
    text = value.strip() if isinstance(value, str) else None
    if not text or not pattern.fullmatch(text):
        extra = ", ':variant'" if part == "slug" else ""
        raise fail(
            name,
            value,
            f"{'an' if part == 'author' else 'a'} {part} such as '{example}' (letters, "
            f"digits, '.', '_', '-'{extra}; no '/')",
        )
    return text
