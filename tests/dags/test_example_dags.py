"""Each example DAG passes ``airflow dags test`` against the emulator, with Airflow's default configuration.

Every example ends in a task that reads typed attributes of the upstream result; its success proves the
result came back as the provider's class (not a dict) with the default ``allowed_deserialization_classes``.
Expected figures (costs, the cheapest model, counts) are computed here from the emulator's raw catalog JSON,
not from the provider's code.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from dag_harness import API_KEY, CHAIN_QUESTION, EMULATOR_CREDITS, DagRun

pytestmark = pytest.mark.dag

CLASS = "airflow_provider_openrouter.models.{}"


def fetch(base_url: str, path: str) -> Any:
    request = urllib.request.Request(f"{base_url}{path}", headers={"Authorization": f"Bearer {API_KEY}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def catalog(emulator: Any) -> dict[str, dict[str, Any]]:
    """The emulator's catalog as raw JSON, by model id."""
    return {model["id"]: model for model in fetch(emulator.base_url, "/models")["data"]}


def list_price(model: dict[str, Any], prompt_tokens: int, completion_tokens: int) -> Decimal:
    pricing = model["pricing"]
    return Decimal(pricing["prompt"]) * prompt_tokens + Decimal(pricing["completion"]) * completion_tokens


def typed(value: Any, class_name: str) -> dict[str, Any]:
    """The serde form of a typed XCom: assert its class, return its fields."""
    assert isinstance(value, dict) and value.get("__classname__") == CLASS.format(class_name), value
    data: dict[str, Any] = value["__data__"]
    return data


def assert_all_succeeded(run: DagRun, tasks: set[str]) -> None:
    assert run.succeeded, run.explain()
    assert run.task_states() == dict.fromkeys(tasks, "success"), run.explain()


def test_chat_example(example_run: Callable[[str], DagRun], catalog: dict[str, Any]) -> None:
    run = example_run("example_openrouter_chat")
    assert_all_succeeded(run, {"chat", "read_answer"})

    answer = typed(run.xcom("chat"), "ChatCompletion")
    usage = answer["usage"]
    expected_cost = list_price(
        catalog["openai/gpt-4o-mini"], usage["prompt_tokens"], usage["completion_tokens"]
    )
    assert Decimal(str(usage["cost"])) == expected_cost
    assert run.xcom("chat", "generation_id") == answer["id"]
    assert run.xcom("chat", "text") == answer["choices"][0]["message"]["content"]
    assert "openai/gpt-4o-mini answered:" in run.output


def test_completion_example(example_run: Callable[[str], DagRun], catalog: dict[str, Any]) -> None:
    run = example_run("example_openrouter_completion")
    assert_all_succeeded(run, {"complete", "read_text"})

    answer = typed(run.xcom("complete"), "TextCompletion")
    usage = answer["usage"]
    model = catalog["openai/gpt-3.5-turbo-instruct"]
    assert Decimal(str(usage["cost"])) == list_price(
        model, usage["prompt_tokens"], usage["completion_tokens"]
    )
    assert "openai/gpt-3.5-turbo-instruct completed:" in run.output


def test_credits_example(example_run: Callable[[str], DagRun]) -> None:
    run = example_run("example_openrouter_credits")
    assert_all_succeeded(run, {"get_credits", "report_balance"})

    credits = typed(run.xcom("get_credits"), "Credits")
    assert Decimal(str(credits["total_credits"])) == Decimal(EMULATOR_CREDITS)
    assert Decimal(0) <= Decimal(str(credits["total_usage"])) <= Decimal(EMULATOR_CREDITS)
    assert "USD left" in run.output


def test_generation_example_waits_for_late_stats(example_run: Callable[[str], DagRun]) -> None:
    run = example_run("example_openrouter_generation")
    assert_all_succeeded(run, {"chat", "get_generation", "compare"})

    answer = typed(run.xcom("chat"), "ChatCompletion")
    generation = typed(run.xcom("get_generation"), "Generation")
    assert generation["id"] == answer["id"]
    assert Decimal(str(generation["total_cost"])) == Decimal(str(answer["usage"]["cost"]))
    assert generation["tokens_prompt"] == answer["usage"]["prompt_tokens"]
    # The emulator writes the stats a second after the answer: the first lookup saw a 404 and asked again.
    assert "has no stats yet (404)" in run.output


def test_models_example(example_run: Callable[[str], DagRun], catalog: dict[str, Any]) -> None:
    run = example_run("example_openrouter_models")
    assert_all_succeeded(run, {"list_models", "list_endpoints", "summarise"})

    listed = typed(run.xcom("list_models"), "ModelList")
    expected = {
        model_id
        for model_id, model in catalog.items()
        if "tools" in model["supported_parameters"] and "text" in model["architecture"]["output_modalities"]
    }
    assert {model["id"] for model in listed["data"]} == expected
    endpoints = typed(run.xcom("list_endpoints"), "ModelEndpoints")
    assert endpoints["id"] == "openai/gpt-4o-mini"
    assert endpoints["endpoints"], "gpt-4o-mini has endpoints in the catalog"


def test_chain_example_picks_the_cheapest_fitting_model_and_reports_its_cost(
    example_run: Callable[[str], DagRun], catalog: dict[str, Any]
) -> None:
    question = CHAIN_QUESTION
    run = example_run("example_openrouter_chain")
    assert_all_succeeded(run, {"list_models", "pick_model", "chat", "get_generation", "report"})

    # The DAG's rule, restated from its docstring: context >= 8000, takes max_tokens and temperature, priced
    # above zero, lowest list price for ~len/4+20 prompt tokens and 120 completion tokens (ties: by id).
    prompt_tokens, completion_tokens = len(question) // 4 + 20, 120
    fitting = [
        model
        for model in catalog.values()
        if model["context_length"] >= 8000
        and {"max_tokens", "temperature"} <= set(model["supported_parameters"])
        and Decimal(model["pricing"]["prompt"]) > 0
        and Decimal(model["pricing"]["completion"]) > 0
    ]
    cheapest = min(fitting, key=lambda m: (list_price(m, prompt_tokens, completion_tokens), m["id"]))
    assert run.xcom("pick_model") == cheapest["id"]

    summary = run.xcom("report")
    assert summary["model"] == cheapest["id"]
    assert summary["text"]
    expected_cost = list_price(cheapest, summary["prompt_tokens"], summary["completion_tokens"])
    assert Decimal(summary["cost_usd"]) == expected_cost
    assert Decimal(summary["cost_reported_with_answer_usd"]) == expected_cost
