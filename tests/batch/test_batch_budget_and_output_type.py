"""The concurrent engine with a budget (a reservation per row) and an output_type, against the emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import TaskInstanceStandIn, context_for
from pydantic import BaseModel

from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.operators.batch import OpenRouterBatchCompletionOperator

MODEL = "openai/gpt-4o-mini"


class Ticket(BaseModel):
    """What every answer must be: the emulator's filler text is not this JSON."""

    category: str


def _operator(tmp_path: Path, **kwargs: Any) -> OpenRouterBatchCompletionOperator:
    return OpenRouterBatchCompletionOperator(
        task_id="batch",
        model=MODEL,
        mode="concurrent",
        output_path=str(tmp_path / "result.jsonl"),
        concurrency=2,
        progress_interval=3600,
        max_tokens=8,
        **kwargs,
    )


def _lines(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "result.jsonl").read_text().splitlines()]


def test_an_answer_that_does_not_fit_the_output_type_is_invalid_output_and_paid_once(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    op = _operator(tmp_path, inputs=["a", "b", "c"], output_type=Ticket, max_failed_fraction=1.0)
    manifest = op.execute(context_for(TaskInstanceStandIn()))
    assert manifest.counts.invalid_output == 3
    assert {line["status"] for line in _lines(tmp_path)} == {"invalid_output"}
    assert all(line["error"]["billed"] is True and line["cost"] for line in _lines(tmp_path))
    assert emulator.stats()["billed_generations"] == 3  # never resent: it was paid for


def test_an_exhausted_budget_stops_sending_and_the_rest_is_not_sent(
    emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_openrouter.budget import BudgetExhaustedError, OpenRouterBudget

    monkeypatch.setenv("OPENROUTER_BUDGET_DB", str(tmp_path / "budgets.db"))
    budget = OpenRouterBudget("batch-test", limit_usd="0.000001", period="total", on_exhausted="fail")
    op = _operator(tmp_path, inputs=[f"question {n}" for n in range(6)], budget=budget)
    ti = TaskInstanceStandIn()
    with pytest.raises(BudgetExhaustedError, match="batch-test"):
        op.execute(context_for(ti))
    lines = _lines(tmp_path)  # the output is whole before the task fails
    assert {line["status"] for line in lines} == {"not_sent"}
    assert all(line["error"]["billed"] is False for line in lines)
    assert emulator.stats()["billed_generations"] == 0
    assert ti.xcoms["manifest"].counts.not_sent == 6


def test_the_budget_ledger_is_closed_when_the_run_ends_even_when_the_budget_stops_it(
    emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_openrouter.budget import BudgetExhaustedError, OpenRouterBudget
    from airflow_provider_openrouter.budget.ledger import BudgetLedger

    monkeypatch.setenv("OPENROUTER_BUDGET_DB", str(tmp_path / "budgets.db"))
    opened: list[BudgetLedger] = []
    real_open = OpenRouterBudget.open

    def recording_open(self: OpenRouterBudget, hook: Any, *, run_id: str | None) -> BudgetLedger:
        ledger = real_open(self, hook, run_id=run_id)
        opened.append(ledger)
        return ledger

    monkeypatch.setattr(OpenRouterBudget, "open", recording_open)
    budgets = {
        "roomy": OpenRouterBudget("roomy", limit_usd="100", period="total"),
        "tiny": OpenRouterBudget("tiny", limit_usd="0.000001", period="total", on_exhausted="fail"),
    }
    for name in budgets:
        (tmp_path / name).mkdir()
    _operator(tmp_path / "roomy", inputs=["a", "b", "c"], budget=budgets["roomy"]).execute(
        context_for(TaskInstanceStandIn())
    )
    with pytest.raises(BudgetExhaustedError):
        _operator(tmp_path / "tiny", inputs=["d", "e"], budget=budgets["tiny"]).execute(
            context_for(TaskInstanceStandIn())
        )
    assert len(opened) == 2
    # Each engine thread opened its own SQLite connection; closing the ledger closes them all.
    assert [ledger.db._all for ledger in opened] == [[], []]


def test_the_failed_rows_error_counts_invalid_output(emulator: RunningEmulator, tmp_path: Path) -> None:
    from airflow_provider_openrouter.batch.errors import BatchFailedRowsError

    op = _operator(tmp_path, inputs=["a", "b"], output_type=Ticket)
    with pytest.raises(BatchFailedRowsError, match=r"2 of 2 rows did not succeed \(.*2 invalid output"):
        op.execute(context_for(TaskInstanceStandIn()))
