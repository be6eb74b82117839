"""Deferrable get-generation: the trigger against the emulator (real HTTP on 127.0.0.1), the operator's
deferral and its ``execute_complete`` event checks.

Stats for a generation appear ``generation_delay_s`` after the completion (the emulator's model of
OpenRouter); until then ``GET /generation`` answers 404.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent

from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.exceptions import (
    OpenRouterError,
    OpenRouterNotFoundError,
    OpenRouterResponseError,
)
from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook
from airflow_provider_openrouter.models import Generation
from airflow_provider_openrouter.operators import OpenRouterGetGenerationOperator
from airflow_provider_openrouter.ratelimit import clear_buckets
from airflow_provider_openrouter.triggers.generation import OpenRouterGenerationTrigger

try:
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 3.1: TaskDeferred is still in the core
    from airflow.exceptions import TaskDeferred

MODEL = "openai/gpt-4o-mini"
STATS_ROUTE = "GET /generation"


@pytest.fixture
def emulator(openrouter_emulator_clean: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> RunningEmulator:
    """The clean emulator as ``openrouter_default``; the transport does not retry, so the trigger's own
    tolerance of transient errors is what a scripted failure meets."""
    for name, value in openrouter_emulator_clean.airflow_conn_env(
        requests_per_minute=0, max_retries=0
    ).items():
        monkeypatch.setenv(name, value)
    clear_buckets()
    return openrouter_emulator_clean


def fresh_generation_id(emulator: RunningEmulator, stats_delay_s: float) -> str:
    emulator.configure(generation_delay_s=stats_delay_s)
    return OpenRouterHook().chat_completion(MODEL, content="Name one prime number.", max_tokens=5).id


def run_trigger(trigger: OpenRouterGenerationTrigger) -> list[TriggerEvent]:
    async def collect() -> list[TriggerEvent]:
        return [event async for event in trigger.run()]

    return asyncio.run(collect())


def stats_answers(emulator: RunningEmulator) -> dict[str, int]:
    return {str(status): count for status, count in emulator.stats()["requests"].get(STATS_ROUTE, {}).items()}


def test_serialize_round_trips_the_four_arguments_and_no_secret() -> None:
    trigger = OpenRouterGenerationTrigger("my_conn", "gen-abc", 2.5, 1_900_000_000.0)
    classpath, kwargs = trigger.serialize()

    assert classpath == "airflow_provider_openrouter.triggers.generation.OpenRouterGenerationTrigger"
    assert kwargs == {
        "openrouter_conn_id": "my_conn",
        "generation_id": "gen-abc",
        "poll_interval": 2.5,
        "end_time": 1_900_000_000.0,
    }
    assert OpenRouterGenerationTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_late_stats_end_in_one_ready_event_with_that_generation(emulator: RunningEmulator) -> None:
    generation_id = fresh_generation_id(emulator, stats_delay_s=3.0)
    events = run_trigger(
        OpenRouterGenerationTrigger("openrouter_default", generation_id, 0.3, time.time() + 60)
    )

    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "ready"
    assert payload["generation_id"] == generation_id
    assert payload["generation"]["data"]["id"] == generation_id
    answers = stats_answers(emulator)
    assert answers.get("404", 0) >= 1, answers  # it did wait through the 404s
    assert answers.get("200") == 1, answers


def test_unknown_id_ends_in_one_timeout_event_at_the_deadline(emulator: RunningEmulator) -> None:
    events = run_trigger(
        OpenRouterGenerationTrigger("openrouter_default", "gen-never-made", 0.2, time.time() + 1.0)
    )

    assert [event.payload["status"] for event in events] == ["timeout"]
    assert events[0].payload["generation_id"] == "gen-never-made"
    assert "404" in events[0].payload["message"]
    assert stats_answers(emulator).get("404", 0) >= 2  # asked more than once before giving up


def test_a_few_transient_errors_are_tolerated(emulator: RunningEmulator) -> None:
    generation_id = fresh_generation_id(emulator, stats_delay_s=0)
    emulator.configure(fail_next={STATS_ROUTE: [503, 503]})
    events = run_trigger(
        OpenRouterGenerationTrigger("openrouter_default", generation_id, 0.1, time.time() + 60)
    )

    assert [event.payload["status"] for event in events] == ["ready"]
    assert stats_answers(emulator) == {"503": 2, "200": 1}


def test_errors_in_a_row_end_in_one_error_event(emulator: RunningEmulator) -> None:
    emulator.configure(fail_next={STATS_ROUTE: [503] * 10})
    events = run_trigger(OpenRouterGenerationTrigger("openrouter_default", "gen-x", 0.05, time.time() + 60))

    assert [event.payload["status"] for event in events] == ["error"]
    assert "503" in events[0].payload["message"]
    assert stats_answers(emulator) == {"503": OpenRouterGenerationTrigger.max_consecutive_errors}


def test_deferrable_operator_defers_on_404_and_resumes_with_the_typed_generation(
    emulator: RunningEmulator,
) -> None:
    generation_id = fresh_generation_id(emulator, stats_delay_s=3.0)
    op = OpenRouterGetGenerationOperator(
        task_id="stats", generation_id=generation_id, wait_for_stats=30, deferrable=True
    )
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})  # type: ignore[arg-type]

    trigger = deferred.value.trigger
    assert isinstance(trigger, OpenRouterGenerationTrigger)
    assert trigger.generation_id == generation_id
    assert trigger.openrouter_conn_id == "openrouter_default"
    assert before < trigger.end_time <= time.time() + 30
    assert deferred.value.method_name == "execute_complete"

    (event,) = run_trigger(trigger)
    generation = getattr(op, deferred.value.method_name)({}, event=event.payload)
    assert isinstance(generation, Generation)
    assert generation.id == generation_id
    assert generation.model == MODEL


def test_not_deferrable_by_default_and_no_deferral_without_a_wait(emulator: RunningEmulator) -> None:
    assert OpenRouterGetGenerationOperator(task_id="a", generation_id="gen-x").deferrable is False
    op = OpenRouterGetGenerationOperator(
        task_id="b", generation_id="gen-x", wait_for_stats=0, deferrable=True
    )
    with pytest.raises(OpenRouterNotFoundError):
        op.execute({})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "event",
    [
        None,
        {"status": "finished", "generation_id": "gen-x"},
        {"status": "ready", "generation_id": "gen-x"},  # no answer body
        "ready",
    ],
)
def test_execute_complete_rejects_an_unknown_event_in_one_line(event: Any) -> None:
    op = OpenRouterGetGenerationOperator(task_id="stats", generation_id="gen-x")
    with pytest.raises(OpenRouterResponseError) as caught:
        op.execute_complete({}, event=event)  # type: ignore[arg-type]

    text = str(caught.value)
    assert "\n" not in text
    assert "task 'stats'" in text and "event this operator does not know" in text


def test_execute_complete_turns_a_timeout_into_the_404_error() -> None:
    op = OpenRouterGetGenerationOperator(task_id="stats", generation_id="gen-x")
    event = {"status": "timeout", "generation_id": "gen-x", "message": "still 404", "waited_seconds": 60.0}
    with pytest.raises(OpenRouterNotFoundError) as caught:
        op.execute_complete({}, event=event)  # type: ignore[arg-type]

    assert caught.value.generation_id == "gen-x"
    assert "still 404" in str(caught.value) and "\n" not in str(caught.value)


def test_execute_complete_fails_on_an_error_event() -> None:
    op = OpenRouterGetGenerationOperator(task_id="stats", generation_id="gen-x")
    event = {"status": "error", "generation_id": "gen-x", "message": "HTTP 401", "waited_seconds": 0.1}
    with pytest.raises(OpenRouterError) as caught:
        op.execute_complete({}, event=event)  # type: ignore[arg-type]

    assert not isinstance(caught.value, OpenRouterNotFoundError)
    assert "HTTP 401" in str(caught.value)


@pytest.mark.parametrize("status", [401, 402, 403, 429, 503])
def test_a_deferred_failure_is_the_same_exception_as_a_direct_one(
    emulator: RunningEmulator, status: int
) -> None:
    """The trigger's error event carries the error; execute_complete raises the same class with the same
    status, billed and retry_after as the worker raises when it asks itself, so Airflow and a retry policy
    treat both alike."""
    op = OpenRouterGetGenerationOperator(task_id="stats", generation_id="gen-x", wait_for_stats=0)
    emulator.configure(fail_next={STATS_ROUTE: [status]})
    with pytest.raises(OpenRouterError) as direct:
        op.execute({})  # type: ignore[arg-type]

    emulator.configure(fail_next={STATS_ROUTE: [status] * OpenRouterGenerationTrigger.max_consecutive_errors})
    (event,) = run_trigger(OpenRouterGenerationTrigger("openrouter_default", "gen-x", 0.05, time.time() + 60))
    assert event.payload["status"] == "error"
    with pytest.raises(OpenRouterError) as deferred:
        op.execute_complete({}, event=event.payload)  # type: ignore[arg-type]

    assert type(deferred.value) is type(direct.value)
    assert deferred.value.status == direct.value.status == status
    assert deferred.value.billed is direct.value.billed is False
    assert deferred.value.retryable is direct.value.retryable
    assert getattr(deferred.value, "retry_after", None) == getattr(direct.value, "retry_after", None)
    assert str(deferred.value) == str(direct.value)
