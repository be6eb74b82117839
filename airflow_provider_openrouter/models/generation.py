"""What a generation cost and how it ran (``GET /generation``)."""

# No ``from __future__ import annotations`` here: real annotation objects spare pydantic from compiling and
# evaluating annotation strings at import, which DAG files pay for at parse time.
from decimal import Decimal

from airflow_provider_openrouter.models._money import Money, Number, OpenRouterModel


class ProviderResponse(OpenRouterModel):
    """One attempt of a generation (fallbacks included)."""

    status: int | None = None
    id: str | None = None
    endpoint_id: str | None = None
    model_permaslug: str | None = None
    provider_name: str | None = None
    latency: Number | None = None
    is_byok: bool | None = None
    routed_service_tier: str | None = None


class Generation(OpenRouterModel):
    """``GET /generation?id=`` (``data``): what a generation cost and how it ran. Latencies in ms.

    This is the inner ``data`` object: the connector's ``data.total_cost`` is ``result.total_cost``.
    """

    id: str
    total_cost: Money | None = None
    usage: Money | None = None
    upstream_inference_cost: Money | None = None
    cache_discount: Money | None = None
    created_at: str | None = None
    model: str | None = None
    origin: str | None = None
    api_type: str | None = None
    data_region: str | None = None
    http_referer: str | None = None
    user_agent: str | None = None
    external_user: str | None = None
    is_byok: bool | None = None
    upstream_id: str | None = None
    app_id: int | None = None
    streamed: bool | None = None
    cancelled: bool | None = None
    provider_name: str | None = None
    latency: Number | None = None
    moderation_latency: Number | None = None
    generation_time: Number | None = None
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    tokens_prompt: int | None = None
    tokens_completion: int | None = None
    native_tokens_prompt: int | None = None
    native_tokens_completion: int | None = None
    native_tokens_reasoning: int | None = None
    native_tokens_cached: int | None = None
    native_tokens_completion_images: int | None = None
    num_media_prompt: int | None = None
    num_media_completion: int | None = None
    num_input_audio_prompt: int | None = None
    num_search_results: int | None = None
    num_fetches: int | None = None
    router: str | None = None
    preset_id: str | None = None
    service_tier: str | None = None
    web_search_engine: str | None = None
    workspace_id: str | None = None
    provider_responses: list[ProviderResponse] | None = None
    request_id: str | None = None
    session_id: str | None = None
    response_cache_source_id: str | None = None

    @property
    def generation_id(self) -> str:
        return self.id

    @property
    def cost(self) -> Decimal | None:
        """The generation's total cost in USD."""
        return self.total_cost
