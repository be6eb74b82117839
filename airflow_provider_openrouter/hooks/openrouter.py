"""``OpenRouterHook``: an Airflow connection turned into typed OpenRouter calls, one method per API action.

The hook does no I/O in ``__init__`` (DAG files build hooks at parse time): the connection is read on first
use (:attr:`OpenRouterHook.settings`) and the pooled HTTP session is built then
(:attr:`OpenRouterHook.transport`). The wire (headers, retries, rate limit, error mapping) belongs to
:mod:`airflow_provider_openrouter.transport`, imported lazily so that importing this module stays cheap.

Every request is validated before it is sent (and paid for): a bad argument raises
:class:`~airflow_provider_openrouter.exceptions.OpenRouterRequestError` with ``status=None``, naming the
argument, the value and what is expected.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from airflow.sdk import BaseHook
from pydantic import ValidationError

from airflow_provider_openrouter import _coerce
from airflow_provider_openrouter.cost.attribution import (
    AttributionError,
    apply_attribution,
    attribution_fields,
    attribution_setting,
)
from airflow_provider_openrouter.exceptions import (
    OpenRouterConfigurationError,
    OpenRouterError,
    OpenRouterRequestError,
    OpenRouterResponseError,
    scrub,
)
from airflow_provider_openrouter.models import (
    ChatCompletion,
    Credits,
    Generation,
    KeyInfo,
    ModelEndpoints,
    ModelList,
    OpenRouterModel,
    TextCompletion,
    plain_decimal,
)

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_provider_openrouter.transport import (
        AsyncOpenRouterTransport,
        OpenRouterTransport,
        TransportSettings,
    )

__all__ = [
    "ROLES",
    "Attribution",
    "OpenRouterHook",
    "assemble_chat_stream",
    "build_chat_request",
    "build_completion_request",
    "normalize_base_url",
    "settings_from_connection",
]

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
ROLES = ("system", "developer", "user", "assistant", "tool")
"""Message roles OpenRouter accepts."""

_CHAT_PATH = "/chat/completions"
_COMPLETIONS_PATH = "/completions"
_LEGACY_EXTRA_PREFIX = "extra__openrouter__"
_MODELS_PAGE_SIZE = 500
MAX_MODEL_PAGES = 100
"""At most this many ``GET /models`` pages (of 500 models) are read for one catalog: OpenRouter lists a few
hundred models, so a server still sending pages after that is broken or hostile."""
_LOOPBACK_HOSTS = ("localhost", "::1", "[::1]")
_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "off", "n", "f", ""})

ResultT = TypeVar("ResultT", bound=OpenRouterModel)


# --- connection -> settings -------------------------------------------------------------------------------


def normalize_base_url(host: str | None, *, port: int | None = None, schema: str | None = None) -> str:
    """The API base URL from a connection's Base URL (host) field.

    Empty means OpenRouter itself. A host without a scheme gets ``https://`` (``http://`` for loopback); a
    host without a path gets the connection's schema field as path, else ``/api/v1``; a separate port is
    added when the host carries none.
    """
    text = (host or "").strip()
    if not text:
        return DEFAULT_BASE_URL
    if "://" not in text:
        bare = (
            text.split("/", 1)[0].rsplit(":", 1)[0] if not text.startswith("[") else text.split("]")[0] + "]"
        )
        loopback = bare in _LOOPBACK_HOSTS or bare.startswith("127.")
        text = f"{'http' if loopback else 'https'}://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"Base URL {host!r} is not an http(s) URL such as {DEFAULT_BASE_URL}")
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    path = parts.path.rstrip("/")
    if not path:
        path = "/" + schema.strip("/") if schema and schema.strip("/") else "/api/v1"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def _extra_value(extra: Mapping[str, Any], name: str) -> Any:
    """An extra by name, falling back to the legacy ``extra__openrouter__<name>`` form; blanks are None."""
    for key in (name, _LEGACY_EXTRA_PREFIX + name):
        value = extra.get(key)
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return value.strip() if isinstance(value, str) else value
    return None


def settings_from_connection(conn: Connection, conn_id: str | None = None) -> TransportSettings:
    """Read a connection into :class:`TransportSettings`; bad values raise one clear configuration error.

    Fields: password = API key; host = Base URL (default ``https://openrouter.ai/api/v1``). Extras (each also
    read as ``extra__openrouter__<name>``): ``app_url``, ``app_title``, ``default_model``, ``timeout``,
    ``connect_timeout``, ``max_retries``, ``max_retry_wait``, ``requests_per_minute`` (0 disables the client
    limit), ``retry_ambiguous``.
    """
    from airflow_provider_openrouter.transport import TransportSettings

    conn_id = conn_id or conn.conn_id

    def fail(message: str) -> OpenRouterConfigurationError:
        return OpenRouterConfigurationError(message, conn_id=conn_id, secrets=(conn.password or "",))

    api_key = (conn.password or "").strip()
    if api_key.lower().startswith("bearer "):
        api_key = api_key[7:].strip()
    if not api_key:
        raise fail(f"connection '{conn_id}' has no API key: put the OpenRouter key in its password field")
    try:
        base_url = normalize_base_url(conn.host, port=conn.port, schema=conn.schema)
    except ValueError as err:
        raise fail(str(err)) from None
    raw_extra = conn.extra
    if isinstance(raw_extra, str) and raw_extra.strip():
        try:
            extra = json.loads(raw_extra)
        except ValueError:
            raise fail(f"the extra of connection '{conn_id}' is not valid JSON") from None
    else:
        extra = raw_extra or {}
    if not isinstance(extra, Mapping):
        raise fail(f"the extra of connection '{conn_id}' must be a JSON object, got {type(extra).__name__}")

    def number(name: str, default: float, *, integer: bool = False) -> Any:
        value = _extra_value(extra, name)
        if value is None:
            return default
        try:
            if isinstance(value, bool):
                raise ValueError
            number_value = float(value)
            if number_value < 0 or number_value != number_value:
                raise ValueError
            if integer:
                if number_value != int(number_value):
                    raise ValueError
                return int(number_value)
            return number_value
        except (TypeError, ValueError):
            kind = "a whole number" if integer else "a number"
            raise fail(f"extra '{name}' must be {kind} >= 0, got {value!r}") from None

    retry_ambiguous = _extra_value(extra, "retry_ambiguous")
    if retry_ambiguous is not None and not isinstance(retry_ambiguous, bool):
        flag = str(retry_ambiguous).strip().lower()
        if flag not in _TRUE | _FALSE:
            raise fail(f"extra 'retry_ambiguous' must be true or false, got {retry_ambiguous!r}")
        retry_ambiguous = flag in _TRUE

    def string(name: str) -> str | None:
        value = _extra_value(extra, name)
        return None if value is None else str(value)

    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDK: the connection's password is masked anyway
        pass
    else:
        mask_secret(api_key)

    return TransportSettings(
        conn_id=conn_id,
        base_url=base_url,
        api_key=api_key,
        app_url=string("app_url"),
        app_title=string("app_title"),
        timeout=number("timeout", 120.0),
        connect_timeout=number("connect_timeout", 10.0),
        max_retries=number("max_retries", 5, integer=True),
        max_retry_wait=number("max_retry_wait", 300.0),
        requests_per_minute=number("requests_per_minute", 100.0),
        retry_ambiguous=bool(retry_ambiguous),
        default_model=string("default_model"),
    )


# --- request building and validation (pure) ---------------------------------------------------------------


def _bad(name: str, value: Any, expected: str, request: str) -> OpenRouterRequestError:
    """The hook's error for a bad argument: it names the request (nothing was sent)."""
    return OpenRouterRequestError(f"{name} must be {expected}, got {_coerce.shown(value)}", request=request)


def _missing_text(name: str, value: Any, request: str) -> OpenRouterRequestError:
    """A text parameter that is unset: blank, or the ``'None'``/``'null'`` a template renders for a missing
    value, which would otherwise be sent, answered and billed as if it were the text."""
    rendered = isinstance(value, str) and value.strip()
    return _bad(
        name,
        value,
        "non-empty text" + (" (that is what a template renders for a missing value)" if rendered else ""),
        request,
    )


def _failing(request: str) -> _coerce.Fail:
    """:func:`_bad` for ``request``, as the rendered-value coercion of :mod:`._coerce` takes it."""
    return partial(_bad, request=request)


def _check_messages(messages: Any, request: str) -> list[dict[str, Any]]:
    messages = _coerce.decode_json(
        "messages", messages, _failing(request), "JSON text of a list of {role, content} objects", list
    )
    if not isinstance(messages, Sequence) or isinstance(messages, str | bytes):
        raise _bad("messages", messages, "a list of {role, content} objects", request)
    checked = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, Mapping):
            raise _bad(where, message, "an object with 'role' and 'content'", request)
        role = message.get("role")
        if role not in ROLES:
            raise _bad(f"{where}.role", role, f"one of {', '.join(ROLES)}", request)
        content = message.get("content")
        if content is None and role == "assistant" and message.get("tool_calls"):
            pass
        elif not isinstance(content, str | list):
            raise _bad(f"{where}.content", content, "a string or a list of content parts", request)
        elif isinstance(content, list):
            for part_index, part in enumerate(content):
                if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                    raise _bad(
                        f"{where}.content[{part_index}]",
                        part,
                        "a content part such as {'type': 'text', ...}",
                        request,
                    )
        if role == "tool" and not message.get("tool_call_id"):
            raise _bad(
                f"{where}.tool_call_id", message.get("tool_call_id"), "the id of the tool call", request
            )
        checked.append(dict(message))
    return checked


def _resolve_model(
    model: Any, models: list[str] | None, default_model: str | None, request: str, conn_id: str | None
) -> str | None:
    if model is not None and not isinstance(model, str):
        raise _bad("model", model, "a model id string such as 'openai/gpt-4o-mini'", request)
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
    extra = _coerce.mapping("extra_body", extra_body, _failing(request))
    if extra:
        if extra.get("stream"):
            raise _bad(
                "extra_body.stream", extra["stream"], "false (use chat_completion(stream=True))", request
            )
        body.update(extra)
    return body


def build_chat_request(
    model: str | None = None,
    role: str | None = None,
    content: str | list[Any] | None = None,
    *,
    messages: Sequence[Mapping[str, Any]] | str | None = None,
    system_prompt: str | None = None,
    temperature: float | str | None = None,
    max_tokens: int | str | None = None,
    top_p: float | str | None = None,
    stop: str | Sequence[str] | None = None,
    seed: int | str | None = None,
    response_format: Mapping[str, Any] | str | None = None,
    tools: Sequence[Mapping[str, Any]] | str | None = None,
    tool_choice: str | Mapping[str, Any] | None = None,
    models: Sequence[str] | str | None = None,
    provider: Mapping[str, Any] | str | None = None,
    reasoning: Mapping[str, Any] | str | None = None,
    extra_body: Mapping[str, Any] | str | None = None,
    default_model: str | None = None,
    conn_id: str | None = None,
) -> dict[str, Any]:
    """Validate arguments and build a ``POST /chat/completions`` body; nothing is sent.

    Messages are, in order: ``system_prompt`` (as a system message), ``messages``, then the connector's
    flat form ``role`` + ``content`` (role defaults to ``user``). Parameters are coerced by the rules of
    :mod:`airflow_provider_openrouter._coerce`, as an operator's are: numbers and objects may come as the text
    a template renders (a blank text is unset). ``extra_body`` is merged last and may set any other body field
    (``plugins``, ``user``, ...).
    """
    request = f"POST {_CHAT_PATH}"
    fail = _failing(request)
    fallbacks = _coerce.string_list("models", models, fail)
    chosen = _resolve_model(model, fallbacks, default_model, request, conn_id)
    conversation: list[dict[str, Any]] = []
    if system_prompt is not None:
        if not isinstance(system_prompt, str):
            raise _bad("system_prompt", system_prompt, "a string", request)
        if system_prompt.strip():
            conversation.append({"role": "system", "content": system_prompt})
    if messages is not None:
        conversation.extend(_check_messages(messages, request))
    flat_role = None
    if content is not None or role is not None:
        flat_role = _flat_role(role, request)
        if _coerce.unset(content):
            raise _missing_text("content", content, request)
        if not isinstance(content, str | list):
            raise _bad("content", content, "a string or a list of content parts", request)
        if flat_role == "tool":
            raise OpenRouterRequestError(
                f"role {_coerce.shown(role)} cannot go with content: a tool result needs the tool_call_id of "
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
                f"role {_coerce.shown(role)} makes content a system message, and there is no user message "
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
        "temperature": _coerce.number("temperature", temperature, fail, low=0.0, high=2.0),
        "max_tokens": _coerce.integer("max_tokens", max_tokens, fail, low=1),
        "top_p": _coerce.number("top_p", top_p, fail, low=0.0, high=1.0),
        "stop": _coerce.stop(stop, fail),
        "seed": _coerce.integer("seed", seed, fail),
        "response_format": _coerce.response_format(response_format, fail),
        "tools": _tools(tools, request),
        "tool_choice": _coerce.tool_choice(tool_choice, fail),
        "provider": _coerce.mapping("provider", provider, fail),
        "reasoning": _coerce.mapping("reasoning", reasoning, fail),
    }
    body.update((key, value) for key, value in optional.items() if value is not None)
    return _merge_extra_body(body, extra_body, request)


def _flat_role(role: Any, request: str) -> str:
    """The connector's ``role``: stripped and lower-cased (``"User"`` is ``user``); unset is ``user``."""
    if role is None or (isinstance(role, str) and not role.strip()):
        return "user"
    flat_role = role.strip().lower() if isinstance(role, str) else None
    if flat_role not in ROLES:
        raise _bad("role", role, f"one of {', '.join(ROLES)}", request)
    return flat_role


def _tools(value: Any, request: str) -> list[dict[str, Any]] | None:
    if _coerce.unset(value):
        return None
    tools = _coerce.decode_json("tools", value, _failing(request), "a list of tool objects", list)
    if not isinstance(tools, Sequence) or isinstance(tools, str):
        raise _bad("tools", tools, "a list of tool objects", request)
    for index, tool in enumerate(tools):
        if not isinstance(tool, Mapping) or not isinstance(tool.get("type"), str):
            raise _bad(
                f"tools[{index}]", tool, "an object such as {'type': 'function', 'function': {...}}", request
            )
    return [dict(tool) for tool in tools]


def build_completion_request(
    model: str | None = None,
    prompt: str | Sequence[str] | None = None,
    *,
    max_tokens: int | str | None = None,
    temperature: float | str | None = None,
    stop: str | Sequence[str] | None = None,
    seed: int | str | None = None,
    models: Sequence[str] | str | None = None,
    provider: Mapping[str, Any] | str | None = None,
    extra_body: Mapping[str, Any] | str | None = None,
    default_model: str | None = None,
    conn_id: str | None = None,
) -> dict[str, Any]:
    """Validate arguments and build a legacy ``POST /completions`` body; nothing is sent."""
    request = f"POST {_COMPLETIONS_PATH}"
    fail = _failing(request)
    fallbacks = _coerce.string_list("models", models, fail)
    chosen = _resolve_model(model, fallbacks, default_model, request, conn_id)
    if isinstance(prompt, str):
        if _coerce.unset(prompt):
            raise _missing_text("prompt", prompt, request)
    elif not (
        isinstance(prompt, Sequence) and prompt and all(isinstance(item, str) and item for item in prompt)
    ):
        raise _bad("prompt", prompt, "non-empty text (or a list of texts)", request)
    body: dict[str, Any] = {"prompt": prompt if isinstance(prompt, str) else list(prompt)}
    if chosen is not None:
        body["model"] = chosen
    if fallbacks:
        body["models"] = fallbacks
    optional: dict[str, Any] = {
        "max_tokens": _coerce.integer("max_tokens", max_tokens, fail, low=1),
        "temperature": _coerce.number("temperature", temperature, fail, low=0.0, high=2.0),
        "stop": _coerce.stop(stop, fail),
        "seed": _coerce.integer("seed", seed, fail),
        "provider": _coerce.mapping("provider", provider, fail),
    }
    body.update((key, value) for key, value in optional.items() if value is not None)
    return _merge_extra_body(body, extra_body, request)


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(str(item) for item in value)
    return value


def assemble_chat_stream(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One ``chat.completion`` body from the chunks of a streamed answer, with every field the same request
    answered without streaming carries.

    * Top level (``id``, ``model``, ``provider``, ``created``, ``system_fingerprint``, ``service_tier``,
      ``usage``, ``openrouter_metadata``, and any other key): the last value sent wins.
    * Per choice (by ``index``): ``finish_reason`` and ``native_finish_reason`` as last sent; ``logprobs``
      lists (``content``, ``refusal``) concatenated across chunks.
    * Per message: text deltas (``content``, ``reasoning``, ``refusal``, ``audio.data`` and
      ``audio.transcript``) concatenated; ``tool_calls`` and ``reasoning_details`` merged by their ``index``
      (their text pieces joined); ``images`` and ``annotations`` collected in order.

    A server that answered with one whole object is passed on.
    """
    result: dict[str, Any] = {"object": "chat.completion"}
    choices: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.get("object") == "chat.completion":
            return dict(event)
        for key, value in event.items():
            if key not in ("object", "choices") and value is not None:
                result[key] = value
        for part in event.get("choices") or ():
            index = part.get("index", 0)
            choice = choices.setdefault(
                index,
                {"index": index, "message": {"role": "assistant"}, "finish_reason": None, "logprobs": None},
            )
            for key, value in part.items():
                if key == "delta":
                    _merge_delta(choice["message"], value or {})
                elif key == "logprobs":
                    choice["logprobs"] = _merge_logprobs(choice["logprobs"], value)
                elif key != "index" and value is not None:
                    choice[key] = value
    result["choices"] = [choices[index] for index in sorted(choices)]
    for choice in result["choices"]:
        message = choice["message"]
        # The role chunk opens with content "": an answer that is only tool calls or a refusal has no content.
        if not message.get("content") and (message.get("tool_calls") or message.get("refusal")):
            message["content"] = None
        message.setdefault("content", None)
    return result


_DELTA_TEXTS = ("content", "reasoning", "refusal")
_DELTA_LISTS = ("images", "annotations")
# Streamed in pieces: a reasoning detail's text (or summary, or encrypted data) arrives across chunks that
# share the detail's index; the other keys (type, format, id, signature) are sent whole.
_DETAIL_TEXTS = ("text", "summary", "data")


def _merge_delta(message: dict[str, Any], delta: Mapping[str, Any]) -> None:
    for key, value in delta.items():
        if value is None:
            continue
        if key in _DELTA_TEXTS and isinstance(value, str):
            message[key] = (message.get(key) or "") + value
        elif key in _DELTA_LISTS and isinstance(value, list):
            message.setdefault(key, []).extend(value)
        elif key == "tool_calls":
            _merge_tool_calls(message.setdefault("tool_calls", []), value)
        elif key == "reasoning_details":
            _merge_reasoning_details(message.setdefault("reasoning_details", []), value)
        elif key == "audio" and isinstance(value, Mapping):
            audio = message.setdefault("audio", {})
            for name, piece in value.items():
                if name in ("data", "transcript") and isinstance(piece, str):
                    audio[name] = audio.get(name, "") + piece
                elif piece is not None:
                    audio[name] = piece
        else:
            message[key] = value


def _merge_tool_calls(calls: list[dict[str, Any]], deltas: Iterable[Mapping[str, Any]]) -> None:
    for call in deltas:
        position = call.get("index", len(calls))
        while len(calls) <= position:
            calls.append(
                {
                    "id": None,
                    "type": "function",
                    "index": len(calls),
                    "function": {"name": "", "arguments": ""},
                }
            )
        target = calls[position]
        for key, value in call.items():
            if key == "function":
                for name, piece in (value or {}).items():
                    if name in ("name", "arguments") and isinstance(piece, str):
                        target["function"][name] += piece
                    elif piece is not None:
                        target["function"][name] = piece
            elif key != "index" and value is not None:
                target[key] = value


def _merge_reasoning_details(details: list[dict[str, Any]], deltas: Iterable[Mapping[str, Any]]) -> None:
    for detail in deltas:
        index = detail.get("index")
        target = next(
            (
                known
                for known in details
                if index is not None
                and known.get("index") == index
                and known.get("type") == detail.get("type")
            ),
            None,
        )
        if target is None:
            details.append(dict(detail))
            continue
        for key, value in detail.items():
            if key in _DETAIL_TEXTS and isinstance(value, str):
                target[key] = (target.get(key) or "") + value
            elif value is not None:
                target[key] = value


def _merge_logprobs(known: Any, piece: Any) -> Any:
    """Per-token logprob lists (``content``, ``refusal``) of one choice, concatenated across chunks."""
    if not isinstance(piece, Mapping):
        return known
    merged = dict(known) if isinstance(known, Mapping) else {}
    for key, value in piece.items():
        if isinstance(value, list):
            merged[key] = [*(merged.get(key) or []), *value]
        elif key not in merged or value is not None:
            merged[key] = value
    return merged


# --- attribution ------------------------------------------------------------------------------------------


def current_task_context() -> Mapping[str, Any] | None:
    """The running task's Airflow context, or ``None`` outside a task."""
    from airflow.sdk import get_current_context

    try:
        return get_current_context()
    except RuntimeError:  # not inside a task: only the user's pairs are sent
        return None


@dataclasses.dataclass(frozen=True)
class Attribution:
    """The attribution of one hook call or one batch run, resolved and checked once, added to each body.

    ``fields`` are the body fields of a request without a batch row (see
    :func:`~airflow_provider_openrouter.cost.attribution.attribution_fields`); :meth:`apply` adds them, or a
    batch row's own (with its ``custom_id``), to a body, leaving whatever the body already sets.
    """

    context: Mapping[str, Any] | None
    enabled: bool
    pairs: dict[str, str]
    fields: dict[str, Any]

    def apply(self, body: Mapping[str, Any], custom_id: str | None = None) -> dict[str, Any]:
        if not self.enabled:
            return dict(body)
        fields = self.fields
        if custom_id is not None:
            fields = attribution_fields(
                self.context, custom_id=custom_id, user_pairs=self.pairs, enabled=self.enabled
            )
        return apply_attribution(body, fields)


_NO_ATTRIBUTION = Attribution(None, False, {}, {})


def _connection_attribution(extra: Any, conn_id: str | None) -> tuple[bool, dict[str, str]] | None:
    """The connection extra ``attribution``, checked (``None`` when the extra is not set)."""
    if not isinstance(extra, Mapping):
        return None
    value = _extra_value(extra, "attribution")
    if value is None:
        return None
    try:
        return attribution_setting(value)
    except AttributionError as err:
        raise OpenRouterConfigurationError(
            f"extra 'attribution' of connection '{conn_id}': {err}",
            conn_id=conn_id,
            hint="Set it to false (off), true (on) or a JSON object of your own metadata pairs.",
        ) from None


# --- the hook ----------------------------------------------------------------------------------------------


class OpenRouterHook(BaseHook):
    """Talk to OpenRouter through an Airflow connection of type ``openrouter``.

    Connection: password = API key; host = Base URL (default ``https://openrouter.ai/api/v1``); extras are
    described in docs/connection.md. ``__init__`` does no I/O; one pooled session per hook is built on first
    use and reused by every call (and by every thread sharing the hook).

    :param openrouter_conn_id: the connection id.
    :param tenacity_kwargs: optional ``tenacity.Retrying`` arguments for the transport (``stop``, ``wait``,
        ...); what may be resent is fixed by the billing rules.
    :param requests_per_minute: this hook's client-side rate limit, replacing the connection's
        ``requests_per_minute`` extra (``0`` disables it; ``None`` keeps the connection's).
    :param max_connections: the most HTTP connections the hook's pool keeps open; size it to the number of
        threads sharing the hook (default: the transport's).
    :param attribution: the Airflow context sent with every billable request (``metadata``, ``session_id``,
        ``trace``; see :meth:`attribution_for`): ``False`` turns it off, a dict adds the user's own metadata
        pairs; it overrides the connection extra ``attribution`` and is overridden by a call's own.

    The hook is a context manager; :meth:`close` (or leaving the ``with`` block) closes its pool.
    """

    conn_name_attr = "openrouter_conn_id"
    default_conn_name = "openrouter_default"
    conn_type = "openrouter"
    hook_name = "OpenRouter"

    def __init__(
        self,
        openrouter_conn_id: str = default_conn_name,
        *,
        tenacity_kwargs: Mapping[str, Any] | None = None,
        requests_per_minute: float | None = None,
        max_connections: int | None = None,
        attribution: bool | Mapping[str, Any] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.openrouter_conn_id = openrouter_conn_id
        self.attribution = attribution
        self.tenacity_kwargs = tenacity_kwargs
        request = "OpenRouterHook()"
        self.requests_per_minute = _coerce.number(
            "requests_per_minute", requests_per_minute, _failing(request), low=0.0
        )
        self.max_connections = _coerce.integer("max_connections", max_connections, _failing(request), low=1)
        # Python 3.12+ no longer locks cached_property: threads sharing a fresh hook would each read the
        # connection and build a pool of their own, and all but one pool would leak.
        self._lazy_lock = threading.RLock()
        self._settings: TransportSettings | None = None
        self._extra_attribution: tuple[bool, dict[str, str]] | None = None
        self._transport: OpenRouterTransport | None = None

    def __getstate__(self) -> dict[str, Any]:
        # A copy (deepcopy of an operator, pickling) reads the connection again and opens its own pool.
        state = dict(self.__dict__)
        state.update(_lazy_lock=None, _settings=None, _extra_attribution=None, _transport=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lazy_lock = threading.RLock()

    def __enter__(self) -> OpenRouterHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections of this hook (if it opened any). A later call opens a new pool."""
        with self._lazy_lock:
            transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form customisation for Airflow < 3.2 (newer cores read get_provider_info)."""
        from airflow_provider_openrouter.get_provider_info import get_provider_info

        behaviour = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
        return {key.replace("-", "_"): value for key, value in behaviour.items()}

    @property
    def settings(self) -> TransportSettings:
        """The connection, read once and validated, with this hook's ``requests_per_minute`` applied."""
        settings = self._settings
        if settings is None:
            with self._lazy_lock:
                if self._settings is None:
                    self._settings = self._read_connection(self.get_connection(self.openrouter_conn_id))
                settings = self._settings
        return settings

    def _read_connection(self, conn: Connection) -> TransportSettings:
        """The connection's settings with this hook's ``requests_per_minute``; keeps its ``attribution``."""
        settings = settings_from_connection(conn, self.openrouter_conn_id)
        self._extra_attribution = _connection_attribution(conn.extra_dejson, self.openrouter_conn_id)
        if self.requests_per_minute is None:
            return settings
        return dataclasses.replace(settings, requests_per_minute=self.requests_per_minute)

    @property
    def transport(self) -> OpenRouterTransport:
        """The pooled synchronous transport of this hook (``max_connections`` sizes its pool)."""
        transport = self._transport
        if transport is None:
            with self._lazy_lock:
                if self._transport is None:
                    from airflow_provider_openrouter.transport import OpenRouterTransport

                    self._transport = OpenRouterTransport(
                        self.settings, tenacity_kwargs=self.tenacity_kwargs, pool_maxsize=self.max_connections
                    )
                transport = self._transport
        return transport

    def get_conn(self) -> OpenRouterTransport:
        return self.transport

    def get_async_transport(self) -> AsyncOpenRouterTransport:
        """A new async transport (for triggers) with this connection's settings; close with ``aclose()``."""
        from airflow_provider_openrouter.transport import AsyncOpenRouterTransport

        return AsyncOpenRouterTransport(self.settings, tenacity_kwargs=self.tenacity_kwargs)

    async def aget_async_transport(self) -> AsyncOpenRouterTransport:
        """:meth:`get_async_transport` that reads the connection without blocking the event loop."""
        from airflow_provider_openrouter.transport import AsyncOpenRouterTransport

        if self._settings is None:
            aget_connection = getattr(self, "aget_connection", None)
            if aget_connection is not None:
                conn = await aget_connection(self.openrouter_conn_id)
            else:  # task SDKs without BaseHook.aget_connection: read it off the event loop
                conn = await asyncio.to_thread(self.get_connection, self.openrouter_conn_id)
            settings = self._read_connection(conn)
            with self._lazy_lock:
                if self._settings is None:
                    self._settings = settings
        # Off the loop too: a new client loads the CA bundle into an SSL context (100-300 ms on a busy host),
        # which would stall every other trigger sharing the triggerer's loop (benchmarks/bench_triggerer_lag).
        return await asyncio.to_thread(
            AsyncOpenRouterTransport, self.settings, tenacity_kwargs=self.tenacity_kwargs
        )

    # --- building requests (no network) -------------------------------------------------------------------

    def build_chat_request(
        self,
        model: str | None = None,
        role: str | None = None,
        content: str | list[Any] | None = None,
        *,
        attribution: bool | Mapping[str, Any] | str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """:func:`build_chat_request` with the connection's ``default_model`` filling a missing model, and the
        attribution of :meth:`attribution_for` added (``attribution=False``: the bare body)."""
        default_model = self.settings.default_model if not model else None
        body = build_chat_request(
            model, role, content, default_model=default_model, conn_id=self.openrouter_conn_id, **kwargs
        )
        return self.attribution_for(attribution, request=f"POST {_CHAT_PATH}").apply(body)

    def attribution_for(
        self,
        attribution: bool | Mapping[str, Any] | str | None = None,
        *,
        context: Mapping[str, Any] | None = None,
        request: str = f"POST {_CHAT_PATH}",
        rows: bool = False,
    ) -> Attribution:
        """The attribution of a billable request: the connection extra ``attribution``, then this hook's
        ``attribution``, then ``attribution`` (later ones win; ``False`` turns it off, a dict adds metadata
        pairs), applied to ``context`` (default: the running task's, read once here; none outside a task).

        ``rows=True`` (the batch engine) checks the pairs leave a slot for each row's ``custom_id``. Bad pairs
        raise :class:`OpenRouterConfigurationError` (the extra) or :class:`OpenRouterRequestError` (the
        parameter) before anything is sent.
        """
        if attribution is False:
            return _NO_ATTRIBUTION
        self.settings  # noqa: B018 - reading the connection checks and keeps its extra 'attribution'
        extra_enabled, pairs = self._extra_attribution or (True, {})
        try:
            enabled, own = attribution_setting(extra_enabled, self.attribution, attribution)
        except AttributionError as err:
            raise self._attribution_error(err, request) from None
        if not enabled:
            return _NO_ATTRIBUTION
        pairs = {**pairs, **own}
        if context is None:
            context = current_task_context()
        try:
            fields = attribution_fields(context, user_pairs=pairs)
            if rows:
                attribution_fields(context, custom_id="-", user_pairs=pairs)
        except AttributionError as err:
            raise self._attribution_error(err, request) from None
        return Attribution(context, True, pairs, fields)

    def _attribution_error(self, err: AttributionError, request: str) -> OpenRouterRequestError:
        return OpenRouterRequestError(
            f"parameter 'attribution' (with the connection extra 'attribution'): {err}",
            request=request,
            conn_id=self.openrouter_conn_id,
            hint="Pass attribution=False (off), True (on) or a dict of your own metadata pairs; nothing was "
            "sent.",
        )

    # --- actions ------------------------------------------------------------------------------------------

    def chat_completion(
        self,
        model: str | None = None,
        role: str | None = None,
        content: str | list[Any] | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | str | None = None,
        system_prompt: str | None = None,
        temperature: float | str | None = None,
        max_tokens: int | str | None = None,
        top_p: float | str | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | str | None = None,
        response_format: Mapping[str, Any] | str | None = None,
        tools: Sequence[Mapping[str, Any]] | str | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        models: Sequence[str] | str | None = None,
        provider: Mapping[str, Any] | str | None = None,
        reasoning: Mapping[str, Any] | str | None = None,
        extra_body: Mapping[str, Any] | str | None = None,
        idempotency_key: str | None = None,
        stream: bool = False,
        attribution: bool | Mapping[str, Any] | str | None = None,
    ) -> ChatCompletion:
        """Send a chat completion (billable) and return the typed answer.

        Accepts the connector's flat form (``model``, ``role``, ``content``) and the full API; see
        :func:`build_chat_request`. An error OpenRouter reports inside a 200 body raises like its status.
        ``stream=True`` receives the answer as server-sent events (OpenRouter's keep-alives then hold the
        connection open through a long generation, so the read timeout measures silence, not total time) and
        returns the same assembled ChatCompletion; an error event mid-stream raises. ``attribution``: see
        :meth:`attribution_for`; the body names the running task (``metadata``, ``session_id``, ``trace``).
        """
        body = self.build_chat_request(
            model,
            role,
            content,
            messages=messages,
            system_prompt=system_prompt,
            temperature=temperature,
            max_tokens=max_tokens,
            top_p=top_p,
            stop=stop,
            seed=seed,
            response_format=response_format,
            tools=tools,
            tool_choice=tool_choice,
            models=models,
            provider=provider,
            reasoning=reasoning,
            extra_body=extra_body,
            attribution=attribution,
        )
        return self.send_chat_request(body, idempotency_key=idempotency_key, stream=stream)

    def send_chat_request(
        self, body: Mapping[str, Any], *, idempotency_key: str | None = None, stream: bool = False
    ) -> ChatCompletion:
        """POST a body built by :meth:`build_chat_request` (the batch engine's per-row call)."""
        if stream:
            data = assemble_chat_stream(
                self.transport.stream(_CHAT_PATH, body, idempotency_key=idempotency_key)
            )
        else:
            data = self.transport.post(_CHAT_PATH, body, idempotency_key=idempotency_key)
        return self._result(ChatCompletion, data, f"POST {_CHAT_PATH}", billed=True)

    def completion(
        self,
        model: str | None = None,
        prompt: str | Sequence[str] | None = None,
        *,
        max_tokens: int | str | None = None,
        temperature: float | str | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | str | None = None,
        models: Sequence[str] | str | None = None,
        provider: Mapping[str, Any] | str | None = None,
        extra_body: Mapping[str, Any] | str | None = None,
        idempotency_key: str | None = None,
        attribution: bool | Mapping[str, Any] | str | None = None,
    ) -> TextCompletion:
        """Send a legacy text completion (``POST /completions``, billable).

        OpenRouter removed this endpoint from its current API; where it answers 404/410 this raises
        :class:`~airflow_provider_openrouter.exceptions.OpenRouterEndpointGoneError`, which points to the chat
        operator.
        """
        body = build_completion_request(
            model,
            prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop,
            seed=seed,
            models=models,
            provider=provider,
            extra_body=extra_body,
            default_model=self.settings.default_model if not model else None,
            conn_id=self.openrouter_conn_id,
        )
        body = self.attribution_for(attribution, request=f"POST {_COMPLETIONS_PATH}").apply(body)
        data = self.transport.post(_COMPLETIONS_PATH, body, idempotency_key=idempotency_key)
        return self._result(TextCompletion, data, f"POST {_COMPLETIONS_PATH}", billed=True)

    def get_credits(self) -> Credits:
        """Credits bought and used (``GET /credits``; OpenRouter requires a management key for it)."""
        return self._result(
            Credits, self._data(self.transport.get("/credits"), "GET /credits"), "GET /credits"
        )

    def get_generation(self, generation_id: str) -> Generation:
        """What a generation cost and how it ran (``GET /generation?id=``).

        Stats appear a moment after the completion; until then OpenRouter answers 404
        (:class:`~airflow_provider_openrouter.exceptions.OpenRouterNotFoundError`).
        """
        request = "GET /generation"
        if not isinstance(generation_id, str) or _coerce.unset(generation_id):
            raise _bad("generation_id", generation_id, "a generation id such as 'gen-...'", request)
        return self.parse_generation(self.transport.get("/generation", {"id": generation_id.strip()}))

    def parse_generation(self, payload: Mapping[str, Any]) -> Generation:
        """The typed :class:`Generation` of a ``GET /generation`` answer (fetched here or by a trigger)."""
        request = "GET /generation"
        return self._result(Generation, self._data(payload, request), request)

    def list_model_endpoints(self, author: str, slug: str | None = None) -> ModelEndpoints:
        """The provider endpoints serving ``author/slug`` (``GET /models/{author}/{slug}/endpoints``).

        ``author`` may be a whole model id (``"openai/gpt-4o"``) when ``slug`` is omitted. Both parts must
        have OpenRouter's id shape (see :func:`~airflow_provider_openrouter._coerce.model_id_part`) and are
        sent as quoted path segments, so no request leaves ``/models``.
        """
        request = "GET /models/{author}/{slug}/endpoints"
        if slug is None:
            if isinstance(author, str) and author.strip() and "/" not in author:
                raise OpenRouterRequestError(
                    f"the model id {_coerce.shown(author)} has no '/': expected 'author/slug' such as "
                    "'openai/gpt-4o-mini'",
                    request=request,
                )
            if isinstance(author, str) and "/" in author:
                author, slug = author.strip().split("/", 1)
        elif isinstance(author, str) and "/" in author:
            raise OpenRouterRequestError(
                f"author must not contain '/' when slug is given, got {_coerce.shown(author)}",
                request=request,
                hint="Pass the whole model id alone (list_model_endpoints('author/slug')), or author and "
                "slug separately.",
            )
        fail = _failing(request)
        segments = [
            quote(_coerce.model_id_part(name, value, fail, part=name), safe="")
            for name, value in (("author", author), ("slug", slug))
        ]
        path = f"/models/{segments[0]}/{segments[1]}/endpoints"
        return self._result(
            ModelEndpoints, self._data(self.transport.get(path), f"GET {path}"), f"GET {path}"
        )

    def list_models(
        self, *, limit: int | str | None = None, offset: int | str | None = None, **filters: Any
    ) -> ModelList:
        """The model catalog (``GET /models``), every page unless ``limit`` asks for one page.

        ``filters`` are OpenRouter's query parameters (``category``, ``supported_parameters``,
        ``output_modalities``, ``q``, ``sort``, ...); lists are sent comma-separated, booleans as true/false.
        Paging stops at the last page, at a page that brings no model not seen before (a server that ignores
        ``offset``), and after :data:`MAX_MODEL_PAGES` pages, which raises rather than return a catalog that
        may be incomplete.
        """
        request = "GET /models"
        params = {key: _query_value(value) for key, value in filters.items() if value is not None}
        fail = _failing(request)
        page_limit = _coerce.integer("limit", limit, fail, low=1)
        start = _coerce.integer("offset", offset, fail, low=0) or 0
        if page_limit is not None:
            params.update(limit=page_limit, offset=start)
            return self._result(ModelList, self.transport.get("/models", params), request)
        if start:
            params["offset"] = start
        first = self.transport.get("/models", params)
        rows = list(first.get("data") or [])
        seen = {row.get("id") for row in rows if isinstance(row, Mapping)}
        total = first.get("total_count")
        next_link = (first.get("links") or {}).get("next")
        pages = 1
        while next_link or (isinstance(total, int) and len(rows) + start < total):
            if pages >= MAX_MODEL_PAGES:
                raise OpenRouterResponseError(
                    f"the catalog did not end after {MAX_MODEL_PAGES} pages of up to {_MODELS_PAGE_SIZE} "
                    f"models ({len(rows)} models so far)",
                    conn_id=self.openrouter_conn_id,
                    request=request,
                    billed=False,
                    hint="Check the Base URL of the connection: OpenRouter's catalog is far smaller. Pass "
                    "limit= and offset= to read it one page at a time.",
                )
            page = self.transport.get(
                "/models", {**params, "offset": start + len(rows), "limit": _MODELS_PAGE_SIZE}
            )
            pages += 1
            fresh = [
                row
                for row in page.get("data") or ()
                if not isinstance(row, Mapping) or row.get("id") not in seen
            ]
            if not fresh:
                break
            rows.extend(fresh)
            seen.update(row.get("id") for row in fresh if isinstance(row, Mapping))
            next_link = (page.get("links") or {}).get("next")
        merged = {**first, "data": rows, "links": {**(first.get("links") or {}), "next": None}}
        return self._result(ModelList, merged, request)

    def get_key(self) -> KeyInfo:
        """Limits and usage of the connection's API key (``GET /key``; any key may call it)."""
        return self._result(KeyInfo, self._data(self.transport.get("/key"), "GET /key"), "GET /key")

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection with ``GET /key`` (not billable). The message never contains the key."""
        try:
            key = self.get_key()
        except OpenRouterError as err:
            return False, str(err)
        except Exception as err:  # the UI shows the message; keep it one scrubbed line
            secrets = (self._settings.api_key,) if self._settings is not None else ()
            return False, " ".join(scrub(f"{type(err).__name__}: {err}", secrets).split())[:300]
        limit = f"limit {plain_decimal(key.limit)} USD" if key.limit is not None else "no spending limit"
        used = plain_decimal(key.usage) if key.usage is not None else "0"
        return True, (
            f"Connected to {self.settings.base_url} with connection '{self.openrouter_conn_id}': the API key "
            f"works ({limit}, {used} USD used)."
        )

    # --- helpers -----------------------------------------------------------------------------------------

    def _data(self, payload: Mapping[str, Any], request: str) -> Any:
        """The ``data`` member of an OpenRouter envelope."""
        data = payload.get("data")
        if not isinstance(data, Mapping):
            raise OpenRouterResponseError(
                f"the answer has no 'data' object (keys: {', '.join(sorted(payload)) or 'none'})",
                conn_id=self.openrouter_conn_id,
                request=request,
                billed=False,
            )
        return data

    def _result(
        self, cls: type[ResultT], data: Mapping[str, Any], request: str, *, billed: bool | None = False
    ) -> ResultT:
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            location = ".".join(str(part) for part in first.get("loc", ())) or "body"
            generation_id = data.get("id") if isinstance(data.get("id"), str) else None
            raise OpenRouterResponseError(
                f"the answer does not fit {cls.__name__}: {location}: {first.get('msg')}",
                conn_id=self.openrouter_conn_id,
                request=request,
                generation_id=generation_id,
                billed=billed,
            ) from None
