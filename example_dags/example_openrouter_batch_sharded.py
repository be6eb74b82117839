"""A batch too big for one worker: shard it, run the shards with ``.expand_kwargs()``, add up the manifests.

``plan_shards`` describes N round-robin shards of one input: each shard task reads the same JSONL, takes every
N-th row, writes its own ``part-0000k-of-0000N.jsonl`` with its own checkpoint, and resumes by itself. The
connection's requests-per-minute budget is split among the shards that run at once, so together they stay
within the account's limit; a pool caps how many run at once (tell the plan with ``concurrent_shards``).

On CeleryExecutor or KubernetesExecutor the shards run on different workers.
Connection: ``openrouter_default``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from airflow.sdk import ObjectStoragePath, dag, task

from airflow_provider_openrouter.batch.manifest import BatchManifest
from airflow_provider_openrouter.batch.sharding import plan_shards
from airflow_provider_openrouter.operators import OpenRouterBatchCompletionOperator


@dag(
    schedule=None,
    catchup=False,
    tags=["openrouter", "example", "batch"],
    params={
        "root": "file:///tmp/openrouter-batch-sharded",
        "rows": 120,
        "shards": 4,
        "requests_per_minute": 600,
        "model": "openai/gpt-4o-mini",
    },
)
def example_openrouter_batch_sharded() -> None:
    @task
    def write_input(run_id: str | None = None, params: dict | None = None) -> str:
        """Stands in for the real input: one product per line."""
        assert params is not None
        path = ObjectStoragePath(f"{params['root']}/{run_id}/products.jsonl")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as handle:
            for n in range(int(params["rows"])):
                row = {"custom_id": f"sku-{n}", "prompt": f"Write a 10-word tagline for product {n}."}
                handle.write(json.dumps(row) + "\n")
        return str(path)

    @task
    def plan(input_path: str, params: dict | None = None) -> list[dict[str, Any]]:
        assert params is not None
        shards = plan_shards(
            int(params["shards"]),
            output_prefix=input_path.rsplit("/", 1)[0] + "/taglines",
            requests_per_minute=float(params["requests_per_minute"]),
        )
        return [dict(shard) for shard in shards]

    source = write_input()
    taglines = OpenRouterBatchCompletionOperator.partial(
        task_id="taglines",
        model="{{ params.model }}",
        mode="concurrent",
        input_path=source,
        max_tokens=30,
        concurrency=8,
    ).expand_kwargs(plan(source))

    @task
    def total(manifests: list[BatchManifest]) -> None:
        rows = sum(manifest.counts.total for manifest in manifests)
        succeeded = sum(manifest.counts.succeeded for manifest in manifests)
        cost = sum((manifest.cost for manifest in manifests), start=Decimal(0))
        print(f"{len(manifests)} shards: {succeeded}/{rows} rows, {cost} USD")
        for manifest in sorted(manifests, key=lambda m: m.shard_index):
            print(
                f"  shard {manifest.shard_index}: {manifest.counts.succeeded} rows -> {manifest.output_path}"
            )

    total(taglines.output)


example_openrouter_batch_sharded()
