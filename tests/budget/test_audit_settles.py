"""A reservation kept for a lost answer is settled by the cost audit when it finds the generation's cost."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from budget_names import MODEL

from airflow_provider_openrouter.budget import OpenRouterBudget

pytest.importorskip("airflow.providers.common.sql", reason="the cost audit's SQL store needs common-sql")
pytest.importorskip("airflow.providers.sqlite", reason="a sqlite connection needs the SQLite provider")

SQL_CONN = "openrouter_budget_sql"


def test_the_audit_settles_a_kept_reservation(
    hook: Any, emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_openrouter.cost.audit import run_audit
    from airflow_provider_openrouter.cost.collect import collect
    from airflow_provider_openrouter.cost.store import CostStore

    database = tmp_path / "shared.db"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{SQL_CONN.upper()}", json.dumps({"conn_type": "sqlite", "host": str(database)})
    )
    ledger = OpenRouterBudget("audited", "1", period="total", sql_conn_id=SQL_CONN).open(hook, run_id=None)
    body = hook.build_chat_request(MODEL, "user", "Tell me a fact.", max_tokens=30)
    reservation = ledger.reserve(body)
    answer = hook.send_chat_request(body)
    # The answer was lost after its generation id arrived (a stream cut off after its first chunk).
    reservation.keep(answer.generation_id)
    assert ledger.balance()["reserved"] == reservation.max_cost and ledger.balance()["spent"] == 0

    result = run_audit(
        collect([answer.generation_id]),
        source="generation",
        fetch=hook.get_generation,
        store=CostStore.open(SQL_CONN),
        wait_for_stats=30,
    )
    assert result.summary.budget_reservations_settled == 1
    balance = ledger.balance()
    assert balance["reserved"] == 0
    assert balance["spent"] == Decimal(emulator.stats()["total_cost"]) == answer.cost
    with sqlite3.connect(database) as conn:
        rows = list(conn.execute("SELECT state, generation_id FROM openrouter_budget_reservations"))
    assert rows == [("settled", answer.generation_id)]

    again = run_audit(
        collect([answer.generation_id]),
        source="generation",
        fetch=hook.get_generation,
        store=CostStore.open(SQL_CONN),
    )
    assert again.summary.budget_reservations_settled == 0  # settled once, never twice
    assert ledger.balance()["spent"] == answer.cost
