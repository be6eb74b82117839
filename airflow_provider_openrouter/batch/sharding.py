"""Split one batch into N shards that ``.expand_kwargs()`` runs as N tasks, on as many workers.

A shard is a view, not a copy: every shard reads the same input and takes the rows whose 0-based index ``i``
has ``i % shard_count == shard_index`` (round robin, so shards are equal to within one row and no shard needs
the row count up front). Each shard writes its own output, checkpoint and manifest, and resumes by itself.

The rate budget: one connection's ``requests_per_minute`` is a limit for the account, but the client-side
limiter only sees one process. N shards running at once must each use 1/N of it. :func:`plan_shards` puts that
share in every descriptor; the operator applies it (and, given only ``shard_count``, divides the connection's
limit by ``shard_count`` itself). When an Airflow pool lets only K < N shards run at once, pass
``concurrent_shards=K`` so each running shard gets 1/K.

Example::

    shards = plan_shards(8, output_prefix="s3://bucket/out/{{ ds }}", requests_per_minute=600)
    OpenRouterBatchCompletionOperator.partial(
        task_id="classify", model=..., input_path="s3://bucket/in/{{ ds }}.jsonl", mode="concurrent"
    ).expand_kwargs(shards)
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

from airflow_provider_openrouter.batch.errors import BatchInputError


class ShardDescriptor(TypedDict):
    """Keyword arguments of one shard's ``OpenRouterBatchCompletionOperator`` (JSON-safe, for XCom)."""

    shard_index: int
    shard_count: int
    output_path: str
    requests_per_minute: NotRequired[float]


def shard_output_path(output_prefix: str, shard_index: int, shard_count: int) -> str:
    """``<prefix>/part-00003-of-00008.jsonl``: sortable, and says how many parts make the whole."""
    return f"{output_prefix.rstrip('/')}/part-{shard_index:05d}-of-{shard_count:05d}.jsonl"


def rate_share(requests_per_minute: float, running_shards: int) -> float:
    """One running shard's part of the connection's requests per minute (0 keeps the limiter off)."""
    if running_shards < 1:
        raise BatchInputError(f"running shards must be at least 1, got {running_shards}")
    return requests_per_minute / running_shards


def plan_shards(
    shard_count: int,
    *,
    output_prefix: str,
    requests_per_minute: float | None = None,
    concurrent_shards: int | None = None,
) -> list[ShardDescriptor]:
    """Describe ``shard_count`` shards; with ``requests_per_minute``, each gets its share of that budget."""
    if isinstance(shard_count, bool) or not isinstance(shard_count, int) or shard_count < 1:
        raise BatchInputError(f"shard_count must be a whole number >= 1, got {shard_count!r}")
    if concurrent_shards is not None and not 1 <= concurrent_shards <= shard_count:
        raise BatchInputError(
            f"concurrent_shards must be between 1 and shard_count ({shard_count}), got {concurrent_shards!r}"
        )
    if requests_per_minute is not None and requests_per_minute < 0:
        raise BatchInputError(f"requests_per_minute must be >= 0, got {requests_per_minute!r}")
    shards: list[ShardDescriptor] = []
    for shard_index in range(shard_count):
        descriptor = ShardDescriptor(
            shard_index=shard_index,
            shard_count=shard_count,
            output_path=shard_output_path(output_prefix, shard_index, shard_count),
        )
        if requests_per_minute is not None:
            descriptor["requests_per_minute"] = rate_share(
                requests_per_minute, concurrent_shards or shard_count
            )
        shards.append(descriptor)
    return shards
