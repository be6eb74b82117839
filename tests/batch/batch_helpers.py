"""Helpers shared by the batch tests (imported by name: tests/ is not a package)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_provider_openrouter.batch.engine import BatchJob, BatchSpec
from airflow_provider_openrouter.batch.inputs import BatchRow, InlineInputSource, InputSource
from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook

MODEL = "openai/gpt-4o-mini"
LOG = logging.getLogger("tests.batch")


def make_job(
    hook: OpenRouterHook,
    output: Path | str,
    rows: list[Any] | InputSource,
    *,
    run_key: str = "dag/task/run-1/-1",
    **spec: Any,
) -> BatchJob:
    """A scanned job over ``rows`` whose bodies are built by the hook exactly as the operator does."""

    def build_body(row: BatchRow) -> dict[str, Any]:
        return hook.build_chat_request(MODEL, messages=row.messages, **row.overrides)

    source = rows if not isinstance(rows, list) else InlineInputSource(rows)
    job = BatchJob(
        BatchSpec(
            source=source,
            output_path=ObjectStoragePath(str(output)),
            model=MODEL,
            build_body=build_body,
            run_key=run_key,
            **spec,
        ),
        LOG,
    )
    job.scan()
    return job


class TaskInstanceStandIn:
    """What the operator reads from ``context["ti"]`` when a test calls ``execute`` outside a DAG run."""

    def __init__(self, run_id: str = "manual__test", map_index: int = -1) -> None:
        self.dag_id = "batch_tests"
        self.task_id = "batch"
        self.run_id = run_id
        self.map_index = map_index
        self.try_number = 1
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def context_for(ti: TaskInstanceStandIn) -> dict[str, Any]:
    return {"ti": ti}
