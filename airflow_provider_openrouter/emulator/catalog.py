"""The built-in model catalog: models, their provider endpoints and the provider list (data in catalog.json).

Prices are strings in USD per token, as OpenRouter publishes them; accounting turns them into ``Decimal``. The
first endpoint of every model is its cheapest and carries the price listed in ``GET /models``, so a request
without provider preferences costs exactly the listed price. The JSON bodies of the listing endpoints are
built once at import, because they never change while the emulator runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any


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
    output_modalities: tuple[str, ...] = ("text",)

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
            "modality": "+".join(self.input_modalities) + "->" + "+".join(self.output_modalities),
            "input_modalities": list(self.input_modalities),
            "output_modalities": list(self.output_modalities),
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


def _load() -> tuple[tuple[Provider, ...], tuple[Model, ...]]:
    data = json.loads(Path(__file__).with_name("catalog.json").read_text(encoding="utf-8"))
    providers = tuple(
        Provider(name, slug, headquarters, tuple(datacenters), privacy, terms, status)
        for name, slug, headquarters, datacenters, privacy, terms, status in data["providers"]
    )
    by_name = {provider.name: provider for provider in providers}
    profiles = data["parameter_profiles"]
    models = []
    for row in data["models"]:
        parameters = tuple(profiles[row["parameters"]])
        if row.get("reasoning"):
            parameters += tuple(data["reasoning_parameters"])
        endpoints = tuple(
            Endpoint(by_name[provider], prompt, completion, quantization, uptime, latency, throughput)
            for provider, prompt, completion, quantization, uptime, latency, throughput in row["endpoints"]
        )
        models.append(
            Model(
                id=row["id"],
                name=row["name"],
                created=row["created"],
                description=row["description"],
                context_length=row["context_length"],
                max_completion_tokens=row["max_completion_tokens"],
                input_modalities=tuple(row["input_modalities"]),
                tokenizer=row["tokenizer"],
                instruct_type=row["instruct_type"],
                supported_parameters=parameters,
                endpoints=endpoints,
                reasoning=bool(row.get("reasoning")),
                is_moderated=bool(row.get("is_moderated")),
                output_modalities=tuple(row.get("output_modalities", ("text",))),
            )
        )
    return providers, tuple(models)


PROVIDERS, MODELS = _load()
MODELS_BY_ID: dict[str, Model] = {model.id: model for model in MODELS}
MODEL_JSON: dict[str, dict[str, Any]] = {model.id: model.to_json() for model in MODELS}
ENDPOINTS_JSON: dict[str, dict[str, Any]] = {model.id: model.endpoints_json() for model in MODELS}
PROVIDERS_JSON: dict[str, Any] = {"data": [provider.to_json() for provider in PROVIDERS]}


class Catalog:
    """The models one emulator serves: the built-in catalog, which the admin routes change while it runs.

    The JSON bodies of the listing routes are kept next to the models and replaced, never edited in place,
    when a model changes, so a listing never has to be rebuilt on the hot path.
    """

    def __init__(self) -> None:
        self.models: list[Model] = []
        self.by_id: dict[str, Model] = {}
        self.model_json: dict[str, dict[str, Any]] = {}
        self.endpoints_json: dict[str, dict[str, Any]] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the built-in catalog."""
        self.models = list(MODELS)
        self.by_id = dict(MODELS_BY_ID)
        self.model_json = dict(MODEL_JSON)
        self.endpoints_json = dict(ENDPOINTS_JSON)
