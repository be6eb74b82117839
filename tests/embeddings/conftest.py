"""Fixtures for the embeddings tests: the emulator as ``openrouter_default`` (no client rate limit), a hook on
it, and ``batch_api_run``: one Batch API run submitted, waited for in the trigger and landed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_openrouter.batch.batch_api import BatchApiClient
from airflow_provider_openrouter.batch.engine import BatchJob, BatchSpec
from airflow_provider_openrouter.batch.inputs import InlineInputSource
from airflow_provider_openrouter.batch.manifest import BatchManifest
from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook
from airflow_provider_openrouter.ratelimit import clear_buckets
from airflow_provider_openrouter.triggers.batch import OpenRouterBatchTrigger

LOG = logging.getLogger("tests.embeddings")
BatchApiRun = Callable[..., BatchManifest]


@pytest.fixture
def emulator(
    openrouter_emulator_clean: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningEmulator]:
    for name, value in openrouter_emulator_clean.airflow_conn_env(requests_per_minute=0).items():
        monkeypatch.setenv(name, value)
    clear_buckets()
    yield openrouter_emulator_clean
    clear_buckets()


@pytest.fixture
def hook(emulator: RunningEmulator) -> Iterator[OpenRouterHook]:
    with OpenRouterHook() as opened:
        yield opened


def _wait_for(batch_ids: list[str]) -> None:
    """Run the trigger to its one event, as the triggerer would."""
    trigger = OpenRouterBatchTrigger("openrouter_default", batch_ids, 0.05, time.time() + 60)

    async def collect() -> list[Any]:
        return [event async for event in trigger.run()]

    events = asyncio.run(collect())
    assert [event.payload["status"] for event in events] == ["success"]


@pytest.fixture
def batch_api_run(emulator: RunningEmulator, hook: OpenRouterHook) -> BatchApiRun:
    """``run(output, rows, spec, client)``: a Batch API run over ``rows``; ``spec`` are BatchSpec fields
    (model, build_body, endpoint), ``client`` BatchApiClient arguments (endpoint, output_type). The landing
    uses a new client, as the task resumed after its wait does."""
    emulator.configure(batch_duration_s=0.3)

    def run(output: Path, rows: list[Any], spec: dict[str, Any], client: dict[str, Any]) -> BatchManifest:
        job = BatchJob(
            BatchSpec(
                source=InlineInputSource(rows),
                output_path=ObjectStoragePath(f"file://{output}"),
                run_key="dag/task/run-1/-1",
                **spec,
            ),
            LOG,
        )
        job.scan()
        job.open()
        batch_ids = BatchApiClient(job, hook.transport, log=LOG, **client).submit_all()
        _wait_for(batch_ids)
        BatchApiClient(job, hook.transport, log=LOG, **client).land_all()
        return job.finish(mode="batch_api", mode_reason="test", requests_sent=0, batch_ids=batch_ids)

    return run
