"""The catalog routes: ``GET /models`` (filters, sort, paging), ``/models/user``, ``/models/count``,
``/models/{author}/{slug}/endpoints``, ``/model/{author}/{slug}``, ``GET /embeddings/models`` and
``GET /providers``, from the emulator's catalog as it is now (the admin routes change it while running)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from airflow_provider_openrouter.emulator.asgi import API_PREFIX, HTTPError, Request, Response
from airflow_provider_openrouter.emulator.catalog import PROVIDERS_JSON, Model
from airflow_provider_openrouter.emulator.core import EmulatorCore


class ModelRoutes:
    """The catalog routes of one emulator."""

    def __init__(self, core: EmulatorCore) -> None:
        self.core = core

    async def models(self, request: Request) -> Response:
        return self._listing(request, parse_qs(request.query.decode("latin-1")))

    async def embedding_models(self, request: Request) -> Response:
        """``GET /embeddings/models``: the listing of the models ``POST /embeddings`` serves."""
        query = parse_qs(request.query.decode("latin-1"))
        return self._listing(request, {**query, "output_modalities": ["embeddings"]})

    def _listing(self, request: Request, query: dict[str, list[str]]) -> Response:
        models = _filter_models(query, self.core.catalog.models)
        total = len(models)
        offset = _int_query(query, "offset", 0, 0, None)
        limit = _int_query(query, "limit", None, 1, 1000)
        next_link = None
        if limit is not None or offset:
            end = offset + (limit if limit is not None else total)
            if end < total and limit is not None:
                next_link = f"{API_PREFIX}{request.path}?{_with_offset(request.query.decode('latin-1'), end)}"
            models = models[offset:end]
        return Response.json(
            {
                "data": [self.core.catalog.model_json[model.id] for model in models],
                "links": {"next": next_link},
                "total_count": total,
            }
        )

    async def models_for_user(self, request: Request) -> Response:
        self.core.bearer(request)
        return await self.models(request)

    async def models_count(self, request: Request) -> Response:
        query = parse_qs(request.query.decode("latin-1"))
        return Response.json({"data": {"count": len(_filter_models(query, self.core.catalog.models))}})

    async def model_endpoints(self, request: Request) -> Response:
        model_id = request.path[len("/models/") : -len("/endpoints")]
        body = self.core.catalog.endpoints_json.get(model_id)
        if body is None:
            raise HTTPError(404, f"No endpoints found for model {model_id}", {"error_type": "not_found"})
        return Response.json(body)

    async def model(self, request: Request) -> Response:
        model_id = request.path[len("/model/") :]
        body = self.core.catalog.model_json.get(model_id)
        if body is None:
            raise HTTPError(404, f"Model {model_id} not found", {"error_type": "not_found"})
        return Response.json({"data": body})

    async def providers(self, request: Request) -> Response:
        return Response.json(PROVIDERS_JSON)


def _int_query(
    query: dict[str, list[str]], name: str, default: int | None, low: int, high: int | None
) -> Any:
    values = query.get(name)
    if not values or values[0] == "":
        return default
    try:
        value = int(values[0])
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"from {low} to {high}"
        raise HTTPError(400, f"{name}: expected a whole number {bound}, got {values[0]!r}")
    return value


def _with_offset(query: str, offset: int) -> str:
    """The request's query as the client wrote it, filters and all, with only ``offset`` replaced or added."""
    parts = [part for part in query.split("&") if part]
    found = [index for index, part in enumerate(parts) if part.split("=", 1)[0] == "offset"]
    if not found:
        return "&".join([*parts, f"offset={offset}"])
    parts[found[0]] = f"offset={offset}"
    return "&".join(part for index, part in enumerate(parts) if index not in found[1:])


def _csv(query: dict[str, list[str]], name: str) -> list[str]:
    return [item.strip() for value in query.get(name, ()) for item in value.split(",") if item.strip()]


def _price_filter(query: dict[str, list[str]], name: str) -> Decimal | None:
    values = query.get(name)
    if not values:
        return None
    try:
        price = Decimal(values[0])
    except ArithmeticError:
        price = Decimal("NaN")
    if not price.is_finite() or price < 0:
        raise HTTPError(
            400, f"{name}: expected a price >= 0 in USD per million tokens, such as 0.5, got {values[0]!r}"
        )
    return price / Decimal(1_000_000)


_SORTS = {
    "newest": lambda m: -m.created,
    "pricing-low-to-high": lambda m: m.endpoints[0].prompt + m.endpoints[0].completion,
    "pricing-high-to-low": lambda m: -(m.endpoints[0].prompt + m.endpoints[0].completion),
    "context-high-to-low": lambda m: -m.context_length,
    "throughput-high-to-low": lambda m: -max(e.throughput_p50 for e in m.endpoints),
    "latency-low-to-high": lambda m: min(e.latency_p50_ms for e in m.endpoints),
}


def _filter_models(query: dict[str, list[str]], catalog: list[Model]) -> list[Model]:
    """The models a ``GET /models`` query selects, in the order it asks for (default: newest first)."""
    models = list(catalog)
    output = set(_csv(query, "output_modalities") or ["text"])
    if "all" not in output:
        models = [m for m in models if output.intersection(m.output_modalities)]
    inputs = set(_csv(query, "input_modalities"))
    if inputs:
        models = [m for m in models if inputs <= set(m.input_modalities)]
    params = set(_csv(query, "supported_parameters"))
    if params:
        models = [m for m in models if params <= set(m.supported_parameters)]
    authors = set(_csv(query, "model_authors"))
    if authors:
        models = [m for m in models if m.author in authors]
    providers = {p.lower() for p in _csv(query, "providers")}
    if providers:
        models = [m for m in models if any(e.matches(p) for e in m.endpoints for p in providers)]
    arch = {a.lower() for a in _csv(query, "arch")}
    if arch:
        models = [m for m in models if m.tokenizer.lower() in arch]
    text = (query.get("q") or [""])[0].lower()
    if text:
        models = [m for m in models if text in f"{m.id} {m.name} {m.description}".lower()]
    context = _int_query(query, "context", None, 0, None)
    if context is not None:
        models = [m for m in models if m.context_length >= context]
    for name, attr, keep_above in (
        ("min_price", "prompt", True),
        ("max_price", "prompt", False),
        ("min_output_price", "completion", True),
        ("max_output_price", "completion", False),
    ):
        bound = _price_filter(query, name)
        if bound is not None:
            models = [
                m
                for m in models
                if (getattr(m.endpoints[0], attr) >= bound) == keep_above
                or getattr(m.endpoints[0], attr) == bound
            ]
    sort = (query.get("sort") or ["newest"])[0]
    models.sort(key=_SORTS.get(sort, _SORTS["newest"]))
    return models
