"""What the emulated models answer: deterministic text, max_tokens, stop, JSON schemas, tool calls, and
routing (fallback models, provider preferences)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import pytest

from airflow_provider_openrouter.emulator.testing import RunningEmulator

from .conftest import chat, generation_stats

REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 5, "maxLength": 40},
        "severity": {"enum": ["low", "medium", "high"]},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "urgent": {"type": "boolean"},
        "owner": {"$ref": "#/$defs/person"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 4},
        "notes": {"type": ["string", "null"]},
        "steps": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"order": {"type": "integer", "minimum": 0}, "text": {"type": "string"}},
                "required": ["order", "text"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["title", "severity", "score", "owner", "tags"],
    "additionalProperties": False,
    "$defs": {
        "person": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "email": {"type": "string", "format": "email"}},
            "required": ["name", "email"],
        }
    },
}


def content(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def test_the_same_request_gets_the_same_answer_and_inputs_change_it(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    first = content(chat(http, "Describe the weather", temperature=1.5))
    assert content(chat(http, "Describe the weather", temperature=0)) == first  # sampling is ignored
    assert content(chat(http, "Describe the weather", seed=7)) != first
    assert content(chat(http, "Describe the weather", model="openai/gpt-4o")) != first
    assert content(chat(http, "Describe the weather!")) != first
    emulator.configure(seed=99)
    assert content(chat(http, "Describe the weather")) != first


def test_max_tokens_cuts_the_answer_with_finish_reason_length(http: httpx.Client) -> None:
    full = chat(http, "Tell me everything").json()
    cut = chat(http, "Tell me everything", max_tokens=3).json()
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["usage"]["completion_tokens"] <= 3
    assert full["choices"][0]["message"]["content"].startswith(cut["choices"][0]["message"]["content"])


def test_stop_sequences_end_the_answer_before_them(http: httpx.Client) -> None:
    full = content(chat(http, "Tell me a story"))
    stop_word = full.split(" ")[3]
    stopped = chat(http, "Tell me a story", stop=["NEVER-THERE", stop_word]).json()["choices"][0]
    assert stopped["message"]["content"] == full[: full.index(stop_word)]
    assert stopped["finish_reason"] == "stop"


@pytest.mark.parametrize("index", range(12))
def test_json_schema_answers_validate_against_the_schema(http: httpx.Client, index: int) -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "report", "strict": True, "schema": REPORT_SCHEMA},
    }
    text = content(chat(http, f"Report incident {index}", response_format=response_format))
    jsonschema.validate(json.loads(text), REPORT_SCHEMA)


def test_json_object_answers_are_json_objects(http: httpx.Client) -> None:
    text = content(chat(http, "Reply in JSON", response_format={"type": "json_object"}))
    assert isinstance(json.loads(text), dict)


def test_a_required_tool_is_called_with_arguments_valid_for_its_parameters(http: httpx.Client) -> None:
    weather = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
            "unit": {"enum": ["C", "F"]},
        },
        "required": ["city", "days", "unit"],
    }
    search = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
    tools = [
        {"type": "function", "function": {"name": "search", "parameters": search}},
        {"type": "function", "function": {"name": "get_weather", "parameters": weather}},
    ]
    forced = chat(
        http,
        "Weather in Paris?",
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    ).json()["choices"][0]
    assert forced["finish_reason"] == "tool_calls"
    assert forced["message"]["content"] is None
    (call,) = forced["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    jsonschema.validate(json.loads(call["function"]["arguments"]), weather)
    required = chat(http, "Search", tools=tools, tool_choice="required").json()["choices"][0]
    assert required["message"]["tool_calls"][0]["function"]["name"] == "search"
    auto = chat(http, "Just talk", tools=tools, tool_choice="auto").json()["choices"][0]
    assert auto["finish_reason"] == "stop" and auto["message"]["content"]


def test_tool_choice_naming_an_unknown_function_is_a_400(http: httpx.Client) -> None:
    tools = [{"type": "function", "function": {"name": "search"}}]
    response = chat(http, "x", tools=tools, tool_choice={"type": "function", "function": {"name": "nope"}})
    assert response.status_code == 400 and "'nope'" in response.json()["error"]["message"]


def test_streamed_tool_call_arguments_add_up_to_the_non_streamed_call(http: httpx.Client) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {
                    "type": "object",
                    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                },
            },
        }
    ]
    body = {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "stock?"}],
        "tools": tools,
        "tool_choice": "required",
    }
    whole = http.post("/chat/completions", json=body).json()["choices"][0]["message"]["tool_calls"][0]
    with http.stream("POST", "/chat/completions", json={**body, "stream": True}) as response:
        chunks = [
            json.loads(line[6:])
            for line in response.iter_lines()
            if line.startswith("data: ") and line != "data: [DONE]"
        ]
    calls = [
        call for c in chunks if c["choices"] for call in c["choices"][0]["delta"].get("tool_calls") or ()
    ]
    assert calls[0]["function"]["name"] == "lookup" and calls[0]["id"] == whole["id"]
    assert "".join(c["function"]["arguments"] for c in calls) == whole["function"]["arguments"]


def test_fallback_models_serve_when_the_first_is_down(http: httpx.Client, emulator: RunningEmulator) -> None:
    body = {
        "model": "openai/gpt-4o",
        "models": ["anthropic/claude-3.5-haiku"],
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert http.post("/chat/completions", json=body).json()["model"] == "openai/gpt-4o"
    emulator.configure(down_model=["openai/gpt-4o"])
    served = http.post("/chat/completions", json=body).json()
    assert served["model"] == "anthropic/claude-3.5-haiku" and served["provider"] == "Anthropic"
    emulator.configure(down_model=["openai/gpt-4o", "anthropic/claude-3.5-haiku"])
    assert http.post("/chat/completions", json=body).status_code == 503


@pytest.mark.parametrize(
    ("model", "provider", "expected"),
    [
        ("meta-llama/llama-3.1-8b-instruct", None, "DeepInfra"),
        ("meta-llama/llama-3.1-8b-instruct", {"sort": "throughput"}, "Groq"),
        ("meta-llama/llama-3.1-8b-instruct:nitro", None, "Groq"),
        ("meta-llama/llama-3.1-8b-instruct", {"order": ["together", "groq"]}, "Together"),
        ("meta-llama/llama-3.1-8b-instruct", {"ignore": ["DeepInfra"]}, "Together"),
        ("meta-llama/llama-3.1-8b-instruct", {"sort": {"by": "latency"}}, "Groq"),
        (
            "anthropic/claude-3.5-haiku",
            {"order": ["amazon-bedrock"], "allow_fallbacks": False},
            "Amazon Bedrock",
        ),
    ],
)
def test_provider_preferences_choose_the_endpoint(
    http: httpx.Client, model: str, provider: dict | None, expected: str
) -> None:
    body = chat(http, "route me", model=model, provider=provider).json()
    assert body["provider"] == expected
    generation = generation_stats(http, body["id"])
    assert generation["provider_name"] == expected


def test_provider_preferences_that_exclude_every_endpoint_are_a_404(http: httpx.Client) -> None:
    response = chat(http, "x", model="openai/gpt-4o", provider={"order": ["groq"], "allow_fallbacks": False})
    assert response.status_code == 404


def test_legacy_completion_answers_each_prompt(http: httpx.Client) -> None:
    body = http.post(
        "/completions", json={"model": "openai/gpt-3.5-turbo-instruct", "prompt": ["a", "b"]}
    ).json()
    assert body["object"] == "text_completion"
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert body["choices"][0]["text"] != body["choices"][1]["text"]
    with http.stream("POST", "/completions", json={"prompt": "a", "stream": True}) as response:
        chunks = [
            json.loads(line[6:])
            for line in response.iter_lines()
            if line.startswith("data: ") and line != "data: [DONE]"
        ]
    single = http.post("/completions", json={"prompt": "a"}).json()
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == single["choices"][0]["text"]
    assert chunks[-1]["usage"]["completion_tokens"] == single["usage"]["completion_tokens"]
