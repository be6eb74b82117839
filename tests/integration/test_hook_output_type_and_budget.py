"""OpenRouterHook.chat_completion(output_type=..., budget=...) against the emulator: the typed answer, an
answer that does not validate (billed, kept on the error), and a budget's reservation settled, released or
refused before anything is sent (the emulator's billed count is the judge)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import BaseModel

from airflow_provider_openrouter.budget import BudgetExhaustedError, OpenRouterBudget
from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.exceptions import OpenRouterError
from airflow_provider_openrouter.hooks import OpenRouterHook
from airflow_provider_openrouter.structured import InvalidOutputError

MODEL = "openai/gpt-4o-mini"
MakeHook = Callable[..., OpenRouterHook]


class Weather(BaseModel):
    city: str
    celsius: float


@pytest.fixture(autouse=True)
def budget_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "budgets.db"
    monkeypatch.setenv("OPENROUTER_BUDGET_DB", str(path))
    return path


def balance(hook: OpenRouterHook, budget: OpenRouterBudget) -> dict[str, Decimal]:
    with budget.open(hook, run_id=None) as ledger:
        return ledger.balance()


def test_output_type_returns_the_instance_and_the_whole_completion(make_hook: MakeHook) -> None:
    result = make_hook().chat_completion(MODEL, content="The weather in Oslo, please.", output_type=Weather)
    assert isinstance(result.output, Weather)
    assert result.completion.cost is not None and result.completion.cost > 0
    assert Weather.model_validate_json(result.completion.text) == result.output


def test_an_answer_that_does_not_validate_raises_with_the_billed_completion(
    make_hook: MakeHook, emulator: RunningEmulator
) -> None:
    billed = emulator.stats()["billed_generations"]
    with pytest.raises(InvalidOutputError) as caught:
        make_hook().chat_completion(
            MODEL,
            content="[[emulator: invalid-json]] The weather in Oslo.",
            output_type=f"{__name__}.Weather",  # a dotted path, as a template renders it
        )
    assert caught.value.billed is True and "\n" not in str(caught.value)
    assert "Weather:" in str(caught.value)
    completion = caught.value.completion
    assert completion is not None and completion.cost is not None and completion.cost > 0
    assert caught.value.generation_id == completion.id
    assert emulator.stats()["billed_generations"] == billed + 1


def test_a_budget_is_settled_with_the_answers_cost(make_hook: MakeHook) -> None:
    hook = make_hook()
    budget = OpenRouterBudget("settled", "1", period="total")
    answer = hook.chat_completion(MODEL, content="Name a colour.", max_tokens=20, budget=budget)
    assert answer.cost is not None
    assert balance(hook, budget)["spent"] == answer.cost
    assert balance(hook, budget)["reserved"] == 0


def test_an_exhausted_budget_sends_nothing(make_hook: MakeHook, emulator: RunningEmulator) -> None:
    hook = make_hook(budgets={"tiny": {"limit_usd": "0.000000000001", "period": "total"}})
    billed = emulator.stats()["billed_generations"]
    with pytest.raises(BudgetExhaustedError) as caught:
        hook.chat_completion(MODEL, content="Name a colour.", budget="tiny")
    with pytest.raises(BudgetExhaustedError):
        hook.completion(MODEL, "Once upon a time", max_tokens=5, budget="tiny")
    assert caught.value.billed is False and "budget 'tiny'" in str(caught.value)
    assert emulator.stats()["billed_generations"] == billed


def test_an_error_envelope_releases_the_reservation(make_hook: MakeHook) -> None:
    hook = make_hook(max_retries=0)
    budget = OpenRouterBudget("released", "1", period="total")
    with pytest.raises(OpenRouterError) as caught:
        hook.chat_completion(MODEL, content="[[emulator: fault=503]] Name a colour.", budget=budget)
    assert caught.value.billed is False
    assert balance(hook, budget)["spent"] == 0 and balance(hook, budget)["reserved"] == 0
