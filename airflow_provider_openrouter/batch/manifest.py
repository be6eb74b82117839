"""The batch manifest: the small typed summary a batch run returns through XCom (never the rows themselves).

It is also the output's commit marker (``<output>.manifest.json``) and, in ``summary()`` form, the extra of
the Asset event on the operator's outlets.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from airflow_provider_openrouter.batch.outputs import (
    FAILED,
    INVALID_OUTPUT,
    NOT_SENT,
    OUTCOME_UNKNOWN,
    SUCCEEDED,
    record_cost,
)
from airflow_provider_openrouter.batch.vectors import VectorFile
from airflow_provider_openrouter.models import Money, plain_decimal, register_with_serde

BatchMode = Literal["batch_api", "concurrent"]


class OutcomeCounts(BaseModel):
    """Rows by outcome; the five add up to ``total``. ``invalid_output``: paid answers that did not validate
    into the run's ``output_type``."""

    model_config = ConfigDict(frozen=True)

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    outcome_unknown: int = 0
    not_sent: int = 0
    invalid_output: int = 0


class TokenCounts(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class BatchTimings(BaseModel):
    """Seconds spent in each phase of this attempt; ``wait_seconds`` is the deferred Batch API wait."""

    model_config = ConfigDict(frozen=True)

    started_at: datetime
    finished_at: datetime
    wall_seconds: float
    submit_seconds: float = 0.0
    wait_seconds: float = 0.0
    landing_seconds: float = 0.0


class BatchManifest(BaseModel):
    """What a batch run did. The XCom return value of ``OpenRouterBatchCompletionOperator``.

    ``cost`` is the exact sum (USD, Decimal) of the per-row costs OpenRouter reported, including rows finished
    by earlier attempts (``resumed_rows`` of them were read from the checkpoint, not requested again).
    ``requests_sent`` counts the requests this attempt sent (Batch API: submissions). ``vectors`` is where an
    embeddings run wrote its vectors (``None`` for chat rows).
    """

    model_config = ConfigDict(frozen=True)

    mode: BatchMode
    mode_reason: str
    model: str
    input: str
    output_path: str
    identity: str
    counts: OutcomeCounts
    tokens: TokenCounts
    cost: Money
    batch_ids: list[str] = Field(default_factory=list)
    resumed_rows: int = 0
    requests_sent: int = 0
    shard_index: int = 0
    shard_count: int = 1
    output_rows: int = 0
    output_sha256: str = ""
    vectors: VectorFile | None = None
    timings: BatchTimings

    @property
    def failed_fraction(self) -> float:
        """Rows that did not succeed, as a fraction of all rows (0.0 for an empty count)."""
        total = self.counts.total
        return (total - self.counts.succeeded) / total if total else 0.0

    def summary(self) -> dict[str, Any]:
        """A flat JSON-safe dict for an Asset event's extra (cost as a plain decimal string: exact)."""
        return {
            "mode": self.mode,
            "model": self.model,
            "output_path": self.output_path,
            "total": self.counts.total,
            "succeeded": self.counts.succeeded,
            "failed": self.counts.failed,
            "outcome_unknown": self.counts.outcome_unknown,
            "not_sent": self.counts.not_sent,
            "invalid_output": self.counts.invalid_output,
            "total_tokens": self.tokens.total_tokens,
            "cost": plain_decimal(self.cost),
            "batch_ids": list(self.batch_ids),
            "wall_seconds": round(self.timings.wall_seconds, 3),
        }


class Tally:
    """Running totals over output records; the engine feeds it every record it writes."""

    def __init__(self) -> None:
        self.outcomes = {SUCCEEDED: 0, FAILED: 0, OUTCOME_UNKNOWN: 0, NOT_SENT: 0, INVALID_OUTPUT: 0}
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.total_tokens = 0
        self.cost = Decimal(0)

    def add(self, record: dict[str, Any]) -> None:
        self.outcomes[record["status"]] += 1
        usage = record.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens += _int(usage.get("prompt_tokens"))
            self.completion_tokens += _int(usage.get("completion_tokens"))
            self.total_tokens += _int(usage.get("total_tokens"))
        self.cost += record_cost(record)

    def add_all(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.add(record)

    @property
    def done(self) -> int:
        return sum(self.outcomes.values())

    def counts(self) -> OutcomeCounts:
        return OutcomeCounts(total=self.done, **self.outcomes)

    def tokens(self) -> TokenCounts:
        return TokenCounts(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.total_tokens,
        )


def _int(value: Any) -> int:
    return value if type(value) is int else 0  # not a bool, nor any other int subclass


register_with_serde(BatchManifest, OutcomeCounts, TokenCounts, BatchTimings)
