"""Fixtures of the budget tests: the shared emulator (reset per test), a connection to it, and a budget ledger
in a real SQLite file (the embedded default, pointed into the test's temporary directory)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from budget_names import BUDGET_CONN

from airflow_provider_openrouter.budget import OpenRouterBudget
from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.hooks import OpenRouterHook
from airflow_provider_openrouter.ratelimit import clear_buckets


@pytest.fixture
def emulator(openrouter_emulator_clean: RunningEmulator) -> RunningEmulator:
    return openrouter_emulator_clean


@pytest.fixture
def ledger_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "budgets.db"
    monkeypatch.setenv("OPENROUTER_BUDGET_DB", str(path))
    return path


@pytest.fixture
def hook(emulator: RunningEmulator, ledger_file: Path, monkeypatch: pytest.MonkeyPatch) -> OpenRouterHook:
    clear_buckets()
    extra = {"requests_per_minute": 0, "attribution": False}
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{BUDGET_CONN.upper()}",
        json.dumps(
            {
                "conn_type": "openrouter",
                "host": emulator.base_url,
                "password": emulator.api_key,
                "extra": extra,
            }
        ),
    )
    return OpenRouterHook(BUDGET_CONN)


@pytest.fixture
def make_budget() -> Callable[..., OpenRouterBudget]:
    def make(limit: str, **kwargs: Any) -> OpenRouterBudget:
        return OpenRouterBudget(kwargs.pop("name", "test-budget"), limit, **kwargs)

    return make
