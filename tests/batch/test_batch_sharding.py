"""Shard descriptors for .expand_kwargs(): distinct outputs, and a rate budget that adds up."""

from __future__ import annotations

import pytest

from airflow_provider_openrouter.batch.errors import BatchInputError
from airflow_provider_openrouter.batch.sharding import plan_shards


def test_each_shard_gets_its_own_output_and_its_share_of_the_budget() -> None:
    shards = plan_shards(4, output_prefix="s3://bucket/out/2024-01-01/", requests_per_minute=600)
    assert [shard["output_path"] for shard in shards] == [
        f"s3://bucket/out/2024-01-01/part-{n:05d}-of-00004.jsonl" for n in range(4)
    ]
    assert [(shard["shard_index"], shard["shard_count"]) for shard in shards] == [(n, 4) for n in range(4)]
    assert sum(shard["requests_per_minute"] for shard in shards) == pytest.approx(600)


def test_a_pool_that_runs_fewer_shards_at_once_gets_a_larger_share_each() -> None:
    shards = plan_shards(10, output_prefix="/data/out", requests_per_minute=600, concurrent_shards=3)
    running_at_once = 3
    assert all(shard["requests_per_minute"] * running_at_once == pytest.approx(600) for shard in shards)


def test_without_a_budget_the_operator_divides_the_connections_limit() -> None:
    assert all("requests_per_minute" not in shard for shard in plan_shards(2, output_prefix="/o"))


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"shard_count": 0}, "shard_count must be a whole number >= 1"),
        ({"shard_count": 2, "concurrent_shards": 3}, "concurrent_shards must be between 1 and shard_count"),
        ({"shard_count": 2, "requests_per_minute": -1}, "requests_per_minute must be >= 0"),
    ],
)
def test_bad_shard_plans_are_refused(kwargs: dict[str, int], expected: str) -> None:
    with pytest.raises(BatchInputError, match=expected):
        plan_shards(output_prefix="/o", **kwargs)  # type: ignore[arg-type]
