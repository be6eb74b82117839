"""A budget exhausted in the middle of a concurrent batch: the batch stops sending, records the rest
``not_sent`` and waits (``on_exhausted="wait"``) for the next day; resumed in the next period it sends only
those rows. The emulator is the judge: every row billed once, none twice, each day within the limit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

import airflow_provider_openrouter.budget as budget_module
from airflow_provider_openrouter.budget import OpenRouterBudget
from airflow_provider_openrouter.operators.batch import OpenRouterBatchCompletionOperator

ROWS = 7
LIMIT = Decimal("0.00012")


class _TaskInstance:
    dag_id, task_id, run_id, map_index, try_number = "nightly", "batch", "scheduled__day1", -1, 1

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


class _Tomorrow(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return datetime.now(tz or UTC) + timedelta(days=1)


def _statuses(output: Path) -> list[str]:
    return [json.loads(line)["status"] for line in output.read_text().splitlines()]


def test_exhausted_mid_batch_then_the_next_period_sends_only_the_rest(
    openrouter_emulator_clean: Any, ledger_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = openrouter_emulator_clean
    for name, value in emulator.airflow_conn_env(requests_per_minute=0).items():
        monkeypatch.setenv(name, value)
    output = tmp_path / "out" / "result.jsonl"
    operator = OpenRouterBatchCompletionOperator(
        task_id="batch",
        model="openai/gpt-4o-mini",
        inputs=[f"Ticket {n}: classify it in one word." for n in range(ROWS)],
        output_path=str(output),
        max_tokens=40,
        concurrency=1,
        mode="concurrent",
        budget=OpenRouterBudget("nightly-batch", LIMIT, period="day", on_exhausted="wait"),
    )
    context: Any = {"ti": _TaskInstance()}

    with pytest.raises(TaskDeferred):
        operator.execute(context)
    first = _statuses(output)
    assert "succeeded" in first and "not_sent" in first
    billed_first = Decimal(emulator.stats()["total_cost"])
    assert emulator.stats()["billed_generations"] == first.count("succeeded")
    assert billed_first <= LIMIT

    monkeypatch.setattr(budget_module, "datetime", _Tomorrow)  # the next period has started
    manifest = operator.execute_after_budget_wait(context)
    assert _statuses(output) == ["succeeded"] * ROWS
    assert manifest.requests_sent == first.count("not_sent")
    stats = emulator.stats()
    assert stats["billed_generations"] == ROWS
    assert stats["duplicate_billed"] == 0 and stats["billed_twice"] == 0
    assert Decimal(stats["total_cost"]) - billed_first <= LIMIT
