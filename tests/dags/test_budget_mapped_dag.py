"""Eight mapped tasks spend from one budget in a real Airflow run (``airflow dags test`` on SQLite, the budget
in a SQLite file through an Airflow ``sqlite`` connection): the emulator bills no more than the limit, the
ledger holds exactly what was billed, and the tasks the budget stopped are skipped.

``airflow dags test`` runs mapped tasks one after another in one process; the concurrent cases are
tests/budget/test_ledger.py (threads) and tests/e2e/test_budget_processes.py (processes)."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from dag_harness import TEST_DAGS, AirflowSandbox

pytestmark = pytest.mark.dag
pytest.importorskip(
    "airflow.providers.sqlite", reason="the budget's sqlite connection needs the SQLite provider"
)

LIMIT = Decimal("0.0001")


def test_mapped_tasks_never_spend_past_the_budget(
    airflow_sandbox: AirflowSandbox, tmp_path: Path, emulator: Any
) -> None:
    database = tmp_path / "budgets.db"
    airflow_sandbox.connections["openrouter_budgets"] = json.dumps(
        {"conn_type": "sqlite", "host": str(database)}
    )
    before = Decimal(emulator.stats()["total_cost"])

    run = airflow_sandbox.dags_test("openrouter_budget_mapped", dags_folder=TEST_DAGS)

    assert run.succeeded, run.explain()
    billed = Decimal(emulator.stats()["total_cost"]) - before
    assert 0 < billed <= LIMIT
    states = [state for (state,) in run.query("SELECT state FROM task_instance WHERE task_id = 'spend'")]
    assert len(states) == 8 and "skipped" in states and "success" in states
    with sqlite3.connect(database) as db:
        spent, reserved = db.execute(
            "SELECT spent_units, reserved_units FROM openrouter_budget_ledger"
        ).fetchone()
    assert reserved == 0
    assert Decimal(spent) * Decimal("1e-12") == billed
