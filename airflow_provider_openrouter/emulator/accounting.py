"""Money and records: credits, per-key usage, generation records, and the stats that prove nothing was billed
twice.

Costs are ``Decimal``: ``prompt_tokens x prompt price + completion_tokens x completion price`` with the
catalog's per-token price strings. JSON carries them as numbers; they have few significant digits (a handful
of tokens times a price such as 0.00000015), so the float a client parses prints back as the exact decimal.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from airflow_provider_openrouter.emulator.config import EmulatorSettings, key_label

ZERO = Decimal(0)


def money(amount: Decimal) -> float:
    """A Decimal amount as a JSON number (exact for the few significant digits emulator costs have)."""
    return float(amount)


@dataclass(slots=True)
class GenerationRecord:
    """What ``GET /generation`` reports about one billed completion."""

    id: str
    key: str
    model: str
    provider_name: str
    created: float
    available_at: float  # monotonic seconds: 404 before this
    tokens_prompt: int
    tokens_completion: int
    cost: Decimal
    finish_reason: str | None
    native_finish_reason: str | None
    streamed: bool
    latency_ms: int
    http_referer: str | None = None
    user_agent: str | None = None
    app_title: str | None = None
    external_user: str | None = None
    session_id: str | None = None
    request_id: str | None = None
    tokens_reasoning: int = 0  # part of tokens_completion, as OpenRouter counts them
    tokens_images: int = 0  # likewise
    images: int = 0
    # Stored as OpenRouter stores them, but not in GET /generation's answer (only session_id is): the
    # stats' "generations" list shows them.
    metadata: dict[str, Any] | None = None
    trace: dict[str, Any] | None = None
    api_type: str = "completions"  # or "embeddings"

    def attribution_json(self) -> dict[str, Any]:
        return {"id": self.id, "session_id": self.session_id, "metadata": self.metadata, "trace": self.trace}

    def to_json(self) -> dict[str, Any]:
        cost = money(self.cost)
        return {
            "id": self.id,
            "api_type": self.api_type,
            "app_id": None,
            "cache_discount": None,
            "cancelled": False,
            "created_at": datetime.fromtimestamp(self.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "data_region": "global",
            "external_user": self.external_user,
            "finish_reason": self.finish_reason,
            "native_finish_reason": self.native_finish_reason,
            "generation_time": max(1, self.latency_ms - 20),
            "latency": self.latency_ms,
            "moderation_latency": None,
            "http_referer": self.http_referer,
            "user_agent": self.user_agent,
            "is_byok": False,
            "model": self.model,
            "origin": self.http_referer or "",
            "provider_name": self.provider_name,
            "provider_responses": [
                {
                    "status": 200,
                    "provider_name": self.provider_name,
                    "latency": self.latency_ms,
                    "is_byok": False,
                }
            ],
            "router": None,
            "preset_id": None,
            "service_tier": None,
            "streamed": self.streamed,
            "tokens_prompt": self.tokens_prompt,
            "tokens_completion": self.tokens_completion,
            "native_tokens_prompt": self.tokens_prompt,
            "native_tokens_completion": self.tokens_completion,
            "native_tokens_reasoning": self.tokens_reasoning,
            "native_tokens_cached": 0,
            "native_tokens_completion_images": self.tokens_images,
            "num_media_prompt": 0,
            "num_media_completion": self.images,
            "num_input_audio_prompt": 0,
            "num_search_results": 0,
            "num_fetches": 0,
            "total_cost": cost,
            "usage": cost,
            "upstream_id": "upstream-" + self.id[-12:],
            "upstream_inference_cost": None,
            "web_search_engine": None,
            "workspace_id": None,
            "request_id": self.request_id,
            "response_cache_source_id": None,
            "session_id": self.session_id,
        }


@dataclass
class Ledger:
    """Credits and usage. All mutation happens on the event loop thread, so no locks."""

    settings: EmulatorSettings
    total_usage: Decimal = ZERO
    usage_by_key: dict[str, Decimal] = field(default_factory=dict)
    generations: dict[str, GenerationRecord] = field(default_factory=dict)
    billed_generations: int = 0
    duplicate_billed: int = 0
    # Billed generations per (idempotency key or custom_id, content hash): a row's count must end at 1.
    billed_by_identity: Counter[tuple[str, bytes]] = field(default_factory=Counter)

    def remaining_credits(self) -> Decimal:
        return self.settings.credits - self.total_usage

    def key_usage(self, key: str) -> Decimal:
        return self.usage_by_key.get(key, ZERO)

    def key_remaining(self, key: str) -> Decimal | None:
        limit = self.settings.key_limit
        return None if limit is None else limit - self.key_usage(key)

    def spendable(self, key: str) -> Decimal:
        """What ``key`` may still spend: the smaller of the account credits and the key's own limit."""
        remaining = self.remaining_credits()
        key_remaining = self.key_remaining(key)
        return remaining if key_remaining is None else min(remaining, key_remaining)

    def bill(self, record: GenerationRecord, identity: tuple[str, bytes] | None = None) -> None:
        """Charge ``record.cost`` to the account and the key, and keep the record for GET /generation.

        ``identity`` is (idempotency key or custom_id, content hash): billing the same identity again is
        counted in ``duplicate_billed``.
        """
        self.total_usage += record.cost
        self.usage_by_key[record.key] = self.usage_by_key.get(record.key, ZERO) + record.cost
        self.generations[record.id] = record
        self.billed_generations += 1
        if identity is not None:
            if identity in self.billed_by_identity:
                self.duplicate_billed += 1
            self.billed_by_identity[identity] += 1

    def reset(self) -> None:
        self.total_usage = ZERO
        self.usage_by_key.clear()
        self.generations.clear()
        self.billed_generations = 0
        self.duplicate_billed = 0
        self.billed_by_identity.clear()


NOT_SERVED = " (not served)"
# Paths the API does not serve are counted one by one up to this many; the rest share OTHER_NOT_SERVED, so a
# client (or a scanner) requesting endless distinct paths cannot grow the stats without bound.
MAX_NOT_SERVED_ROUTES = 100
OTHER_NOT_SERVED = "other paths" + NOT_SERVED


@dataclass
class Stats:
    """Counters for ``GET /__emulator/stats``."""

    requests: dict[str, Counter[str]] = field(default_factory=dict)
    rate_limited: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    in_flight_max: int = 0
    started: float = field(default_factory=time.time)
    not_served_routes: int = 0

    def count(self, route: str, status: str) -> None:
        counter = self.requests.get(route)
        if counter is None:
            if route.endswith(NOT_SERVED):
                if self.not_served_routes >= MAX_NOT_SERVED_ROUTES:
                    route = OTHER_NOT_SERVED
                else:
                    self.not_served_routes += 1
            counter = self.requests.get(route)
            if counter is None:
                counter = self.requests[route] = Counter()
        counter[status] += 1

    def to_json(
        self, ledger: Ledger, batches: int, *, by_identity: bool = False, generations: bool = False
    ) -> dict[str, Any]:
        """The stats; ``by_identity`` adds ``billed_by_identity`` (an entry per billed row: on request)."""
        identities = ledger.billed_by_identity
        body = {
            "requests": {route: dict(counter) for route, counter in sorted(self.requests.items())},
            "requests_total": sum(sum(counter.values()) for counter in self.requests.values()),
            "billed_generations": ledger.billed_generations,
            "total_cost": str(ledger.total_usage),
            "duplicate_billed": ledger.duplicate_billed,
            "billed_identities": len(identities),
            "billed_twice": sum(1 for count in identities.values() if count > 1),
            "billed_without_identity": ledger.billed_generations - sum(identities.values()),
            "rate_limited": self.rate_limited,
            "faults": dict(self.faults),
            "in_flight_max": self.in_flight_max,
            "credits": {
                "total_credits": str(ledger.settings.credits),
                "total_usage": str(ledger.total_usage),
                "remaining": str(ledger.remaining_credits()),
            },
            "usage_by_key": {key_label(key): str(amount) for key, amount in ledger.usage_by_key.items()},
            "batches": batches,
            "uptime_s": round(time.time() - self.started, 3),
        }
        if by_identity:
            labels: Counter[str] = Counter()
            for (label, _), count in identities.items():
                labels[label] += count
            body["billed_by_identity"] = dict(labels)
        if generations:
            body["generations"] = [record.attribution_json() for record in ledger.generations.values()]
        return body

    def reset(self) -> None:
        self.requests.clear()
        self.not_served_routes = 0
        self.rate_limited = 0
        self.faults.clear()
        self.in_flight_max = self.in_flight
