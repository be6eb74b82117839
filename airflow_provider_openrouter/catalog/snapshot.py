"""A snapshot of the watched part of OpenRouter's catalog: one entry per model (and, on request, per provider
endpoint of each model), with every price and the context limits, at one UTC time.

Entries are keyed by ``id``: the model id (``openai/gpt-4o``) for a model, ``<model id>@<endpoint tag>`` for a
provider endpoint (``openai/gpt-4o@azure``), so models and endpoints are diffed alike.
"""

# No ``from __future__ import annotations``: pydantic reads the real annotation objects (see models.py).
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from airflow_provider_openrouter.models import Endpoint, Model, ModelPricing, Money


class CatalogError(ValueError):
    """Bad watch settings or an unreadable stored snapshot: what is wrong and what to do."""


class CatalogEntry(BaseModel):
    """One model or provider endpoint as the snapshot saw it. ``pricing``: every price OpenRouter lists
    (``prompt``, ``completion``, ``request``, ``image``, ``input_cache_read``, ...), in USD per token (per
    request, per image, ... as the field says); a field OpenRouter does not list is absent."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    id: str
    kind: Literal["model", "endpoint"] = "model"
    model: str
    provider: str | None = None
    name: str | None = None
    context_length: int | None = None
    max_completion_tokens: int | None = None
    pricing: dict[str, Money] = {}


class Snapshot(BaseModel):
    """The entries of one watch at ``snapshot_at`` (ISO 8601 UTC, microseconds, so it sorts as text)."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    watch: str
    snapshot_at: str
    entries: dict[str, CatalogEntry] = {}


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def prices(pricing: ModelPricing | None) -> dict[str, Decimal]:
    """Every numeric price of ``pricing``, fields OpenRouter added later included (they arrive as extras)."""
    if pricing is None:
        return {}
    found: dict[str, Decimal] = {}
    for field, value in pricing.model_dump(mode="python").items():
        if value is None or isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
            continue  # ``overrides`` (a list of conditional prices) and other structures are no price
        try:
            found[field] = value if isinstance(value, Decimal) else Decimal(str(value))
        except InvalidOperation:
            continue
    return found


class Watch:
    """Which models to watch: exact ids, and prefixes written with a trailing ``*`` (``"openai/*"``,
    ``"anthropic/claude-*"``) or ``/`` (``"openai/"``); no pattern watches the whole catalog."""

    def __init__(self, patterns: Sequence[str] | None) -> None:
        self.ids: set[str] = set()
        self.prefixes: list[str] = []
        for raw in patterns or ():
            pattern = raw.strip() if isinstance(raw, str) else raw
            if not isinstance(pattern, str) or not pattern or pattern in ("*", "/"):
                raise CatalogError(
                    f"models: {raw!r} is not a model id or prefix; give ids such as 'openai/gpt-4o' or "
                    "prefixes such as 'openai/*' (omit models to watch the whole catalog)"
                )
            if "*" in pattern[:-1]:
                raise CatalogError(
                    f"models: {raw!r} has a '*' before its end; only a trailing '*' (a prefix) is supported"
                )
            if pattern.endswith("*"):
                self.prefixes.append(pattern[:-1])
            elif pattern.endswith("/"):
                self.prefixes.append(pattern)
            else:
                self.ids.add(pattern)
        self.everything = not self.ids and not self.prefixes

    def matches(self, model_id: str) -> bool:
        return self.everything or model_id in self.ids or model_id.startswith(tuple(self.prefixes))

    def missing(self, model_ids: Iterable[str]) -> list[str]:
        """The exact ids asked for that the catalog does not list."""
        return sorted(self.ids - set(model_ids))


def model_entry(model: Model) -> CatalogEntry:
    top = model.top_provider
    return CatalogEntry(
        id=model.id,
        model=model.id,
        name=model.name,
        context_length=model.context_length,
        max_completion_tokens=top.max_completion_tokens if top is not None else None,
        pricing=prices(model.pricing),
    )


def endpoint_entries(model_id: str, endpoints: Sequence[Endpoint]) -> list[CatalogEntry]:
    """One entry per endpoint, keyed ``<model id>@<tag>`` (the provider routing slug, else its name)."""
    entries = []
    for endpoint in endpoints:
        provider = endpoint.tag or endpoint.provider_name or endpoint.name or "unknown"
        context = endpoint.context_length
        entries.append(
            CatalogEntry(
                id=f"{model_id}@{provider}",
                kind="endpoint",
                model=model_id,
                provider=provider,
                name=endpoint.name,
                context_length=int(context) if context is not None else None,
                max_completion_tokens=endpoint.max_completion_tokens,
                pricing=prices(endpoint.pricing),
            )
        )
    return entries


def take_snapshot(
    hook: Any,
    watch: Watch,
    *,
    name: str,
    endpoints: bool = False,
    filters: Mapping[str, Any] | None = None,
) -> Snapshot:
    """``GET /models`` (with ``filters``), the watched models kept; with ``endpoints``, each watched model's
    ``GET /models/{author}/{slug}/endpoints`` as well."""
    snapshot_at = utc_now_iso()
    catalog = hook.list_models(**dict(filters or {}))
    watched = [model for model in catalog.data if watch.matches(model.id)]
    entries = {entry.id: entry for entry in map(model_entry, watched)}
    if endpoints:
        for model in watched:
            listed = hook.list_model_endpoints(model.id)
            entries.update((entry.id, entry) for entry in endpoint_entries(model.id, listed.endpoints))
    return Snapshot(watch=name, snapshot_at=snapshot_at, entries=dict(sorted(entries.items())))
