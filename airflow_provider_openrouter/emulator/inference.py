"""Completion requests: parsed and routed to a model and provider endpoint of the emulator's catalog.

Shared by ``POST /chat/completions``, the legacy ``POST /completions`` and the Batch API, so a batch row gets
exactly what the same body would get synchronously. The checks are in validation.py, the response bodies in
responses.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple, cast

from airflow_provider_openrouter.emulator.asgi import HTTPError
from airflow_provider_openrouter.emulator.catalog import Catalog, Endpoint, Model
from airflow_provider_openrouter.emulator.config import EmulatorSettings
from airflow_provider_openrouter.emulator.textgen import IMAGE_TOKENS, chosen_tool, prompt_tokens, tokens
from airflow_provider_openrouter.emulator.validation import (
    PARAMETER_NAMES,
    check_messages,
    check_parameters,
    fail,
)

# Variant suffixes: the sort they imply (:online adds web search instead, see parse_chat).
_VARIANT_SORT: dict[str, str | None] = {":nitro": "throughput", ":floor": "price", ":online": None}


def model_chain(
    body: dict[str, Any], settings: EmulatorSettings, catalog: Catalog
) -> list[tuple[str, Model, str | None]]:
    """``model`` then the ``models`` fallbacks, each checked against the catalog: (ID as named, its catalog
    model, the sort its variant suffix implies)."""
    chain: list[str] = []
    model = body.get("model")
    if model is not None:
        if not isinstance(model, str) or not model:
            raise fail("model", "a model ID such as openai/gpt-4o-mini", model)
        chain.append(model)
    models = body.get("models")
    if models is not None:
        if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
            raise fail("models", "an array of model IDs", models)
        chain.extend(m for m in models if m not in chain)
    if not chain:
        chain.append(settings.default_model)
    resolved = []
    for model_id in chain:
        found, variant_sort = _catalog_model(model_id, catalog)
        if found is None:
            raise HTTPError(400, f"{model_id} is not a valid model ID")
        resolved.append((model_id, found, variant_sort))
    return resolved


def _catalog_model(model_id: str, catalog: Catalog) -> tuple[Model | None, str | None]:
    """The catalog model of an ID, with the sort a ``:nitro`` / ``:floor`` variant suffix implies
    (``:online`` implies none)."""
    model = catalog.by_id.get(model_id)
    if model is not None:
        return model, None
    for suffix, sort in _VARIANT_SORT.items():
        if model_id.endswith(suffix):
            return catalog.by_id.get(model_id[: -len(suffix)]), sort
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
    if not provider and variant_sort is None:  # the common case: the model's first endpoint
        return model.endpoints[0] if model.endpoints else None
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

    kind: str  # "chat", "text" or "embeddings"
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
    dimensions: int = 0  # an embeddings request: the vectors' length
    encoding_format: str = "float"  # an embeddings request: float arrays or base64
    # Attribution fields OpenRouter stores with the generation (GET /generation returns only session_id).
    metadata: dict[str, Any] | None = None
    trace: dict[str, Any] | None = None

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


class Routed(NamedTuple):
    model: Model
    endpoint: Endpoint
    model_id: str  # as the request named it
    requested: str  # the first model the request named
    skipped: tuple[tuple[str, str], ...]


def route(
    body: dict[str, Any], settings: EmulatorSettings, catalog: Catalog, *, embeddings: bool = False
) -> Routed:
    """The model and endpoint that serve ``body``: ``model``, then its ``models`` fallbacks, each of the kind
    the route serves (an embeddings model only at ``POST /embeddings``, and only there)."""
    chain = model_chain(body, settings, catalog)
    for model_id, model, _ in chain:
        if model.is_embeddings != embeddings:
            raise HTTPError(
                400,
                f"{model_id} is an embeddings model: send it to POST /embeddings"
                if model.is_embeddings
                else f"{model_id} is not an embeddings model; GET /embeddings/models lists those that are",
            )
    provider = body.get("provider")
    # Only provider.require_parameters reads them.
    requested = (
        {name for name in PARAMETER_NAMES.intersection(body) if body[name] is not None} if provider else set()
    )
    filtered: list[str] = []
    skipped: list[tuple[str, str]] = []
    down = settings.down_model
    for model_id, model, variant_sort in chain:
        if down and (model.id in down or model_id in down):
            skipped.append((model.id, model.endpoints[0].provider.name))
            continue
        endpoint = pick_endpoint(model, provider, variant_sort, requested)
        if endpoint is None:
            filtered.append(model_id)
            continue
        return Routed(model, endpoint, model_id, chain[0][0], tuple(skipped))
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
        f"No available provider for {', '.join(named for named, _, _ in chain)}: the model is unavailable",
        {"error_type": "provider_unavailable"},
    )


def routed_fields(body: dict[str, Any], routed: Routed) -> dict[str, Any]:
    """The Inference fields every kind of request fills alike: where it was routed, and its attribution."""
    return {
        "model": routed.model,
        "endpoint": routed.endpoint,
        "requested": routed.requested,
        "skipped": routed.skipped,
        "user": body.get("user"),
        "session_id": body.get("session_id"),
        "metadata": body.get("metadata"),
        "trace": body.get("trace"),
    }


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


def parse_chat(body: dict[str, Any], settings: EmulatorSettings, catalog: Catalog) -> Inference:
    messages = body.get("messages")
    if messages is None and isinstance(body.get("prompt"), str):
        messages = [{"role": "user", "content": body["prompt"]}]  # older docs let chat take a prompt
    texts = check_messages(messages)
    check_parameters(body)
    routed = route(body, settings, catalog)
    model = routed.model
    tools = body.get("tools") if "tools" in model.supported_parameters else None
    response_format = body.get("response_format")
    count = prompt_tokens(cast(list[dict[str, Any]], messages), tools, response_format)
    max_tokens = _max_tokens(body, model)
    _check_context(model, count, max_tokens)
    return Inference(
        kind="chat",
        inputs=[messages],
        texts=texts,
        stream=bool(body.get("stream")),
        max_tokens=max_tokens,
        stop=body.get("stop"),
        seed=body.get("seed"),
        response_format=response_format,
        tool=chosen_tool(tools, body.get("tool_choice")),
        prompt_tokens=count,
        **routed_fields(body, routed),
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
        raise fail("plugins", 'an array of plugin objects such as {"id": "web"}', plugins)
    return any(p["id"] == "web" and p.get("enabled") is not False for p in plugins)


def _modalities(modalities: Any) -> list[str]:
    if modalities is None:
        return []
    if not isinstance(modalities, list) or not all(isinstance(m, str) for m in modalities):
        raise fail("modalities", 'an array of output modalities such as ["image", "text"]', modalities)
    return modalities


def parse_text(body: dict[str, Any], settings: EmulatorSettings, catalog: Catalog) -> Inference:
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise HTTPError(400, 'Input required: specify "prompt" (a string or an array of strings)')
    check_parameters({k: v for k, v in body.items() if k != "logprobs"})  # legacy logprobs is an integer
    routed = route(body, settings, catalog)
    model = routed.model
    count = sum(7 + tokens(p) for p in prompts)
    max_tokens = _max_tokens(body, model)
    _check_context(model, count, max_tokens)
    return Inference(
        kind="text",
        inputs=list(prompts),
        texts=list(prompts),
        stream=bool(body.get("stream")),
        max_tokens=max_tokens,
        stop=body.get("stop"),
        seed=body.get("seed"),
        response_format=body.get("response_format"),
        tool=None,
        prompt_tokens=count,
        **routed_fields(body, routed),
    )
