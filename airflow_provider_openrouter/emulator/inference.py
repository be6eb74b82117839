"""Completion requests: validation as OpenRouter does it, model and provider routing, and the response bodies.

Shared by ``POST /chat/completions``, the legacy ``POST /completions`` and the Batch API, so a batch row gets
exactly what the same body would get synchronously.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple, cast

from airflow_provider_openrouter.emulator.asgi import HTTPError
from airflow_provider_openrouter.emulator.catalog import MODELS_BY_ID, Endpoint, Model
from airflow_provider_openrouter.emulator.config import EmulatorSettings
from airflow_provider_openrouter.emulator.extras import (
    IMAGE_TOKENS,
    decorate,
    logprobs_json,
    message_extras,
)
from airflow_provider_openrouter.emulator.textgen import (
    Answer,
    SchemaError,
    answer,
    answer_digest,
    chosen_tool,
    message_text,
    native_finish_reason,
    prompt_tokens,
    tokens,
)

ROLES = ("system", "developer", "user", "assistant", "tool")
# Variant suffixes: the sort they imply (:online adds web search instead, see parse_chat).
_VARIANT_SORT: dict[str, str | None] = {":nitro": "throughput", ":floor": "price", ":online": None}
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
_PARAMETER_NAMES = frozenset(
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


def _fail(field: str, expected: str, value: Any) -> HTTPError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return HTTPError(400, f"{field}: expected {expected}, got {shown}")


def _check_parameters(body: dict[str, Any]) -> None:
    for name, value in body.items():
        if value is None:
            continue
        if name in _RANGES:
            low, high = _RANGES[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise _fail(name, f"a number from {low} to {high}", value)
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
                raise _fail(name, bound, value)
        elif name in _BOOLEANS:
            if not isinstance(value, bool):
                raise _fail(name, "true or false", value)
        elif name in _OBJECTS and not isinstance(value, dict):
            raise _fail(name, "an object", value)
        elif name in _STRINGS and not isinstance(value, str):
            raise _fail(name, "a string", value)
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str)
        or (isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop))
    ):
        raise _fail("stop", "a string or an array of at most 4 strings", stop)
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
        raise _fail("provider", "an object of provider preferences", provider)
    for key in _PROVIDER_LISTS:
        value = provider.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise _fail(f"provider.{key}", "an array of provider names", value)
    sort = provider.get("sort")
    if sort is not None and not (
        isinstance(sort, str) or (isinstance(sort, dict) and isinstance(sort.get("by", ""), str))
    ):
        raise _fail("provider.sort", 'price, throughput, latency or {"by": ...}', sort)
    max_price = provider.get("max_price")
    if max_price is None:
        return
    if not isinstance(max_price, dict):
        raise _fail("provider.max_price", "an object of prices in USD per million tokens", max_price)
    for key, value in max_price.items():
        try:
            price = Decimal(str(value)) if not isinstance(value, bool) else Decimal("NaN")
        except ArithmeticError:
            price = Decimal("NaN")
        if not price.is_finite() or price < 0:
            raise _fail(f"provider.max_price.{key}", "a price >= 0 in USD per million tokens", value)


def _check_response_format(response_format: Any) -> None:
    if response_format is None:
        return
    if not isinstance(response_format, dict) or response_format.get("type") not in _RESPONSE_FORMATS:
        raise _fail(
            "response_format",
            f"an object whose type is one of {', '.join(_RESPONSE_FORMATS)}",
            response_format,
        )
    if response_format["type"] == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
            raise _fail("response_format.json_schema", "an object with a name and a schema", spec)
        if spec.get("schema") is not None and not isinstance(spec["schema"], dict):
            raise _fail("response_format.json_schema.schema", "a JSON Schema object", spec["schema"])


def _check_tools(tools: Any, tool_choice: Any) -> None:
    if tools is not None:
        if not isinstance(tools, list):
            raise _fail("tools", "an array of tools", tools)
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
                raise _fail(f"tools[{index}]", 'an object with a "type"', tool)
            if tool["type"] == "function":
                function = tool.get("function")
                if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                    raise _fail(f"tools[{index}].function", "an object with a name", function)
                if function.get("parameters") is not None and not isinstance(function["parameters"], dict):
                    raise _fail(
                        f"tools[{index}].function.parameters", "a JSON Schema object", function["parameters"]
                    )
    if tool_choice is None:
        return
    if isinstance(tool_choice, str):
        if tool_choice not in _TOOL_CHOICES:
            raise _fail("tool_choice", f"one of {', '.join(_TOOL_CHOICES)} or an object", tool_choice)
        return
    if not isinstance(tool_choice, dict) or not isinstance(tool_choice.get("type"), str):
        raise _fail("tool_choice", f"one of {', '.join(_TOOL_CHOICES)} or an object", tool_choice)
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
        raise _fail(field, "a string or an array of content parts", content)
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _fail(field, "a string or an array of content parts", content)
    for index, part in enumerate(content):
        where = f"{field}[{index}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _fail(where, 'a content part object with a "type"', part)
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise _fail(f"{where}.text", "a string", part.get("text"))
        image = part.get("image_url")
        if part["type"] == "image_url" and not (
            isinstance(image, dict) and isinstance(image.get("url"), str)
        ):
            raise _fail(f"{where}.image_url", "an object with a url", image)


def check_messages(messages: Any) -> list[str]:
    """Validate ``messages``; returns the text of every message (for directives, moderation and tokens)."""
    if messages is None:
        raise HTTPError(
            400, 'Input required: specify "messages" (a non-empty array of {role, content} objects)'
        )
    if not isinstance(messages, list) or not messages:
        raise _fail("messages", "a non-empty array of {role, content} objects", messages)
    texts = []
    for index, message in enumerate(messages):
        field = f"messages[{index}]"
        if not isinstance(message, dict):
            raise _fail(field, "an object with role and content", message)
        role = message.get("role")
        if role not in ROLES:
            raise HTTPError(
                400, f"{field}.role: {role!r} is not a valid role; expected one of {', '.join(ROLES)}"
            )
        _check_content(f"{field}.content", message.get("content"), optional=role == "assistant")
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise _fail(
                f"{field}.tool_call_id",
                "the id of the tool call this message answers",
                message.get("tool_call_id"),
            )
        calls = message.get("tool_calls")
        if calls is not None and (
            not isinstance(calls, list)
            or not all(isinstance(c, dict) and isinstance(c.get("function"), dict) for c in calls)
        ):
            raise _fail(f"{field}.tool_calls", "an array of {id, type, function: {name, arguments}}", calls)
        if message.get("name") is not None and not isinstance(message["name"], str):
            raise _fail(f"{field}.name", "a string", message["name"])
        texts.append(message_text(message))
    return texts


def model_chain(body: dict[str, Any], settings: EmulatorSettings) -> list[str]:
    """``model`` then the ``models`` fallbacks, each checked against the catalog."""
    chain: list[str] = []
    model = body.get("model")
    if model is not None:
        if not isinstance(model, str) or not model:
            raise _fail("model", "a model ID such as openai/gpt-4o-mini", model)
        chain.append(model)
    models = body.get("models")
    if models is not None:
        if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
            raise _fail("models", "an array of model IDs", models)
        chain.extend(m for m in models if m not in chain)
    if not chain:
        chain.append(settings.default_model)
    for model_id in chain:
        if _catalog_model(model_id)[0] is None:
            raise HTTPError(400, f"{model_id} is not a valid model ID")
    return chain


def _catalog_model(model_id: str) -> tuple[Model | None, str | None]:
    """The catalog model of an ID, with the sort a ``:nitro`` / ``:floor`` variant suffix implies
    (``:online`` implies none)."""
    model = MODELS_BY_ID.get(model_id)
    if model is not None:
        return model, None
    for suffix, sort in _VARIANT_SORT.items():
        if model_id.endswith(suffix):
            return MODELS_BY_ID.get(model_id[: -len(suffix)]), sort
    return None, None


def _sort_key(sort: str) -> Any:
    if sort == "throughput":
        return lambda e: -e.throughput_p50
    if sort == "latency":
        return lambda e: e.latency_p50_ms
    return lambda e: e.prompt + e.completion


def pick_endpoint(
    model: Model, provider: dict[str, Any] | None, variant_sort: str | None, requested: set[str]
) -> Endpoint | None:
    """The endpoint that serves ``model`` under the request's provider preferences, or None if none may."""
    prefs = provider or {}
    endpoints = list(model.endpoints)
    only = prefs.get("only")
    if only:
        endpoints = [e for e in endpoints if any(e.matches(str(name)) for name in only)]
    ignore = prefs.get("ignore")
    if ignore:
        endpoints = [e for e in endpoints if not any(e.matches(str(name)) for name in ignore)]
    quantizations = prefs.get("quantizations")
    if quantizations:
        endpoints = [e for e in endpoints if (e.quantization or "unknown") in quantizations]
    max_price = prefs.get("max_price")
    if isinstance(max_price, dict):
        per_million = Decimal(1_000_000)
        for key, attr in (("prompt", "prompt"), ("completion", "completion")):
            if max_price.get(key) is not None:
                limit = Decimal(str(max_price[key]))
                endpoints = [e for e in endpoints if getattr(e, attr) * per_million <= limit]
    if prefs.get("require_parameters") and not requested <= set(model.supported_parameters):
        return None
    sort = prefs.get("sort") or variant_sort
    if isinstance(sort, dict):
        sort = sort.get("by")
    if sort:
        endpoints.sort(key=_sort_key(str(sort)))
    order = prefs.get("order")
    allow_fallbacks = prefs.get("allow_fallbacks") is not False
    if order:
        ordered = [e for name in order for e in endpoints if e.matches(str(name))]
        ordered = list(dict.fromkeys(ordered))
        endpoints = ordered + [e for e in endpoints if e not in ordered] if allow_fallbacks else ordered
    return endpoints[0] if endpoints else None


@dataclass(slots=True)
class Inference:
    """A validated completion request, routed to one model and endpoint."""

    kind: str  # "chat" or "text"
    model: Model
    endpoint: Endpoint
    inputs: list[Any]  # chat: [messages]; text: one entry per prompt
    texts: list[str]
    stream: bool
    max_tokens: int | None
    stop: Any
    seed: Any
    response_format: Any
    tool: dict[str, Any] | None
    prompt_tokens: int
    user: str | None
    session_id: str | None
    requested: str = ""  # the model ID as the request named it (variant suffix included)
    skipped: tuple[tuple[str, str], ...] = ()  # (model, provider) of unavailable models passed over
    # The optional parts of a chat answer the request asks for (see extras.py).
    reasoning: bool = False
    web: bool = False
    top_logprobs: int | None = None  # None: no logprobs
    images: bool = False
    refuse: bool = False  # set from the [[emulator: refuse]] directive
    invalid_json: bool = False  # set from the [[emulator: invalid-json]] directive
    # Attribution fields OpenRouter stores with the generation (GET /generation returns only session_id).
    metadata: dict[str, Any] | None = None
    trace: dict[str, Any] | None = None

    def answers(self, emulator_seed: int) -> list[Answer]:
        extras = self.reasoning or self.web or self.images or self.refuse or self.top_logprobs is not None
        found = []
        for given in self.inputs:
            try:
                made = answer(
                    model_id=self.model.id,
                    messages=given,
                    request_seed=self.seed,
                    emulator_seed=emulator_seed,
                    response_format=self.response_format,
                    tool=self.tool,
                    stop=self.stop,
                    max_tokens=self.max_tokens,
                    break_schema=self.invalid_json,
                )
            except SchemaError as exc:
                raise HTTPError(400, str(exc)) from None
            if extras:
                decorate(made, self, answer_digest(self.model.id, given, self.seed, emulator_seed))
            found.append(made)
        return found

    def cost(self, completion_tokens: int) -> tuple[Decimal, Decimal]:
        """(prompt cost, completion cost) in USD at the chosen endpoint's prices."""
        return self.prompt_tokens * self.endpoint.prompt, completion_tokens * self.endpoint.completion

    def max_cost(self) -> Decimal:
        """The most this request can cost: the pre-flight credit check uses it, as OpenRouter does."""
        images = IMAGE_TOKENS if self.images else 0
        prompt_cost, completion_cost = self.cost(
            (self.max_tokens or self.model.max_completion_tokens) + images
        )
        return prompt_cost + completion_cost


class _Routed(NamedTuple):
    model: Model
    endpoint: Endpoint
    model_id: str  # as the request named it
    requested: str  # the first model the request named
    skipped: tuple[tuple[str, str], ...]


def _route(body: dict[str, Any], settings: EmulatorSettings) -> _Routed:
    chain = model_chain(body, settings)
    provider = body.get("provider")
    requested = {name for name in _PARAMETER_NAMES.intersection(body) if body[name] is not None}
    filtered: list[str] = []
    skipped: list[tuple[str, str]] = []
    for model_id in chain:
        model, variant_sort = _catalog_model(model_id)
        if model is None or model.id in settings.down_model or model_id in settings.down_model:
            if model is not None:
                skipped.append((model.id, model.endpoints[0].provider.name))
            continue
        endpoint = pick_endpoint(model, provider, variant_sort, requested)
        if endpoint is None:
            filtered.append(model_id)
            continue
        return _Routed(model, endpoint, model_id, chain[0], tuple(skipped))
    if filtered:
        raise HTTPError(
            404,
            f"No endpoints found for {', '.join(filtered)} that match your provider preferences "
            "(provider.only / ignore / order / allow_fallbacks / quantizations / max_price / "
            "require_parameters).",
            {"error_type": "not_found"},
        )
    raise HTTPError(
        503,
        f"No available provider for {', '.join(chain)}: the model is unavailable",
        {"error_type": "provider_unavailable"},
    )


def _max_tokens(body: dict[str, Any], model: Model) -> int | None:
    wanted = body.get("max_completion_tokens")
    if wanted is None:
        wanted = body.get("max_tokens")
    return None if wanted is None else min(int(wanted), model.max_completion_tokens)


def _check_context(model: Model, prompt: int, max_tokens: int | None) -> None:
    if prompt + (max_tokens or 0) > model.context_length:
        raise HTTPError(
            400,
            f"This endpoint's maximum context length is {model.context_length} tokens. However, you "
            f"requested about {prompt + (max_tokens or 0)} tokens ({prompt} of text input, "
            f"{max_tokens or 0} in the output). "
            "Please reduce the length of either one.",
            {"error_type": "context_length_exceeded"},
        )


def parse_chat(body: dict[str, Any], settings: EmulatorSettings) -> Inference:
    messages = body.get("messages")
    if messages is None and isinstance(body.get("prompt"), str):
        messages = [{"role": "user", "content": body["prompt"]}]  # older docs let chat take a prompt
    texts = check_messages(messages)
    _check_parameters(body)
    routed = _route(body, settings)
    model, endpoint = routed.model, routed.endpoint
    tools = body.get("tools") if "tools" in model.supported_parameters else None
    response_format = body.get("response_format")
    count = prompt_tokens(cast(list[dict[str, Any]], messages), tools, response_format)
    max_tokens = _max_tokens(body, model)
    _check_context(model, count, max_tokens)
    return Inference(
        kind="chat",
        model=model,
        endpoint=endpoint,
        inputs=[messages],
        texts=texts,
        stream=bool(body.get("stream")),
        max_tokens=max_tokens,
        stop=body.get("stop"),
        seed=body.get("seed"),
        response_format=response_format,
        tool=chosen_tool(tools, body.get("tool_choice")),
        prompt_tokens=count,
        user=body.get("user"),
        session_id=body.get("session_id"),
        metadata=body.get("metadata"),
        trace=body.get("trace"),
        requested=routed.requested,
        skipped=routed.skipped,
        reasoning=model.reasoning and _wants_reasoning(body),
        web=routed.model_id.endswith(":online") or ("plugins" in body and _wants_web(body["plugins"])),
        top_logprobs=(
            (body.get("top_logprobs") or 0)
            if body.get("logprobs") is True and "logprobs" in model.supported_parameters
            else None
        ),
        images="image" in model.output_modalities and "image" in _modalities(body.get("modalities")),
    )


def _wants_reasoning(body: dict[str, Any]) -> bool:
    """``reasoning`` (unless disabled, excluded or at effort none), ``reasoning_effort`` or
    ``include_reasoning: true``."""
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict):
        return not (
            reasoning.get("enabled") is False
            or reasoning.get("exclude") is True
            or reasoning.get("effort") == "none"
        )
    effort = body.get("reasoning_effort")
    return body.get("include_reasoning") is True or (effort is not None and effort != "none")


def _wants_web(plugins: Any) -> bool:
    if plugins is None:
        return False
    if not isinstance(plugins, list) or not all(
        isinstance(p, dict) and isinstance(p.get("id"), str) for p in plugins
    ):
        raise _fail("plugins", 'an array of plugin objects such as {"id": "web"}', plugins)
    return any(p["id"] == "web" and p.get("enabled") is not False for p in plugins)


def _modalities(modalities: Any) -> list[str]:
    if modalities is None:
        return []
    if not isinstance(modalities, list) or not all(isinstance(m, str) for m in modalities):
        raise _fail("modalities", 'an array of output modalities such as ["image", "text"]', modalities)
    return modalities


def parse_text(body: dict[str, Any], settings: EmulatorSettings) -> Inference:
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise HTTPError(400, 'Input required: specify "prompt" (a string or an array of strings)')
    _check_parameters({k: v for k, v in body.items() if k != "logprobs"})  # legacy logprobs is an integer
    routed = _route(body, settings)
    model, endpoint = routed.model, routed.endpoint
    count = sum(7 + tokens(p) for p in prompts)
    max_tokens = _max_tokens(body, model)
    _check_context(model, count, max_tokens)
    return Inference(
        kind="text",
        model=model,
        endpoint=endpoint,
        inputs=list(prompts),
        texts=list(prompts),
        stream=bool(body.get("stream")),
        max_tokens=max_tokens,
        stop=body.get("stop"),
        seed=body.get("seed"),
        response_format=body.get("response_format"),
        tool=None,
        prompt_tokens=count,
        user=body.get("user"),
        session_id=body.get("session_id"),
        metadata=body.get("metadata"),
        trace=body.get("trace"),
        requested=routed.requested,
        skipped=routed.skipped,
    )


def usage_json(inference: Inference, answers: list[Answer], *, billed: bool = True) -> dict[str, Any]:
    """``usage`` of these answers; all zero cost when the answer is not billed."""
    completion_tokens = reasoning = images = 0
    for given in answers:
        completion_tokens += given.completion_tokens
        reasoning += given.reasoning_tokens
        images += given.image_tokens
    prompt_cost, completion_cost = inference.cost(completion_tokens)
    if not billed:
        prompt_cost = completion_cost = Decimal(0)
    completion_details = {"reasoning_tokens": reasoning, "audio_tokens": 0}
    if images:
        completion_details["image_tokens"] = images
    return {
        "prompt_tokens": inference.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": inference.prompt_tokens + completion_tokens,
        "cost": float(prompt_cost + completion_cost),
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": completion_details,
        "cost_details": {
            "upstream_inference_cost": None,
            "upstream_inference_prompt_cost": float(prompt_cost),
            "upstream_inference_completions_cost": float(completion_cost),
        },
    }


def _message(given: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": given.content,
        "refusal": given.refusal,
        "reasoning": given.reasoning,
    }
    if given.tool_calls is not None:
        message["tool_calls"] = given.tool_calls
    if given.reasoning_details is not None or given.annotations is not None or given.images is not None:
        message.update(message_extras(given))
    return message


def chat_choice(inference: Inference, given: Answer, index: int = 0) -> dict[str, Any]:
    return {
        "index": index,
        "logprobs": None if given.logprobs is None else logprobs_json(given),
        "finish_reason": given.finish_reason,
        "native_finish_reason": native_finish_reason(inference.model.id, given.finish_reason),
        "message": _message(given),
    }


def text_choice(inference: Inference, given: Answer, index: int = 0) -> dict[str, Any]:
    return {
        "text": given.content or "",
        "index": index,
        "logprobs": None,
        "finish_reason": given.finish_reason,
        "native_finish_reason": native_finish_reason(inference.model.id, given.finish_reason),
        "reasoning": None,
    }


def result_body(
    inference: Inference,
    gen_id: str,
    created: int,
    choices: list[dict[str, Any]],
    usage: dict[str, Any],
) -> dict[str, Any]:
    return {
        "id": gen_id,
        "object": "chat.completion" if inference.kind == "chat" else "text_completion",
        "created": created,
        "model": inference.model.id,
        "provider": inference.endpoint.provider.name,
        "system_fingerprint": None,
        "service_tier": None,
        "choices": choices,
        "usage": usage,
    }


def chunk_body(
    inference: Inference, gen_id: str, created: int, choices: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": gen_id,
        "object": "chat.completion.chunk" if inference.kind == "chat" else "text_completion",
        "created": created,
        "model": inference.model.id,
        "provider": inference.endpoint.provider.name,
        "choices": choices,
    }
