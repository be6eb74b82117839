"""Budgets across processes: four worker processes (multiprocessing) spend from one budget kept in one
SQLite file, each running the hook against one emulator; the emulator's billed total never passes the limit.

Separate processes stand in for Celery or Kubernetes workers: a real scheduler run with mapped tasks would
cost about a minute on two cores and adds no SQL path these processes do not take (each has its own SQLite
connection, so only the database's locking keeps them apart)."""

from __future__ import annotations

import json
import multiprocessing
import os
from decimal import Decimal
from pathlib import Path

from airflow_provider_openrouter.emulator.testing import running_emulator

PROCESSES = 4
LIMIT = "0.00015"
CONN = "openrouter_budget_e2e"


def _spend_until_exhausted(conn_json: str, ledger_path: str, index: int, start: object) -> tuple[int, int]:
    """One worker: send requests through the budget until it is exhausted; (answers, exhausted errors)."""
    os.environ[f"AIRFLOW_CONN_{CONN.upper()}"] = conn_json
    os.environ["OPENROUTER_BUDGET_DB"] = ledger_path
    from airflow_provider_openrouter.budget import BudgetExhaustedError, OpenRouterBudget
    from airflow_provider_openrouter.hooks import OpenRouterHook

    hook = OpenRouterHook(CONN)
    ledger = OpenRouterBudget("processes", LIMIT, period="total").open(hook, run_id=None)
    start.wait()  # type: ignore[attr-defined]
    answers = 0
    for attempt in range(20):
        body = hook.build_chat_request(
            "openai/gpt-4o-mini", "user", f"process {index} attempt {attempt}: name a river", max_tokens=40
        )
        try:
            ledger.spend(body, hook.send_chat_request)
        except BudgetExhaustedError:
            return answers, 1
        answers += 1
    return answers, 0


def test_worker_processes_never_spend_past_the_limit(tmp_path: Path) -> None:
    ledger_path = str(tmp_path / "budgets.db")
    context = multiprocessing.get_context("fork")
    with running_emulator() as emulator:
        conn_json = json.dumps(
            {
                "conn_type": "openrouter",
                "host": emulator.base_url,
                "password": emulator.api_key,
                "extra": {"requests_per_minute": 0, "attribution": False},
            }
        )
        start = context.Manager().Barrier(PROCESSES)
        with context.Pool(PROCESSES) as pool:
            outcomes = pool.starmap(
                _spend_until_exhausted,
                [(conn_json, ledger_path, index, start) for index in range(PROCESSES)],
            )
        stats = emulator.stats()
    answers = sum(count for count, _ in outcomes)
    assert sum(exhausted for _, exhausted in outcomes) == PROCESSES  # every worker ran the budget out
    assert stats["billed_generations"] == answers > 0
    assert Decimal(stats["total_cost"]) <= Decimal(LIMIT)
