"""Rendered-value coercion: the one set of rules the operators and the hook apply to request parameters.

A Jinja template renders to a string, so ``"0.2"``, ``"256"`` or ``'{"type": "json_object"}'`` arrive where a
number or a dict is meant, from an operator's template fields and from a batch's inline rows alike. Every
function here takes the native type or its string form and returns the native value; ``None`` (and, where
said, a blank string: a template that rendered nothing) means unset and gives ``None``.

Who is asking words the error: each function takes ``fail``, which builds the caller's one-line exception
from the parameter's name, the value and what was expected (the operators name the task, the hook names the
request). The functions only raise what ``fail`` returns. Pure and cheap to import: DAG files import it.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from typing import Any

Fail = Callable[[str, Any, str], Exception]
"""``fail(name, value, expected)``: the caller's error for a bad value; ``expected`` follows "must be"."""

MAX_STOP_SEQUENCES = 4
"""OpenRouter accepts at most this many stop sequences."""

_SHOWN_CHARS = 80
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no", "", "none"})


def shown(value: Any) -> str:
    """``repr(value)`` cut to about 80 characters: an error about a long value stays one short line."""
    if isinstance(value, str):
        return repr(value) if len(value) <= _SHOWN_CHARS else repr(value[: _SHOWN_CHARS - 3] + "...")
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _bounds(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" from {low:g} to {high:g}"
    if low is not None:
        return f" >= {low:g}"
    return f" <= {high:g}" if high is not None else ""


def number(
    name: str, value: Any, fail: Fail, *, low: float | None = None, high: float | None = None
) -> float | None:
    """A float from a number or its text (blank: unset); ``bool`` and NaN are refused, bounds inclusive."""
    if _blank(value):
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
    """An int from an integer or its text (blank: unset); ``kind`` is the caller's word for an integer.

    ``bool`` and every float are refused, ``3.0`` like ``"3.0"``: nothing is rounded.
    """
    if _blank(value):
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
    """A flag from a bool or its text: true/1/yes or false/0/no; blank and ``None`` (or "None") are false."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise fail(name, value, "true or false")


def decode_json(name: str, value: Any, fail: Fail, described: str) -> Any:
    """A string is read as JSON text (what a template renders a dict or list to); other values pass as is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as err:
        raise fail(name, value, f"{described} (not valid JSON: {err.msg})") from None


def json_list(name: str, value: Any, fail: Fail, described: str) -> list[Any] | None:
    """A list, or its JSON text (blank: unset)."""
    if _blank(value):
        return None
    result = decode_json(name, value, fail, described)
    if not isinstance(result, list):
        raise fail(name, value, described)
    return result


def mapping(name: str, value: Any, fail: Fail, *, kind: str = "an object (dict)") -> dict[str, Any] | None:
    """A dict copied from any mapping or from its JSON text (blank: unset). ``kind`` is the caller's word."""
    if _blank(value):
        return None
    result = decode_json(name, value, fail, kind)
    if not isinstance(result, Mapping):
        raise fail(name, value, kind)
    return dict(result)


def string_list(name: str, value: Any, fail: Fail) -> list[str] | None:
    """Stripped non-empty strings from a list, its JSON text or a comma-separated string (blank: unset).

    An empty item (``"a,,b"``, ``["a", ""]``) is refused rather than dropped: it is most likely a typo.
    """
    if _blank(value):
        return None
    items = value
    if isinstance(value, str):
        text = value.strip()
        items = decode_json(name, text, fail, "a list of strings") if text[0] == "[" else text.split(",")
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
    stops = decode_json("stop", value, fail, "a string or a list of strings")
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
