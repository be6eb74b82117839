"""A deferrable get-generation task in a real DAG run: it defers on the first 404, the trigger (run inline by
``airflow dags test``) waits out the emulator's late stats, and a downstream task reads the typed result."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from dag_harness import API_KEY, GENERATION_DELAY_S, TEST_DAGS, AirflowSandbox

pytestmark = pytest.mark.dag

# Longer than the chat task's end to the lookup's first ask, so that ask surely answers 404 and defers.
STATS_DELAY_S = 6.0


def test_deferred_lookup_returns_the_typed_generation_of_the_chat(
    airflow_sandbox: AirflowSandbox, emulator: Any
) -> None:
    emulator.configure(generation_delay_s=STATS_DELAY_S)
    try:
        run = airflow_sandbox.dags_test("openrouter_generation_deferrable", dags_folder=TEST_DAGS)
    finally:
        emulator.configure(generation_delay_s=GENERATION_DELAY_S)

    assert run.succeeded, run.explain()
    assert run.task_states() == {"chat": "success", "get_generation": "success", "read_stats": "success"}
    assert "deferring, asking every" in run.output, run.explain()

    answer = run.xcom("chat")["__data__"]
    generation = run.xcom("get_generation")
    assert generation["__classname__"] == "airflow_provider_openrouter.models.Generation"
    seen = run.xcom("read_stats")
    assert seen["answer_id"] == seen["generation_id"] == answer["id"]
    assert Decimal(seen["total_cost"]) == Decimal(str(answer["usage"]["cost"]))
    assert seen["tokens_prompt"] == answer["usage"]["prompt_tokens"]
    assert seen["tokens_completion"] == answer["usage"]["completion_tokens"]
    # The trigger row (its serialized kwargs) and everything else stored carry no key.
    assert run.query("SELECT classpath FROM trigger") == [
        ("airflow_provider_openrouter.triggers.generation.OpenRouterGenerationTrigger",)
    ]
    assert API_KEY not in run.all_text_in_database()
