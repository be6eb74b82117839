"""The cost audit examples in real Airflow runs (``airflow dags test`` on SQLite, emulator on 127.0.0.1):
chat (mapped) -> cost audit into a SQLite file -> report, then the reconciliation of the same day."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from dag_harness import API_KEY, MANAGEMENT_KEY, AirflowSandbox

pytestmark = pytest.mark.dag


def _rows(database: Path, sql: str) -> list[sqlite3.Row]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.row_factory = sqlite3.Row
        return db.execute(sql).fetchall()


def test_chat_then_cost_audit_then_report_and_reconciliation(
    airflow_sandbox: AirflowSandbox, tmp_path: Path, emulator: Any
) -> None:
    database = tmp_path / "costs.db"
    airflow_sandbox.connections["openrouter_costs"] = json.dumps(
        {"conn_type": "sqlite", "host": str(database)}
    )
    root = tmp_path / "out"

    run = airflow_sandbox.dags_test("example_openrouter_cost_audit", conf={"root": f"file://{root}"})

    assert run.succeeded, run.explain()
    assert set(run.task_states().values()) == {"success"}
    answers = [
        json.loads(value)
        for (value,) in run.query(
            "SELECT value FROM xcom WHERE task_id = 'ask' AND key = 'return_value' ORDER BY map_index"
        )
    ]
    assert len(answers) == 3
    rows = _rows(database, "SELECT * FROM openrouter_generation_costs ORDER BY map_index")
    assert [row["map_index"] for row in rows] == [0, 1, 2]
    # Every row names the DAG, task and run that made it.
    assert {(row["dag_id"], row["task_id"]) for row in rows} == {("example_openrouter_cost_audit", "ask")}
    (run_id,) = run.query("SELECT run_id FROM dag_run WHERE dag_id = 'example_openrouter_cost_audit'")[0]
    assert {row["run_id"] for row in rows} == {run_id}
    costs = {row["generation_id"]: Decimal(row["cost"]) for row in rows}
    billed = {
        answer["__data__"]["id"]: Decimal(str(answer["__data__"]["usage"]["cost"])) for answer in answers
    }
    assert costs == billed

    summary = run.xcom("audit")
    assert summary["__classname__"] == "airflow_provider_openrouter.cost.summary.CostAuditSummary"
    assert Decimal(summary["__data__"]["total_cost"]) == sum(billed.values(), Decimal(0))
    # A downstream task received the summary typed, with Airflow's default deserialization allow-list.
    assert Decimal(run.xcom("announce")) == sum(billed.values(), Decimal(0))
    report = run.xcom("report")["__data__"]
    assert Decimal(report["total_cost"]) == sum(costs.values(), Decimal(0))
    page = Path(report["html_path"].removeprefix("file://")).read_text()
    assert page.count("<figure data-chart=") == 6 and "<script" not in page
    assert Path(report["png_path"].removeprefix("file://")).stat().st_size > 10_000
    assert API_KEY not in run.all_text_in_database()

    airflow_sandbox.connections["openrouter_management"] = json.dumps(
        {"conn_type": "openrouter", "host": emulator.base_url, "password": MANAGEMENT_KEY}
    )
    today = datetime.now(UTC).date().isoformat()
    recon = airflow_sandbox.dags_test(
        "example_openrouter_reconciliation", conf={"root": f"file://{root}", "day": today}
    )

    assert recon.succeeded, recon.explain()
    stored = _rows(database, "SELECT * FROM openrouter_generation_costs_reconciliation")
    assert {row["day"] for row in stored} == {today}
    recorded = {row["model"]: Decimal(row["recorded_cost"]) for row in stored if row["recorded_requests"]}
    assert sum(recorded.values(), Decimal(0)) == sum(costs.values(), Decimal(0))
    for row in stored:
        # The session's other DAG tests spent on the same emulated account: billed covers at least the audit.
        assert Decimal(row["difference"]) == Decimal(row["billed_usage"]) - Decimal(row["recorded_cost"]) >= 0
    assert MANAGEMENT_KEY not in recon.all_text_in_database()
