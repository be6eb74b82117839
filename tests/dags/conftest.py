"""Fixtures of the DAG tests (the harness and its rationale are in dag_harness.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dag_harness import (
    API_KEY,
    EMULATOR_CREDITS,
    EXAMPLE_DAGS,
    GENERATION_DELAY_S,
    MANAGEMENT_KEY,
    AirflowSandbox,
    airflow_base_env,
    openrouter_connection,
    run_airflow,
)


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow-template")
    done = run_airflow(airflow_base_env(home, EXAMPLE_DAGS), "db", "migrate")
    assert done.returncode == 0, f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return home / "airflow.db"


@pytest.fixture(scope="session")
def emulator() -> Iterator[Any]:
    from airflow_provider_openrouter.emulator.testing import running_emulator

    with running_emulator(
        "--api-key",
        API_KEY,
        "--management-key",
        MANAGEMENT_KEY,
        "--generation-delay-s",
        str(GENERATION_DELAY_S),
        "--credits",
        EMULATOR_CREDITS,
    ) as running:
        yield running


@pytest.fixture
def airflow_sandbox(tmp_path: Path, migrated_database: Path, emulator: Any) -> AirflowSandbox:
    shutil.copyfile(migrated_database, tmp_path / "airflow.db")
    return AirflowSandbox(
        home=tmp_path,
        connections={
            "openrouter_default": openrouter_connection(emulator.base_url, API_KEY),
            "openrouter_management": openrouter_connection(emulator.base_url, MANAGEMENT_KEY),
        },
    )
