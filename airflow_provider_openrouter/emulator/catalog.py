"""The built-in model catalog: models, their provider endpoints and the provider list.

Prices are strings in USD per token, as OpenRouter publishes them; accounting turns them into ``Decimal``. The
first endpoint of every model is its cheapest and carries the price listed in ``GET /models``, so a request
without provider preferences costs exactly the listed price. The JSON bodies of the listing endpoints are
built once at import, because they never change while the emulator runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

_OPENAI_PARAMS = (
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "response_format",
    "structured_outputs",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
)
_ANTHROPIC_PARAMS = ("max_tokens", "temperature", "top_p", "top_k", "stop", "tools", "tool_choice")
_GOOGLE_PARAMS = (
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "response_format",
    "structured_outputs",
    "tools",
    "tool_choice",
)
_OPEN_WEIGHTS_PARAMS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repetition_penalty",
    "frequency_penalty",
    "presence_penalty",
    "stop",
    "seed",
    "logit_bias",
    "response_format",
    "structured_outputs",
    "tools",
    "tool_choice",
)
_REASONING_PARAMS = ("reasoning", "include_reasoning")
_TEXT_COMPLETION_PARAMS = (
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "logprobs",
)


@dataclass(frozen=True)
class Provider:
    name: str
    slug: str
    headquarters: str
    datacenters: tuple[str, ...]
    privacy_policy_url: str
    terms_of_service_url: str | None
    status_page_url: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "slug": self.slug,
            "privacy_policy_url": self.privacy_policy_url,
            "terms_of_service_url": self.terms_of_service_url,
            "status_page_url": self.status_page_url,
            "headquarters": self.headquarters,
            "datacenters": list(self.datacenters),
        }


PROVIDERS: tuple[Provider, ...] = (
    Provider(
        "OpenAI",
        "openai",
        "US",
        ("US",),
        "https://openai.com/policies/privacy-policy/",
        "https://openai.com/policies/row-terms-of-use/",
        "https://status.openai.com/",
    ),
    Provider(
        "Azure",
        "azure",
        "US",
        ("US", "IE", "SE"),
        "https://www.microsoft.com/en-us/privacy/privacystatement",
        "https://www.microsoft.com/en-us/legal/terms-of-use",
        "https://status.ai.azure.com/",
    ),
    Provider(
        "Anthropic",
        "anthropic",
        "US",
        ("US",),
        "https://www.anthropic.com/legal/privacy",
        "https://www.anthropic.com/legal/commercial-terms",
        "https://status.anthropic.com/",
    ),
    Provider(
        "Amazon Bedrock",
        "amazon-bedrock",
        "US",
        ("US", "DE"),
        "https://aws.amazon.com/privacy/",
        "https://aws.amazon.com/service-terms/",
        "https://health.aws.amazon.com/health/status",
    ),
    Provider(
        "Google",
        "google-vertex",
        "US",
        ("US", "BE"),
        "https://cloud.google.com/terms/cloud-privacy-notice",
        "https://cloud.google.com/terms/",
        "https://status.cloud.google.com/",
    ),
    Provider(
        "Google AI Studio",
        "google-ai-studio",
        "US",
        ("US",),
        "https://policies.google.com/privacy",
        "https://ai.google.dev/gemini-api/terms",
        "https://aistudio.google.com/status",
    ),
    Provider(
        "DeepInfra",
        "deepinfra",
        "US",
        ("US",),
        "https://deepinfra.com/privacy",
        "https://deepinfra.com/terms",
        None,
    ),
    Provider(
        "Together",
        "together",
        "US",
        ("US",),
        "https://www.together.ai/privacy",
        "https://www.together.ai/terms-of-service",
        "https://status.together.ai/",
    ),
    Provider(
        "Groq",
        "groq",
        "US",
        ("US",),
        "https://groq.com/privacy-policy/",
        "https://groq.com/terms-of-use/",
        "https://groqstatus.com/",
    ),
    Provider(
        "Fireworks",
        "fireworks",
        "US",
        ("US",),
        "https://fireworks.ai/privacy-policy",
        "https://fireworks.ai/terms-of-service",
        "https://status.fireworks.ai/",
    ),
    Provider(
        "Mistral",
        "mistral",
        "FR",
        ("FR", "SE"),
        "https://mistral.ai/terms/#privacy-policy",
        "https://mistral.ai/terms/#terms-of-use",
        "https://status.mistral.ai/",
    ),
    Provider(
        "DeepSeek",
        "deepseek",
        "CN",
        ("CN",),
        "https://chat.deepseek.com/downloads/DeepSeek%20Privacy%20Policy.html",
        "https://chat.deepseek.com/downloads/DeepSeek%20Terms%20of%20Use.html",
        "https://status.deepseek.com/",
    ),
    Provider("Chutes", "chutes", "US", ("US",), "https://chutes.ai/privacy", "https://chutes.ai/tos", None),
)
PROVIDERS_BY_NAME = {provider.name: provider for provider in PROVIDERS}


@dataclass(frozen=True)
class Endpoint:
    """One provider serving one model. ``tag`` is the slug for ``provider.order``/``only``/``ignore``."""

    provider: Provider
    prompt_price: str
    completion_price: str
    quantization: str | None
    uptime: float
    latency_p50_ms: int
    throughput_p50: int
    prompt: Decimal = field(init=False)
    completion: Decimal = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt", Decimal(self.prompt_price))
        object.__setattr__(self, "completion", Decimal(self.completion_price))

    @property
    def tag(self) -> str:
        return self.provider.slug

    def matches(self, wanted: str) -> bool:
        """A ``provider.order`` entry: a provider slug, an endpoint slug (``deepinfra/fp8``) or a name."""
        wanted = wanted.lower()
        return (
            wanted in (self.provider.slug, self.provider.name.lower()) or wanted.split("/", 1)[0] == self.tag
        )


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    created: int
    description: str
    context_length: int
    max_completion_tokens: int
    input_modalities: tuple[str, ...]
    tokenizer: str
    instruct_type: str | None
    supported_parameters: tuple[str, ...]
    endpoints: tuple[Endpoint, ...]
    reasoning: bool = False
    is_moderated: bool = False

    @property
    def author(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def is_free(self) -> bool:
        return self.id.endswith(":free")

    @property
    def pricing(self) -> dict[str, str]:
        return _pricing(self.endpoints[0])

    def architecture(self) -> dict[str, Any]:
        return {
            "modality": "+".join(self.input_modalities) + "->text",
            "input_modalities": list(self.input_modalities),
            "output_modalities": ["text"],
            "tokenizer": self.tokenizer,
            "instruct_type": self.instruct_type,
        }

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "canonical_slug": self.id.replace(":free", "") + "-" + str(self.created)[-6:],
            "hugging_face_id": None,
            "name": self.name,
            "created": self.created,
            "description": self.description,
            "context_length": self.context_length,
            "architecture": self.architecture(),
            "pricing": self.pricing,
            "top_provider": {
                "context_length": self.context_length,
                "max_completion_tokens": self.max_completion_tokens,
                "is_moderated": self.is_moderated,
            },
            "per_request_limits": None,
            "supported_parameters": list(self.supported_parameters),
            "default_parameters": {"temperature": None, "top_p": None, "frequency_penalty": None},
            "supported_voices": None,
            "knowledge_cutoff": None,
            "expiration_date": None,
            "links": {"details": f"/api/v1/models/{self.id}/endpoints"},
        }
        if self.reasoning:
            body["reasoning"] = {
                "mandatory": False,
                "default_effort": "medium",
                "default_enabled": True,
                "supported_efforts": ["high", "medium", "low"],
                "supports_max_tokens": True,
            }
        return body

    def endpoints_json(self) -> dict[str, Any]:
        return {
            "data": {
                "id": self.id,
                "name": self.name,
                "created": self.created,
                "description": self.description,
                "architecture": self.architecture(),
                "endpoints": [self._endpoint_json(endpoint) for endpoint in self.endpoints],
            }
        }

    def _endpoint_json(self, endpoint: Endpoint) -> dict[str, Any]:
        latency = endpoint.latency_p50_ms
        throughput = endpoint.throughput_p50
        return {
            "name": f"{endpoint.provider.name} | {self.id}",
            "model_id": self.id,
            "model_name": self.name,
            "context_length": self.context_length,
            "pricing": _pricing(endpoint),
            "provider_name": endpoint.provider.name,
            "tag": endpoint.tag,
            "quantization": endpoint.quantization,
            "max_completion_tokens": self.max_completion_tokens,
            "max_prompt_tokens": None,
            "supported_parameters": list(self.supported_parameters),
            "status": 0,
            "uptime_last_5m": endpoint.uptime,
            "uptime_last_30m": endpoint.uptime,
            "uptime_last_1d": endpoint.uptime,
            "latency_last_30m": {
                "p50": latency,
                "p75": latency * 3 // 2,
                "p90": latency * 2,
                "p99": latency * 4,
            },
            "throughput_last_30m": {
                "p50": throughput,
                "p75": throughput * 4 // 5,
                "p90": throughput * 3 // 5,
                "p99": throughput // 3,
            },
            "supports_implicit_caching": endpoint.provider.slug in ("openai", "azure", "deepseek"),
            "supports_diarization": False,
            "supports_tool_choice": {
                "auto": "tools" in self.supported_parameters,
                "none": "tools" in self.supported_parameters,
                "required": "tools" in self.supported_parameters,
                "function": "tools" in self.supported_parameters,
            },
            "service_tier": None,
            "native_tools": {},
        }


def _pricing(endpoint: Endpoint) -> dict[str, str]:
    return {
        "prompt": endpoint.prompt_price,
        "completion": endpoint.completion_price,
        "request": "0",
        "image": "0",
        "web_search": "0",
        "internal_reasoning": "0",
    }


def _ep(
    provider: str,
    prompt: str,
    completion: str,
    quantization: str | None = None,
    *,
    uptime: float = 99.8,
    latency: int = 450,
    throughput: int = 80,
) -> Endpoint:
    return Endpoint(
        PROVIDERS_BY_NAME[provider], prompt, completion, quantization, uptime, latency, throughput
    )


_TEXT = ("text",)
_TEXT_IMAGE = ("text", "image")
_TEXT_IMAGE_FILE = ("text", "image", "file")

MODELS: tuple[Model, ...] = (
    Model(
        "openai/gpt-4o",
        "OpenAI: GPT-4o",
        1715558400,
        "GPT-4o is OpenAI's flagship multimodal model: text and image in, text out.",
        128000,
        16384,
        _TEXT_IMAGE_FILE,
        "GPT",
        None,
        _OPENAI_PARAMS,
        (
            _ep("OpenAI", "0.0000025", "0.00001", latency=520, throughput=95),
            _ep("Azure", "0.0000025", "0.00001", latency=610, throughput=88),
        ),
        is_moderated=True,
    ),
    Model(
        "openai/gpt-4o-mini",
        "OpenAI: GPT-4o-mini",
        1721260800,
        "GPT-4o mini is a small, fast and cheap model for everyday tasks.",
        128000,
        16384,
        _TEXT_IMAGE_FILE,
        "GPT",
        None,
        _OPENAI_PARAMS,
        (
            _ep("OpenAI", "0.00000015", "0.0000006", latency=380, throughput=70),
            _ep("Azure", "0.00000015", "0.0000006", latency=450, throughput=120),
        ),
        is_moderated=True,
    ),
    Model(
        "openai/gpt-4.1",
        "OpenAI: GPT-4.1",
        1744651385,
        "GPT-4.1 is a flagship model for advanced instruction following and long-context work.",
        1047576,
        32768,
        _TEXT_IMAGE_FILE,
        "GPT",
        None,
        _OPENAI_PARAMS,
        (_ep("OpenAI", "0.000002", "0.000008", latency=560, throughput=75),),
        is_moderated=True,
    ),
    Model(
        "openai/gpt-4.1-mini",
        "OpenAI: GPT-4.1 Mini",
        1744651381,
        "GPT-4.1 Mini is a mid-sized model with GPT-4o level quality at lower latency and cost.",
        1047576,
        32768,
        _TEXT_IMAGE_FILE,
        "GPT",
        None,
        _OPENAI_PARAMS,
        (_ep("OpenAI", "0.0000004", "0.0000016", latency=410, throughput=90),),
        is_moderated=True,
    ),
    Model(
        "openai/o3-mini",
        "OpenAI: o3 Mini",
        1738351721,
        "o3-mini is a cost-efficient reasoning model for science, math and coding.",
        200000,
        100000,
        _TEXT_IMAGE_FILE,
        "GPT",
        None,
        _OPENAI_PARAMS + _REASONING_PARAMS,
        (_ep("OpenAI", "0.0000011", "0.0000044", latency=2100, throughput=140),),
        reasoning=True,
        is_moderated=True,
    ),
    Model(
        "openai/gpt-3.5-turbo-instruct",
        "OpenAI: GPT-3.5 Turbo Instruct",
        1695859200,
        "A GPT-3.5 model tuned for the legacy text completions endpoint.",
        4095,
        4096,
        _TEXT,
        "GPT",
        "chatml",
        _TEXT_COMPLETION_PARAMS,
        (_ep("OpenAI", "0.0000015", "0.000002", latency=300, throughput=110),),
        is_moderated=True,
    ),
    Model(
        "anthropic/claude-3.5-haiku",
        "Anthropic: Claude 3.5 Haiku",
        1730678400,
        "Claude 3.5 Haiku is Anthropic's fastest model, for real-time and high-volume tasks.",
        200000,
        8192,
        _TEXT_IMAGE,
        "Claude",
        None,
        _ANTHROPIC_PARAMS,
        (
            _ep("Anthropic", "0.0000008", "0.000004", latency=700, throughput=60),
            _ep("Amazon Bedrock", "0.0000008", "0.000004", latency=820, throughput=55),
            _ep("Google", "0.0000008", "0.000004", latency=760, throughput=58),
        ),
        is_moderated=True,
    ),
    Model(
        "anthropic/claude-3.7-sonnet",
        "Anthropic: Claude 3.7 Sonnet",
        1740422110,
        "Claude 3.7 Sonnet adds extended thinking to the Sonnet line.",
        200000,
        64000,
        _TEXT_IMAGE_FILE,
        "Claude",
        None,
        _ANTHROPIC_PARAMS + _REASONING_PARAMS,
        (
            _ep("Anthropic", "0.000003", "0.000015", latency=1300, throughput=55),
            _ep("Amazon Bedrock", "0.000003", "0.000015", latency=1500, throughput=50),
            _ep("Google", "0.000003", "0.000015", latency=1400, throughput=52),
        ),
        reasoning=True,
        is_moderated=True,
    ),
    Model(
        "anthropic/claude-sonnet-4",
        "Anthropic: Claude Sonnet 4",
        1747930371,
        "Claude Sonnet 4 balances capability and cost for coding and agents.",
        200000,
        64000,
        _TEXT_IMAGE_FILE,
        "Claude",
        None,
        _ANTHROPIC_PARAMS + _REASONING_PARAMS,
        (
            _ep("Anthropic", "0.000003", "0.000015", latency=1400, throughput=57),
            _ep("Amazon Bedrock", "0.000003", "0.000015", latency=1600, throughput=49),
        ),
        reasoning=True,
    ),
    Model(
        "anthropic/claude-opus-4",
        "Anthropic: Claude Opus 4",
        1747931245,
        "Claude Opus 4 is Anthropic's most capable model for long-running agent work.",
        200000,
        32000,
        _TEXT_IMAGE_FILE,
        "Claude",
        None,
        _ANTHROPIC_PARAMS + _REASONING_PARAMS,
        (_ep("Anthropic", "0.000015", "0.000075", latency=2200, throughput=35),),
        reasoning=True,
    ),
    Model(
        "google/gemini-2.0-flash-001",
        "Google: Gemini 2.0 Flash",
        1738769413,
        "Gemini 2.0 Flash offers fast time to first token with multimodal understanding.",
        1048576,
        8192,
        _TEXT_IMAGE_FILE,
        "Gemini",
        None,
        _GOOGLE_PARAMS,
        (
            _ep("Google AI Studio", "0.0000001", "0.0000004", latency=480, throughput=160),
            _ep("Google", "0.00000015", "0.0000006", latency=520, throughput=150),
        ),
    ),
    Model(
        "google/gemini-2.5-flash",
        "Google: Gemini 2.5 Flash",
        1750172488,
        "Gemini 2.5 Flash is a workhorse model with built-in thinking.",
        1048576,
        65535,
        _TEXT_IMAGE_FILE,
        "Gemini",
        None,
        _GOOGLE_PARAMS + _REASONING_PARAMS,
        (
            _ep("Google AI Studio", "0.0000003", "0.0000025", latency=650, throughput=170),
            _ep("Google", "0.0000003", "0.0000025", latency=700, throughput=160),
        ),
        reasoning=True,
    ),
    Model(
        "google/gemini-2.5-pro",
        "Google: Gemini 2.5 Pro",
        1750169544,
        "Gemini 2.5 Pro is Google's state-of-the-art model for reasoning, coding and science.",
        1048576,
        65536,
        _TEXT_IMAGE_FILE,
        "Gemini",
        None,
        _GOOGLE_PARAMS + _REASONING_PARAMS,
        (
            _ep("Google AI Studio", "0.00000125", "0.00001", latency=2400, throughput=85),
            _ep("Google", "0.00000125", "0.00001", latency=2600, throughput=80),
        ),
        reasoning=True,
    ),
    Model(
        "google/gemma-3-27b-it",
        "Google: Gemma 3 27B",
        1741756359,
        "Gemma 3 is Google's open model with multimodal input and a 128k context.",
        131072,
        16384,
        _TEXT_IMAGE,
        "Gemini",
        "gemma",
        _OPEN_WEIGHTS_PARAMS,
        (
            _ep("DeepInfra", "0.00000009", "0.00000017", "bf16", latency=600, throughput=45),
            _ep("Together", "0.0000002", "0.0000002", "fp8", latency=500, throughput=60),
        ),
    ),
    Model(
        "meta-llama/llama-3.1-8b-instruct",
        "Meta: Llama 3.1 8B Instruct",
        1721692800,
        "Meta's 8B instruction-tuned Llama 3.1, fast and efficient.",
        131072,
        16384,
        _TEXT,
        "Llama3",
        "llama3",
        _OPEN_WEIGHTS_PARAMS,
        (
            _ep("DeepInfra", "0.00000002", "0.00000005", "fp8", latency=300, throughput=110),
            _ep("Together", "0.00000018", "0.00000018", "fp8", latency=250, throughput=160),
            _ep("Groq", "0.00000005", "0.00000008", None, latency=150, throughput=750),
        ),
    ),
    Model(
        "meta-llama/llama-3.3-70b-instruct",
        "Meta: Llama 3.3 70B Instruct",
        1733506137,
        "Meta's 70B multilingual Llama 3.3, tuned for dialogue.",
        131072,
        16384,
        _TEXT,
        "Llama3",
        "llama3",
        _OPEN_WEIGHTS_PARAMS,
        (
            _ep("DeepInfra", "0.00000013", "0.0000004", "fp8", latency=450, throughput=35),
            _ep("Groq", "0.00000059", "0.00000079", None, latency=180, throughput=320),
            _ep("Together", "0.00000088", "0.00000088", "fp8", latency=400, throughput=90),
        ),
    ),
    Model(
        "meta-llama/llama-3.3-70b-instruct:free",
        "Meta: Llama 3.3 70B Instruct (free)",
        1733506137,
        "The free variant of Llama 3.3 70B Instruct: rate limited to 20 requests per minute.",
        131072,
        2048,
        _TEXT,
        "Llama3",
        "llama3",
        _OPEN_WEIGHTS_PARAMS,
        (_ep("Chutes", "0", "0", "bf16", uptime=97.5, latency=1200, throughput=25),),
    ),
    Model(
        "meta-llama/llama-4-maverick",
        "Meta: Llama 4 Maverick",
        1743881822,
        "Llama 4 Maverick is a mixture-of-experts model with native multimodality.",
        1048576,
        16384,
        _TEXT_IMAGE,
        "Llama4",
        None,
        _OPEN_WEIGHTS_PARAMS,
        (
            _ep("DeepInfra", "0.00000015", "0.0000006", "fp8", latency=500, throughput=60),
            _ep("Groq", "0.0000002", "0.0000006", None, latency=200, throughput=400),
            _ep("Together", "0.00000027", "0.00000085", "fp8", latency=420, throughput=95),
        ),
    ),
    Model(
        "mistralai/mistral-small-3.1-24b-instruct",
        "Mistral: Mistral Small 3.1 24B",
        1742238937,
        "Mistral Small 3.1 is a 24B model with vision and a 128k context.",
        128000,
        32000,
        _TEXT_IMAGE,
        "Mistral",
        None,
        _OPEN_WEIGHTS_PARAMS,
        (
            _ep("DeepInfra", "0.00000005", "0.0000001", "fp8", latency=350, throughput=70),
            _ep("Mistral", "0.0000001", "0.0000003", None, latency=300, throughput=120),
        ),
    ),
    Model(
        "mistralai/mistral-large-2411",
        "Mistral Large 2411",
        1731978415,
        "Mistral Large 2 (November 2024) with improved long context and function calling.",
        131072,
        32768,
        _TEXT,
        "Mistral",
        None,
        _OPEN_WEIGHTS_PARAMS,
        (_ep("Mistral", "0.000002", "0.000006", latency=700, throughput=45),),
    ),
    Model(
        "mistralai/mistral-nemo",
        "Mistral: Mistral Nemo",
        1721347200,
        "A 12B model built by Mistral with NVIDIA, multilingual with a 128k context.",
        131072,
        16384,
        _TEXT,
        "Mistral",
        "mistral",
        _OPEN_WEIGHTS_PARAMS,
        (
            _ep("DeepInfra", "0.00000002", "0.00000004", "fp8", latency=280, throughput=90),
            _ep("Mistral", "0.00000015", "0.00000015", None, latency=250, throughput=130),
        ),
    ),
    Model(
        "deepseek/deepseek-chat-v3-0324",
        "DeepSeek: DeepSeek V3 0324",
        1742824755,
        "DeepSeek V3 (March 2024 checkpoint), a 685B mixture-of-experts chat model.",
        163840,
        163840,
        _TEXT,
        "DeepSeek",
        None,
        _OPEN_WEIGHTS_PARAMS,
        (
            _ep("DeepSeek", "0.00000027", "0.0000011", None, latency=1500, throughput=25),
            _ep("DeepInfra", "0.0000003", "0.0000012", "fp8", latency=900, throughput=30),
            _ep("Fireworks", "0.0000009", "0.0000009", "fp8", latency=600, throughput=80),
        ),
    ),
    Model(
        "deepseek/deepseek-chat-v3-0324:free",
        "DeepSeek: DeepSeek V3 0324 (free)",
        1742824755,
        "The free variant of DeepSeek V3 0324: rate limited to 20 requests per minute.",
        163840,
        4096,
        _TEXT,
        "DeepSeek",
        None,
        _OPEN_WEIGHTS_PARAMS,
        (_ep("Chutes", "0", "0", "fp8", uptime=96.0, latency=1800, throughput=20),),
    ),
    Model(
        "deepseek/deepseek-r1",
        "DeepSeek: R1",
        1737381095,
        "DeepSeek R1 is an open reasoning model on par with OpenAI o1.",
        163840,
        163840,
        _TEXT,
        "DeepSeek",
        "deepseek-r1",
        _OPEN_WEIGHTS_PARAMS + _REASONING_PARAMS,
        (
            _ep("DeepSeek", "0.00000055", "0.00000219", None, latency=2500, throughput=22),
            _ep("Together", "0.000003", "0.000007", "fp8", latency=1100, throughput=70),
        ),
        reasoning=True,
    ),
    Model(
        "qwen/qwen-2.5-72b-instruct",
        "Qwen2.5 72B Instruct",
        1726704000,
        "Qwen2.5 72B is a multilingual model strong at coding, mathematics and structured output.",
        32768,
        16384,
        _TEXT,
        "Qwen",
        "chatml",
        _OPEN_WEIGHTS_PARAMS,
        (
            _ep("DeepInfra", "0.00000012", "0.00000039", "fp8", latency=500, throughput=40),
            _ep("Together", "0.0000012", "0.0000012", "fp8", latency=400, throughput=85),
        ),
    ),
    Model(
        "qwen/qwen3-235b-a22b",
        "Qwen: Qwen3 235B A22B",
        1745875757,
        "Qwen3 235B A22B is a mixture-of-experts model with a thinking mode.",
        40960,
        40960,
        _TEXT,
        "Qwen3",
        "qwen3",
        _OPEN_WEIGHTS_PARAMS + _REASONING_PARAMS,
        (
            _ep("DeepInfra", "0.00000013", "0.0000006", "fp8", latency=700, throughput=35),
            _ep("Fireworks", "0.00000022", "0.00000088", "fp8", latency=500, throughput=75),
        ),
        reasoning=True,
    ),
    Model(
        "qwen/qwen-2.5-coder-32b-instruct",
        "Qwen2.5 Coder 32B Instruct",
        1731368400,
        "Qwen2.5 Coder 32B is a code-specific model for generation, reasoning and fixing.",
        32768,
        8192,
        _TEXT,
        "Qwen",
        "chatml",
        _OPEN_WEIGHTS_PARAMS,
        (
            _ep("DeepInfra", "0.00000006", "0.00000015", "fp8", latency=400, throughput=50),
            _ep("Together", "0.0000008", "0.0000008", "fp8", latency=350, throughput=90),
        ),
    ),
)

MODELS_BY_ID: dict[str, Model] = {model.id: model for model in MODELS}
MODEL_JSON: dict[str, dict[str, Any]] = {model.id: model.to_json() for model in MODELS}
ENDPOINTS_JSON: dict[str, dict[str, Any]] = {model.id: model.endpoints_json() for model in MODELS}
PROVIDERS_JSON: dict[str, Any] = {"data": [provider.to_json() for provider in PROVIDERS]}
