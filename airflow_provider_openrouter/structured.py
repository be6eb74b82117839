"""Typed structured outputs: a pydantic class as ``response_format``, the answer validated back into it.

``output_type=`` on the hook, the chat operator, the batch operator and ``@task.openrouter`` all come here:

* :func:`response_format_for` sends the class's JSON schema as ``{"type": "json_schema", ...}``; strict (the
  provider must answer valid JSON for it) only where the model lists ``structured_outputs`` in its
  ``supported_parameters`` (:func:`supports_strict`), and only for a class strict mode can express.
* :func:`validate_output` turns the answer into an instance, or raises :class:`InvalidOutputError` (billed:
  the answer was paid for) with every validation error on one line.
* :func:`register_output_type` lets XCom hand the instance to a downstream task with Airflow's default
  deserialization settings, as the provider's own results are (:func:`~.models.register_with_serde`).

Cheap to import (no Airflow operator or hook imports), so DAG files can use it at parse time.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import sys
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError

from airflow_provider_openrouter.exceptions import OpenRouterError
from airflow_provider_openrouter.models import ChatCompletion, Model, register_with_serde

__all__ = [
    "STRICT_PARAMETER",
    "InvalidOutputError",
    "load_output_type",
    "register_output_type",
    "response_format_for",
    "strict_schema",
    "supports_strict",
    "validate_output",
]

OutputT = TypeVar("OutputT", bound=BaseModel)

STRICT_PARAMETER = "structured_outputs"
"""The ``supported_parameters`` entry by which OpenRouter's catalog says a model honours strict schemas."""

# OpenAI's (and OpenRouter's) rule for json_schema.name.
_NAME_ALLOWED = re.compile(r"[^A-Za-z0-9_-]")
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
# A schema with none of these keywords accepts any value.
_SCHEMA_KINDS = frozenset({"type", "$ref", "anyOf", "oneOf", "allOf", "enum", "const", "properties"})
_MAX_ERRORS_SHOWN = 5
_MAX_VALUE_CHARS = 40


class InvalidOutputError(OpenRouterError):
    """The model answered, but its answer is not valid JSON for the ``output_type`` (or is a refusal).

    The answer was paid for (``billed=True``), so the generation id and the errors are in the message.
    """

    default_billed: ClassVar[bool | None] = True
    title: ClassVar[str] = "OpenRouter answer does not match output_type"
    completion: ChatCompletion | None = None
    """The answer that did not validate, when the hook raised this (its cost is in ``completion.cost``)."""

    def default_hint(self) -> str:
        return (
            "The answer was billed. Make the prompt state the fields, use a model that supports "
            "structured_outputs (strict schemas), or loosen the class."
        )


# --- the request side ------------------------------------------------------------------------------------


def supports_strict(model: Model | None) -> bool:
    """Whether ``model`` (a catalog entry) promises to honour a strict JSON schema; ``False`` when unknown."""
    return model is not None and model.supports(STRICT_PARAMETER)


def response_format_for(output_type: type[BaseModel], *, strict: bool) -> dict[str, Any]:
    """``response_format`` asking for JSON that validates into ``output_type``.

    With ``strict``, the schema is made strict-compatible (:func:`strict_schema`); a class strict mode
    cannot express (an open ``dict``, ``Any``, extra fields allowed) is sent non-strict instead, as models
    that do not list ``structured_outputs`` get it, and :func:`validate_output` still checks the answer.
    """
    schema = _check_output_type(output_type).model_json_schema()
    strict_form = strict_schema(schema) if strict else None
    return {
        "type": "json_schema",
        "json_schema": {
            "name": _NAME_ALLOWED.sub("_", output_type.__name__)[:64],
            "strict": strict_form is not None,
            "schema": strict_form if strict_form is not None else schema,
        },
    }


def strict_schema(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """A copy of ``schema`` in the form OpenAI's strict mode demands, or ``None`` if it has no such form.

    Strict mode wants every object closed (``additionalProperties: false``) and every property listed in
    ``required``; a field with a default becomes required (the model then always writes it). It cannot express
    an object with open keys or a value of any type, so such schemas give ``None``. A ``default`` is dropped
    (strict mode rejects the keyword), and a ``$ref`` with sibling keywords is wrapped in ``allOf``.
    """
    result = copy.deepcopy(dict(schema))
    return result if _make_strict(result) else None


def _make_strict(node: Any) -> bool:
    if not isinstance(node, dict):
        return True
    if _SCHEMA_KINDS.isdisjoint(node):  # no type at all (``Any``): strict mode has no way to say it
        return False
    node.pop("default", None)
    if "$ref" in node and len(node) > 1:
        node["allOf"] = [{"$ref": node.pop("$ref")}]
    if node.get("type") == "object" or "properties" in node:
        if "properties" not in node or node.get("additionalProperties") not in (None, False):
            return False  # an open mapping (dict[str, X], extra="allow")
        node["additionalProperties"] = False
        node["required"] = list(node["properties"])
    children: list[Any] = [*node.get("properties", {}).values(), *node.get("$defs", {}).values()]
    if "items" in node:
        children.append(node["items"])
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        children += node.get(key) or []
    return all(_make_strict(child) for child in children)


# --- the answer side -------------------------------------------------------------------------------------


def validate_output(output_type: type[OutputT], completion: ChatCompletion | Mapping[str, Any]) -> OutputT:
    """The answer of ``completion`` as an ``output_type`` instance.

    A Markdown code fence around the JSON is tolerated. Raises :class:`InvalidOutputError` (``billed=True``)
    naming the generation when the model refused, wrote no text, wrote text that is not JSON, or JSON that
    does not validate: all validation errors on one line, e.g.
    ``priority: Input should be 'low' or 'high' (got 'urgent'); tags.0: Input should be a valid string``.
    """
    if not isinstance(completion, ChatCompletion):
        completion = ChatCompletion.model_validate(completion)
    generation_id = completion.id or None
    message = completion.message
    if message is not None and message.refusal:
        raise InvalidOutputError(f"the model refused: {message.refusal}", generation_id=generation_id)
    text = completion.text
    if not text.strip():
        raise InvalidOutputError(
            f"the answer has no text (finish_reason {completion.finish_reason!r})",
            generation_id=generation_id,
        )
    fenced = _FENCE.match(text)
    try:
        data = json.loads(fenced.group(1) if fenced else text)
    except json.JSONDecodeError as err:
        cut = " (cut off by max_tokens)" if completion.finish_reason == "length" else ""
        raise InvalidOutputError(
            f"the answer is not JSON{cut}: {err.msg} at char {err.pos}; it starts {_preview(text)}",
            generation_id=generation_id,
        ) from None
    try:
        return output_type.model_validate(data)
    except ValidationError as err:
        raise InvalidOutputError(
            f"{output_type.__name__}: {validation_summary(err)}", generation_id=generation_id
        ) from None


def validation_summary(err: ValidationError) -> str:
    """The errors of ``err`` on one line: ``field.path: message (got value)``, the first few of them."""
    parts = []
    for error in err.errors(include_url=False)[:_MAX_ERRORS_SHOWN]:
        where = ".".join(str(item) for item in error["loc"]) or "(the answer)"
        got = "" if error["type"] == "missing" else f" (got {_preview(error.get('input'))})"
        parts.append(f"{where}: {error['msg']}{got}")
    more = err.error_count() - _MAX_ERRORS_SHOWN
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def _preview(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return repr(text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…")


# --- the class -------------------------------------------------------------------------------------------


def register_output_type(cls: type[OutputT]) -> type[OutputT]:
    """Let XCom give a downstream task ``cls`` instances with Airflow's default deserialization settings.

    ``cls`` must be a pydantic model defined at module scope: XCom stores the qualified name and the
    downstream task re-imports the class by it. Returns ``cls``, so it also works as a class decorator.
    """
    _check_output_type(cls)
    if "." in cls.__qualname__:
        where = "inside a function" if "<locals>" in cls.__qualname__ else "inside another class"
        raise TypeError(
            f"output_type {cls.__module__}.{cls.__qualname__} is defined {where}, so a downstream task "
            "cannot re-import it by name to read the XCom. Define the class at the top level of a module."
        )
    try:
        register_with_serde(cls)
    except ValueError:
        # Airflow 3.3+ insists the name imports back to this very object. A DAG file parsed again in the same
        # process (``airflow dags test`` runs every task in one) binds the name to a newer class; the
        # allow-list is by name, so registering the class the name imports now is the same registration.
        current = getattr(sys.modules.get(cls.__module__), cls.__qualname__, None)
        if not (isinstance(current, type) and current is not cls and issubclass(current, BaseModel)):
            raise
        register_with_serde(current)
    return cls


def load_output_type(value: type | str) -> type[BaseModel]:
    """The pydantic class ``value`` names (a class, or a dotted path ``"pkg.module.Class"``), registered for
    XCom (:func:`register_output_type`)."""
    if isinstance(value, str):
        module_name, _, class_name = value.strip().rpartition(".")
        if not module_name or not class_name:
            raise TypeError(
                f"output_type {value!r} is not a dotted path; write it as 'package.module.ClassName'."
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise TypeError(
                f"output_type {value!r}: module {module_name!r} cannot be imported ({err}). Check the path "
                "and that the module is importable by the worker (e.g. in the dags or plugins folder)."
            ) from None
        found = getattr(module, class_name, None)
        if found is None:
            raise TypeError(f"output_type {value!r}: module {module_name!r} has no attribute {class_name!r}.")
        value = found
    return register_output_type(_check_output_type(value))


def _check_output_type(value: Any) -> type[BaseModel]:
    if not (isinstance(value, type) and issubclass(value, BaseModel)):
        shown = f"{value.__module__}.{value.__qualname__}" if isinstance(value, type) else repr(value)
        raise TypeError(
            f"output_type must be a pydantic model class (a subclass of pydantic.BaseModel), got {shown}."
        )
    return value
