"""The engine's one pacer and resend queue, and its grouped mirror uploads, against the emulator."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import LOG, make_job

from airflow_provider_openrouter.batch.concurrent import RunnerSettings, run_job
from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook

CHAT = "POST /chat/completions"


def _sent(emulator: RunningEmulator) -> int:
    return sum(emulator.stats()["requests"].get(CHAT, {}).values())


def test_persistent_429s_slow_the_run_and_no_row_passes_its_attempt_cap(
    emulator: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    rows, cap = 40, 1 + hook.settings.max_retries + 3
    emulator.configure(fault_rate=1.0, fault_statuses=[429])  # every request is rate limited
    job = make_job(hook, tmp_path / "out.jsonl", [f"question {n}" for n in range(rows)])
    job.open()
    settings = RunnerSettings(
        concurrency=8, row_retries=3, backoff=0.02, max_backoff=0.1, progress_interval=3600
    )
    result: dict[str, Any] = {}
    run = threading.Thread(
        target=lambda: result.update(
            zip(("manifest", "runner"), run_job(job, hook, settings, LOG, mode_reason="t"), strict=True)
        )
    )
    run.start()
    try:
        deadline = time.monotonic() + 60
        while emulator.stats()["faults"].get("429", 0) < 20:  # the limit persists through several rounds
            assert time.monotonic() < deadline, "the run sent fewer requests than expected"
            time.sleep(0.01)  # polling interval of a condition with a deadline
    finally:
        emulator.configure(fault_rate=0.0)  # the limit lifts
        run.join(timeout=120)
    assert not run.is_alive()

    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    stats = emulator.stats()
    rate_limited = stats["faults"]["429"]
    assert {line["status"] for line in lines} == {"succeeded"}
    assert max(line["attempts"] for line in lines) <= cap
    assert sum(line["attempts"] for line in lines) == _sent(emulator) == rows + rate_limited
    # Only the first wave of 8 and then one probe at a time met the limit, not every row up to its cap.
    assert rate_limited < rows * (cap - 1) // 4
    assert result["runner"].rate_limited == rate_limited
    assert stats["billed_generations"] == rows and stats["duplicate_billed"] == 0


def test_a_row_answered_with_an_error_envelope_every_time_is_sent_exactly_its_attempt_cap(
    emulator: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    prompts = ["fine", "[[emulator: fault=502]] always failing", "fine too"]
    job = make_job(hook, tmp_path / "out.jsonl", prompts)
    job.open()
    settings = RunnerSettings(
        concurrency=2, row_retries=1, backoff=0.01, max_backoff=0.02, progress_interval=3600
    )
    manifest, _ = run_job(job, hook, settings, LOG, mode_reason="t")

    by_id = {json.loads(line)["custom_id"]: json.loads(line) for line in (tmp_path / "out.jsonl").open()}
    cap = 1 + hook.settings.max_retries + 1
    assert emulator.stats()["requests"][CHAT] == {"200": 2, "502": cap}
    assert by_id["row-2"]["status"] == "failed" and by_id["row-2"]["attempts"] == cap
    assert by_id["row-2"]["error"]["billed"] is False
    assert manifest.requests_sent == 2 + cap


def test_a_groups_sending_records_reach_the_mirror_before_its_first_request(
    emulator: RunningEmulator, hook: OpenRouterHook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.io.store import attach
    from fsspec.implementations.memory import MemoryFileSystem

    from airflow_provider_openrouter.batch.checkpoint import Mirror

    uploads: list[tuple[int, bytes]] = []  # (requests the emulator had answered before it, segment)
    real_upload = Mirror.upload

    def noting_upload(mirror: Mirror, data: Any) -> None:
        if isinstance(data, bytes):  # a segment of the run (the compaction at close streams a file)
            uploads.append((_sent(emulator), data))
        real_upload(mirror, data)

    monkeypatch.setattr(Mirror, "upload", noting_upload)
    attach("memory", fs=MemoryFileSystem())
    rows, concurrency = 60, 8
    output = "memory://bucket/grouped/answers.jsonl"
    job = make_job(hook, output, [f"p{n}" for n in range(rows)], checkpoint_dir=tmp_path)
    job.open()
    manifest, _ = run_job(
        job, hook, RunnerSettings(concurrency=concurrency, progress_interval=3600), LOG, mode_reason="t"
    )

    assert manifest.counts.succeeded == rows
    announced = 0  # rows whose sending record the mirror held before the upload began
    group_uploads = 0
    for requests_before, segment in uploads:
        assert requests_before <= announced, "a request reached the emulator before its sending record"
        sending = [r for r in map(json.loads, segment.splitlines()) if r["status"] == "sending"]
        announced += len(sending)
        group_uploads += bool(sending)
    assert announced == rows
    assert group_uploads == -(-rows // concurrency)  # one upload per group of rows, not one per row
