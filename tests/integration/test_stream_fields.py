"""Streamed and non-streamed answers carry the same fields: the same request sent both ways through the hook
to the emulator, compared field by field as typed results (ids, timestamps and timings aside)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.hooks import OpenRouterHook
from airflow_provider_openrouter.models import ChatCompletion

MakeHook = Callable[..., OpenRouterHook]

TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]},
    },
}

# Each request makes the emulator produce one optional part of an answer (docs/emulator.md, "Optional parts
# of an answer"); ``part`` reads that part from the typed result, to prove the comparison is not of nothing.
CASES: dict[str, tuple[dict[str, Any], Callable[[ChatCompletion], Any]]] = {
    "reasoning details": (
        {
            "model": "anthropic/claude-3.7-sonnet",
            "content": "Why is the sky blue?",
            "reasoning": {"effort": "low"},
        },
        lambda chat: chat.choices[0].message.reasoning_details,
    ),
    "openai reasoning summary and encrypted": (
        {"model": "openai/o3-mini", "content": "Plan a trip.", "reasoning": {"effort": "low"}},
        lambda chat: chat.choices[0].message.reasoning_details,
    ),
    "web citations": (
        {
            "model": "openai/gpt-4o-mini",
            "content": "What happened in Paris? Tell me more. And then?",
            "extra_body": {"plugins": [{"id": "web"}]},
        },
        lambda chat: chat.choices[0].message.annotations,
    ),
    "refusal": (
        {"model": "openai/gpt-4o-mini", "content": "[[emulator: refuse]] Do something bad."},
        lambda chat: chat.choices[0].message.refusal,
    ),
    "logprobs": (
        {
            "model": "openai/gpt-4o-mini",
            "content": "Describe a queue.",
            "extra_body": {"logprobs": True, "top_logprobs": 2},
        },
        lambda chat: chat.choices[0].logprobs["content"],
    ),
    "tool calls": (
        {"model": "openai/gpt-4o-mini", "content": "Find it", "tools": [TOOL], "tool_choice": "required"},
        lambda chat: chat.tool_calls,
    ),
    "images": (
        {
            "model": "google/gemini-2.5-flash-image",
            "content": "Draw a cat.",
            "extra_body": {"modalities": ["image", "text"]},
        },
        lambda chat: chat.choices[0].message.images,
    ),
    "routing metadata": (
        {"model": "openai/gpt-4o-mini", "content": "Hello there."},
        lambda chat: chat.openrouter_metadata,
    ),
}

# Differ between any two requests, streamed or not.
_PER_REQUEST = ("id", "created")


def comparable(chat: ChatCompletion) -> dict[str, Any]:
    data = chat.model_dump(mode="json")
    for key in _PER_REQUEST:
        data.pop(key, None)
    metadata = data.get("openrouter_metadata")
    if isinstance(metadata, dict):
        metadata.pop("generation_time", None)  # a timing
    for choice in data["choices"]:
        for call in choice["message"].get("tool_calls") or ():
            call.pop("id", None)  # a per-request id
    return data


@pytest.mark.parametrize("case", list(CASES))
def test_a_streamed_answer_has_every_field_of_the_plain_one(
    case: str, make_hook: MakeHook, emulator: RunningEmulator
) -> None:
    request, part = CASES[case]
    hook = make_hook()
    # The hook sends no per-request headers; routing metadata is asked for on its session for every case.
    hook.transport._session.headers["X-OpenRouter-Metadata"] = "enabled"

    plain = hook.chat_completion(**request, seed=7)
    streamed = hook.chat_completion(**request, seed=7, stream=True)

    assert part(plain), f"{case}: the emulator did not produce the part this case is about"
    assert comparable(streamed) == comparable(plain)
    assert emulator.stats()["billed_generations"] == 2
