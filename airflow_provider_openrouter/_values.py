"""Typed request values: the rules a number, a list or an object must pass before it is sent.

The hook applies these rules to the typed values its methods take (numbers as numbers, dicts as dicts); the
operators first read what a Jinja template rendered (:mod:`._coerce`) and then apply the same rules, so a task
and a direct hook call accept and refuse the same values. ``None`` is unset; nothing here reads text.

Who is asking words the error: each function takes ``fail``, which builds the caller's one-line exception
from the parameter's name, the value and what was expected (the operators name the task, the hook names the
request). The functions only raise what ``fail`` returns. Pure and cheap to import.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

Fail = Callable[[str, Any, str], Exception]
"""``fail(name, value, expected)``: the caller's error for a bad value; ``expected`` follows "must be"."""

MAX_STOP_SEQUENCES = 4
"""OpenRouter accepts at most this many stop sequences."""

RESPONSE_FORMAT_SHORTCUTS = ("text", "json_object")
"""Bare ``response_format`` types that stand for ``{"type": ...}`` (``json_schema`` needs its schema)."""

RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema", "grammar", "python")
"""The ``response_format`` types OpenRouter knows; any other is answered with a 400 after it was sent."""

_SHOWN_CHARS = 80
_UNSET_TEXTS = frozenset({"", "none", "null"})


def shown(value: Any) -> str:
    """``repr(value)`` cut to about 80 characters: an error about a long value stays one short line."""
    if isinstance(value, str):
        return repr(value) if len(value) <= _SHOWN_CHARS else repr(value[: _SHOWN_CHARS - 3] + "...")
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def unset(value: Any) -> bool:
    """The one rule for a missing value: ``None``, a blank string, or ``"None"``/``"null"`` (any case), which
    is what a template renders for a missing value (``{{ params.x }}`` of ``None``, ``| tojson`` of ``None``).

    A text (a prompt, a generation id) that is unset is never sent: it would be answered and billed as if it
    were the text.
    """
    return value is None or (isinstance(value, str) and value.strip().lower() in _UNSET_TEXTS)


def bounds(low: float | None, high: float | None) -> str:
    """The words for inclusive bounds: ``" from 0 to 2"``, ``" >= 1"``, or nothing."""
    if low is not None and high is not None:
        return f" from {low:g} to {high:g}"
    if low is not None:
        return f" >= {low:g}"
    return f" <= {high:g}" if high is not None else ""


def number(
    name: str, value: Any, fail: Fail, *, low: float | None = None, high: float | None = None
) -> float | None:
    """A float from an int or a float; ``bool``, text and NaN are refused, bounds inclusive."""
    if value is None:
        return None
    expected = "a number" + bounds(low, high)
    if isinstance(value, bool | str | bytes):
        raise fail(name, value, expected)
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise fail(name, value, expected) from None
    if result != result or (low is not None and result < low) or (high is not None and result > high):
        raise fail(name, value, expected)
    return result


def integer(
    name: str, value: Any, fail: Fail, *, low: int | None = None, kind: str = "a whole number"
) -> int | None:
    """An int; ``bool``, text and every float (``3.0`` too: nothing is rounded) are refused. ``kind`` is the
    caller's word for an integer."""
    if value is None:
        return None
    expected = kind + (f" >= {low}" if low is not None else "")
    if isinstance(value, bool | str):
        raise fail(name, value, expected)
    try:
        result = operator.index(value)
    except TypeError:
        raise fail(name, value, expected) from None
    if low is not None and result < low:
        raise fail(name, value, expected)
    return result


def mapping(name: str, value: Any, fail: Fail, *, kind: str = "an object (dict)") -> dict[str, Any] | None:
    """A dict copied from any mapping; ``kind`` is the caller's word for an object."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise fail(name, value, kind)
    return dict(value)


def items(name: str, value: Any, fail: Fail, described: str) -> list[Any] | None:
    """A list copied from a list or a tuple (not from text)."""
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise fail(name, value, described)
    return list(value)


def string_list(name: str, value: Any, fail: Fail) -> list[str] | None:
    """Stripped non-empty strings from a list or a tuple.

    An empty item (``["a", ""]``) is refused rather than dropped: it is most likely a typo.
    """
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise fail(name, value, "a list of strings")
    if not all(isinstance(item, str) for item in value):
        raise fail(name, value, "a list of strings")
    if not all(item.strip() for item in value):
        raise fail(name, value, "a list of non-empty strings")
    return [item.strip() for item in value]


def stop(value: Any, fail: Fail, *, shown_as: Any = None) -> str | list[str] | None:
    """``stop``: one string (sent as is: ``"\\n\\n"`` is a real stop sequence) or a list of at most 4.

    Only ``None`` and the empty string are unset. ``shown_as`` is the value the error shows (the caller's
    original, when it read ``value`` from text).
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    original = value if shown_as is None else shown_as
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise fail("stop", original, "a string or a list of strings")
    if len(value) > MAX_STOP_SEQUENCES:
        raise fail("stop", original, f"a string or a list of at most {MAX_STOP_SEQUENCES} strings")
    return list(value)


def tool_choice(value: Any, fail: Fail, *, kind: str = "an object (dict)") -> str | dict[str, Any] | None:
    """``tool_choice``: a bare choice ("auto", "none", "required") stays a stripped string; an object becomes
    a dict. Blank and ``{}`` are unset."""
    if isinstance(value, str):
        return value.strip() or None
    return mapping("tool_choice", value, fail, kind=kind) or None


def response_format(value: Any, fail: Fail, *, kind: str = "an object (dict)") -> dict[str, Any] | None:
    """``response_format``: a bare ``"text"`` or ``"json_object"`` becomes ``{"type": ...}``; otherwise an
    object whose ``type`` is one of :data:`RESPONSE_FORMAT_TYPES`."""
    if isinstance(value, str) and value.strip() in RESPONSE_FORMAT_SHORTCUTS:
        return {"type": value.strip()}
    fmt = mapping("response_format", value, fail, kind=response_format_kind(kind))
    if fmt is not None and fmt.get("type") not in RESPONSE_FORMAT_TYPES:
        raise fail("response_format", fmt, f"an object with a 'type' of {', '.join(RESPONSE_FORMAT_TYPES)}")
    return fmt


def response_format_kind(kind: str) -> str:
    """What ``response_format`` must be, in the caller's word for an object: ``kind or 'text' or ...``."""
    return " or ".join((kind, *(repr(name) for name in RESPONSE_FORMAT_SHORTCUTS)))


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
