"""The cost audit against the emulator and a real PostgreSQL server: what lands in the table is what the
emulator billed (exact NUMERIC, read back as Decimal), a rerun adds no row, and each row names its DAG, task
and run.

The server comes from ``scripts/start-postgres`` (Debian's postgresql, on 127.0.0.1), which prints
``OPENROUTER_TEST_POSTGRES_URI=postgresql://...``; export that line. Without it the tests skip on a
developer's machine and FAIL in CI (CI=true): `.ci/run` starts the server, so a missing URI there is a bug.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cost_names import INFERENCE_CONN

from airflow_provider_openrouter.cost.summary import CostAuditSummary
from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.models import ChatCompletion
from airflow_provider_openrouter.operators import OpenRouterCostAuditOperator

URI_VARIABLE = "OPENROUTER_TEST_POSTGRES_URI"
PG_CONN = "cost_audit_postgres"
DAG_ID = "cost_dag_pg"
RUN_ID = "manual__2026-12-03T10:00:00+00:00"
UPSTREAM_TASK = "ask"


class _TI:
    """The running audit task, and the XCom of its upstream ``ask`` task (the generation ids)."""

    dag_id = DAG_ID
    run_id = RUN_ID
    task_id = "audit"
    map_index = -1
    try_number = 1

    def __init__(self, upstream_xcom: Any) -> None:
        self.upstream_xcom = upstream_xcom

    def xcom_pull(self, task_ids: str, key: str = "return_value", **_: Any) -> Any:
        assert (task_ids, key) == (UPSTREAM_TASK, "return_value")
        return self.upstream_xcom


def _postgres_uri() -> str:
    uri = os.environ.get(URI_VARIABLE, "").strip()
    if uri:
        return uri
    if os.environ.get("CI") == "true":
        pytest.fail(f"{URI_VARIABLE} is unset in CI: .ci/run must export what scripts/start-postgres prints")
    pytest.skip(f'no PostgreSQL: run `export "$(scripts/start-postgres)"` to set {URI_VARIABLE}')


@pytest.fixture
def pg_table(connections: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh table name on the test server, behind the Airflow connection ``PG_CONN``; dropped after."""
    uri = _postgres_uri()
    monkeypatch.setenv(f"AIRFLOW_CONN_{PG_CONN.upper()}", uri)
    table = f"openrouter_costs_{uuid.uuid4().hex[:12]}"
    yield table
    with pg_connection() as db, db.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}, {table}_reconciliation")


@contextlib.contextmanager
def pg_connection() -> Iterator[Any]:
    import psycopg2

    db = psycopg2.connect(os.environ[URI_VARIABLE])
    try:
        with db:  # commits
            yield db
    finally:
        db.close()


def pg_rows(sql: str, parameters: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with pg_connection() as db, db.cursor() as cursor:
        cursor.execute(sql, parameters)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def audit_from_upstream(table: str, upstream_xcom: Any, **kwargs: Any) -> CostAuditSummary:
    """The audit task of a DAG whose ``generation_ids`` is the XCom of task ``ask``, run as Airflow would:
    its template fields rendered (the XComArg resolved through ``ti.xcom_pull``), then executed."""
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG
    from airflow.sdk.definitions.xcom_arg import XComArg

    with DAG(DAG_ID, schedule=None):
        ask = EmptyOperator(task_id=UPSTREAM_TASK)
        operator = OpenRouterCostAuditOperator(
            task_id="audit",
            generation_ids=XComArg(ask),
            openrouter_conn_id=INFERENCE_CONN,
            sql_conn_id=PG_CONN,
            table=table,
            wait_for_stats=20,
            **kwargs,
        )
    ti = _TI(upstream_xcom)
    context: Any = {"ti": ti, "task_instance": ti}
    operator.render_template_fields(context)
    return operator.execute(context)


def test_the_postgres_table_holds_what_the_emulator_billed_and_a_rerun_adds_no_row(
    chat: Callable[..., ChatCompletion], emulator: RunningEmulator, pg_table: str
) -> None:
    answers = [chat(index) for index in range(6)]
    ids = [answer.id for answer in answers]

    summary = audit_from_upstream(pg_table, ids)

    rows = pg_rows(f"SELECT * FROM {pg_table}")
    billed = Decimal(emulator.stats()["total_cost"])
    assert len(rows) == 6
    # psycopg2 returns NUMERIC as Decimal: no float ever touched the sum.
    assert all(isinstance(row["cost"], Decimal) for row in rows)
    assert abs(sum(row["cost"] for row in rows) - billed) <= Decimal("1e-9")
    assert summary.recorded == 6 and summary.unresolved == [] and summary.rows_in_table == 6
    by_id = {row["generation_id"]: row for row in rows}
    assert set(by_id) == set(ids)
    for answer in answers:
        row = by_id[answer.id]
        assert row["cost"] == answer.cost
        assert row["model"] == answer.model and row["provider"] == answer.provider
        assert row["prompt_tokens"] == answer.usage.prompt_tokens  # type: ignore[union-attr]
        assert (row["dag_id"], row["task_id"], row["run_id"]) == (DAG_ID, UPSTREAM_TASK, RUN_ID)

    again = audit_from_upstream(pg_table, ids)

    assert pg_rows(f"SELECT COUNT(*) AS n FROM {pg_table}") == [{"n": 6}]
    assert again.rows_in_table == 6 and again.total_cost == summary.total_cost


def test_money_is_numeric_on_postgres_and_stored_exactly(pg_table: str, emulator: RunningEmulator) -> None:
    # A batch output row (what OpenRouterBatchCompletionOperator writes) carries its own cost: no request.
    row = {
        "custom_id": "row-7",
        "generation_id": "gen-1764756000-exactmoney0000000001",
        "model": "openai/gpt-4o-mini",
        "provider": "OpenAI",
        "status": "succeeded",
        "usage": {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1, "cost": "0.00000015"},
    }

    summary = audit_from_upstream(pg_table, [row], source="usage")

    assert summary.recorded == 1 and emulator.stats()["requests_total"] == 0
    (stored,) = pg_rows(f"SELECT cost, cost::text AS cost_text FROM {pg_table}")
    assert stored["cost"] == Decimal("0.00000015")
    assert stored["cost_text"] == "0.000000150000000000"
    columns = pg_rows(
        "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
        "WHERE table_name = %s AND column_name IN ('cost', 'upstream_cost', 'cache_discount')",
        (pg_table,),
    )
    assert [(c["data_type"], c["numeric_precision"], c["numeric_scale"]) for c in columns] == [
        ("numeric", 38, 18)
    ] * 3
    (attributed,) = pg_rows(f"SELECT dag_id, task_id, run_id, custom_id FROM {pg_table}")
    assert attributed == {"dag_id": DAG_ID, "task_id": UPSTREAM_TASK, "run_id": RUN_ID, "custom_id": "row-7"}
