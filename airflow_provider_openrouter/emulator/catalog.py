"""The built-in model catalog: models, their provider endpoints and the provider list (data in catalog.json).

Prices are strings in USD per token, as OpenRouter publishes them; accounting turns them into ``Decimal``. The
first endpoint of every model is its cheapest and carries the price listed in ``GET /models``, so a request
without provider preferences costs exactly the listed price. The JSON bodies of the listing endpoints are
built once at import; each emulator serves a :class:`Catalog` copy of them that its admin routes may change.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
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
    dimensions: int | None = None  # an embeddings model's vector length

    @property
    def is_embeddings(self) -> bool:
        return "embeddings" in self.output_modalities

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
                "max_completion_tokens": None if self.is_embeddings else self.max_completion_tokens,
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
                dimensions=row.get("dimensions"),
            )
        )
    return providers, tuple(models)


PROVIDERS, MODELS = _load()
MODELS_BY_ID: dict[str, Model] = {model.id: model for model in MODELS}
MODEL_JSON: dict[str, dict[str, Any]] = {model.id: model.to_json() for model in MODELS}
ENDPOINTS_JSON: dict[str, dict[str, Any]] = {model.id: model.endpoints_json() for model in MODELS}
PROVIDERS_JSON: dict[str, Any] = {"data": [provider.to_json() for provider in PROVIDERS]}


class CatalogError(ValueError):
    """A catalog change that cannot be made; ``status`` is the HTTP status the admin route answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge key by key, ``null`` deletes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def _price(body: dict[str, Any], name: str, model_id: str) -> str:
    value = (body.get("pricing") or {}).get(name)
    try:
        price = Decimal(str(value)) if isinstance(value, str | int | float) and value is not True else None
    except ArithmeticError:
        price = None
    if price is None or not price.is_finite() or price < 0:
        raise CatalogError(
            400, f"{model_id}: pricing.{name} must be a USD price per token >= 0, got {value!r}"
        )
    return str(value)


def _whole(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CatalogError(400, f"{where} must be a whole number >= 1, got {value!r}")
    return value


def model_from_json(body: dict[str, Any], endpoints: tuple[Endpoint, ...] | None) -> Model:
    """The Model a ``GET /models`` object describes. Its listed price goes to the first endpoint of
    ``endpoints`` (the one that serves a request without provider preferences); a new model (None) gets one
    endpoint, at the provider named like its author (else the first provider)."""
    model_id = body.get("id")
    if not isinstance(model_id, str) or model_id.count("/") != 1 or model_id.startswith("/"):
        raise CatalogError(400, f"id must be a model ID such as 'acme/model-1', got {model_id!r}")
    prompt, completion = _price(body, "prompt", model_id), _price(body, "completion", model_id)
    if endpoints:
        first = replace(endpoints[0], prompt_price=prompt, completion_price=completion)
        endpoints = (first, *endpoints[1:])
    else:
        provider = next((p for p in PROVIDERS if p.slug == model_id.split("/")[0]), PROVIDERS[0])
        endpoints = (Endpoint(provider, prompt, completion, None, 99.9, 500, 80),)
    architecture = body.get("architecture") or {}
    top = body.get("top_provider") or {}
    context = _whole(body.get("context_length", 8192), f"{model_id}: context_length")
    parameters = body.get("supported_parameters", ["max_tokens", "temperature", "stop"])
    if not isinstance(parameters, list) or not all(isinstance(name, str) for name in parameters):
        raise CatalogError(400, f"{model_id}: supported_parameters must be an array of strings")
    return Model(
        id=model_id,
        name=str(body.get("name", model_id)),
        created=int(body.get("created", time.time())),
        description=str(body.get("description", "")),
        context_length=context,
        max_completion_tokens=_whole(
            top.get("max_completion_tokens") or min(context, 4096),
            f"{model_id}: top_provider.max_completion_tokens",
        ),
        input_modalities=tuple(architecture.get("input_modalities", ("text",))),
        tokenizer=str(architecture.get("tokenizer", "Other")),
        instruct_type=architecture.get("instruct_type"),
        supported_parameters=tuple(parameters),
        endpoints=endpoints,
        reasoning="reasoning" in body,
        is_moderated=bool(top.get("is_moderated", False)),
        output_modalities=tuple(architecture.get("output_modalities", ("text",))),
    )


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

    def update(self, model_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge ``patch`` into a model's ``GET /models`` object; returns the object as listed now."""
        current = self._existing(model_id)
        merged = merge_patch(self.model_json[model_id], patch)
        if merged.get("id") != model_id:
            raise CatalogError(400, f"{model_id}: id cannot change; remove the model and add the new one")
        self._put(model_from_json(merged, current.endpoints), merged)
        return merged

    def add(self, body: dict[str, Any]) -> dict[str, Any]:
        """Add a model from a full ``GET /models`` object; returns it as listed."""
        model = model_from_json(body, None)
        if model.id in self.by_id:
            raise CatalogError(409, f"{model.id} is already in the catalog; PATCH it instead")
        listed = merge_patch(model.to_json(), body)
        self._put(model, listed)
        return listed

    def remove(self, model_id: str) -> None:
        model = self._existing(model_id)
        self.models = [m for m in self.models if m is not model]
        for table in (self.by_id, self.model_json, self.endpoints_json):
            table.pop(model_id, None)

    def _existing(self, model_id: str) -> Model:
        model = self.by_id.get(model_id)
        if model is None:
            raise CatalogError(
                404, f"{model_id} is not in the catalog (GET /models?output_modalities=all lists it)"
            )
        return model

    def _put(self, model: Model, listed: dict[str, Any]) -> None:
        # The listed prices as the endpoint holds them: strings, whatever JSON type the change used.
        listed["pricing"] = {**listed["pricing"], **_pricing(model.endpoints[0])}
        old = self.by_id.get(model.id)
        if old is None:
            self.models.append(model)
        else:
            self.models = [model if m is old else m for m in self.models]
        self.by_id[model.id] = model
        self.model_json[model.id] = listed
        self.endpoints_json[model.id] = model.endpoints_json()
