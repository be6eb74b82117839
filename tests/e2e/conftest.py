"""Session fixtures of the end-to-end tier: one emulator and one real Airflow deployment for every e2e test.

The deployment is benchmarks/airflow_stack.py (the benchmarks drive the same harness): api-server, scheduler,
dag-processor and triggerer as separate processes on SQLite with the LocalExecutor. Starting it costs about
half a minute on two cores, so it is session-scoped; tests stay independent by triggering their own runs.

Set E2E_KEEP_HOME=1 to keep the stack's AIRFLOW_HOME (logs, database) after the session for a post-mortem.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
E2E_DAGS = Path(__file__).resolve().parent / "dags"
EXAMPLE_DAGS = REPO / "example_dags"

# A distinctive key, so that a leak into a log file, an XCom or an API response is unmistakable.
API_KEY = "sk-or-v1-e2e0d15c10sed0d15c10sed0d15c10sed0d15c10sed0d15c10sed00000042"


def _load_harness() -> Any:
    """Import benchmarks/airflow_stack.py (not a package) once, under the name ``airflow_stack``."""
    if "airflow_stack" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "airflow_stack", REPO / "benchmarks" / "airflow_stack.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["airflow_stack"] = module
        spec.loader.exec_module(module)
    return sys.modules["airflow_stack"]


airflow_stack_module = _load_harness()


@pytest.fixture(scope="session")
def e2e_emulator() -> Iterator[Any]:
    from airflow_provider_openrouter.emulator.testing import running_emulator

    with running_emulator("--api-key", API_KEY) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def airflow_stack(e2e_emulator: Any) -> Iterator[Any]:
    """The running deployment. DAG files under test: the main example and tests/e2e/dags/*.py."""
    dag_files = [EXAMPLE_DAGS / "example_openrouter_chain.py", *sorted(E2E_DAGS.glob("*.py"))]
    env = e2e_emulator.airflow_conn_env("openrouter_default", requests_per_minute=0)
    stack = airflow_stack_module.AirflowStack(
        dag_files=dag_files, env=env, keep_home=os.environ.get("E2E_KEEP_HOME") == "1"
    )
    with stack:
        yield stack
    if stack.keep_home:
        print(f"\nE2E_KEEP_HOME: the stack's AIRFLOW_HOME is kept at {stack.home}")
