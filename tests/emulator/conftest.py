"""Fixtures of the emulator tests: one emulator process per session (from the package's own pytest plugin),
reset before every test, plus clients of the official SDKs and a plain httpx client pointed at it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from openrouter import OpenRouter
from openrouter.utils import BackoffStrategy, RetryConfig

from airflow_provider_openrouter.emulator.testing import RunningEmulator

NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1.0, 1), False)


@pytest.fixture
def emulator(openrouter_emulator_clean: RunningEmulator) -> RunningEmulator:
    return openrouter_emulator_clean


@pytest.fixture
def http(emulator: RunningEmulator) -> Iterator[httpx.Client]:
    """A plain client with the inference key, for what the SDKs hide: headers, raw bodies, dropped sockets."""
    with httpx.Client(
        base_url=emulator.base_url,
        headers={"Authorization": f"Bearer {emulator.api_key}"},
        timeout=30,
        trust_env=False,
    ) as client:
        yield client


@pytest.fixture
def sdk(emulator: RunningEmulator) -> Iterator[OpenRouter]:
    with OpenRouter(
        api_key=emulator.api_key, server_url=emulator.base_url, retry_config=NO_RETRIES
    ) as client:
        yield client


@pytest.fixture
def sdk_management(emulator: RunningEmulator) -> Iterator[OpenRouter]:
    with OpenRouter(
        api_key=emulator.management_key, server_url=emulator.base_url, retry_config=NO_RETRIES
    ) as client:
        yield client


def catalog_prices(
    http: httpx.Client, model_id: str, provider_name: str | None = None
) -> tuple[Decimal, Decimal]:
    """(prompt, completion) USD per token as the public catalog lists them: the test's own source of truth."""
    author, slug = model_id.split("/", 1)
    if provider_name is None:
        listing = http.get("/models").json()["data"]
        pricing = next(model["pricing"] for model in listing if model["id"] == model_id)
    else:
        endpoints = http.get(f"/models/{author}/{slug}/endpoints").json()["data"]["endpoints"]
        pricing = next(e["pricing"] for e in endpoints if e["provider_name"] == provider_name)
    return Decimal(pricing["prompt"]), Decimal(pricing["completion"])


def generation_stats(http: httpx.Client, generation_id: str, deadline_s: float = 30.0) -> dict[str, Any]:
    """``GET /generation`` as a client must call it: asked again while it is 404, as the stats appear a moment
    after the completion."""
    deadline = time.monotonic() + deadline_s
    while (response := http.get("/generation", params={"id": generation_id})).status_code == 404:
        assert time.monotonic() < deadline, f"no stats for {generation_id} after {deadline_s} s"
        time.sleep(0.05)
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def chat(
    http: httpx.Client, content: str, model: str = "openai/gpt-4o-mini", **fields: Any
) -> httpx.Response:
    return http.post(
        "/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": content}], **fields},
    )
