"""The budget ledger against the emulator and a real SQLite file: the emulator's billed total is the judge."""

from __future__ import annotations

import sqlite3
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from budget_names import MODEL, spend

from airflow_provider_openrouter.budget import BudgetExhaustedError, OpenRouterBudget
from airflow_provider_openrouter.budget.ledger import to_units
from airflow_provider_openrouter.exceptions import OpenRouterError

THREADS = 8


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute(sql))


def test_eight_threads_at_once_never_spend_past_the_limit(
    emulator: Any, hook: Any, ledger_file: Path
) -> None:
    budget = OpenRouterBudget("shared", "0.0002", period="total")
    ledger = budget.open(hook, run_id=None)
    start = threading.Barrier(THREADS)
    exhausted: list[BudgetExhaustedError] = []
    answers: list[Any] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        start.wait()
        for attempt in range(6):
            try:
                answer = spend(hook, ledger, f"worker {index} attempt {attempt}: name a colour")
            except BudgetExhaustedError as err:
                with lock:
                    exhausted.append(err)
                return
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    billed = Decimal(emulator.stats()["total_cost"])
    assert exhausted, "the limit was meant to run out: the test spends more than it allows"
    assert 0 < billed <= budget.limit
    assert emulator.stats()["billed_generations"] == len(answers)
    balance = ledger.balance()
    assert balance["spent"] == billed  # every answer settled to its usage.cost, exactly
    assert balance["reserved"] == 0
    states = _rows(ledger_file, "SELECT state, COUNT(*) FROM openrouter_budget_reservations GROUP BY state")
    assert dict(states) == {"settled": len(answers)}
    ledger.close()


def test_exhausted_error_names_budget_what_is_left_and_the_maximum(hook: Any, emulator: Any) -> None:
    ledger = OpenRouterBudget("tiny", "0.00001", period="total").open(hook, run_id=None)
    body = hook.build_chat_request(MODEL, "user", "Describe the sea.", max_tokens=200)
    with pytest.raises(BudgetExhaustedError) as caught:
        ledger.reserve(body)
    err = caught.value
    assert err.billed is False
    assert (err.budget, err.remaining) == ("tiny", Decimal("0.00001"))
    assert err.max_cost > err.remaining
    text = str(err)
    assert "'tiny'" in text and "0.00001 USD left" in text and f"up to {err.max_cost:f} USD" in text
    assert emulator.api_key not in text and "\n" not in text
    assert emulator.stats()["billed_generations"] == 0


def test_error_envelope_releases_and_lost_answer_keeps(hook: Any, emulator: Any, ledger_file: Path) -> None:
    ledger = OpenRouterBudget("faults", "1", period="total").open(hook, run_id=None)
    with pytest.raises(OpenRouterError) as envelope:
        spend(hook, ledger, "[[emulator: fault=400]] refused")
    assert envelope.value.billed is False
    assert ledger.balance()["reserved"] == 0 and ledger.balance()["spent"] == 0

    with pytest.raises(OpenRouterError) as lost:
        spend(hook, ledger, "[[emulator: fault=reset]] lost")
    assert lost.value.billed is None
    kept = _rows(ledger_file, "SELECT amount_units FROM openrouter_budget_reservations WHERE state = 'kept'")
    assert len(kept) == 1
    # A lost answer may have been billed: its worst case stays reserved, so the budget still holds.
    assert to_units(ledger.balance()["reserved"]) == kept[0][0]
    assert Decimal(emulator.stats()["total_cost"]) <= ledger.balance()["reserved"]


def test_settle_and_release_are_idempotent(hook: Any, emulator: Any) -> None:
    ledger = OpenRouterBudget("once", "1", period="total").open(hook, run_id=None)
    body = hook.build_chat_request(MODEL, "user", "Say yes.", max_tokens=10)
    reservation = ledger.reserve(body)
    reservation.settle(Decimal("0.0001"), "gen-x")
    reservation.settle(Decimal("0.0001"), "gen-x")
    reservation.release()
    assert ledger.balance()["spent"] == Decimal("0.0001")
    assert ledger.balance()["reserved"] == 0


def test_day_budgets_keep_one_row_per_day_and_run_budgets_per_run(hook: Any, ledger_file: Path) -> None:
    body = hook.build_chat_request(MODEL, "user", "Hi.", max_tokens=5)
    OpenRouterBudget("daily", "1").open(hook, run_id=None).reserve(body)
    for run_id in ("run-a", "run-b"):
        OpenRouterBudget("per-run", "1", period="run").open(hook, run_id=run_id).reserve(body)
    periods = _rows(ledger_file, "SELECT budget, period FROM openrouter_budget_ledger ORDER BY 1, 2")
    assert [budget for budget, _ in periods] == ["daily", "per-run", "per-run"]
    assert periods[1][1] == "run:run-a" and periods[2][1] == "run:run-b"
    assert len(periods[0][1]) == len("2026-01-01")
