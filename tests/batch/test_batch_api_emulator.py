"""The Batch API against the emulator: submit, wait in the trigger, land; re-attach, never resubmit."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import LOG, MODEL, make_job

from airflow_provider_openrouter.batch.batch_api import BatchApiClient, load_state
from airflow_provider_openrouter.batch.engine import BatchJob
from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.exceptions import (
    OpenRouterAuthenticationError,
    OpenRouterError,
    OpenRouterOutcomeUnknownError,
    OpenRouterPermissionError,
    OpenRouterRateLimitError,
    OpenRouterUpstreamError,
)
from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook
from airflow_provider_openrouter.operators.batch import OpenRouterBatchCompletionOperator
from airflow_provider_openrouter.transport import OpenRouterTransport
from airflow_provider_openrouter.triggers.batch import OpenRouterBatchTrigger


def _wait(batch_ids: list[str], *, end_time: float | None = None, poll: float = 0.05) -> dict[str, Any]:
    """Run the trigger to its one event, as the triggerer would."""
    trigger = OpenRouterBatchTrigger("openrouter_default", batch_ids, poll, end_time or time.time() + 60)

    async def collect() -> list[Any]:
        return [event async for event in trigger.run()]

    events = asyncio.run(collect())
    assert len(events) == 1
    return events[0].payload


def _post_batches(emulator: RunningEmulator) -> int:
    return sum(emulator.stats()["requests"].get("POST /batches", {}).values())


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _land(job: BatchJob, hook: OpenRouterHook) -> Any:
    client = BatchApiClient(job, hook.transport, log=LOG)
    client.land_all()
    return job.finish(mode="batch_api", mode_reason="test", requests_sent=0, batch_ids=client.state.batch_ids)


@pytest.fixture
def fast_batches(emulator: RunningEmulator) -> RunningEmulator:
    emulator.configure(batch_duration_s=0.3)
    return emulator


def test_submit_wait_and_land_in_chunks(
    fast_batches: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    rows = [{"custom_id": f"q{n}", "prompt": f"question {n}"} for n in range(10)]
    job = make_job(hook, tmp_path / "out.jsonl", rows)
    job.open()
    client = BatchApiClient(job, hook.transport, max_requests=4, log=LOG)
    submitted: list[list[str]] = []
    batch_ids = client.submit_all(on_submitted=submitted.append)
    assert len(batch_ids) == 3  # 4 + 4 + 2 requests
    assert submitted[-1] == batch_ids
    assert [len(ids) for ids in submitted] == [1, 2, 3]  # each id announced as soon as it exists

    event = _wait(batch_ids)
    assert event["status"] == "success"
    assert event["reason"] == "completed"
    assert set(event["statuses"].values()) == {"completed"}

    manifest = _land(job, hook)
    lines = _lines(tmp_path / "out.jsonl")
    assert [line["custom_id"] for line in lines] == [f"q{n}" for n in range(10)]
    assert {line["status"] for line in lines} == {"succeeded"}
    assert all(line["generation_id"] and line["text"] for line in lines)
    stats = fast_batches.stats()
    assert _post_batches(fast_batches) == 3
    assert stats["billed_generations"] == 10
    assert str(manifest.cost.normalize()) == str(type(manifest.cost)(stats["total_cost"]).normalize())
    assert manifest.batch_ids == batch_ids


def test_a_retry_re_attaches_to_submitted_batches(
    fast_batches: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    rows = [f"p{n}" for n in range(6)]
    first = make_job(hook, tmp_path / "out.jsonl", rows)
    first.open()
    batch_ids = BatchApiClient(first, hook.transport, log=LOG).submit_all()
    first.opened.close()

    retry = make_job(hook, tmp_path / "out.jsonl", rows)  # a fresh worker, same run
    retry.open()
    assert BatchApiClient(retry, hook.transport, log=LOG).submit_all() == batch_ids
    assert _post_batches(fast_batches) == 1
    assert _wait(batch_ids)["status"] == "success"
    manifest = _land(retry, hook)
    assert manifest.counts.succeeded == 6


def _attempt(hook: OpenRouterHook, output: Path, rows: list[Any]) -> tuple[list[str], Any]:
    """One task attempt in batch_api mode: submit (or re-attach), wait in the trigger, land."""
    job = make_job(hook, output, rows)
    job.open()
    batch_ids = BatchApiClient(job, hook.transport, log=LOG).submit_all()
    assert _wait(batch_ids)["status"] == "success"
    return batch_ids, _land(job, hook)


@pytest.mark.parametrize(
    ("outcome", "marked", "first_attempt"),
    [
        ("failed", 1, ["failed", "failed", "failed", "failed"]),
        ("expired", 2, ["succeeded", "succeeded", "failed", "failed"]),
    ],
)
def test_a_retry_submits_again_exactly_the_rows_an_ended_batch_never_ran(
    fast_batches: RunningEmulator,
    hook: OpenRouterHook,
    tmp_path: Path,
    outcome: str,
    marked: int,
    first_attempt: list[str],
) -> None:
    rows = [f"question {n}" for n in range(4)]
    rows[marked] = f"[[emulator: batch={outcome}, times=1]] {rows[marked]}"  # only the first batch ends so
    output = tmp_path / "out.jsonl"

    first_ids, first = _attempt(hook, output, rows)
    assert [line["status"] for line in _lines(output)] == first_attempt
    assert all(line["error"]["billed"] is False for line in _lines(output) if line["status"] == "failed")
    assert first.counts.succeeded == first_attempt.count("succeeded")

    retry_ids, retry = _attempt(hook, output, rows)  # the task's retry: a fresh worker, same run
    assert retry_ids[: len(first_ids)] == first_ids and len(retry_ids) == len(first_ids) + 1
    resubmitted = hook.transport.get(f"/batches/{retry_ids[-1]}")
    assert resubmitted["request_counts"]["total"] == first_attempt.count("failed")  # only the rows never run
    assert [line["status"] for line in _lines(output)] == ["succeeded"] * 4
    assert [line["custom_id"] for line in _lines(output)] == [f"row-{n}" for n in range(1, 5)]
    assert retry.counts.succeeded == 4
    stats = fast_batches.stats()
    assert stats["billed_generations"] == 4 and stats["duplicate_billed"] == 0
    assert _post_batches(fast_batches) == 2


class LosesAnswers:
    """The real transport, but the answer to POST /batches is lost on the way back (the batch exists)."""

    def __init__(self, transport: OpenRouterTransport) -> None:
        self._transport = transport

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._transport.get(path, params)

    def post(self, path: str, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        self._transport.post(path, body, **kwargs)
        raise OpenRouterOutcomeUnknownError("connection reset after sending", request=f"POST {path}")


def test_a_submission_whose_answer_was_lost_is_adopted_not_resubmitted(
    fast_batches: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    job = make_job(hook, tmp_path / "out.jsonl", [f"p{n}" for n in range(5)])
    job.open()
    batch_ids = BatchApiClient(job, LosesAnswers(hook.transport), log=LOG).submit_all()
    assert len(batch_ids) == 1
    assert _post_batches(fast_batches) == 1
    assert load_state(job.spec.output_path, job.scanned.identity, job.spec.model).batch_ids == batch_ids
    assert _wait(batch_ids)["status"] == "success"
    assert _land(job, hook).counts.succeeded == 5


def test_a_submission_that_never_arrived_is_submitted_once_on_the_next_attempt(
    fast_batches: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    fast_batches.configure(fail_next={"POST /batches": ["reset"]})  # dropped before any batch exists
    rows = [f"p{n}" for n in range(4)]
    first = make_job(hook, tmp_path / "out.jsonl", rows)
    first.open()
    with pytest.raises(OpenRouterOutcomeUnknownError):
        BatchApiClient(first, hook.transport, log=LOG).submit_all()
    state = load_state(first.spec.output_path, first.scanned.identity, first.spec.model)
    assert [chunk.batch_id for chunk in state.chunks] == [None]  # the intent is kept for the next attempt
    first.opened.close()

    retry = make_job(hook, tmp_path / "out.jsonl", rows)
    retry.open()
    batch_ids = BatchApiClient(retry, hook.transport, log=LOG).submit_all()
    assert len(batch_ids) == 1
    assert fast_batches.stats()["batches"] == 1
    assert _wait(batch_ids)["status"] == "success"
    assert _land(retry, hook).counts.succeeded == 4


def test_per_request_errors_are_recorded_not_billed(
    fast_batches: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    rows = ["fine", "[[emulator: fault=503]] overloaded", "also fine"]
    job = make_job(hook, tmp_path / "out.jsonl", rows)
    job.open()
    batch_ids = BatchApiClient(job, hook.transport, log=LOG).submit_all()
    assert _wait(batch_ids)["status"] == "success"
    manifest = _land(job, hook)
    lines = _lines(tmp_path / "out.jsonl")
    assert [line["status"] for line in lines] == ["succeeded", "failed", "succeeded"]
    assert lines[1]["error"]["billed"] is False
    assert manifest.counts.failed == 1
    assert fast_batches.stats()["billed_generations"] == 2


def test_the_trigger_reports_a_deadline_and_the_batches_keep_running(
    emulator: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    emulator.configure(batch_duration_s=30)
    job = make_job(hook, tmp_path / "out.jsonl", ["p"])
    job.open()
    batch_ids = BatchApiClient(job, hook.transport, log=LOG).submit_all()
    event = _wait(batch_ids, end_time=time.time() + 0.2)
    assert (event["status"], event["reason"]) == ("error", "timeout")
    assert event["statuses"][batch_ids[0]] in ("validating", "in_progress")


def test_the_trigger_gives_up_on_an_unknown_batch(emulator: RunningEmulator) -> None:
    event = _wait(["batch_does_not_exist"])
    assert (event["status"], event["reason"]) == ("error", "permanent_error")
    assert "batch_does_not_exist" in event["message"]


def test_the_trigger_tolerates_transient_polling_errors(
    fast_batches: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    job = make_job(hook, tmp_path / "out.jsonl", ["p"])
    job.open()
    batch_ids = BatchApiClient(job, hook.transport, log=LOG).submit_all()
    fast_batches.configure(fail_next={"GET /batches": ["502", "503"]})
    assert _wait(batch_ids)["status"] == "success"
    assert fast_batches.stats()["faults"] == {"502": 1, "503": 1}


def test_the_trigger_reads_statuses_from_the_list_never_a_batch_with_its_results(
    fast_batches: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    # A terminal batch's GET /batches/{id} holds every result: parsing megabytes of them would stall the
    # triggerer's event loop, so the trigger reads the list (no results) and the worker fetches them.
    job = make_job(hook, tmp_path / "out.jsonl", [f"p{n}" for n in range(6)])
    job.open()
    batch_ids = BatchApiClient(job, hook.transport, max_requests=2, log=LOG).submit_all()
    assert _wait(batch_ids)["statuses"] == dict.fromkeys(batch_ids, "completed")
    requests = fast_batches.stats()["requests"]
    assert "GET /batches/{id}" not in requests
    assert sum(requests["GET /batches"].values()) >= 1


@pytest.mark.parametrize(
    ("answers", "reason", "error_class"),
    [
        (["401"], "permanent_error", OpenRouterAuthenticationError),
        (["403"], "permanent_error", OpenRouterPermissionError),
        (["503"] * 30, "polling_error", OpenRouterUpstreamError),
        (["429"] * 30, "polling_error", OpenRouterRateLimitError),
    ],
)
def test_an_error_event_carries_the_error_and_the_operator_raises_the_same_class(
    fast_batches: RunningEmulator,
    hook: OpenRouterHook,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    answers: list[str],
    reason: str,
    error_class: type[OpenRouterError],
) -> None:
    job = make_job(hook, tmp_path / "out.jsonl", ["p"])
    job.open()
    batch_ids = BatchApiClient(job, hook.transport, log=LOG).submit_all()
    # The trigger's transport gives up at once (its retry waits are not what this test is about).
    for name, value in fast_batches.airflow_conn_env(requests_per_minute=0, max_retries=0).items():
        monkeypatch.setenv(name, value)
    fast_batches.configure(fail_next={"GET /batches": answers})
    trigger = OpenRouterBatchTrigger("openrouter_default", batch_ids, 0.01, time.time() + 60, 2)

    async def collect() -> list[Any]:
        return [event async for event in trigger.run()]

    (event,) = asyncio.run(collect())
    payload = json.loads(json.dumps(event.payload))  # what the triggerer stores: JSON
    assert (payload["status"], payload["reason"]) == ("error", reason)
    assert payload["error"]["error_class"] == error_class.__name__
    assert payload["error"]["status"] == int(answers[0])

    operator = OpenRouterBatchCompletionOperator(
        task_id="batch", model=MODEL, inputs=["p"], output_path=str(tmp_path / "out.jsonl")
    )
    with pytest.raises(error_class) as raised:
        operator.execute_complete({"ti": None}, payload)  # type: ignore[arg-type]
    assert type(raised.value) is error_class
    assert raised.value.status == int(answers[0])
    assert raised.value.retryable == error_class.retryable


def test_the_trigger_serializes_ids_and_conn_id_only() -> None:
    trigger = OpenRouterBatchTrigger("my_conn", ["b1", "b2"], 30.0, 1_900_000_000.0)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_openrouter.triggers.batch.OpenRouterBatchTrigger"
    assert kwargs == {
        "openrouter_conn_id": "my_conn",
        "batch_ids": ["b1", "b2"],
        "poll_interval": 30.0,
        "end_time": 1_900_000_000.0,
        "max_consecutive_errors": 5,
    }
    assert OpenRouterBatchTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_an_input_past_the_batch_apis_limit_of_5000_requests_becomes_two_batches(
    fast_batches: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    job = make_job(hook, tmp_path / "out.jsonl", [f"q{n}" for n in range(5_001)])
    job.open()
    batch_ids = BatchApiClient(job, hook.transport, log=LOG).submit_all()  # the default chunk size
    assert fast_batches.stats()["requests"]["POST /batches"] == {"202": 2}
    sizes = [hook.transport.get(f"/batches/{batch_id}")["request_counts"]["total"] for batch_id in batch_ids]
    assert sizes == [5_000, 1]
