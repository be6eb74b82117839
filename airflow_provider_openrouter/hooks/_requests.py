"""Request bodies of the billable calls, built and checked before anything is sent (pure, no network).

Each builder checks every argument and returns the JSON body; a bad argument raises
:class:`~airflow_provider_openrouter.exceptions.OpenRouterRequestError` with ``status=None``, naming the
request, the argument, the value and what is expected. The builders take typed values (numbers as numbers,
dicts and lists as themselves) and read no text: turning what a template rendered back into a value is the
operators' work (:mod:`airflow_provider_openrouter._coerce`), and both apply the rules of
:mod:`airflow_provider_openrouter._values`. Nothing here reads a connection: the hook passes the connection's
``default_model`` in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, TypedDict, Unpack

from airflow_provider_openrouter import _values
from airflow_provider_openrouter.exceptions import OpenRouterRequestError

__all__ = [
    "CHAT_PATH",
    "COMPLETIONS_PATH",
    "ROLES",
    "ChatParameters",
    "CompletionParameters",
    "build_chat_request",
    "build_completion_request",
]

ROLES = ("system", "developer", "user", "assistant", "tool")
"""Message roles OpenRouter accepts."""

CHAT_PATH = "/chat/completions"
COMPLETIONS_PATH = "/completions"


def bad_argument(name: str, value: Any, expected: str, request: str) -> OpenRouterRequestError:
    """The hook's error for a bad argument: it names the request (nothing was sent)."""
    return OpenRouterRequestError(f"{name} must be {expected}, got {_values.shown(value)}", request=request)


def _missing_text(name: str, value: Any, request: str) -> OpenRouterRequestError:
    """A text parameter that is unset: blank, or the ``'None'``/``'null'`` a template renders for a missing
    value, which would otherwise be sent, answered and billed as if it were the text."""
    rendered = isinstance(value, str) and value.strip()
    return bad_argument(
        name,
        value,
        "non-empty text" + (" (that is what a template renders for a missing value)" if rendered else ""),
        request,
    )


def failing(request: str) -> _values.Fail:
    """:func:`bad_argument` for ``request``, in the form the rules of ``_values`` take."""
    return partial(bad_argument, request=request)


def _check_messages(messages: Any, request: str) -> list[dict[str, Any]]:
    if not isinstance(messages, Sequence) or isinstance(messages, str | bytes):
        raise bad_argument("messages", messages, "a list of {role, content} objects", request)
    checked = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, Mapping):
            raise bad_argument(where, message, "an object with 'role' and 'content'", request)
        role = message.get("role")
        if role not in ROLES:
            raise bad_argument(f"{where}.role", role, f"one of {', '.join(ROLES)}", request)
        content = message.get("content")
        if content is None and role == "assistant" and message.get("tool_calls"):
            pass
        elif not isinstance(content, str | list):
            raise bad_argument(f"{where}.content", content, "a string or a list of content parts", request)
        elif isinstance(content, list):
            for part_index, part in enumerate(content):
                if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                    raise bad_argument(
                        f"{where}.content[{part_index}]",
                        part,
                        "a content part such as {'type': 'text', ...}",
                        request,
                    )
        if role == "tool" and not message.get("tool_call_id"):
            raise bad_argument(
                f"{where}.tool_call_id", message.get("tool_call_id"), "the id of the tool call", request
            )
        checked.append(dict(message))
    return checked


def _resolve_model(
    model: Any, models: list[str] | None, default_model: str | None, request: str, conn_id: str | None
) -> str | None:
    if model is not None and not isinstance(model, str):
        raise bad_argument("model", model, "a model id string such as 'openai/gpt-4o-mini'", request)
    chosen = (model or "").strip() or (default_model or "").strip() or None
    if chosen is None and not models:
        where = f"connection '{conn_id}'" if conn_id else "the connection"
        raise OpenRouterRequestError(
            f"no model given and {where} has no default_model",
            request=request,
            conn_id=conn_id,
            hint="Pass model='author/slug' (see OpenRouterListModelsOperator), a models=[...] fallback list, "
            f"or set the default_model extra of {where}.",
        )
    return chosen


def _merge_extra_body(body: dict[str, Any], extra_body: Any, request: str) -> dict[str, Any]:
    extra = _values.mapping("extra_body", extra_body, failing(request))
    if extra:
        if extra.get("stream"):
            raise bad_argument(
                "extra_body.stream", extra["stream"], "false (use chat_completion(stream=True))", request
            )
        body.update(extra)
    return body


class ChatParameters(TypedDict, total=False):
    """The chat request's parameters besides the model and the messages, as the hook's methods take them
    (keyword arguments; each may be ``None`` for unset).

    ``temperature`` (0 to 2) and ``top_p`` (0 to 1) are numbers, ``max_tokens`` (>= 1) and ``seed`` whole
    numbers; ``stop`` a string or a list of at most 4; ``response_format`` an object with a ``type`` (the
    bare ``"json_object"`` or ``"text"`` stands for ``{"type": ...}``); ``tools`` a list of tool objects;
    ``tool_choice`` ``"auto"``, ``"none"``, ``"required"`` or an object naming a function; ``models`` a list
    of fallback model ids; ``provider`` and ``reasoning`` objects; ``extra_body`` an object merged into the
    body last (any other field: ``plugins``, ``user``, ...).
    """

    system_prompt: str | None
    temperature: float | None
    max_tokens: int | None
    top_p: float | None
    stop: str | Sequence[str] | None
    seed: int | None
    response_format: Mapping[str, Any] | str | None
    tools: Sequence[Mapping[str, Any]] | None
    tool_choice: str | Mapping[str, Any] | None
    models: Sequence[str] | None
    provider: Mapping[str, Any] | None
    reasoning: Mapping[str, Any] | None
    extra_body: Mapping[str, Any] | None


class CompletionParameters(TypedDict, total=False):
    """The legacy text completion's parameters besides the model and the prompt (see
    :class:`ChatParameters` for each)."""

    max_tokens: int | None
    temperature: float | None
    stop: str | Sequence[str] | None
    seed: int | None
    models: Sequence[str] | None
    provider: Mapping[str, Any] | None
    extra_body: Mapping[str, Any] | None


def _known(parameters: Mapping[str, Any], allowed: type, request: str) -> None:
    """A misspelt keyword is refused (a TypedDict of keyword arguments would otherwise take it silently)."""
    unknown = sorted(set(parameters) - set(allowed.__annotations__))
    if unknown:
        raise OpenRouterRequestError(
            f"unknown parameter {unknown[0]!r}; known: {', '.join(allowed.__annotations__)}",
            request=request,
            hint="Put any other body field in extra_body.",
        )


def build_chat_request(
    model: str | None = None,
    role: str | None = None,
    content: str | Sequence[Mapping[str, Any]] | None = None,
    *,
    messages: Sequence[Mapping[str, Any]] | None = None,
    default_model: str | None = None,
    conn_id: str | None = None,
    **parameters: Unpack[ChatParameters],
) -> dict[str, Any]:
    """Check the arguments and build a ``POST /chat/completions`` body; nothing is sent.

    Messages are, in order: ``system_prompt`` (as a system message), ``messages``, then the connector's
    flat form ``role`` + ``content`` (role defaults to ``user``; any case). ``parameters``: see
    :class:`ChatParameters`. A content that is blank or the ``"None"``/``"null"`` a template renders for a
    missing value is refused: it would be answered and billed as if it were the question.
    """
    request = f"POST {CHAT_PATH}"
    _known(parameters, ChatParameters, request)
    fail = failing(request)
    fallbacks = _values.string_list("models", parameters.get("models"), fail)
    chosen = _resolve_model(model, fallbacks, default_model, request, conn_id)
    conversation: list[dict[str, Any]] = []
    system_prompt = parameters.get("system_prompt")
    if system_prompt is not None:
        if not isinstance(system_prompt, str):
            raise bad_argument("system_prompt", system_prompt, "a string", request)
        if system_prompt.strip():
            conversation.append({"role": "system", "content": system_prompt})
    if messages is not None:
        conversation.extend(_check_messages(messages, request))
    flat_role = None
    if content is not None or role is not None:
        flat_role = _flat_role(role, request)
        if _values.unset(content):
            raise _missing_text("content", content, request)
        if not isinstance(content, str | list):
            raise bad_argument("content", content, "a string or a list of content parts", request)
        if flat_role == "tool":
            raise OpenRouterRequestError(
                f"role {_values.shown(role)} cannot go with content: a tool result needs the tool_call_id of "
                "the call it answers",
                request=request,
                hint="Pass the conversation as messages=[..., {'role': 'tool', 'tool_call_id': ..., "
                "'content': ...}], or use role='user' for a plain question.",
            )
        (flat,) = _check_messages([{"role": flat_role, "content": content}], request)
        conversation.append(flat)
    if not any(message["role"] != "system" for message in conversation):
        if flat_role == "system":
            raise OpenRouterRequestError(
                f"role {_values.shown(role)} makes content a system message, and there is no user message "
                "to answer",
                request=request,
                hint="Write role='user' (or leave role out) to ask content; to give instructions too, put "
                "them in system_prompt and the question in content.",
            )
        raise OpenRouterRequestError(
            "messages are empty: there is nothing to send"
            if not conversation
            else "only a system prompt was given: there is nothing to answer",
            request=request,
            hint="Pass content='...' (role defaults to 'user') or messages=[{'role': 'user', ...}].",
        )
    body: dict[str, Any] = {"messages": conversation}
    if chosen is not None:
        body["model"] = chosen
    if fallbacks:
        body["models"] = fallbacks
    optional: dict[str, Any] = {
        **_sampling(parameters, fail),
        "top_p": _values.number("top_p", parameters.get("top_p"), fail, low=0.0, high=1.0),
        "response_format": _values.response_format(parameters.get("response_format"), fail),
        "tools": _tools(parameters.get("tools"), request),
        "tool_choice": _values.tool_choice(parameters.get("tool_choice"), fail),
        "reasoning": _values.mapping("reasoning", parameters.get("reasoning"), fail),
    }
    body.update((key, value) for key, value in optional.items() if value is not None)
    return _merge_extra_body(body, parameters.get("extra_body"), request)


def _sampling(parameters: ChatParameters | CompletionParameters, fail: _values.Fail) -> dict[str, Any]:
    """The parameters both endpoints take, checked."""
    return {
        "temperature": _values.number("temperature", parameters.get("temperature"), fail, low=0.0, high=2.0),
        "max_tokens": _values.integer("max_tokens", parameters.get("max_tokens"), fail, low=1),
        "stop": _values.stop(parameters.get("stop"), fail),
        "seed": _values.integer("seed", parameters.get("seed"), fail),
        "provider": _values.mapping("provider", parameters.get("provider"), fail),
    }


def _flat_role(role: Any, request: str) -> str:
    """The connector's ``role``: stripped and lower-cased (``"User"`` is ``user``); unset is ``user``."""
    if role is None or (isinstance(role, str) and not role.strip()):
        return "user"
    flat_role = role.strip().lower() if isinstance(role, str) else None
    if flat_role not in ROLES:
        raise bad_argument("role", role, f"one of {', '.join(ROLES)}", request)
    return flat_role


def _tools(value: Any, request: str) -> list[dict[str, Any]] | None:
    tools = _values.items("tools", value, failing(request), "a list of tool objects")
    if tools is None:
        return None
    for index, tool in enumerate(tools):
        if not isinstance(tool, Mapping) or not isinstance(tool.get("type"), str):
            raise bad_argument(
                f"tools[{index}]", tool, "an object such as {'type': 'function', 'function': {...}}", request
            )
    return [dict(tool) for tool in tools]


def build_completion_request(
    model: str | None = None,
    prompt: str | Sequence[str] | None = None,
    *,
    default_model: str | None = None,
    conn_id: str | None = None,
    **parameters: Unpack[CompletionParameters],
) -> dict[str, Any]:
    """Validate arguments and build a legacy ``POST /completions`` body; nothing is sent."""
    request = f"POST {COMPLETIONS_PATH}"
    _known(parameters, CompletionParameters, request)
    fail = failing(request)
    fallbacks = _values.string_list("models", parameters.get("models"), fail)
    chosen = _resolve_model(model, fallbacks, default_model, request, conn_id)
    if isinstance(prompt, str):
        if _values.unset(prompt):
            raise _missing_text("prompt", prompt, request)
    elif not (
        isinstance(prompt, Sequence) and prompt and all(isinstance(item, str) and item for item in prompt)
    ):
        raise bad_argument("prompt", prompt, "non-empty text (or a list of texts)", request)
    body: dict[str, Any] = {"prompt": prompt if isinstance(prompt, str) else list(prompt)}
    if chosen is not None:
        body["model"] = chosen
    if fallbacks:
        body["models"] = fallbacks
    body.update((key, value) for key, value in _sampling(parameters, fail).items() if value is not None)
    return _merge_extra_body(body, parameters.get("extra_body"), request)
