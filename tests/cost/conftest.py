"""Fixtures of the cost audit tests: the shared emulator (reset per test), connections to it with an inference
and a management key, and a real SQLite file behind an Airflow ``sqlite`` connection."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cost_names import INFERENCE_CONN, MANAGEMENT_CONN, MODELS, SQL_CONN

from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.hooks import OpenRouterHook
from airflow_provider_openrouter.models import ChatCompletion
from airflow_provider_openrouter.ratelimit import clear_buckets


def _openrouter(emulator: RunningEmulator, key: str) -> str:
    extra = {"requests_per_minute": 0, "max_retry_wait": 30}
    return json.dumps({"conn_type": "openrouter", "host": emulator.base_url, "password": key, "extra": extra})


@pytest.fixture
def emulator(openrouter_emulator_clean: RunningEmulator) -> RunningEmulator:
    return openrouter_emulator_clean


@pytest.fixture
def connections(emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Set the three connections; returns the SQLite file of ``SQL_CONN``."""
    clear_buckets()
    database = tmp_path / "costs.db"
    monkeypatch.setenv(f"AIRFLOW_CONN_{INFERENCE_CONN.upper()}", _openrouter(emulator, emulator.api_key))
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{MANAGEMENT_CONN.upper()}", _openrouter(emulator, emulator.management_key)
    )
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{SQL_CONN.upper()}", json.dumps({"conn_type": "sqlite", "host": str(database)})
    )
    return database


@pytest.fixture
def chat(connections: Path) -> Callable[..., ChatCompletion]:
    """``chat(i)``: one billed chat completion through the hook (model alternating between two)."""
    hook = OpenRouterHook(INFERENCE_CONN)

    def send(index: int, **kwargs: Any) -> ChatCompletion:
        return hook.chat_completion(
            model=MODELS[index % len(MODELS)],
            content=f"Question {index}: name a colour.",
            max_tokens=20,
            **kwargs,
        )

    return send
