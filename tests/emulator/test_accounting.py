"""Accounting: cost = tokens x catalog price, credits and key usage move by exactly that, 402 at the limit,
generation records after the configured delay, and the duplicate-billing stats."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from airflow_provider_openrouter.emulator.app import Emulator, create_app
from airflow_provider_openrouter.emulator.config import EmulatorSettings
from airflow_provider_openrouter.emulator.testing import RunningEmulator

from .conftest import catalog_prices, chat, generation_stats


def _management(emulator: RunningEmulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {emulator.management_key}"}


def _total_usage(http: httpx.Client, emulator: RunningEmulator) -> Decimal:
    return Decimal(str(http.get("/credits", headers=_management(emulator)).json()["data"]["total_usage"]))


@pytest.mark.parametrize(
    ("model", "provider", "provider_name"),
    [
        ("openai/gpt-4o-mini", None, None),
        ("anthropic/claude-opus-4", None, None),
        ("google/gemini-2.0-flash-001", {"order": ["google-vertex"]}, "Google"),
        ("meta-llama/llama-3.3-70b-instruct", {"only": ["groq"]}, "Groq"),
    ],
)
def test_cost_is_tokens_times_the_catalog_price_and_moves_credits_and_key_usage_by_exactly_that(
    http: httpx.Client,
    emulator: RunningEmulator,
    model: str,
    provider: dict | None,
    provider_name: str | None,
) -> None:
    prompt_price, completion_price = catalog_prices(http, model, provider_name)
    credits_before = _total_usage(http, emulator)
    key_before = Decimal(str(http.get("/key").json()["data"]["usage"]))
    costs = []
    for prompt in ("What is a DAG?", "Explain retries in two sentences, please, with an example."):
        body = chat(http, prompt, model=model, provider=provider).json()
        usage = body["usage"]
        expected = usage["prompt_tokens"] * prompt_price + usage["completion_tokens"] * completion_price
        assert Decimal(str(usage["cost"])) == expected
        if provider_name:
            assert body["provider"] == provider_name
        costs.append(expected)
    assert _total_usage(http, emulator) - credits_before == sum(costs)
    assert Decimal(str(http.get("/key").json()["data"]["usage"])) - key_before == sum(costs)
    assert Decimal(emulator.stats()["total_cost"]) == sum(costs)


def test_prompt_tokens_follow_the_documented_estimate(http: httpx.Client) -> None:
    # docs/emulator.md: 3 + per message (4 + ceil(characters / 4))
    system, user = "You are terse.", "Count the tokens of this sentence."
    body = http.post(
        "/chat/completions",
        json={"messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]},
    ).json()
    expected = 3 + (4 + -(-len(system) // 4)) + (4 + -(-len(user) // 4))
    assert body["usage"]["prompt_tokens"] == expected
    assert body["usage"]["completion_tokens"] == -(-len(body["choices"][0]["message"]["content"]) // 4)


def test_key_limit_ends_in_402_and_usage_never_passes_it(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    limit = Decimal("0.00002")
    emulator.configure(key_limit=str(limit))
    statuses = []
    for index in range(40):
        response = chat(http, f"short answer {index}", max_tokens=5)
        statuses.append(response.status_code)
        if response.status_code == 402:
            assert "requires more credits, or fewer max_tokens" in response.json()["error"]["message"]
            break
    assert statuses[-1] == 402 and set(statuses[:-1]) == {200}
    key = http.get("/key").json()["data"]
    usage = Decimal(str(key["usage"]))
    assert usage <= limit
    assert Decimal(str(key["limit"])) == limit
    assert Decimal(str(key["limit_remaining"])) == limit - usage
    assert chat(http, "the same key stays limited", max_tokens=5).status_code == 402
    other = http.post(
        "/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
        headers={"Authorization": "Bearer sk-or-second-key"},
    )
    assert other.status_code == 200  # the limit is per key


def test_exhausted_credits_end_in_402_for_every_key(http: httpx.Client, emulator: RunningEmulator) -> None:
    emulator.configure(credits="0.00001")
    statuses = [chat(http, f"q{i}", max_tokens=5).status_code for i in range(10)]
    assert 200 in statuses and statuses[-1] == 402
    assert _total_usage(http, emulator) <= Decimal("0.00001")
    free = chat(http, "free models need no credit", model="deepseek/deepseek-chat-v3-0324:free")
    assert free.status_code == 200 and free.json()["usage"]["cost"] == 0


def test_generation_is_404_until_the_delay_has_passed_then_complete(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    emulator.configure(generation_delay_s=3.0)  # far longer than two requests, even on a busy machine
    completion = chat(http, "delayed stats").json()
    assert http.get("/generation", params={"id": completion["id"]}).status_code == 404
    data = generation_stats(http, completion["id"])
    assert data["tokens_prompt"] == completion["usage"]["prompt_tokens"]
    assert data["total_cost"] == data["usage"] == completion["usage"]["cost"]
    assert http.get("/generation", params={"id": "gen-nope"}).status_code == 404
    assert http.get("/generation").status_code == 400


def test_generation_stats_wait_half_a_second_by_default(openrouter_emulator_clean: RunningEmulator) -> None:
    assert EmulatorSettings().generation_delay_s == 0.5
    # The plugin's session emulator runs with the same default, so users' tests meet OpenRouter's 404 too.
    assert openrouter_emulator_clean.configure()["generation_delay_s"] == 0.5


async def _asgi(
    app: Emulator, method: str, path: str, send: Callable[[Any], Awaitable[None]], body: bytes = b""
) -> None:
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query.encode(),
        "headers": [(b"authorization", b"Bearer sk-or-in-process")],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    await app(scope, receive, send)


async def _status(app: Emulator, method: str, path: str) -> int:
    statuses = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await _asgi(app, method, path, send)
    return int(statuses[0])


def test_a_streamed_generation_is_recorded_only_once_the_stream_has_ended() -> None:
    # In process, so the lookups run exactly between the events of the stream, whatever the machine's speed.
    app = create_app(generation_delay_s=0)
    body = {
        "model": "openai/gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "a story"}],
    }
    during: list[int] = []

    async def scenario() -> int:
        generation_path = ""

        async def send(message: Any) -> None:
            nonlocal generation_path
            if message["type"] == "http.response.start":
                generation_path = (
                    "/api/v1/generation?id=" + dict(message["headers"])[b"x-generation-id"].decode()
                )
            elif message.get("more_body"):
                during.append(await _status(app, "GET", generation_path))

        await _asgi(app, "POST", "/api/v1/chat/completions", send, json.dumps(body).encode())
        return await _status(app, "GET", generation_path)

    after = asyncio.run(scenario())
    assert len(during) > 3 and set(during) == {404}
    assert after == 200


def test_generation_echoes_headers_and_marks_streams(http: httpx.Client) -> None:
    headers = {
        "HTTP-Referer": "https://dags.example.com",
        "X-Title": "Nightly",
        "User-Agent": "airflow-test/1",
    }
    body = {"model": "openai/gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "s"}]}
    with http.stream("POST", "/chat/completions", json=body, headers=headers) as response:
        gen_id = response.headers["x-generation-id"]
        response.read()
    data = generation_stats(http, gen_id)
    assert data["streamed"] is True
    assert data["http_referer"] == "https://dags.example.com"
    assert data["user_agent"] == "airflow-test/1"


def test_duplicate_billing_counts_the_same_idempotency_key_with_the_same_content(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    body = {"messages": [{"role": "user", "content": "row 17"}]}
    key = {"X-Idempotency-Key": "row-17"}
    assert http.post("/chat/completions", json=body, headers=key).status_code == 200
    assert emulator.stats()["duplicate_billed"] == 0
    http.post("/chat/completions", json=body, headers={"X-Idempotency-Key": "row-18"})  # another key
    http.post("/chat/completions", json={"messages": [{"role": "user", "content": "row 19"}]}, headers=key)
    http.post("/chat/completions", json=body)  # no key: nothing to compare
    assert emulator.stats()["duplicate_billed"] == 0
    http.post("/chat/completions", json=body, headers=key)  # the same content and key, billed again
    stats = emulator.stats()
    assert stats["duplicate_billed"] == 1 and stats["billed_generations"] == 5


def test_a_resend_after_a_truncated_answer_shows_up_as_a_duplicate(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    body = {"messages": [{"role": "user", "content": "[[emulator: fault=truncate, times=1]] row 3"}]}
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/chat/completions", json=body, headers={"X-Idempotency-Key": "row-3"})
    assert (
        http.post("/chat/completions", json=body, headers={"X-Idempotency-Key": "row-3"}).status_code == 200
    )
    assert emulator.stats()["duplicate_billed"] == 1


def test_reset_restores_credits_settings_and_stats(http: httpx.Client, emulator: RunningEmulator) -> None:
    emulator.configure(credits=5, latency_ms=1)
    chat(http, "spend a little")
    emulator.reset()
    assert emulator.configure()["credits"] == "100"
    assert emulator.configure()["latency_ms"] == 0
    stats = emulator.stats()
    assert stats["billed_generations"] == 0 and stats["requests"] == {} and stats["total_cost"] == "0"
    assert _total_usage(http, emulator) == 0


def test_configure_rejects_unknown_settings_and_bad_values(emulator: RunningEmulator) -> None:
    with pytest.raises(ValueError, match=r"unknown setting.*latency"):
        emulator.configure(latency=5)
    with pytest.raises(ValueError, match="fault_rate: expected a number from 0 to 1"):
        emulator.configure(fault_rate=2)
