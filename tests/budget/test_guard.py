"""OpenRouterBudgetGuardOperator and its trigger against the emulator's GET /key and GET /credits: fails,
skips and defers as configured, and checks a budget's balance in a real SQLite ledger."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred
from budget_names import BUDGET_CONN, spend

from airflow_provider_openrouter.budget import OpenRouterBudget, skip_exception
from airflow_provider_openrouter.budget.guard import BudgetGuardResult
from airflow_provider_openrouter.exceptions import OpenRouterRequestError
from airflow_provider_openrouter.operators.budget_guard import (
    BudgetGuardUnmetError,
    OpenRouterBudgetGuardOperator,
)
from airflow_provider_openrouter.triggers.budget_guard import OpenRouterBudgetGuardTrigger

CONTEXT: dict[str, Any] = {"run_id": "manual__guard"}
MGMT_CONN = "openrouter_budget_mgmt"


def _guard(**kwargs: Any) -> OpenRouterBudgetGuardOperator:
    return OpenRouterBudgetGuardOperator(task_id="guard", openrouter_conn_id=BUDGET_CONN, **kwargs)


@pytest.fixture
def key_half_spent(emulator: Any, hook: Any) -> Decimal:
    """The key's limit set to twice what one request cost: half of it is left."""
    ledger = OpenRouterBudget("warmup", "1", period="total").open(hook, run_id=None)
    cost = spend(hook, ledger, "Say something.").cost
    emulator.configure(key_limit=str(cost * 2))
    return Decimal(cost)


def test_met_pushes_the_balances(key_half_spent: Decimal) -> None:
    outcome = _guard(min_remaining_fraction="0.4").execute(CONTEXT)
    assert isinstance(outcome, BudgetGuardResult) and outcome.met
    (key,) = outcome.pools
    assert (key.name, key.limit, key.used, key.remaining) == (
        "key",
        key_half_spent * 2,
        key_half_spent,
        key_half_spent,
    )


def test_unmet_fails_with_what_fell_short(key_half_spent: Decimal, emulator: Any) -> None:
    with pytest.raises(BudgetGuardUnmetError) as caught:
        _guard(min_remaining_fraction="0.75").execute(CONTEXT)
    text = str(caught.value)
    assert "key: 50.0% of" in text and "below 75%" in text
    assert emulator.api_key not in text


def test_unmet_skips(key_half_spent: Decimal) -> None:
    with pytest.raises(skip_exception(), match="below"):
        _guard(min_remaining_usd=str(key_half_spent * 3), on_unmet="skip").execute(CONTEXT)


def test_unmet_defers_and_the_trigger_waits_until_met(key_half_spent: Decimal, emulator: Any) -> None:
    operator = _guard(min_remaining_usd=str(key_half_spent * 3), on_unmet="defer", poll_interval=0.05)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(CONTEXT)
    trigger = deferred.value.trigger
    assert isinstance(trigger, OpenRouterBudgetGuardTrigger)
    _, kwargs = trigger.serialize()
    json.dumps(kwargs)  # the triggerer stores these as JSON: no secret, no object
    assert emulator.api_key not in json.dumps(kwargs)

    # Still unmet at the deadline: a timeout event, and the operator fails on it.
    late = OpenRouterBudgetGuardTrigger(**{**kwargs, "end_time": time.time()})
    event = asyncio.run(_first_event(late))
    assert event["status"] == "timeout" and event["result"]["met"] is False
    with pytest.raises(BudgetGuardUnmetError, match="still not met"):
        operator.execute_complete(CONTEXT, event)

    # The key's limit is raised: the next round is met, and the operator returns the result.
    emulator.configure(key_limit=str(key_half_spent * 10))
    event = asyncio.run(_first_event(OpenRouterBudgetGuardTrigger(**kwargs)))
    assert event["status"] == "met"
    outcome = operator.execute_complete(CONTEXT, event)
    assert outcome.met and outcome.pools[0].remaining == key_half_spent * 9


async def _first_event(trigger: OpenRouterBudgetGuardTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")


def test_budget_balance_and_credits(emulator: Any, hook: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{MGMT_CONN.upper()}",
        json.dumps(
            {"conn_type": "openrouter", "host": emulator.base_url, "password": emulator.management_key}
        ),
    )
    budget = OpenRouterBudget("guarded", "0.001", period="total")
    ledger = budget.open(hook, run_id=None)
    spent = spend(hook, ledger, "Name a fruit.").cost
    operator = OpenRouterBudgetGuardOperator(
        task_id="guard",
        openrouter_conn_id=MGMT_CONN,
        source="credits",
        budget=budget,
        min_remaining_usd=str(Decimal("0.001") - spent),
    )
    outcome = operator.execute(CONTEXT)
    credits, balance = outcome.pools
    assert credits.name == "credits" and credits.used == spent
    assert balance.name == "budget 'guarded' (total)" and balance.remaining == Decimal("0.001") - spent
    assert outcome.met
    ledger.reserve(hook.build_chat_request("openai/gpt-4o-mini", "user", "x", max_tokens=5))
    with pytest.raises(BudgetGuardUnmetError, match="budget 'guarded'"):
        operator.execute(CONTEXT)


def test_bad_settings_fail_at_construction() -> None:
    with pytest.raises(OpenRouterRequestError, match="min_remaining_usd"):
        _guard()
    with pytest.raises(OpenRouterRequestError, match="min_remaining_fraction"):
        _guard(min_remaining_fraction="1.5")
    with pytest.raises(OpenRouterRequestError, match="on_unmet"):
        _guard(min_remaining_usd=1, on_unmet="wait")
    with pytest.raises(OpenRouterRequestError, match="source"):
        _guard(min_remaining_usd=1, source="wallet")
