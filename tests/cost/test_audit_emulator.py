"""The cost audit against the emulator and a real SQLite file: what lands in the table is what OpenRouter
billed, a rerun adds no row, an id that never resolves is reported with its reason, and reconciliation with
GET /activity shows the spend made outside the pipeline."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cost_names import INFERENCE_CONN, MANAGEMENT_CONN, SQL_CONN

from airflow_provider_openrouter.cost.summary import CostAuditSummary
from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.exceptions import OpenRouterError
from airflow_provider_openrouter.hooks import OpenRouterHook
from airflow_provider_openrouter.models import ChatCompletion
from airflow_provider_openrouter.operators import OpenRouterCostAuditOperator

NEVER = "gen-0000000000-neverexisted00000000"


class _TI:
    dag_id = "cost_dag"
    run_id = "manual__2026-12-03"
    task_id = "audit"
    map_index = -1
    try_number = 1


def audit(**kwargs: Any) -> CostAuditSummary:
    params: dict[str, Any] = {
        "task_id": "audit",
        "openrouter_conn_id": INFERENCE_CONN,
        "sql_conn_id": SQL_CONN,
        "wait_for_stats": 20,
        **kwargs,
    }
    return OpenRouterCostAuditOperator(**params).execute({"ti": _TI()})  # type: ignore[arg-type]


def table_rows(database: Path, sql: str = "SELECT * FROM openrouter_generation_costs") -> list[sqlite3.Row]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.row_factory = sqlite3.Row
        return db.execute(sql).fetchall()


def test_the_table_holds_what_the_emulator_billed_and_a_rerun_adds_no_row(
    chat: Callable[..., ChatCompletion], connections: Path, emulator: RunningEmulator
) -> None:
    answers = [chat(index) for index in range(6)]

    summary = audit(generation_ids=[answer.id for answer in answers])

    rows = table_rows(connections)
    billed = Decimal(emulator.stats()["total_cost"])
    assert len(rows) == 6
    assert abs(sum(Decimal(row["cost"]) for row in rows) - billed) <= Decimal("1e-9")
    assert summary.total_cost == sum((answer.cost or Decimal(0) for answer in answers), Decimal(0))
    assert summary.recorded == 6 and summary.unresolved == [] and summary.rows_in_table == 6
    # Money is stored as exact plain decimal text, never a float or 1.5E-7.
    assert all(isinstance(row["cost"], str) and "E" not in row["cost"].upper() for row in rows)
    by_id = {row["generation_id"]: row for row in rows}
    for answer in answers:
        row = by_id[answer.id]
        assert row["model"] == answer.model
        assert row["provider"] == answer.provider
        assert row["prompt_tokens"] == answer.usage.prompt_tokens  # type: ignore[union-attr]
        assert row["completion_tokens"] == answer.usage.completion_tokens  # type: ignore[union-attr]
        assert row["latency_ms"] is not None and row["source"] == "generation"
    assert set(summary.by_model) == {answer.model for answer in answers}

    again = audit(generation_ids=[answer.id for answer in answers])

    assert len(table_rows(connections)) == 6
    assert again.rows_in_table == 6
    assert again.total_cost == summary.total_cost


def test_a_generation_that_never_appears_is_reported_with_its_reason(
    chat: Callable[..., ChatCompletion], connections: Path
) -> None:
    answer = chat(0)

    summary = audit(generation_ids=[answer.id, NEVER], wait_for_stats=1.5)

    assert summary.recorded == 1
    assert summary.unresolved_ids == [NEVER]
    assert "404" in summary.unresolved[0].reason
    assert [row["generation_id"] for row in table_rows(connections)] == [answer.id]


def test_fail_on_unresolved_fails_after_writing_what_resolved(
    chat: Callable[..., ChatCompletion], connections: Path
) -> None:
    answer = chat(0)

    with pytest.raises(OpenRouterError, match=r"1 generation\(s\) were not recorded: gen-0000000000-never"):
        audit(generation_ids=[answer.id, NEVER], wait_for_stats=0.5, fail_on_unresolved=True)

    assert [row["generation_id"] for row in table_rows(connections)] == [answer.id]


def test_usage_source_records_from_the_answers_without_any_request(
    chat: Callable[..., ChatCompletion], connections: Path, emulator: RunningEmulator, tmp_path: Path
) -> None:
    answers = [chat(index) for index in range(3)]
    before = emulator.stats()["requests"].get("GET /generation", {})

    summary = audit(generation_ids=answers, source="usage", output_path=str(tmp_path / "costs.jsonl"))

    assert emulator.stats()["requests"].get("GET /generation", {}) == before
    assert summary.requests_sent == 0
    assert summary.total_cost == Decimal(emulator.stats()["total_cost"])
    lines = [json.loads(line) for line in (tmp_path / "costs.jsonl").read_text().splitlines()]
    assert sorted(line["generation_id"] for line in lines) == sorted(answer.id for answer in answers)
    assert all(line["source"] == "usage" and isinstance(line["cost"], str) for line in lines)
    # Ids from the XCom of a known task carry that task; here none was referenced, so no task is claimed.
    assert {line["task_id"] for line in lines} == {None}


def test_a_bare_id_with_usage_source_is_unresolved_and_says_to_use_generation(connections: Path) -> None:
    summary = audit(generation_ids=["gen-123-abc"], source="usage")

    assert summary.unresolved_ids == ["gen-123-abc"]
    assert "source='generation'" in summary.unresolved[0].reason


def test_reconciliation_shows_no_gap_when_the_run_made_every_call(
    chat: Callable[..., ChatCompletion], connections: Path
) -> None:
    answers = [chat(index) for index in range(4)]

    summary = audit(generation_ids=[answer.id for answer in answers], management_conn_id=MANAGEMENT_CONN)

    recon = summary.reconciliation
    assert recon is not None and recon.unavailable_days == {}
    assert recon.difference_total == 0
    assert recon.billed_total == summary.total_cost
    assert {row.model for row in recon.rows} == {answer.model for answer in answers}
    assert all(row.billed_requests == row.recorded_requests for row in recon.rows)
    stored = table_rows(connections, "SELECT * FROM openrouter_generation_costs_reconciliation")
    assert len(stored) == len(recon.rows)
    assert all(Decimal(row["difference"]) == 0 for row in stored)


def test_reconciliation_shows_the_cost_of_a_call_made_outside_the_pipeline(
    chat: Callable[..., ChatCompletion], connections: Path
) -> None:
    answers = [chat(index) for index in range(3)]
    outside = chat(1)  # billed to the account, never given to the audit

    summary = audit(generation_ids=[answer.id for answer in answers], management_conn_id=MANAGEMENT_CONN)

    recon = summary.reconciliation
    assert recon is not None
    assert recon.difference_total == outside.cost
    gaps = {row.model: row.difference for row in recon.rows if row.difference}
    assert gaps == {outside.model: outside.cost}


def test_activity_refuses_an_inference_key_and_the_audit_says_to_use_a_management_key(
    chat: Callable[..., ChatCompletion], connections: Path
) -> None:
    answer = chat(0)
    hook = OpenRouterHook(INFERENCE_CONN)
    with pytest.raises(OpenRouterError) as refused:
        hook.transport.get("/activity")
    assert refused.value.status == 403

    with pytest.raises(OpenRouterError, match="management key"):
        audit(generation_ids=[answer.id], management_conn_id=INFERENCE_CONN)


def test_activity_has_the_documented_shape(chat: Callable[..., ChatCompletion], connections: Path) -> None:
    answer = chat(0)
    items = OpenRouterHook(MANAGEMENT_CONN).transport.get("/activity")["data"]

    assert len(items) == 1
    assert set(items[0]) == {
        "date",
        "model",
        "model_permaslug",
        "endpoint_id",
        "provider_name",
        "usage",
        "byok_usage_inference",
        "requests",
        "prompt_tokens",
        "completion_tokens",
        "reasoning_tokens",
    }
    assert items[0]["model"] == answer.model and items[0]["requests"] == 1
    assert Decimal(str(items[0]["usage"])) == answer.cost


def test_bad_parameters_fail_before_any_request(connections: Path, emulator: RunningEmulator) -> None:
    with pytest.raises(OpenRouterError, match="needs somewhere to write"):
        OpenRouterCostAuditOperator(task_id="audit", generation_ids=["gen-1"])
    for bad, message in (
        ({"source": "ledger"}, "'generation' or 'usage'"),
        ({"table": "costs; DROP TABLE x"}, "not a plain SQL table name"),
        ({"output_path": "/tmp/costs.xlsx"}, r"use \.jsonl, \.csv or \.parquet"),
        ({"reconcile_days": "yesterday", "management_conn_id": MANAGEMENT_CONN}, "YYYY-MM-DD"),
        ({"generation_ids": {"foo": 1}}, "holds no generation id"),
        ({"sql_conn_id": "no_such_connection"}, "AIRFLOW_CONN_NO_SUCH_CONNECTION"),
    ):
        with pytest.raises(OpenRouterError, match=message):
            audit(**{"generation_ids": ["gen-1"], **bad})

    assert emulator.stats()["requests_total"] == 0


@pytest.mark.parametrize(
    ("query", "status"), [("?date=2026-13-01", 400), ("?date=yesterday", 400), ("?date=2000-01-01", 400)]
)
def test_activity_refuses_days_it_does_not_serve(connections: Path, query: str, status: int) -> None:
    with pytest.raises(OpenRouterError) as refused:
        OpenRouterHook(MANAGEMENT_CONN).transport.get("/activity" + query)

    assert refused.value.status == status


def test_activity_narrowed_to_one_key_by_its_hash(
    chat: Callable[..., ChatCompletion],
    connections: Path,
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hashlib

    other_key = "sk-or-v1-" + "7" * 64
    other = {"conn_type": "openrouter", "host": emulator.base_url, "password": other_key}
    monkeypatch.setenv("AIRFLOW_CONN_OPENROUTER_OTHER_APP", json.dumps(other))
    ours = chat(0)
    theirs = OpenRouterHook("openrouter_other_app").chat_completion(
        model=ours.model, content="hi", max_tokens=5
    )
    management = OpenRouterHook(MANAGEMENT_CONN).transport

    def usage(**query: str) -> Decimal:
        items = management.get("/activity", query)["data"]
        return sum((Decimal(str(item["usage"])) for item in items), Decimal(0))

    assert usage() == ours.cost + theirs.cost  # type: ignore[operator]
    assert usage(api_key_hash=hashlib.sha256(other_key.encode()).hexdigest()) == theirs.cost
    assert usage(api_key_hash=hashlib.sha256(emulator.api_key.encode()).hexdigest()) == ours.cost


def test_a_connection_without_a_sql_hook_says_what_to_install(
    connections: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "no_such_database", "host": "x"}))

    with pytest.raises(OpenRouterError, match="install the provider"):
        audit(generation_ids=["gen-1"], sql_conn_id="warehouse")
