"""Attribution of batch rows: each row's request names the task, the try and the row, in both modes, and the
try number (which changes between attempts) never changes the run's identity, so a retry still resumes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import MODEL, TaskInstanceStandIn, context_for

from airflow_provider_openrouter.batch.errors import BatchFailedRowsError
from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.exceptions import OpenRouterRequestError
from airflow_provider_openrouter.operators.batch import OpenRouterBatchCompletionOperator

try:
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 3.1: TaskDeferred is still in the core
    from airflow.exceptions import TaskDeferred


def _operator(tmp_path: Path, **kwargs: Any) -> OpenRouterBatchCompletionOperator:
    options: dict[str, Any] = {
        "task_id": "batch",
        "model": MODEL,
        "output_path": str(tmp_path / "out" / "result.jsonl"),
        "concurrency": 1,
        "progress_interval": 3600,
        "inputs": [{"custom_id": f"row-{n}", "prompt": f"question {n}"} for n in range(4)],
    }
    options.update(kwargs)
    return OpenRouterBatchCompletionOperator(**options)


def _expected(custom_id: str, try_number: int) -> dict[str, str]:
    return {
        "airflow_dag_id": "batch_tests",
        "airflow_task_id": "batch",
        "airflow_run_id": "manual__test",
        "airflow_try_number": str(try_number),
        "airflow_custom_id": custom_id,
    }


def _by_row(emulator: RunningEmulator) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for generation in emulator.generations():
        rows.setdefault((generation["metadata"] or {}).get("airflow_custom_id", "?"), []).append(generation)
    return rows


def test_every_concurrent_row_names_its_task_try_and_custom_id(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    _operator(tmp_path, mode="concurrent", attribution={"team": "search"}).execute(
        context_for(TaskInstanceStandIn())
    )

    rows = _by_row(emulator)
    assert sorted(rows) == [f"row-{n}" for n in range(4)]
    for custom_id, (generation,) in rows.items():
        assert generation["metadata"] == {**_expected(custom_id, 1), "team": "search"}
        assert generation["session_id"] == "batch_tests/manual__test"
        assert generation["trace"]["generation_name"] == custom_id


def test_attribution_false_sends_none(emulator: RunningEmulator, tmp_path: Path) -> None:
    _operator(tmp_path, mode="concurrent", attribution="false").execute(context_for(TaskInstanceStandIn()))

    generations = emulator.generations()
    assert len(generations) == 4
    assert all(g["metadata"] is None and g["session_id"] is None for g in generations)


def test_too_many_pairs_fail_before_any_row_is_sent(emulator: RunningEmulator, tmp_path: Path) -> None:
    # 16 slots: dag, task, run, try and custom_id take 5, so 12 pairs of the user's are one too many.
    pairs = {f"k{n}": "v" for n in range(12)}
    with pytest.raises(OpenRouterRequestError, match="parameter 'attribution'"):
        _operator(tmp_path, mode="concurrent", attribution=pairs).execute(context_for(TaskInstanceStandIn()))
    assert emulator.stats()["requests"].get("POST /chat/completions") is None


def test_a_second_try_resumes_the_checkpoint_and_bills_no_row_twice(
    emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No transport retries: the first row's 503 (answered, not billed) fails it on the first try.
    for name, value in emulator.airflow_conn_env(requests_per_minute=0, max_retries=0).items():
        monkeypatch.setenv(name, value)
    emulator.configure(fail_next={"POST /chat/completions": [503]})
    ti = TaskInstanceStandIn()
    with pytest.raises(BatchFailedRowsError):
        _operator(tmp_path, mode="concurrent", row_retries=0).execute(context_for(ti))
    first_identity = ti.xcoms["manifest"].identity

    ti.try_number = 2
    manifest = _operator(tmp_path, mode="concurrent", row_retries=0).execute(context_for(ti))

    assert manifest.identity == first_identity
    assert (manifest.requests_sent, manifest.counts.succeeded) == (1, 4)  # only the failed row again
    stats = emulator.stats(billed_by_identity=True)
    assert stats["billed_generations"] == 4
    # Per idempotency key, not per (key, body): the try number in the body differs between the two tries.
    assert sorted(stats["billed_by_identity"].values()) == [1, 1, 1, 1]
    rows = _by_row(emulator)
    tries = {
        custom_id: [g["metadata"]["airflow_try_number"] for g in found] for custom_id, found in rows.items()
    }
    assert tries == {"row-0": ["2"], "row-1": ["1"], "row-2": ["1"], "row-3": ["1"]}


def test_batch_api_requests_carry_the_fields_in_each_body(emulator: RunningEmulator, tmp_path: Path) -> None:
    emulator.configure(batch_duration_s=0.3)
    op = _operator(tmp_path, mode="batch_api", poll_interval=0.05)
    context = context_for(TaskInstanceStandIn())
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)

    async def wait() -> list[Any]:
        return [event async for event in deferred.value.trigger.run()]

    (event,) = asyncio.run(wait())
    manifest = op.execute_complete(context, event.payload)

    assert manifest.counts.succeeded == 4
    rows = _by_row(emulator)
    assert sorted(rows) == [f"row-{n}" for n in range(4)]
    for custom_id, found in rows.items():
        assert [g["metadata"] for g in found] == [_expected(custom_id, 1)]
