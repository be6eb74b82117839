"""Fixtures of the DAG tests (the harness and its rationale are in dag_harness.py)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dag_harness import (
    API_KEY,
    EMULATOR_CREDITS,
    EXAMPLE_CONF,
    EXAMPLE_DAGS,
    GENERATION_DELAY_S,
    MANAGEMENT_KEY,
    AirflowSandbox,
    DagRun,
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
        "--generation-delay-s",
        str(GENERATION_DELAY_S),
        "--credits",
        EMULATOR_CREDITS,
    ) as running:
        yield running


def new_sandbox(home: Path, migrated_database: Path, emulator: Any) -> AirflowSandbox:
    shutil.copyfile(migrated_database, home / "airflow.db")
    return AirflowSandbox(
        home=home,
        connections={
            "openrouter_default": openrouter_connection(emulator.base_url, API_KEY),
            "openrouter_management": openrouter_connection(emulator.base_url, MANAGEMENT_KEY),
        },
    )


@pytest.fixture
def airflow_sandbox(tmp_path: Path, migrated_database: Path, emulator: Any) -> AirflowSandbox:
    return new_sandbox(tmp_path, migrated_database, emulator)


@pytest.fixture(scope="session")
def example_run(
    tmp_path_factory: pytest.TempPathFactory, migrated_database: Path, emulator: Any
) -> Callable[[str], DagRun]:
    """``example_run(dag_id)``: that example's one ``airflow dags test`` run of the session (made on use).

    A run costs ~15 s of Airflow start-up, so the checks of one example (its figures, its logs, key leaks)
    share the run instead of repeating it.
    """
    runs: dict[str, DagRun] = {}

    def run(dag_id: str) -> DagRun:
        if dag_id not in runs:
            sandbox = new_sandbox(tmp_path_factory.mktemp(dag_id), migrated_database, emulator)
            runs[dag_id] = sandbox.dags_test(dag_id, conf=EXAMPLE_CONF.get(dag_id))
        return runs[dag_id]

    return run
