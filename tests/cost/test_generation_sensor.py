"""OpenRouterGenerationSensor and its trigger against the emulator: ready when every id has stats, the
deadline names the ids still missing, a refused key ends the wait at once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cost_names import INFERENCE_CONN

from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.exceptions import (
    OpenRouterAuthenticationError,
    OpenRouterNotFoundError,
    OpenRouterRequestError,
)
from airflow_provider_openrouter.models import ChatCompletion
from airflow_provider_openrouter.sensors.generation import OpenRouterGenerationSensor
from airflow_provider_openrouter.triggers.generation_stats import OpenRouterGenerationStatsTrigger

NEVER = "gen-0000000000-neverexisted00000000"


def run_trigger(trigger: OpenRouterGenerationStatsTrigger) -> dict[str, Any]:
    async def first_event() -> dict[str, Any]:
        events = [event async for event in trigger.run()]
        assert len(events) == 1
        return events[0].payload

    return asyncio.run(first_event())


def wait_for_stats(generation_id: str) -> None:
    """Until the emulator has the stats (its trigger waits; no sleep in the test)."""
    event = run_trigger(
        OpenRouterGenerationStatsTrigger(INFERENCE_CONN, [generation_id], 0.1, time.time() + 30)
    )
    assert event["status"] == "ready", event


def sensor(ids: Any, **kwargs: Any) -> OpenRouterGenerationSensor:
    return OpenRouterGenerationSensor(
        task_id="wait", generation_ids=ids, openrouter_conn_id=INFERENCE_CONN, **kwargs
    )


def test_trigger_is_ready_once_every_id_has_stats(chat: Callable[..., ChatCompletion]) -> None:
    ids = [chat(index).id for index in range(3)]

    event = run_trigger(OpenRouterGenerationStatsTrigger(INFERENCE_CONN, ids, 0.2, time.time() + 30))

    assert event["status"] == "ready"
    assert sorted(event["ready"]) == sorted(ids) and event["pending"] == []


def test_trigger_deadline_names_the_ids_still_missing(chat: Callable[..., ChatCompletion]) -> None:
    known = chat(0).id

    event = run_trigger(
        OpenRouterGenerationStatsTrigger(INFERENCE_CONN, [known, NEVER], 0.2, time.time() + 2)
    )

    assert event["status"] == "timeout"
    assert event["ready"] == [known] and event["pending"] == [NEVER]
    assert NEVER in event["message"]


def test_trigger_stops_at_once_on_a_refused_key(
    connections: Path, emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = {"conn_type": "openrouter", "host": emulator.base_url, "password": "sk-or-v1-" + "0" * 64}
    monkeypatch.setenv("AIRFLOW_CONN_OPENROUTER_BAD_KEY", json.dumps(bad))
    emulator.configure(api_key=[emulator.api_key])  # only the test key is accepted now (reset undoes it)

    event = run_trigger(
        OpenRouterGenerationStatsTrigger("openrouter_bad_key", [NEVER], 0.2, time.time() + 60)
    )

    assert event["status"] == "error"
    assert event["error"]["status"] == 401
    with pytest.raises(OpenRouterAuthenticationError):
        sensor([NEVER]).execute_complete({}, event)  # type: ignore[arg-type]


def test_trigger_round_trips_through_serialize() -> None:
    trigger = OpenRouterGenerationStatsTrigger(INFERENCE_CONN, ["gen-a", "gen-b"], 2.0, 1e10, 4)

    classpath, kwargs = trigger.serialize()

    assert (
        classpath == "airflow_provider_openrouter.triggers.generation_stats.OpenRouterGenerationStatsTrigger"
    )
    assert OpenRouterGenerationStatsTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_sensor_pokes_true_only_when_every_id_has_stats(chat: Callable[..., ChatCompletion]) -> None:
    known = chat(0)
    wait_for_stats(known.id)

    assert sensor([known]).poke({}) is True  # type: ignore[arg-type]
    assert sensor([known.id, NEVER]).poke({}) is False  # type: ignore[arg-type]


def test_deferrable_sensor_defers_with_only_the_missing_ids(chat: Callable[..., ChatCompletion]) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    known = chat(0).id
    wait_for_stats(known)

    with pytest.raises(TaskDeferred) as deferred:
        sensor([known, NEVER], deferrable=True, timeout=60).execute({})  # type: ignore[arg-type]

    trigger = deferred.value.trigger
    assert isinstance(trigger, OpenRouterGenerationStatsTrigger)
    assert trigger.generation_ids == [NEVER]


def test_sensor_timeout_event_fails_with_a_404_error() -> None:
    event = {"status": "timeout", "ready": [], "pending": [NEVER], "message": f"1 generation(s): {NEVER}"}

    with pytest.raises(OpenRouterNotFoundError, match=NEVER):
        sensor([NEVER]).execute_complete({}, event)  # type: ignore[arg-type]
    sensor([NEVER]).execute_complete({}, {"status": "ready", "ready": [NEVER], "pending": []})  # type: ignore[arg-type]


def test_sensor_with_no_id_fails_before_sending(connections: Path) -> None:
    with pytest.raises(OpenRouterRequestError, match="holds no generation id"):
        sensor([None, ""]).poke({})  # type: ignore[arg-type]
