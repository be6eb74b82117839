"""Typed OpenRouter results (pydantic v2), one class per resource, field names exactly as on the wire.

Invariants:

* Every model tolerates fields the API adds later (``extra="allow"``); they survive a round trip.
* Money is :class:`~decimal.Decimal` (:data:`Money`), written to JSON as plain decimal text (``"0.00000015"``,
  never ``"1.5E-7"``). Prices arrive as strings (USD per token) and are parsed from the string;
  costs arrive as JSON numbers, which pydantic turns into a Decimal through their shortest decimal
  representation, never through float arithmetic, so ``0.00000735`` stays exactly ``Decimal("0.00000735")``
  (booleans and non-numeric text are rejected).
* Resources that OpenRouter wraps in ``{"data": ...}`` (credits, generation, key, model endpoints) are the
  inner object: ``Credits.total_credits``, not ``Credits.data.total_credits``.
* Importing this module registers every model with Airflow's XCom serde for the current process (see
  :func:`register_with_serde`), so a downstream task gets the typed object back with the default
  ``allowed_deserialization_classes`` on Airflow 3.1 and later.
  :data:`RESULT_MODELS` names the classes for ``deserialization_allowed_class_fields``.
"""

# No ``from __future__ import annotations`` here: real annotation objects spare pydantic from compiling and
# evaluating ~200 annotation strings at import, which DAG files pay for at parse time.
import importlib
import json
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer

__all__ = [
    "RESULT_MODELS",
    "ChatChoice",
    "ChatCompletion",
    "ChatMessage",
    "CompletionTokensDetails",
    "CostDetails",
    "Credits",
    "Endpoint",
    "ErrorInfo",
    "Generation",
    "KeyInfo",
    "Model",
    "ModelArchitecture",
    "ModelEndpoints",
    "ModelList",
    "ModelPricing",
    "Money",
    "PlainDecimal",
    "PromptTokensDetails",
    "ProviderResponse",
    "TextChoice",
    "TextCompletion",
    "ToolCall",
    "ToolCallFunction",
    "TopProvider",
    "Usage",
    "plain_decimal",
    "register_with_serde",
]


Number = int | float


def plain_decimal(value: Decimal) -> str:
    """``value`` in plain decimal notation, as prices and costs are written everywhere: ``"0.00000015"``,
    never ``str(Decimal)``'s ``"1.5E-7"``."""
    return format(value, "f")


Money = Annotated[Decimal, PlainSerializer(plain_decimal, return_type=str, when_used="json")]
"""A price or cost in USD: a :class:`~decimal.Decimal`, written to JSON (XCom, files) as plain decimal
text."""


class PlainDecimal(Decimal):
    """A :class:`~decimal.Decimal` that XCom stores as plain decimal text (``"0.00000015"``).

    Airflow's serde stores a bare ``Decimal`` as a float, which is neither exact nor plain (``1.5e-07``). The
    billable operators push XCom ``cost`` as this class; a downstream task gets it back as a ``Decimal``.
    """

    __version__ = 1

    def serialize(self) -> str:
        return plain_decimal(self)

    @classmethod
    def deserialize(cls, data: Any, version: int) -> "PlainDecimal":
        return cls(str(data))


class OpenRouterModel(BaseModel):
    """Base of every result: unknown fields kept, no clash with pydantic's ``model_`` namespace."""

    model_config = ConfigDict(extra="allow", protected_namespaces=(), defer_build=True)


# --- chat and text completions ---------------------------------------------------------------------------


class ErrorInfo(OpenRouterModel):
    """An ``error`` object: ``{code, message, metadata}``."""

    code: int | str | None = None
    message: str | None = None
    metadata: dict[str, Any] | None = None


class ToolCallFunction(OpenRouterModel):
    name: str
    arguments: str = ""

    def parsed_arguments(self) -> Any:
        """The ``arguments`` JSON string, decoded."""
        return json.loads(self.arguments) if self.arguments else {}


class ToolCall(OpenRouterModel):
    id: str | None = None
    type: str = "function"
    function: ToolCallFunction
    index: int | None = None


class ChatMessage(OpenRouterModel):
    role: str = "assistant"
    content: str | list[Any] | None = None
    refusal: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_details: list[Any] | None = None
    images: list[Any] | None = None
    annotations: list[Any] | None = None
    audio: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """The content as text: a string as is, text parts joined, ``""`` when there is none."""
        if isinstance(self.content, str):
            return self.content
        if isinstance(self.content, list):
            return "".join(str(part.get("text", "")) for part in self.content if isinstance(part, dict))
        return ""


class ChatChoice(OpenRouterModel):
    index: int = 0
    message: ChatMessage
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    logprobs: Any = None
    error: ErrorInfo | None = None


class PromptTokensDetails(OpenRouterModel):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    audio_tokens: int | None = None
    video_tokens: int | None = None


class CompletionTokensDetails(OpenRouterModel):
    reasoning_tokens: int | None = None
    audio_tokens: int | None = None
    image_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None


class CostDetails(OpenRouterModel):
    upstream_inference_cost: Money | None = None
    upstream_inference_prompt_cost: Money | None = None
    upstream_inference_completions_cost: Money | None = None
    server_tool_cost: Money | None = None


class Usage(OpenRouterModel):
    """Token counts and the cost in USD (credits) of one completion."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: Money | None = None
    is_byok: bool | None = None
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None
    cost_details: CostDetails | None = None
    server_tool_use_details: dict[str, Any] | None = None


_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


class ChatCompletion(OpenRouterModel):
    """``POST /chat/completions``. ``id`` is the generation id that ``GET /generation`` accepts."""

    id: str
    object: str = "chat.completion"
    created: int | None = None
    model: str | None = None
    provider: str | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None
    choices: list[ChatChoice] = []
    usage: Usage | None = None
    openrouter_metadata: dict[str, Any] | None = None

    @property
    def generation_id(self) -> str:
        return self.id

    @property
    def message(self) -> ChatMessage | None:
        """The first choice's message."""
        return self.choices[0].message if self.choices else None

    @property
    def text(self) -> str:
        """The first choice's content as text; ``""`` when there is none (e.g. only tool calls)."""
        message = self.message
        return message.text if message is not None else ""

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None

    @property
    def tool_calls(self) -> list[ToolCall]:
        message = self.message
        return list(message.tool_calls or []) if message is not None else []

    @property
    def cost(self) -> Decimal | None:
        """What this completion cost in USD, as reported in ``usage.cost``."""
        return self.usage.cost if self.usage is not None else None

    def parsed_json(self) -> Any:
        """Decode the text as JSON (for ``response_format`` json_object / json_schema results).

        Tolerates a Markdown code fence around the JSON. Raises ``ValueError`` naming the generation when the
        text is not JSON.
        """
        text = self.text
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1)
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            preview = " ".join(self.text.split())[:80]
            raise ValueError(
                f"Generation {self.id} did not return JSON ({err.msg} at char {err.pos}); text starts "
                f"{preview!r}. Ask for response_format={{'type': 'json_object'}} or a json_schema."
            ) from None


class TextChoice(OpenRouterModel):
    text: str | None = None
    index: int = 0
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    logprobs: Any = None
    reasoning: str | None = None
    error: ErrorInfo | None = None


class TextCompletion(OpenRouterModel):
    """Legacy ``POST /completions``."""

    id: str
    object: str = "text_completion"
    created: int | None = None
    model: str | None = None
    provider: str | None = None
    system_fingerprint: str | None = None
    choices: list[TextChoice] = []
    usage: Usage | None = None

    @property
    def generation_id(self) -> str:
        return self.id

    @property
    def text(self) -> str:
        """The first choice's text, ``""`` when there is none."""
        return (self.choices[0].text or "") if self.choices else ""

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None

    @property
    def cost(self) -> Decimal | None:
        return self.usage.cost if self.usage is not None else None


# --- account ---------------------------------------------------------------------------------------------


class Credits(OpenRouterModel):
    """``GET /credits`` (``data``): credits bought and used, in USD.

    This is the inner ``data`` object: the connector's ``data.total_credits`` is ``result.total_credits``.
    """

    total_credits: Money
    total_usage: Money

    @property
    def remaining(self) -> Decimal:
        return self.total_credits - self.total_usage


class KeyInfo(OpenRouterModel):
    """``GET /key`` (``data``): the current key's limits and usage, in USD. ``label`` is OpenRouter's masked
    label, not the key."""

    label: str | None = None
    limit: Money | None = None
    limit_remaining: Money | None = None
    limit_reset: str | None = None
    usage: Money | None = None
    usage_daily: Money | None = None
    usage_weekly: Money | None = None
    usage_monthly: Money | None = None
    byok_usage: Money | None = None
    byok_usage_daily: Money | None = None
    byok_usage_weekly: Money | None = None
    byok_usage_monthly: Money | None = None
    include_byok_in_limit: bool | None = None
    is_free_tier: bool | None = None
    is_management_key: bool | None = None
    is_provisioning_key: bool | None = None
    creator_user_id: str | None = None
    organization_id: str | None = None
    workspace_id: str | None = None
    expires_at: str | None = None
    allowed_data_regions: list[str] | None = None
    budgets: list[dict[str, Any]] | None = None
    effective_budget: dict[str, Any] | None = None
    free_model_daily_requests: dict[str, Any] | None = None
    rate_limit: dict[str, Any] | None = None


# --- generations -----------------------------------------------------------------------------------------


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


# --- model catalog ---------------------------------------------------------------------------------------


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


RESULT_MODELS: tuple[type[OpenRouterModel], ...] = (
    ChatCompletion,
    TextCompletion,
    Credits,
    Generation,
    ModelList,
    Model,
    ModelEndpoints,
    KeyInfo,
)
"""The classes operators return; name them in ``deserialization_allowed_class_fields``."""

_ALL_MODELS: tuple[type[OpenRouterModel], ...] = (
    *RESULT_MODELS,
    ErrorInfo,
    ToolCallFunction,
    ToolCall,
    ChatMessage,
    ChatChoice,
    PromptTokensDetails,
    CompletionTokensDetails,
    CostDetails,
    Usage,
    TextChoice,
    ProviderResponse,
    ModelPricing,
    ModelArchitecture,
    TopProvider,
    Endpoint,
)


def register_with_serde(*classes: type) -> None:
    """Let XCom deserialize these classes in this process with Airflow's default allow-list.

    The classes must be defined at module scope (XCom re-imports them by qualified name). On task-sdk >= 1.3
    (Airflow 3.3+) this is ``airflow.sdk.serde.allow_class``. Older serde modules (``airflow.sdk.serde`` on
    Airflow 3.2, ``airflow.serialization.serde`` on 3.1) have no public call for it, but their ``deserialize``
    accepts any qualified name in the module-level ``_extra_allowed`` set (the set ``allow_class`` writes to
    in 3.3 as well), so the names go there. Without either, nothing happens and
    ``[core] allowed_deserialization_classes`` stays the way to allow them.
    """
    serde = _xcom_serde_module()
    if serde is None:
        return
    allow_class = getattr(serde, "allow_class", None)
    if allow_class is not None:
        for cls in classes:
            allow_class(cls)
        return
    extra_allowed = getattr(serde, "_extra_allowed", None)
    if not isinstance(extra_allowed, set):
        return
    for cls in classes:
        if "." in cls.__qualname__:
            raise ValueError(
                f"{cls.__module__}.{cls.__qualname__} is not defined at module scope, so XCom cannot "
                "re-import it by name. Define the class at module scope."
            )
        extra_allowed.add(f"{cls.__module__}.{cls.__qualname__}")


def _xcom_serde_module() -> Any:
    """The serde module XCom deserializes with: the task SDK's (Airflow 3.2+), else Airflow 3.1's; or None."""
    for name in ("airflow.sdk.serde", "airflow.serialization.serde"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None  # pragma: no cover - Airflow without either serde


register_with_serde(*_ALL_MODELS, PlainDecimal)
