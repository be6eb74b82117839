"""The most a request body can cost, from the model catalog: what a budget reserves before sending it.

* Prompt: one token per UTF-8 byte of the prompt-bearing fields (``messages``, ``prompt``, ``input``,
  ``tools``, ``response_format``, as compact JSON), plus :data:`MESSAGE_OVERHEAD_TOKENS` per message for the
  chat template, plus :data:`MEDIA_TOKENS` per image, audio, video or file part. Every tokenizer the models
  use emits at least one byte per token (byte-level BPE and SentencePiece with byte fallback), so the byte
  count bounds the token count; real prompts use about a quarter of it.
* Completion: ``max_completion_tokens`` or ``max_tokens`` (at most the model's maximum output), else the
  model's maximum output (``top_provider.max_completion_tokens``), else its context length. Reasoning tokens
  are output tokens and come out of the same cap.
* Prices: the highest of the model's endpoints (``GET /models/{id}/endpoints``; routing may choose any of
  them), else the catalog's list price (``GET /models``), for every model the request may fall back to
  (``models``); plus the per-request price, per-image price for each media part, and the web search price for
  a web plugin (``max_results``, default 5).

A model whose price is variable (``openrouter/auto``: ``"-1"``) or that the catalog does not list cannot be
bounded: the request is refused before it is sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from airflow_provider_openrouter.exceptions import OpenRouterError, OpenRouterRequestError

MESSAGE_OVERHEAD_TOKENS = 16
REQUEST_OVERHEAD_TOKENS = 16
MEDIA_TOKENS = 4096
WEB_RESULTS_DEFAULT = 5
_PROMPT_FIELDS = ("messages", "prompt", "input", "tools", "response_format")
_MEDIA_TYPES = frozenset({"image_url", "input_audio", "input_video", "video_url", "file", "image", "audio"})


@dataclass(frozen=True)
class Price:
    """A model's worst-case prices (USD per token, per request, per image, per web search) and limits."""

    prompt: Decimal
    completion: Decimal
    request: Decimal
    image: Decimal
    web_search: Decimal
    max_completion_tokens: int | None


def _price(value: Decimal | None) -> Decimal:
    return value if value is not None else Decimal(0)


class Catalog:
    """Model prices read from a hook once per ledger (``list_models``, then each model's endpoints)."""

    def __init__(self, hook: Any) -> None:
        self.hook = hook
        self._models: dict[str, Any] | None = None
        self._embedding_models: dict[str, Any] | None = None
        self._prices: dict[str, Price] = {}
        self._lock = threading.Lock()

    def price(self, model_id: str) -> Price:
        with self._lock:
            found = self._prices.get(model_id)
            if found is None:
                found = self._prices[model_id] = self._load(model_id)
            return found

    def _catalog(self) -> dict[str, Any]:
        if self._models is None:
            self._models = {model.id: model for model in self.hook.list_models().data}
        return self._models

    def _embedding_catalog(self) -> dict[str, Any]:
        """GET /models leaves embedding models out; they have a list of their own, read on first need."""
        if self._embedding_models is None:
            listing = getattr(self.hook, "list_embedding_models", None)
            self._embedding_models = {model.id: model for model in listing().data} if listing else {}
        return self._embedding_models

    def _load(self, model_id: str) -> Price:
        models = self._catalog()
        model = models.get(model_id) or models.get(model_id.partition(":")[0])
        if model is None:
            model = self._embedding_catalog().get(model_id)
        if model is None or model.pricing is None:
            raise _unbounded(model_id, "the catalog (GET /models) does not list it")
        pricings = [model.pricing]
        limits = [model.top_provider.max_completion_tokens if model.top_provider else None]
        try:
            endpoints = self.hook.list_model_endpoints(model.author, model.id.partition("/")[2]).endpoints
        except OpenRouterError:
            endpoints = []  # the list price stands in for the endpoints (the catalog's is the usual route)
        pricings += [endpoint.pricing for endpoint in endpoints if endpoint.pricing is not None]
        limits += [endpoint.max_completion_tokens for endpoint in endpoints]
        if any(pricing.is_variable for pricing in pricings):
            raise _unbounded(model_id, "its price is variable (a router); name the model it should use")
        known = [limit for limit in limits if limit]
        return Price(
            prompt=max(_price(pricing.prompt) for pricing in pricings),
            completion=max(_price(pricing.completion) for pricing in pricings),
            request=max(_price(pricing.request) for pricing in pricings),
            image=max(_price(pricing.image) for pricing in pricings),
            web_search=max(_price(pricing.web_search) for pricing in pricings),
            max_completion_tokens=max(known) if known else model.context_length,
        )


def _unbounded(model_id: str, why: str) -> OpenRouterRequestError:
    return OpenRouterRequestError(
        f"a budget cannot bound the cost of model {model_id!r}: {why}",
        hint="Use a model from GET /models with fixed prices, or run without budget=; nothing was sent.",
    )


def _media_parts(value: Any) -> int:
    if isinstance(value, Mapping):
        own = 1 if value.get("type") in _MEDIA_TYPES else 0
        return own + sum(_media_parts(item) for item in value.values())
    if isinstance(value, list):
        return sum(_media_parts(item) for item in value)
    return 0


def prompt_token_bound(body: Mapping[str, Any]) -> tuple[int, int]:
    """``(tokens, media parts)``: an upper bound of the prompt's tokens, and its non-text parts."""
    tokens = REQUEST_OVERHEAD_TOKENS
    media = 0
    for field in _PROMPT_FIELDS:
        value = body.get(field)
        if value is None:
            continue
        tokens += len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        media += _media_parts(value)
    messages = body.get("messages")
    if isinstance(messages, list):
        tokens += MESSAGE_OVERHEAD_TOKENS * len(messages)
    return tokens + MEDIA_TOKENS * media, media


def _completion_cap(body: Mapping[str, Any], price: Price, model_id: str) -> int:
    wanted = body.get("max_completion_tokens")
    if wanted is None:
        wanted = body.get("max_tokens")
    if wanted is not None:
        wanted = int(wanted)
        return min(wanted, price.max_completion_tokens) if price.max_completion_tokens else wanted
    if price.max_completion_tokens is None:
        raise _unbounded(
            model_id, "the catalog gives neither its maximum output nor its context length; pass max_tokens"
        )
    return price.max_completion_tokens


def _web_searches(body: Mapping[str, Any], model_id: str) -> int:
    plugins = body.get("plugins")
    for plugin in plugins if isinstance(plugins, list) else ():
        if isinstance(plugin, Mapping) and plugin.get("id") == "web":
            return int(plugin.get("max_results") or WEB_RESULTS_DEFAULT)
    return WEB_RESULTS_DEFAULT if model_id.endswith(":online") or body.get("web_search_options") else 0


def worst_case_cost(body: Mapping[str, Any], catalog: Catalog) -> tuple[Decimal, str | None]:
    """``(USD, model)``: the most ``body`` can cost, over every model it may be served by."""
    candidates = [body.get("model"), *(body.get("models") or ())]
    model_ids = list(dict.fromkeys(str(model) for model in candidates if model))
    if not model_ids:
        raise OpenRouterRequestError(
            "a budget needs the request's model to price it, and the body names none",
            hint="Set model= (or the connection's default model); nothing was sent.",
        )
    prompt_tokens, media = prompt_token_bound(body)
    worst = Decimal(0)
    for model_id in model_ids:
        price = catalog.price(model_id)
        cost = (
            prompt_tokens * price.prompt
            + _completion_cap(body, price, model_id) * price.completion
            + price.request
            + media * price.image
            + _web_searches(body, model_id) * price.web_search
        )
        worst = max(worst, cost)
    return worst, model_ids[0]
