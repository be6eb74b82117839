"""A Batch API run defers to the triggerer while OpenRouter works, holds no worker slot, lands its results.

The emulator keeps each batch in progress for ``BATCH_DURATION_S``, long enough to observe the task instance
while it waits: it must be ``deferred`` (its worker process gone, its trigger assigned to the triggerer), and
the default pool must count it as deferred, not running. Then the triggerer's event resumes the task, which
writes one output line per input row; the emulator's accounting shows every row billed exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow_stack import wait_until

pytestmark = pytest.mark.e2e

DAG_ID = "e2e_batch_api"
TASK_ID = "batch"
ROWS = 12
BATCH_DURATION_S = 15.0
UNFINISHED = ("validating", "in_progress", "finalizing")


@pytest.fixture
def slow_batches(e2e_emulator: Any) -> Iterator[Any]:
    e2e_emulator.reset()
    e2e_emulator.configure(batch_duration_s=BATCH_DURATION_S)
    yield e2e_emulator
    e2e_emulator.reset()  # restores the startup settings


def _batch_status(emulator: Any, batch_id: str) -> str:
    response = requests.get(
        f"{emulator.base_url}/batches/{batch_id}",
        headers={"Authorization": f"Bearer {emulator.api_key}"},
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["status"])


def test_batch_api_task_defers_while_the_batch_runs_then_lands_results(
    airflow_stack: Any, slow_batches: Any, tmp_path: Path
) -> None:
    client = airflow_stack.client
    output_path = tmp_path / "classified.jsonl"
    client.wait_for_dag(DAG_ID)
    client.unpause(DAG_ID)
    run_id = client.trigger(DAG_ID, {"output_path": str(output_path), "rows": ROWS})

    def deferred_task() -> dict[str, Any] | None:
        ti = client.task_instance(DAG_ID, run_id, TASK_ID)
        if ti["state"] in ("success", "failed", "up_for_retry", "upstream_failed"):
            raise AssertionError(
                f"task ended ({ti['state']}) before it was seen deferred:\n"
                + airflow_stack.failure_report(DAG_ID, run_id)
            )
        # Deferred, and its trigger assigned to the running triggerer (that takes up to a second more).
        return ti if ti["state"] == "deferred" and ti["triggerer_job"] is not None else None

    waiting = wait_until(
        deferred_task, timeout=120, interval=0.25, what="the batch task to defer to the triggerer"
    )
    pool = client.request("GET", "/pools/default_pool")
    batch_ids = client.xcom_value(DAG_ID, run_id, TASK_ID, key="batch_ids")
    statuses = [_batch_status(slow_batches, batch_id) for batch_id in batch_ids]

    # While the batch is still being worked on, the task waits in the triggerer, not in a worker.
    assert batch_ids and all(status in UNFINISHED for status in statuses), statuses
    assert waiting["trigger"] is not None and waiting["trigger"]["classpath"].endswith(
        "OpenRouterBatchTrigger"
    )
    assert pool["running_slots"] == 0, pool
    assert pool["deferred_slots"] >= 1, pool

    run = client.wait_for_run(DAG_ID, run_id, timeout=180)
    assert run["state"] == "success", airflow_stack.failure_report(DAG_ID, run_id)
    finished = client.task_instance(DAG_ID, run_id, TASK_ID)
    assert finished["state"] == "success"
    assert finished["try_number"] == 1  # resumed by the trigger event, not retried
    assert all(_batch_status(slow_batches, batch_id) == "completed" for batch_id in batch_ids)

    lines = [json.loads(line) for line in output_path.read_text().splitlines()]
    assert [line["custom_id"] for line in lines] == [f"ticket-{i}" for i in range(ROWS)]
    assert {line["status"] for line in lines} == {"succeeded"}
    assert all(line["text"] for line in lines)

    manifest = client.xcom_value(DAG_ID, run_id, TASK_ID)
    assert manifest["__classname__"] == "airflow_provider_openrouter.batch.manifest.BatchManifest"
    data = manifest["__data__"]
    assert data["mode"] == "batch_api"
    assert data["batch_ids"] == batch_ids
    assert data["counts"]["succeeded"] == ROWS
    assert Decimal(data["cost"]) == sum(Decimal(str(line["cost"])) for line in lines)

    stats = slow_batches.stats()
    assert stats["billed_generations"] == ROWS
    assert stats["duplicate_billed"] == 0
    assert stats["batches"] == len(batch_ids)
    assert Decimal(stats["total_cost"]) == Decimal(data["cost"])

    # The trigger's own log, written by the triggerer process, sits next to the task attempt's log.
    trigger_logs = [
        p for p in airflow_stack.log_files() if f"dag_id={DAG_ID}" in p.parts and ".trigger." in p.name
    ]
    assert trigger_logs, "the triggerer wrote no log for this task"
