"""SIGKILL the worker in the middle of a concurrent batch, run again: no row billed twice, output whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from batch_helpers import LOG, make_job

from airflow_provider_openrouter.batch.concurrent import RunnerSettings, run_job
from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook

ROWS = 80
CONCURRENCY = 4
HERE = Path(__file__).parent


def _journal(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")[1:]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # the line being written right now
    return records


def _wait_for(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)  # polling interval of a condition with a deadline


def test_a_killed_worker_resumes_without_billing_any_row_twice(
    emulator: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    emulator.configure(latency_ms=150, latency_jitter_ms=50)
    output = tmp_path / "out.jsonl"
    checkpoint = tmp_path / "out.jsonl.checkpoint.jsonl"
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    worker = subprocess.Popen(
        [sys.executable, str(HERE / "batch_sigkill_worker.py"), str(output), str(ROWS), str(CONCURRENCY)],
        env=env,
    )
    try:

        def some_rows_finished() -> bool:
            finished = [r for r in _journal(checkpoint) if r.get("status") == "succeeded"]
            return len(finished) >= 12

        _wait_for(some_rows_finished, 120, "the worker to finish some rows")
        # Kill while every worker thread waits for an answer (the journal has been quiet for a while), so each
        # row marked in flight has reached the server: the kill then lands mid-request, the case that matters.
        quiet = {"size": -1, "since": time.monotonic()}

        def journal_quiet() -> bool:
            size = checkpoint.stat().st_size
            if size != quiet["size"]:
                quiet.update(size=size, since=time.monotonic())
            return time.monotonic() - quiet["since"] >= 0.04

        _wait_for(journal_quiet, 60, "a moment when all requests are in flight")
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()

    journal = _journal(checkpoint)
    finished = {r["index"] for r in journal if r.get("status") == "succeeded"}
    in_flight = {r["index"] for r in journal if r.get("status") == "sending"} - finished
    assert 0 < len(finished) < ROWS
    assert not output.exists()  # a killed run presents no output at all
    assert len(in_flight) <= CONCURRENCY
    # Requests that were on the wire at the kill still run on the server and are billed there; wait for them.
    assert in_flight  # the kill interrupted requests on the wire
    # Those requests still run on the server and are billed there (the emulator answers after its latency).
    _wait_for(
        lambda: emulator.stats()["billed_generations"] == len(finished) + len(in_flight),
        10,
        "the in-flight requests to be billed",
    )

    rerun = make_job(hook, output, [f"question {n}" for n in range(ROWS)])
    rerun.open()
    manifest, _ = run_job(
        rerun, hook, RunnerSettings(concurrency=8, progress_interval=3600), LOG, mode_reason="t"
    )

    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["custom_id"] for line in lines] == [f"row-{n + 1}" for n in range(ROWS)]
    unknown = {line["index"] for line in lines if line["status"] == "outcome_unknown"}
    assert unknown == in_flight  # possibly billed: labelled, not resent
    assert all(line["status"] == "succeeded" for line in lines if line["index"] not in unknown)
    stats = emulator.stats()
    assert stats["duplicate_billed"] == 0
    assert stats["billed_generations"] == ROWS
    assert manifest.resumed_rows == len(finished) + len(in_flight)
