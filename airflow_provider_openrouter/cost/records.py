"""One audited generation: :class:`CostRecord`, built from ``GET /generation`` or from an answer's usage.

The record's fields are the audit table's columns (:mod:`airflow_provider_openrouter.cost.schema`), in order.
Money is :class:`~decimal.Decimal` from the JSON number's shortest text (never float arithmetic).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from airflow_provider_openrouter.cost.attribution import attribution_from_metadata, split_session_id
from airflow_provider_openrouter.models import Generation, plain_decimal

SOURCES = ("generation", "usage")


@dataclasses.dataclass(slots=True)
class Attribution:
    """Who made a generation, as far as the audit knows it (``None``: unknown)."""

    dag_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None
    custom_id: str | None = None

    def fields(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "task_id": self.task_id,
            "run_id": self.run_id,
            "map_index": self.map_index,
            "try_number": self.try_number,
            "custom_id": self.custom_id,
        }

    def with_custom_id(self, custom_id: str) -> Attribution:
        return Attribution(self.dag_id, self.task_id, self.run_id, self.map_index, self.try_number, custom_id)

    def filled_from(self, other: Attribution) -> Attribution:
        """This attribution with its unknown fields taken from ``other``."""
        theirs = other.fields()
        return Attribution(
            **{name: value if value is not None else theirs[name] for name, value in self.fields().items()}
        )


@dataclasses.dataclass(slots=True)
class CostRecord:
    """One row of the audit table. ``day`` is the UTC date of ``created_at`` (the audit's day when the source
    does not say when the generation ran)."""

    generation_id: str
    day: str
    created_at: str | None
    model: str | None
    provider: str | None
    dag_id: str | None
    task_id: str | None
    run_id: str | None
    map_index: int | None
    try_number: int | None
    custom_id: str | None
    session_id: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    reasoning_tokens: int | None
    cached_tokens: int | None
    cost: Decimal | None
    upstream_cost: Decimal | None
    cache_discount: Decimal | None
    is_byok: bool | None
    latency_ms: float | None
    generation_time_ms: float | None
    source: str
    audited_at: str

    def as_dict(self) -> dict[str, Any]:
        """The fields by name, values as they are (a shallow ``dataclasses.asdict``, which deep-copies)."""
        return {name: getattr(self, name) for name in COLUMNS}

    def as_row(self) -> tuple[Any, ...]:
        """The SQL row: money as plain decimal text, booleans as 0/1."""
        return tuple([_sql_value(getattr(self, name)) for name in COLUMNS])

    def as_json(self) -> dict[str, Any]:
        """A JSON-safe dict (files): money as plain decimal text."""
        return {name: _json_value(getattr(self, name)) for name in COLUMNS}


COLUMNS: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(CostRecord))
MONEY_COLUMNS = frozenset({"cost", "upstream_cost", "cache_discount"})


def _sql_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain_decimal(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _json_value(value: Any) -> Any:
    return plain_decimal(value) if isinstance(value, Decimal) else value


def money(value: Any) -> Decimal | None:
    """An amount as an exact Decimal: from a Decimal, a JSON number (its shortest text) or decimal text."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def utc_day(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


def _day_of(created_at: str | None, fallback: datetime) -> str:
    if created_at:
        try:
            return utc_day(datetime.fromisoformat(created_at.replace("Z", "+00:00")))
        except ValueError:
            pass
    return utc_day(fallback)


def _first(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)


def from_generation(generation: Generation, hint: Attribution, audited_at: datetime) -> CostRecord:
    """The record of a ``GET /generation`` answer. Attribution from the generation's own ``metadata`` and
    ``session_id`` (what :mod:`~airflow_provider_openrouter.cost.attribution` sent) wins over ``hint`` (what
    the source XCom said)."""
    extra = generation.model_extra or {}
    sent = attribution_from_metadata(extra.get("metadata"))
    dag_id, run_id = split_session_id(generation.session_id)
    known = Attribution(**sent).filled_from(Attribution(dag_id=dag_id, run_id=run_id)).filled_from(hint)
    return CostRecord(
        generation_id=generation.id,
        day=_day_of(generation.created_at, audited_at),
        created_at=generation.created_at,
        model=generation.model,
        provider=generation.provider_name,
        session_id=generation.session_id,
        prompt_tokens=_first(generation.native_tokens_prompt, generation.tokens_prompt),
        completion_tokens=_first(generation.native_tokens_completion, generation.tokens_completion),
        reasoning_tokens=generation.native_tokens_reasoning,
        cached_tokens=generation.native_tokens_cached,
        cost=generation.total_cost,
        upstream_cost=generation.upstream_inference_cost,
        cache_discount=generation.cache_discount,
        is_byok=generation.is_byok,
        latency_ms=_number(generation.latency),
        generation_time_ms=_number(generation.generation_time),
        source="generation",
        audited_at=audited_at.isoformat(),
        **known.fields(),
    )


def from_usage(
    generation_id: str,
    usage: Mapping[str, Any],
    *,
    model: str | None,
    provider: str | None,
    created: int | float | None,
    hint: Attribution,
    audited_at: datetime,
) -> CostRecord:
    """The record of an answer's own ``usage`` (a chat result or a batch output row): free, but without
    latency, cache discount or (for batch rows) the provider."""
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    cost_details = usage.get("cost_details") or {}
    created_at = (
        datetime.fromtimestamp(created, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        if isinstance(created, int | float) and not isinstance(created, bool) and created > 0
        else None
    )
    byok = usage.get("is_byok")
    return CostRecord(
        generation_id=generation_id,
        day=_day_of(created_at, audited_at),
        created_at=created_at,
        model=model,
        provider=provider,
        session_id=None,
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
        reasoning_tokens=_int(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, Mapping)
        else None,
        cached_tokens=_int(prompt_details.get("cached_tokens"))
        if isinstance(prompt_details, Mapping)
        else None,
        cost=money(usage.get("cost")),
        upstream_cost=money(cost_details.get("upstream_inference_cost"))
        if isinstance(cost_details, Mapping)
        else None,
        cache_discount=None,
        is_byok=byok if isinstance(byok, bool) else None,
        latency_ms=None,
        generation_time_ms=None,
        source="usage",
        audited_at=audited_at.isoformat(),
        **hint.fields(),
    )
