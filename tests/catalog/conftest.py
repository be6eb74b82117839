"""Fixtures of the catalog watch tests: the shared emulator (reset per test, its catalog restored), a hook on
it, and a real SQLite file behind an Airflow ``sqlite`` connection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.hooks import OpenRouterHook
from airflow_provider_openrouter.ratelimit import clear_buckets

INFERENCE_CONN = "openrouter_catalog_it"
SQL_CONN = "catalog_sqlite"


@pytest.fixture
def emulator(openrouter_emulator_clean: RunningEmulator) -> RunningEmulator:
    return openrouter_emulator_clean


@pytest.fixture
def hook(emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> OpenRouterHook:
    clear_buckets()
    monkeypatch.setenv(f"AIRFLOW_CONN_{INFERENCE_CONN.upper()}", emulator.conn_uri(requests_per_minute=0))
    return OpenRouterHook(INFERENCE_CONN)


@pytest.fixture
def sqlite_conn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An Airflow ``sqlite`` connection to a fresh file (needs common-sql's SQLite provider)."""
    pytest.importorskip("airflow.providers.sqlite", reason="the SQL store needs the cost-audit extra")
    database = tmp_path / "catalog.db"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{SQL_CONN.upper()}", json.dumps({"conn_type": "sqlite", "host": str(database)})
    )
    return SQL_CONN
