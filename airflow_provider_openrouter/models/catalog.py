"""The model catalog (``GET /models``) and a model's provider endpoints
(``GET /models/{author}/{slug}/endpoints``)."""

# No ``from __future__ import annotations`` here: real annotation objects spare pydantic from compiling and
# evaluating annotation strings at import, which DAG files pay for at parse time.
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from airflow_provider_openrouter.models._money import Money, Number, OpenRouterModel


class ModelPricing(OpenRouterModel):
    """Prices in USD per token (``request``: per request, ``image``: per image). ``None``: not offered."""

    prompt: Money | None = None
    completion: Money | None = None
    request: Money | None = None
    image: Money | None = None
    image_token: Money | None = None
    image_output: Money | None = None
    audio: Money | None = None
    audio_output: Money | None = None
    input_audio_cache: Money | None = None
    web_search: Money | None = None
    internal_reasoning: Money | None = None
    input_cache_read: Money | None = None
    input_cache_write: Money | None = None
    input_cache_write_1h: Money | None = None
    discount: Number | None = None
    overrides: list[dict[str, Any]] | None = None

    @property
    def is_variable(self) -> bool:
        """Whether a listed price is negative. OpenRouter lists routers such as ``openrouter/auto`` at
        ``"-1"``: what they cost depends on the model they route to, so the list price means nothing."""
        return any(price is not None and price < 0 for price in (self.prompt, self.completion, self.request))

    def cost_for(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        """The list-price cost of one request with these token counts (per-request fee included)."""
        return (
            (self.prompt or Decimal(0)) * prompt_tokens
            + (self.completion or Decimal(0)) * completion_tokens
            + (self.request or Decimal(0))
        )


class ModelArchitecture(OpenRouterModel):
    modality: str | None = None
    input_modalities: list[str] | None = None
    output_modalities: list[str] | None = None
    tokenizer: str | None = None
    instruct_type: str | None = None


class TopProvider(OpenRouterModel):
    context_length: int | None = None
    max_completion_tokens: int | None = None
    is_moderated: bool | None = None


class Model(OpenRouterModel):
    """One catalog entry of ``GET /models``. ``id`` is ``author/slug``."""

    id: str
    canonical_slug: str | None = None
    name: str | None = None
    created: Number | None = None
    description: str | None = None
    context_length: int | None = None
    architecture: ModelArchitecture | None = None
    pricing: ModelPricing | None = None
    top_provider: TopProvider | None = None
    per_request_limits: dict[str, Any] | None = None
    supported_parameters: list[str] | None = None
    default_parameters: dict[str, Any] | None = None
    supported_voices: list[str] | None = None
    links: dict[str, Any] | None = None
    hugging_face_id: str | None = None
    knowledge_cutoff: str | None = None
    expiration_date: str | None = None
    reasoning: dict[str, Any] | None = None

    @property
    def author(self) -> str:
        return self.id.partition("/")[0]

    @property
    def slug(self) -> str:
        return self.id.partition("/")[2]

    @property
    def prompt_price(self) -> Decimal | None:
        """USD per prompt token."""
        return self.pricing.prompt if self.pricing is not None else None

    @property
    def completion_price(self) -> Decimal | None:
        """USD per completion token."""
        return self.pricing.completion if self.pricing is not None else None

    @property
    def is_free(self) -> bool:
        return (self.prompt_price or Decimal(0)) == 0 and (self.completion_price or Decimal(0)) == 0

    def supports(self, *parameters: str) -> bool:
        """Whether every named request parameter (e.g. ``"tools"``) is in ``supported_parameters``."""
        supported = set(self.supported_parameters or ())
        return all(parameter in supported for parameter in parameters)

    def cost_for(self, prompt_tokens: int, completion_tokens: int) -> Decimal | None:
        """List-price cost in USD of a request of this size; ``None`` when the model has no pricing."""
        return self.pricing.cost_for(prompt_tokens, completion_tokens) if self.pricing is not None else None


class ModelList(OpenRouterModel):
    """``GET /models``: ``data`` holds every model fetched (all pages unless a ``limit`` was given)."""

    data: list[Model] = []
    total_count: int | None = None
    links: dict[str, Any] | None = None

    @property
    def ids(self) -> list[str]:
        return [model.id for model in self.data]

    def get(self, model_id: str) -> Model | None:
        """The model with this id, or ``None``."""
        return next((model for model in self.data if model.id == model_id), None)

    def cheapest(
        self,
        *,
        prompt_tokens: int = 1000,
        completion_tokens: int = 1000,
        min_context_length: int | None = None,
        supports: Iterable[str] = (),
        include_free: bool = True,
        input_modality: str | None = "text",
    ) -> Model | None:
        """The priced model that fits and costs least for a request of this size; ``None`` if none fits.

        Ties are broken by model id, so the choice is stable. Models without pricing are skipped, and so are
        routers listed at a negative price (``openrouter/auto``: ``"-1"``, see
        :attr:`ModelPricing.is_variable`), which would otherwise always look cheapest.
        """
        required = tuple(supports)
        candidates = []
        for model in self.data:
            pricing = model.pricing
            if pricing is None or pricing.prompt is None or pricing.completion is None or pricing.is_variable:
                continue
            cost = pricing.cost_for(prompt_tokens, completion_tokens)
            if not include_free and model.is_free:
                continue
            if min_context_length is not None and (model.context_length or 0) < min_context_length:
                continue
            if required and not model.supports(*required):
                continue
            modalities = model.architecture.input_modalities if model.architecture else None
            if input_modality and modalities is not None and input_modality not in modalities:
                continue
            candidates.append((cost, model.id, model))
        return min(candidates, key=lambda item: (item[0], item[1]))[2] if candidates else None


class Endpoint(OpenRouterModel):
    """One provider endpoint serving a model."""

    name: str | None = None
    model_id: str | None = None
    model_name: str | None = None
    context_length: Number | None = None
    pricing: ModelPricing | None = None
    provider_name: str | None = None
    tag: str | None = None
    quantization: str | None = None
    max_completion_tokens: int | None = None
    max_prompt_tokens: int | None = None
    supported_parameters: list[str] | None = None
    status: int | None = None
    uptime_last_5m: Number | None = None
    uptime_last_30m: Number | None = None
    uptime_last_1d: Number | None = None
    latency_last_30m: dict[str, Any] | None = None
    throughput_last_30m: dict[str, Any] | None = None
    supports_implicit_caching: bool | None = None
    supports_diarization: bool | None = None
    supports_tool_choice: dict[str, Any] | None = None
    service_tier: str | None = None
    native_tools: dict[str, Any] | None = None


class ModelEndpoints(OpenRouterModel):
    """``GET /models/{author}/{slug}/endpoints`` (``data``).

    This is the inner ``data`` object: the connector's ``data.endpoints`` is ``result.endpoints``.
    """

    id: str
    name: str | None = None
    created: Number | None = None
    description: str | None = None
    architecture: ModelArchitecture | None = None
    endpoints: list[Endpoint] = []

    def cheapest_endpoint(self, prompt_tokens: int = 1000, completion_tokens: int = 1000) -> Endpoint | None:
        """The endpoint with the lowest list-price cost for a request of this size; endpoints without pricing
        or with a negative (variable) price are skipped."""
        priced = [
            (endpoint.pricing.cost_for(prompt_tokens, completion_tokens), index, endpoint)
            for index, endpoint in enumerate(self.endpoints)
            if endpoint.pricing is not None and not endpoint.pricing.is_variable
        ]
        return min(priced, key=lambda item: (item[0], item[1]))[2] if priced else None
