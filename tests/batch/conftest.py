"""Fixtures for the batch tests: the emulator as ``openrouter_default``, without a client-side rate limit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook
from airflow_provider_openrouter.ratelimit import clear_buckets


@pytest.fixture
def emulator(
    openrouter_emulator_clean: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningEmulator]:
    """The clean session emulator, as ``openrouter_default`` with no client-side rate limit."""
    for name, value in openrouter_emulator_clean.airflow_conn_env(requests_per_minute=0).items():
        monkeypatch.setenv(name, value)
    clear_buckets()
    yield openrouter_emulator_clean
    clear_buckets()


@pytest.fixture
def hook(emulator: RunningEmulator) -> OpenRouterHook:
    return OpenRouterHook()
