"""The concurrent engine against the emulator over real HTTP: faults, billing, resume, account errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import LOG, make_job

from airflow_provider_openrouter.batch.concurrent import RunnerSettings, run_job
from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.exceptions import OpenRouterInsufficientCreditsError
from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook

FAST = RunnerSettings(concurrency=8, row_retries=3, backoff=0.05, progress_interval=3600)


def _output(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_with_20_percent_error_envelopes_every_row_succeeds_once_and_nothing_is_billed_twice(
    emulator: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    # OpenRouter's JSON error envelope is not billed (zero-completion insurance), a 500 included: every row
    # hit by one is sent again until it succeeds, and paid for once.
    rows = 200
    emulator.configure(fault_rate=0.2, fault_statuses=[500, 502, 503, 529])
    job = make_job(hook, tmp_path / "out.jsonl", [f"question {n}" for n in range(rows)])
    job.open()
    manifest, runner = run_job(job, hook, FAST, LOG, mode_reason="test")

    lines = _output(tmp_path / "out.jsonl")
    assert runner.stop_error is None
    assert [line["custom_id"] for line in lines] == [f"row-{n + 1}" for n in range(rows)]
    assert {line["status"] for line in lines} == {"succeeded"}
    stats = emulator.stats()
    assert stats["faults"].get("500", 0) > 0 and sum(stats["faults"].values()) > 20  # the faults happened
    assert stats["billed_generations"] == rows
    assert stats["duplicate_billed"] == 0
    assert manifest.counts.succeeded == rows
    # The manifest's cost is the exact sum of the per-row costs, which add up to the emulator's ledger.
    assert str(manifest.cost.normalize()) == str(type(manifest.cost)(stats["total_cost"]).normalize())


def test_with_524_in_the_fault_mix_only_the_rows_it_hit_are_outcome_unknown(
    emulator: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    # A 524 is Cloudflare's edge timeout: the origin may still be generating, so the row may have been
    # billed. It is recorded outcome_unknown and never sent again; the envelope errors are resent.
    rows = 200
    emulator.configure(fault_rate=0.2, fault_statuses=[500, 502, 503, 524, 529])
    job = make_job(hook, tmp_path / "out.jsonl", [f"question {n}" for n in range(rows)])
    job.open()
    manifest, _ = run_job(job, hook, FAST, LOG, mode_reason="test")

    lines = _output(tmp_path / "out.jsonl")
    assert [line["custom_id"] for line in lines] == [f"row-{n + 1}" for n in range(rows)]
    unknown = [line for line in lines if line["status"] != "succeeded"]
    stats = emulator.stats()
    assert len(unknown) == stats["faults"].get("524", 0) > 0, stats["faults"]
    assert {line["status"] for line in unknown} == {"outcome_unknown"}
    assert {line["error"]["status"] for line in unknown} == {524}
    assert all(line["error"]["billed"] is None for line in unknown)
    assert stats["billed_generations"] == rows - len(unknown)
    assert stats["duplicate_billed"] == 0
    assert manifest.counts.succeeded == rows - len(unknown)
    assert manifest.counts.outcome_unknown == len(unknown)


def test_with_the_full_fault_mix_and_retry_ambiguous_every_row_succeeds_once(
    emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in emulator.airflow_conn_env(requests_per_minute=0, retry_ambiguous=True).items():
        monkeypatch.setenv(name, value)
    hook = OpenRouterHook()
    rows = 60
    emulator.configure(fault_rate=0.2, fault_statuses=[500, 502, 503, 524, 529])
    job = make_job(hook, tmp_path / "out.jsonl", [f"question {n}" for n in range(rows)])
    job.open()
    manifest, _ = run_job(job, hook, FAST, LOG, mode_reason="test")

    lines = _output(tmp_path / "out.jsonl")
    assert {line["status"] for line in lines} == {"succeeded"}
    stats = emulator.stats()
    assert stats["faults"].get("500", 0) + stats["faults"].get("524", 0) > 0
    assert stats["billed_generations"] == rows
    assert stats["duplicate_billed"] == 0
    assert manifest.counts.succeeded == rows


def test_a_rerun_of_the_same_run_requests_nothing_again(
    emulator: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    prompts = [f"p{n}" for n in range(12)]
    first = make_job(hook, tmp_path / "out.jsonl", prompts)
    first.open()
    run_job(first, hook, FAST, LOG, mode_reason="test")
    before = emulator.stats()

    again = make_job(hook, tmp_path / "out.jsonl", prompts)
    again.open()
    manifest, _ = run_job(again, hook, FAST, LOG, mode_reason="test")

    after = emulator.stats()
    assert after["requests"].get("POST /chat/completions") == before["requests"].get("POST /chat/completions")
    assert manifest.resumed_rows == 12
    assert manifest.requests_sent == 0
    assert manifest.counts.succeeded == 12


def test_a_new_run_over_the_same_output_starts_afresh(
    emulator: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    first = make_job(hook, tmp_path / "out.jsonl", ["a", "b"], run_key="dag/task/monday/-1")
    first.open()
    run_job(first, hook, FAST, LOG, mode_reason="test")
    second = make_job(hook, tmp_path / "out.jsonl", ["a", "b"], run_key="dag/task/tuesday/-1")
    with pytest.raises(Exception, match="belongs to a different batch"):
        second.open()


def test_insufficient_credits_stop_the_run_and_label_unsent_rows(
    emulator: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    emulator.configure(credits="0")
    job = make_job(hook, tmp_path / "out.jsonl", [f"p{n}" for n in range(10)])
    job.open()
    manifest, runner = run_job(job, hook, RunnerSettings(concurrency=2), LOG, mode_reason="test")
    assert isinstance(runner.stop_error, OpenRouterInsufficientCreditsError)
    lines = _output(tmp_path / "out.jsonl")
    assert len(lines) == 10
    assert {line["status"] for line in lines} == {"not_sent"}
    assert manifest.counts.not_sent == 10
    assert emulator.stats()["billed_generations"] == 0

    emulator.configure(credits="100")  # the user adds credits; the retry sends every row
    retry = make_job(hook, tmp_path / "out.jsonl", [f"p{n}" for n in range(10)])
    retry.open()
    manifest, runner = run_job(retry, hook, FAST, LOG, mode_reason="test")
    assert runner.stop_error is None
    assert manifest.counts.succeeded == 10
    assert emulator.stats()["billed_generations"] == 10


def test_a_lost_answer_is_recorded_and_not_resent_until_asked(
    emulator: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    rows = ["fine", "[[emulator: fault=reset]] lost after billing", "also fine"]
    job = make_job(hook, tmp_path / "out.jsonl", rows)
    job.open()
    manifest, _ = run_job(job, hook, FAST, LOG, mode_reason="test")
    statuses = [line["status"] for line in _output(tmp_path / "out.jsonl")]
    assert statuses == ["succeeded", "outcome_unknown", "succeeded"]
    assert manifest.counts.outcome_unknown == 1
    sent = emulator.stats()["requests"]["POST /chat/completions"]

    again = make_job(hook, tmp_path / "out.jsonl", rows)
    again.open()
    run_job(again, hook, FAST, LOG, mode_reason="test")
    assert emulator.stats()["requests"]["POST /chat/completions"] == sent

    resend = make_job(hook, tmp_path / "out.jsonl", rows, resend_unknown=True)
    resend.open()
    manifest, _ = run_job(resend, hook, FAST, LOG, mode_reason="test")
    assert sum(emulator.stats()["requests"]["POST /chat/completions"].values()) == sum(sent.values()) + 1


def test_an_object_store_output_resumes_on_another_machine(
    emulator: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io.store import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach("memory", fs=MemoryFileSystem())
    output = "memory://bucket/remote-resume/answers.jsonl"
    prompts = [f"p{n}" for n in range(10)]
    first = make_job(hook, output, prompts, checkpoint_dir=tmp_path / "pod-1")
    first.open()
    run_job(first, hook, FAST, LOG, mode_reason="test")
    sent = emulator.stats()["requests"]["POST /chat/completions"]

    second = make_job(hook, output, prompts, checkpoint_dir=tmp_path / "pod-2")  # a new pod, empty disk
    second.open()
    manifest, _ = run_job(second, hook, FAST, LOG, mode_reason="test")
    assert emulator.stats()["requests"]["POST /chat/completions"] == sent
    assert manifest.resumed_rows == 10
    lines = ObjectStoragePath(output).read_text().splitlines()
    assert [json.loads(line)["custom_id"] for line in lines] == [f"row-{n + 1}" for n in range(10)]


def test_each_worker_sends_through_its_own_connection_and_never_shares_it(
    emulator: RunningEmulator, hook: OpenRouterHook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The transport keeps one keep-alive connection per lane; a lane used by two requests at once would make
    # one wait for the other (or, without its lock, read the other's answer).
    from airflow_provider_openrouter.transport import AsyncOpenRouterTransport

    lanes_used: Counter[int] = Counter()
    busy: set[int] = set()
    shared: list[int] = []
    real_post_once = AsyncOpenRouterTransport.post_once

    async def recording(self: AsyncOpenRouterTransport, *args: Any, lane: int = 0, **kwargs: Any) -> Any:
        if lane in busy:
            shared.append(lane)
        busy.add(lane)
        lanes_used[lane] += 1
        try:
            return await real_post_once(self, *args, lane=lane, **kwargs)
        finally:
            busy.discard(lane)

    monkeypatch.setattr(AsyncOpenRouterTransport, "post_once", recording)
    concurrency = 24
    job = make_job(hook, tmp_path / "out.jsonl", [f"question {n}" for n in range(4 * concurrency)])
    job.open()
    manifest, _ = run_job(job, hook, RunnerSettings(concurrency=concurrency), LOG, mode_reason="test")
    assert manifest.counts.succeeded == 4 * concurrency
    assert sorted(lanes_used) == list(range(concurrency))
    assert shared == []
