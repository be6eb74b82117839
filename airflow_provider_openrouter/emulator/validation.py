"""Validation of a completion request's parameters, messages, tools and response format, as OpenRouter checks
them: a bad value is a 400 naming the field, what it expects and what it got."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from airflow_provider_openrouter.emulator.asgi import HTTPError
from airflow_provider_openrouter.emulator.textgen import message_text

ROLES = ("system", "developer", "user", "assistant", "tool")
_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "top_a": (0, 1),
    "min_p": (0, 1),
    "frequency_penalty": (-2, 2),
    "presence_penalty": (-2, 2),
    "repetition_penalty": (0, 2),
}
_INTEGERS: dict[str, tuple[int, int | None]] = {
    "max_tokens": (1, None),
    "max_completion_tokens": (1, None),
    "seed": (-(2**63), 2**63 - 1),
    "top_k": (0, None),
    "top_logprobs": (0, 20),
    "n": (1, 1),
}
_BOOLEANS = ("stream", "logprobs", "parallel_tool_calls", "include_reasoning", "echo")
_OBJECTS = (
    "provider",
    "reasoning",
    "logit_bias",
    "metadata",
    "usage",
    "stream_options",
    "prediction",
    "trace",
    "debug",
)
# The vocabulary of model.supported_parameters: what `provider.require_parameters` checks a request against.
PARAMETER_NAMES = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "top_a",
        "frequency_penalty",
        "presence_penalty",
        "repetition_penalty",
        "max_tokens",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "seed",
        "response_format",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning",
        "include_reasoning",
    }
)
_STRINGS = ("user", "session_id", "reasoning_effort", "service_tier")
_RESPONSE_FORMATS = ("text", "json_object", "json_schema", "grammar", "python")
_TOOL_CHOICES = ("none", "auto", "required")


def fail(field: str, expected: str, value: Any) -> HTTPError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return HTTPError(400, f"{field}: expected {expected}, got {shown}")


def check_parameters(body: dict[str, Any]) -> None:
    for name, value in body.items():
        if value is None:
            continue
        if name in _RANGES:
            low, high = _RANGES[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise fail(name, f"a number from {low} to {high}", value)
        elif name in _INTEGERS:
            low_int, high_int = _INTEGERS[name]
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < low_int
                or (high_int is not None and value > high_int)
            ):
                bound = (
                    f"a whole number >= {low_int}"
                    if high_int is None
                    else f"a whole number {low_int}..{high_int}"
                )
                raise fail(name, bound, value)
        elif name in _BOOLEANS:
            if not isinstance(value, bool):
                raise fail(name, "true or false", value)
        elif name in _OBJECTS and not isinstance(value, dict):
            raise fail(name, "an object", value)
        elif name in _STRINGS and not isinstance(value, str):
            raise fail(name, "a string", value)
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str)
        or (isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop))
    ):
        raise fail("stop", "a string or an array of at most 4 strings", stop)
    _check_response_format(body.get("response_format"))
    _check_tools(body.get("tools"), body.get("tool_choice"))
    if body.get("provider") is not None:
        check_provider(body["provider"])


_PROVIDER_LISTS = ("order", "only", "ignore", "quantizations")


def check_provider(provider: Any) -> None:
    """``provider`` preferences of the types routing reads (the other keys are accepted and ignored)."""
    if provider is None:
        return
    if not isinstance(provider, dict):
        raise fail("provider", "an object of provider preferences", provider)
    for key in _PROVIDER_LISTS:
        value = provider.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise fail(f"provider.{key}", "an array of provider names", value)
    sort = provider.get("sort")
    if sort is not None and not (
        isinstance(sort, str) or (isinstance(sort, dict) and isinstance(sort.get("by", ""), str))
    ):
        raise fail("provider.sort", 'price, throughput, latency or {"by": ...}', sort)
    max_price = provider.get("max_price")
    if max_price is None:
        return
    if not isinstance(max_price, dict):
        raise fail("provider.max_price", "an object of prices in USD per million tokens", max_price)
    for key, value in max_price.items():
        try:
            price = Decimal(str(value)) if not isinstance(value, bool) else Decimal("NaN")
        except ArithmeticError:
            price = Decimal("NaN")
        if not price.is_finite() or price < 0:
            raise fail(f"provider.max_price.{key}", "a price >= 0 in USD per million tokens", value)


def _check_response_format(response_format: Any) -> None:
    if response_format is None:
        return
    if not isinstance(response_format, dict) or response_format.get("type") not in _RESPONSE_FORMATS:
        raise fail(
            "response_format",
            f"an object whose type is one of {', '.join(_RESPONSE_FORMATS)}",
            response_format,
        )
    if response_format["type"] == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
            raise fail("response_format.json_schema", "an object with a name and a schema", spec)
        if spec.get("schema") is not None and not isinstance(spec["schema"], dict):
            raise fail("response_format.json_schema.schema", "a JSON Schema object", spec["schema"])


def _check_tools(tools: Any, tool_choice: Any) -> None:
    if tools is not None:
        if not isinstance(tools, list):
            raise fail("tools", "an array of tools", tools)
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
                raise fail(f"tools[{index}]", 'an object with a "type"', tool)
            if tool["type"] == "function":
                function = tool.get("function")
                if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                    raise fail(f"tools[{index}].function", "an object with a name", function)
                if function.get("parameters") is not None and not isinstance(function["parameters"], dict):
                    raise fail(
                        f"tools[{index}].function.parameters", "a JSON Schema object", function["parameters"]
                    )
    if tool_choice is None:
        return
    if isinstance(tool_choice, str):
        if tool_choice not in _TOOL_CHOICES:
            raise fail("tool_choice", f"one of {', '.join(_TOOL_CHOICES)} or an object", tool_choice)
        return
    if not isinstance(tool_choice, dict) or not isinstance(tool_choice.get("type"), str):
        raise fail("tool_choice", f"one of {', '.join(_TOOL_CHOICES)} or an object", tool_choice)
    if tool_choice["type"] == "function":
        name = (
            (tool_choice.get("function") or {}).get("name")
            if isinstance(tool_choice.get("function"), dict)
            else None
        )
        known = [
            (t.get("function") or {}).get("name")
            for t in tools or ()
            if isinstance(t, dict) and t.get("type") == "function"
        ]
        if name not in known:
            raise HTTPError(400, f"tool_choice names the function {name!r}, which is not among tools {known}")


def _check_content(field: str, content: Any, *, optional: bool) -> None:
    if content is None:
        if optional:
            return
        raise fail(field, "a string or an array of content parts", content)
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise fail(field, "a string or an array of content parts", content)
    for index, part in enumerate(content):
        where = f"{field}[{index}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise fail(where, 'a content part object with a "type"', part)
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise fail(f"{where}.text", "a string", part.get("text"))
        image = part.get("image_url")
        if part["type"] == "image_url" and not (
            isinstance(image, dict) and isinstance(image.get("url"), str)
        ):
            raise fail(f"{where}.image_url", "an object with a url", image)


def check_messages(messages: Any) -> list[str]:
    """Validate ``messages``; returns the text of every message (for directives, moderation and tokens)."""
    if messages is None:
        raise HTTPError(
            400, 'Input required: specify "messages" (a non-empty array of {role, content} objects)'
        )
    if not isinstance(messages, list) or not messages:
        raise fail("messages", "a non-empty array of {role, content} objects", messages)
    texts = []
    for index, message in enumerate(messages):
        field = f"messages[{index}]"
        if not isinstance(message, dict):
            raise fail(field, "an object with role and content", message)
        role = message.get("role")
        if role not in ROLES:
            raise HTTPError(
                400, f"{field}.role: {role!r} is not a valid role; expected one of {', '.join(ROLES)}"
            )
        content = message.get("content")
        if not isinstance(content, str):  # a plain text, the common case, needs no more checks
            _check_content(f"{field}.content", content, optional=role == "assistant")
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise fail(
                f"{field}.tool_call_id",
                "the id of the tool call this message answers",
                message.get("tool_call_id"),
            )
        calls = message.get("tool_calls")
        if calls is not None and (
            not isinstance(calls, list)
            or not all(isinstance(c, dict) and isinstance(c.get("function"), dict) for c in calls)
        ):
            raise fail(f"{field}.tool_calls", "an array of {id, type, function: {name, arguments}}", calls)
        if message.get("name") is not None and not isinstance(message["name"], str):
            raise fail(f"{field}.name", "a string", message["name"])
        texts.append(message_text(message))
    return texts
