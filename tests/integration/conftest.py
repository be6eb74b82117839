"""Hook integration fixtures: a connection to the shared emulator (reset before each test)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.hooks import OpenRouterHook
from airflow_provider_openrouter.ratelimit import clear_buckets

MakeHook = Callable[..., OpenRouterHook]


@pytest.fixture
def emulator(openrouter_emulator_clean: RunningEmulator) -> RunningEmulator:
    return openrouter_emulator_clean


@pytest.fixture
def make_hook(emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeHook]:
    """Build a hook on a fresh connection to the emulator. Extras override the defaults used here: no client
    rate limit (tests that need one set it) and a short retry budget."""
    created: list[OpenRouterHook] = []

    def make(conn_id: str = "openrouter_it", *, api_key: str | None = None, **extras: Any) -> OpenRouterHook:
        options = {"requests_per_minute": 0, "max_retry_wait": 30, **extras}
        value = {
            "conn_type": "openrouter",
            "host": emulator.base_url,
            "password": api_key if api_key is not None else emulator.api_key,
            "extra": options,
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))
        hook = OpenRouterHook(openrouter_conn_id=conn_id)
        created.append(hook)
        return hook

    clear_buckets()
    yield make
    for hook in created:
        hook.close()
    clear_buckets()
