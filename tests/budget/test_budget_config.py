"""OpenRouterBudget's settings, the connection extra ``budgets`` and the choice on exhaustion (units)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from airflow_provider_openrouter.budget import (
    BudgetConfigurationError,
    BudgetExhaustedError,
    OpenRouterBudget,
    raise_for_exhausted,
    resolve_budget,
    skip_exception,
)


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"name": "", "limit_usd": 5}, "name=''"),
        ({"name": "b", "limit_usd": 0}, "limit_usd=0"),
        ({"name": "b", "limit_usd": "-1"}, "limit_usd='-1'"),
        ({"name": "b", "limit_usd": "five"}, "limit_usd='five'"),
        ({"name": "b", "limit_usd": float("nan")}, "limit_usd=nan"),
        ({"name": "b", "limit_usd": True}, "limit_usd=True"),
        ({"name": "b", "limit_usd": 5, "period": "week"}, "period='week'"),
        ({"name": "b", "limit_usd": 5, "on_exhausted": "retry"}, "on_exhausted='retry'"),
        ({"name": "b", "limit_usd": 5, "period": "run", "on_exhausted": "wait"}, "needs period='day'"),
        ({"name": "b", "limit_usd": 5, "sql_conn_id": ""}, "sql_conn_id=''"),
    ],
)
def test_bad_settings_fail_at_construction_in_one_line(kwargs: dict, names: str) -> None:
    with pytest.raises(BudgetConfigurationError) as caught:
        OpenRouterBudget(**kwargs)
    assert names in str(caught.value) and "\n" not in str(caught.value)


def test_templated_fields_are_checked_when_rendered() -> None:
    budget = OpenRouterBudget("{{ params.budget }}", "{{ var.value.limit }}")
    budget.name, budget.limit_usd = "nightly", "abc"
    with pytest.raises(BudgetConfigurationError, match="limit_usd='abc'"):
        budget.validate()


def test_periods_and_their_next_start() -> None:
    noon = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    day = OpenRouterBudget("d", 1)
    assert day.period_key(None, noon) == "2026-03-01"
    assert day.next_period_start(noon) == datetime(2026, 3, 2, tzinfo=UTC)
    assert OpenRouterBudget("r", 1, period="run").period_key("manual__x", noon) == "run:manual__x"
    assert OpenRouterBudget("t", 1, period="total").next_period_start(noon) is None
    with pytest.raises(BudgetConfigurationError, match="needs the DAG run id"):
        OpenRouterBudget("r", 1, period="run").period_key(None)


def test_a_name_resolves_from_the_connection_extra() -> None:
    extra = '{"budgets": {"nightly": {"limit_usd": "2.5", "period": "run", "on_exhausted": "skip"}}}'
    budget = resolve_budget("nightly", extra)
    assert budget == OpenRouterBudget("nightly", "2.5", period="run", on_exhausted="skip")
    assert budget is not None and budget.limit == Decimal("2.5")
    given = OpenRouterBudget("x", 1)
    assert resolve_budget(given, {}) is given
    assert resolve_budget(None, {}) is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "not declared in the connection extra 'budgets' (declared: none)"),
        ({"budgets": {"other": {"limit_usd": 1}}}, "(declared: other)"),
        ({"budgets": ["nightly"]}, "must be an object of budgets by name"),
        ({"budgets": {"nightly": {"limit": 1}}}, "unknown setting(s) limit"),
        ({"budgets": {"nightly": {"period": "day"}}}, "limit_usd is missing"),
        ("{not json", "extra is not JSON"),
    ],
)
def test_a_bad_declaration_says_what_to_fix(extra: object, message: str) -> None:
    with pytest.raises(BudgetConfigurationError) as caught:
        resolve_budget("nightly", extra)
    assert message in str(caught.value)


def _exhausted() -> BudgetExhaustedError:
    return BudgetExhaustedError(
        "budget 'b' has 0.1 USD left",
        budget="b",
        period="total",
        remaining=Decimal("0.1"),
        max_cost=Decimal(1),
    )


def test_on_exhausted_fail_skip_wait() -> None:
    err = _exhausted()
    with pytest.raises(BudgetExhaustedError):
        raise_for_exhausted(err, OpenRouterBudget("b", 1, on_exhausted="fail"))
    with pytest.raises(skip_exception(), match=r"0\.1 USD left"):
        raise_for_exhausted(err, OpenRouterBudget("b", 1, on_exhausted="skip"))
    until = raise_for_exhausted(err, OpenRouterBudget("b", 1, on_exhausted="wait"))
    assert until > datetime.now(UTC) and (until.hour, until.minute, until.second) == (0, 0, 0)


def test_budget_and_its_error_survive_pickling_and_serde() -> None:
    budget = OpenRouterBudget("b", "1.5", period="total", sql_conn_id="db", on_exhausted="skip")
    assert OpenRouterBudget.deserialize(budget.serialize(), 1) == budget
    err = pickle.loads(pickle.dumps(_exhausted()))
    assert (err.budget, err.remaining, err.max_cost, err.billed) == ("b", Decimal("0.1"), Decimal(1), False)


def test_a_budget_in_an_operator_is_rendered_like_its_template_fields() -> None:
    from airflow.sdk import DAG

    from airflow_provider_openrouter.operators.budget_guard import OpenRouterBudgetGuardOperator

    with DAG("budget_rendering", schedule=None):
        guard = OpenRouterBudgetGuardOperator(
            task_id="guard",
            budget=OpenRouterBudget("{{ params.name }}", "{{ params.limit }}", period="run"),
            min_remaining_usd="{{ params.limit }}",
        )
    guard.render_template_fields({"params": {"name": "nightly", "limit": "2.5"}})  # type: ignore[arg-type]
    assert guard.budget == OpenRouterBudget("nightly", "2.5", period="run")
    assert guard.min_remaining_usd == "2.5"
