"""Catalog changes while the emulator runs (/__emulator/models): listings show them, billing follows."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from airflow_provider_openrouter.emulator.testing import RunningEmulator

from .conftest import catalog_prices, chat, generation_stats

MODEL = "openai/gpt-4o-mini"


def listed(http: httpx.Client, model_id: str) -> dict[str, Any] | None:
    models = http.get("/models", params={"output_modalities": "all"}).json()["data"]
    return next((model for model in models if model["id"] == model_id), None)


def test_a_price_change_shows_in_the_listings_and_bills_the_next_completion(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    before = chat(http, "Price check").json()["usage"]
    old_prompt, old_completion = catalog_prices(http, MODEL)
    new_prompt, new_completion = old_prompt * 3, old_completion * 2

    emulator.update_model(MODEL, pricing={"prompt": str(new_prompt), "completion": str(new_completion)})

    assert catalog_prices(http, MODEL) == (new_prompt, new_completion)
    endpoints = http.get(f"/models/{MODEL}/endpoints").json()["data"]["endpoints"]
    assert (Decimal(endpoints[0]["pricing"]["prompt"]), Decimal(endpoints[0]["pricing"]["completion"])) == (
        new_prompt,
        new_completion,
    )
    answer = chat(http, "Price check").json()
    usage = answer["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (
        before["prompt_tokens"],
        before["completion_tokens"],
    )
    expected = usage["prompt_tokens"] * new_prompt + usage["completion_tokens"] * new_completion
    assert Decimal(str(usage["cost"])) == expected != Decimal(str(before["cost"]))
    emulator.configure(generation_delay_s=0)
    assert Decimal(str(generation_stats(http, answer["id"])["total_cost"])) == expected


def test_other_fields_merge_into_the_model_and_reset_restores_the_catalog(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    original = listed(http, MODEL)
    assert original is not None
    changed = emulator.update_model(MODEL, context_length=1000, top_provider={"max_completion_tokens": 50})
    assert changed["context_length"] == 1000 and changed["top_provider"]["max_completion_tokens"] == 50
    assert changed["top_provider"]["is_moderated"] == original["top_provider"]["is_moderated"]  # merged
    assert listed(http, MODEL) == changed
    too_long = chat(http, "x" * 4000)
    assert (
        too_long.status_code == 400
        and "maximum context length is 1000" in too_long.json()["error"]["message"]
    )
    emulator.reset()
    assert listed(http, MODEL) == original


def test_a_removed_model_is_gone_from_every_route(http: httpx.Client, emulator: RunningEmulator) -> None:
    emulator.remove_model(MODEL)
    assert listed(http, MODEL) is None
    assert http.get(f"/models/{MODEL}/endpoints").status_code == 404
    response = chat(http, "Hello")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["message"]) == (400, f"{MODEL} is not a valid model ID")
    assert emulator.stats()["billed_generations"] == 0


def test_an_added_model_is_listed_and_served_at_its_price(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    model = {
        "id": "acme/widget-1",
        "name": "Acme: Widget 1",
        "context_length": 32000,
        "pricing": {"prompt": "0.000002", "completion": "0.000004"},
        "architecture": {"input_modalities": ["text"], "output_modalities": ["text"], "tokenizer": "Other"},
        "supported_parameters": ["max_tokens", "temperature"],
    }
    emulator.add_model(model)
    shown = listed(http, "acme/widget-1")
    assert shown is not None and shown["pricing"]["prompt"] == "0.000002" and shown["context_length"] == 32000
    usage = chat(http, "Hello", model="acme/widget-1").json()["usage"]
    expected = usage["prompt_tokens"] * Decimal("0.000002") + usage["completion_tokens"] * Decimal("0.000004")
    assert Decimal(str(usage["cost"])) == expected


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        (
            "PATCH",
            "/__emulator/models/acme/none",
            {"context_length": 5},
            404,
            "acme/none is not in the catalog",
        ),
        (
            "PATCH",
            f"/__emulator/models/{MODEL}",
            {"pricing": {"prompt": "-1"}},
            400,
            "pricing.prompt must be",
        ),
        ("PATCH", f"/__emulator/models/{MODEL}", {"id": "other/id"}, 400, "id cannot change"),
        (
            "POST",
            "/__emulator/models",
            {"id": MODEL, "pricing": {"prompt": "0", "completion": "0"}},
            409,
            "PATCH",
        ),
        (
            "POST",
            "/__emulator/models",
            {"id": "acme/x", "pricing": {"prompt": "0"}},
            400,
            "pricing.completion",
        ),
    ],
)
def test_bad_catalog_changes_are_refused_with_what_to_do(
    emulator: RunningEmulator, method: str, path: str, body: dict[str, Any], status: int, message: str
) -> None:
    response = httpx.request(method, emulator.root_url + path, json=body, trust_env=False)
    assert response.status_code == status
    assert message in response.json()["error"]["message"]
