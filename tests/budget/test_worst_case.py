"""The reserved worst case bounds what the emulator bills, for the request shapes that cost the most."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from budget_names import MODEL

from airflow_provider_openrouter.budget import OpenRouterBudget
from airflow_provider_openrouter.budget.worst_case import Catalog, prompt_token_bound, worst_case_cost
from airflow_provider_openrouter.exceptions import OpenRouterNotFoundError, OpenRouterRequestError
from airflow_provider_openrouter.models import Model

IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}

CASES: dict[str, dict[str, Any]] = {
    # Together serves this model at almost 7x the list price: the list price alone would under-reserve.
    "pricier endpoint by provider order": {
        "model": "meta-llama/llama-3.3-70b-instruct",
        "provider": {"order": ["Together"]},
        "content": "Write a long story about a lighthouse keeper.",
        "max_tokens": 300,
    },
    "multi-byte text": {"model": MODEL, "content": "日本語の文章を要約してください。" * 20, "max_tokens": 50},
    "an image part": {"model": MODEL, "content": [{"type": "text", "text": "What is this?"}, IMAGE]},
    "fallback models": {
        "model": MODEL,
        "models": ["deepseek/deepseek-r1"],
        "content": "Plan a trip.",
        "max_tokens": 200,
    },
    "reasoning model without max_tokens": {"model": "deepseek/deepseek-r1", "content": "Prove 1+1=2."},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_reservation_is_at_least_the_billed_cost(case: str, hook: Any, emulator: Any) -> None:
    spec = dict(CASES[case])
    model, content = spec.pop("model"), spec.pop("content")
    body = hook.build_chat_request(model, "user", content, **spec)
    ledger = OpenRouterBudget("bound", "100", period="total").open(hook, run_id=None)
    reservation = ledger.reserve(body)
    answer = hook.send_chat_request(body)
    assert answer.cost is not None and answer.cost > 0
    assert reservation.max_cost >= answer.cost
    assert Decimal(emulator.stats()["total_cost"]) <= reservation.max_cost


def test_fallback_models_reserve_the_dearest(hook: Any, emulator: Any) -> None:
    ledger = OpenRouterBudget("bound", "100", period="total").open(hook, run_id=None)
    alone = [
        ledger.reserve(hook.build_chat_request(model, "user", "Plan a trip.", max_tokens=200)).max_cost
        for model in (MODEL, "deepseek/deepseek-r1")
    ]
    body = hook.build_chat_request(
        MODEL, "user", "Plan a trip.", max_tokens=200, models=["deepseek/deepseek-r1"]
    )
    assert ledger.reserve(body).max_cost == max(alone) > min(alone)


def test_prompt_bound_counts_bytes_and_media() -> None:
    _, media = prompt_token_bound({"messages": [{"role": "user", "content": [IMAGE]}]})
    assert media == 1
    plain, _ = prompt_token_bound({"messages": [{"role": "user", "content": "é" * 100}]})
    ascii_, _ = prompt_token_bound({"messages": [{"role": "user", "content": "e" * 100}]})
    assert plain - ascii_ == 100  # two UTF-8 bytes per é: one token per byte bounds any byte-level tokenizer


def test_a_model_missing_from_the_catalog_is_refused_before_sending(hook: Any, emulator: Any) -> None:
    ledger = OpenRouterBudget("bound", "100", period="total").open(hook, run_id=None)
    with pytest.raises(OpenRouterRequestError, match="does not list it") as caught:
        ledger.reserve(
            {"model": "acme/no-such-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
        )
    assert caught.value.billed is False and "nothing was sent" in str(caught.value)
    assert emulator.stats()["billed_generations"] == 0


class _RouterCatalogHook:
    """A catalog holding only a router, as OpenRouter lists ``openrouter/auto`` (the emulator lists none)."""

    def list_models(self) -> Any:
        router = Model(id="openrouter/auto", pricing={"prompt": "-1", "completion": "-1"})
        return SimpleNamespace(data=[router])

    def list_model_endpoints(self, author: str, slug: str) -> Any:
        raise OpenRouterNotFoundError("no endpoints", status=404)


def test_a_variable_price_is_refused() -> None:
    with pytest.raises(OpenRouterRequestError, match="price is variable"):
        worst_case_cost({"model": "openrouter/auto", "max_tokens": 5}, Catalog(_RouterCatalogHook()))
