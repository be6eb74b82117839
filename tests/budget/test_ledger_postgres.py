"""The ledger on a real PostgreSQL server (scripts/start-postgres): eight threads, each with its own
connection, spend from one budget at once; the row lock and the re-checked ``WHERE`` of the conditional
UPDATE keep the emulator's billed total within the limit."""

from __future__ import annotations

import os
import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest
from budget_names import spend

from airflow_provider_openrouter.budget import BudgetExhaustedError, OpenRouterBudget

pytest.importorskip(
    "airflow.providers.postgres", reason="a postgres connection needs the PostgreSQL provider"
)

URI_VARIABLE = "OPENROUTER_TEST_POSTGRES_URI"
PG_CONN = "openrouter_budget_pg"
THREADS = 8


@pytest.fixture
def pg_budget(monkeypatch: pytest.MonkeyPatch) -> Any:
    uri = os.environ.get(URI_VARIABLE, "").strip()
    if not uri:
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"{URI_VARIABLE} is unset in CI: .ci/run must export what scripts/start-postgres prints"
            )
        pytest.skip(f'no PostgreSQL: run `export "$(scripts/start-postgres)"` to set {URI_VARIABLE}')
    monkeypatch.setenv(f"AIRFLOW_CONN_{PG_CONN.upper()}", uri)
    budget = OpenRouterBudget(f"pg-{uuid.uuid4().hex[:12]}", "0.0002", period="total", sql_conn_id=PG_CONN)
    yield budget
    import psycopg2

    with psycopg2.connect(uri) as db, db.cursor() as cursor:
        for table in ("openrouter_budget_ledger", "openrouter_budget_reservations"):
            cursor.execute(f"DELETE FROM {table} WHERE budget = %s", (budget.name,))


def test_eight_threads_on_postgres_never_spend_past_the_limit(
    pg_budget: Any, hook: Any, emulator: Any
) -> None:
    ledger = pg_budget.open(hook, run_id=None)
    start = threading.Barrier(THREADS)
    outcomes: list[str] = []

    def worker(index: int) -> None:
        start.wait()
        for attempt in range(6):
            try:
                spend(hook, ledger, f"pg worker {index} attempt {attempt}: name a mountain")
            except BudgetExhaustedError:
                outcomes.append("exhausted")
                return
            outcomes.append("answer")

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ledger.close()

    billed = Decimal(emulator.stats()["total_cost"])
    assert "exhausted" in outcomes and 0 < billed <= pg_budget.limit
    assert emulator.stats()["billed_generations"] == outcomes.count("answer")
    balance = pg_budget.open(hook, run_id=None).balance()
    assert (balance["spent"], balance["reserved"]) == (billed, 0)
