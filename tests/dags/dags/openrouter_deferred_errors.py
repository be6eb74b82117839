"""The same failures met by a get-generation task on the worker and by one deferred to the triggerer: each
pair must fail, retry or stop alike (test DAG).

For each status, a task scripts the emulator's next ``GET /generation`` answers (its ``fail_next`` admin
setting), then the lookup runs: directly (the worker meets the status), or deferred (a scripted 404 defers
it, and the trigger meets the status, ``max_consecutive_errors`` times for a transient one). A retried try
finds the script used up and reads the real stats. Tasks run one after another, whatever the previous one's
outcome.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import timedelta

from airflow.sdk import BaseHook, chain, dag, task

from airflow_provider_openrouter.operators import (
    OpenRouterChatCompletionOperator,
    OpenRouterGetGenerationOperator,
)
from airflow_provider_openrouter.retry_policy import openrouter_retry_policy
from airflow_provider_openrouter.triggers.generation import OpenRouterGenerationTrigger

STATUSES = (401, 402, 429, 503)
FINAL = (401, 402)  # a retry cannot help: the trigger reports these at once
CONN_ID = "openrouter_noretry"  # the emulator with max_retries=0: each scripted answer is met once

_policy = openrouter_retry_policy(rate_limit_delay=timedelta(0), upstream_delay=timedelta(0))
_retry_policy = {"retry_policy": _policy} if _policy is not None else {}


def script(status: int, deferred: bool) -> list[int]:
    meets = 1 if status in FINAL or not deferred else OpenRouterGenerationTrigger.max_consecutive_errors
    return ([404] if deferred else []) + [status] * meets


@task(trigger_rule="all_done")
def arm(status: int, deferred: bool) -> None:
    base_url = BaseHook.get_connection(CONN_ID).host
    request = urllib.request.Request(
        f"{base_url}/__emulator/config",
        data=json.dumps({"fail_next": {"GET /generation": script(status, deferred)}}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200


@dag(schedule=None, catchup=False)
def openrouter_deferred_errors() -> None:
    steps: list[object] = [
        OpenRouterChatCompletionOperator(
            task_id="chat", model="openai/gpt-4o-mini", content="Name a prime.", max_tokens=5, retries=0
        )
    ]
    for status in STATUSES:
        for deferred in (False, True):
            path = "deferred" if deferred else "direct"
            steps.append(arm.override(task_id=f"arm_{path}_{status}")(status, deferred))
            steps.append(
                OpenRouterGetGenerationOperator(
                    task_id=f"{path}_{status}",
                    generation_id="{{ ti.xcom_pull('chat', key='generation_id') }}",
                    wait_for_stats=60,
                    deferrable=deferred,
                    openrouter_conn_id=CONN_ID,
                    retries=1,
                    retry_delay=timedelta(0),
                    trigger_rule="all_done",
                    **_retry_policy,
                )
            )
    chain(*steps)


openrouter_deferred_errors()
