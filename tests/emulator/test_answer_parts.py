"""The optional parts of a chat answer (reasoning, citations, logprobs, refusal, images, routing metadata):
each appears on its documented trigger, the official SDKs parse it, and a stream carries exactly what the
same request gets without streaming."""

# The SDKs type most response fields as Optional or Unset; these tests assert on what is present.
# mypy: disable-error-code="union-attr, arg-type, call-overload, attr-defined, index, operator"

from __future__ import annotations

import base64
import json
import math
from typing import Any

import httpx
import openai
import pytest
from openrouter import OpenRouter

from airflow_provider_openrouter.emulator.testing import RunningEmulator

from .conftest import generation_stats

PROMPT = [{"role": "user", "content": "Summarise the nightly pipeline report"}]
METADATA = {"X-OpenRouter-Metadata": "enabled"}

# (model, extra request fields, extra headers): one case per documented trigger.
CASES: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
    "reasoning-openai": ("openai/o3-mini", {"reasoning": {"effort": "low"}}, {}),
    "reasoning-anthropic": ("anthropic/claude-sonnet-4", {"reasoning": {"effort": "low"}}, {}),
    "reasoning-google": ("google/gemini-2.5-flash", {"include_reasoning": True}, {}),
    "reasoning-deepseek": ("deepseek/deepseek-r1", {"include_reasoning": True}, {}),
    "web-plugin": ("openai/gpt-4o-mini", {"plugins": [{"id": "web"}]}, {}),
    "online-variant": ("openai/gpt-4o-mini:online", {}, {}),
    "logprobs": ("openai/gpt-4o-mini", {"logprobs": True, "top_logprobs": 3}, {}),
    "refusal": (
        "openai/gpt-4o-mini",
        {"messages": [{"role": "user", "content": "[[emulator: refuse]] Hi"}]},
        {},
    ),
    "images": ("google/gemini-2.5-flash-image", {"modalities": ["image", "text"]}, {}),
    "metadata": ("openai/gpt-4o-mini", {}, METADATA),
    "everything": (
        "openai/o3-mini",
        {"reasoning": {"effort": "low"}, "plugins": [{"id": "web"}], "logprobs": True, "top_logprobs": 2},
        METADATA,
    ),
}


def _body(model: str, fields: dict[str, Any], stream: bool) -> dict[str, Any]:
    return {"model": model, "messages": PROMPT, **fields, "stream": stream}


def _events(http: httpx.Client, body: dict[str, Any], headers: dict[str, str]) -> list[dict[str, Any]]:
    with http.stream("POST", "/chat/completions", json=body, headers=headers) as response:
        assert response.status_code == 200
        lines = [line[len("data: ") :] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def _merge_details(fragments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fragments with one index make one detail: text / summary / data concatenate, other keys are kept."""
    merged: dict[int, dict[str, Any]] = {}
    for fragment in fragments:
        detail = merged.setdefault(fragment["index"], {})
        for key, value in fragment.items():
            if key in ("text", "summary", "data") and key in detail:
                detail[key] += value
            else:
                detail[key] = value
    return [merged[index] for index in sorted(merged)]


def _assemble(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A streamed answer put together the way a client does, in the shape of the non-streamed one."""
    message: dict[str, Any] = {"role": "assistant"}
    texts: dict[str, list[str]] = {"content": [], "reasoning": [], "refusal": []}
    fragments: list[dict[str, Any]] = []
    logprobs: dict[str, list[Any]] | None = None
    finish = None
    top: dict[str, Any] = {}
    for event in events:
        for key in ("openrouter_metadata", "usage"):
            if key in event:
                top[key] = event[key]
        for choice in event["choices"]:
            delta = choice["delta"]
            for key, parts in texts.items():
                if delta.get(key) is not None:
                    parts.append(delta[key])
            fragments += delta.get("reasoning_details") or []
            for key in ("annotations", "images"):
                if key in delta:
                    message[key] = delta[key]
            if choice.get("logprobs") is not None:
                logprobs = logprobs or {"content": [], "refusal": []}
                for key in ("content", "refusal"):
                    logprobs[key] += choice["logprobs"][key] or []
            finish = choice["finish_reason"] or finish
    for key, parts in texts.items():
        message[key] = "".join(parts) if parts else None
    if fragments:
        message["reasoning_details"] = _merge_details(fragments)
    if logprobs is not None:
        logprobs = {key: value or None for key, value in logprobs.items()}
    return {"message": message, "logprobs": logprobs, "finish_reason": finish, **top}


@pytest.mark.parametrize("case", CASES)
def test_a_stream_carries_exactly_what_the_non_streamed_answer_holds(http: httpx.Client, case: str) -> None:
    model, fields, headers = CASES[case]
    whole = http.post("/chat/completions", json=_body(model, fields, False), headers=headers)
    assert whole.status_code == 200, whole.text
    result = whole.json()
    choice = result["choices"][0]
    streamed = _assemble(_events(http, _body(model, fields, True), headers))
    expected_message = {key: choice["message"].get(key) for key in streamed["message"]}
    assert streamed["message"] == expected_message
    assert set(choice["message"]) - {"tool_calls"} <= set(streamed["message"])
    assert streamed["logprobs"] == choice["logprobs"]
    assert streamed["finish_reason"] == choice["finish_reason"]
    assert streamed.get("openrouter_metadata") == result.get("openrouter_metadata")
    assert streamed["usage"]["completion_tokens"] == result["usage"]["completion_tokens"]
    assert streamed["usage"]["completion_tokens_details"] == result["usage"]["completion_tokens_details"]


def _message(http: httpx.Client, model: str, **fields: Any) -> dict[str, Any]:
    response = http.post("/chat/completions", json=_body(model, fields, False))
    assert response.status_code == 200, response.text
    return dict(response.json()["choices"][0]["message"])


@pytest.mark.parametrize(
    ("model", "types", "reasoning_format"),
    [
        ("openai/o3-mini", ["reasoning.summary", "reasoning.encrypted"], "openai-responses-v1"),
        ("anthropic/claude-sonnet-4", ["reasoning.text"], "anthropic-claude-v1"),
        ("google/gemini-2.5-flash", ["reasoning.text", "reasoning.encrypted"], "google-gemini-v1"),
        ("qwen/qwen3-235b-a22b", ["reasoning.text"], "unknown"),
    ],
)
def test_reasoning_details_follow_the_model_family_and_hold_the_reasoning_text(
    http: httpx.Client, model: str, types: list[str], reasoning_format: str
) -> None:
    message = _message(http, model, reasoning={"effort": "low"})
    details = message["reasoning_details"]
    assert [detail["type"] for detail in details] == types
    assert {detail["format"] for detail in details} == {reasoning_format}
    assert [detail["index"] for detail in details] == list(range(len(details)))
    readable = details[0].get("text") or details[0].get("summary")
    assert message["reasoning"] and readable == message["reasoning"]
    if model.startswith("anthropic/"):
        assert details[0]["signature"]
    for detail in details[1:]:
        assert base64.b64decode(detail["data"].removeprefix("gAAAAA"))


def test_reasoning_is_counted_in_the_completion_tokens_and_billed(http: httpx.Client) -> None:
    plain = http.post("/chat/completions", json=_body("deepseek/deepseek-r1", {}, False)).json()
    thinking = http.post(
        "/chat/completions", json=_body("deepseek/deepseek-r1", {"include_reasoning": True}, False)
    ).json()
    message = thinking["choices"][0]["message"]
    reasoning_tokens = math.ceil(len(message["reasoning"]) / 4)  # the documented token estimate
    assert message["content"] == plain["choices"][0]["message"]["content"]
    assert thinking["usage"]["completion_tokens_details"]["reasoning_tokens"] == reasoning_tokens
    assert thinking["usage"]["completion_tokens"] == plain["usage"]["completion_tokens"] + reasoning_tokens
    assert thinking["usage"]["cost"] > plain["usage"]["cost"]
    assert plain["choices"][0]["message"]["reasoning"] is None
    assert "reasoning_details" not in plain["choices"][0]["message"]


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        ("openai/gpt-4o-mini", {"reasoning": {"effort": "low"}}),  # the model does not reason
        ("deepseek/deepseek-r1", {"reasoning": {"effort": "none"}}),
        ("deepseek/deepseek-r1", {"reasoning": {"exclude": True}}),
        ("deepseek/deepseek-r1", {"include_reasoning": False}),
    ],
)
def test_no_reasoning_without_a_trigger_on_a_reasoning_model(
    http: httpx.Client, model: str, fields: dict[str, Any]
) -> None:
    message = _message(http, model, **fields)
    assert message["reasoning"] is None and "reasoning_details" not in message


def test_reasoning_comes_out_of_max_tokens_first(http: httpx.Client) -> None:
    response = http.post(
        "/chat/completions",
        json=_body("deepseek/deepseek-r1", {"include_reasoning": True, "max_tokens": 3}, False),
    ).json()
    choice = response["choices"][0]
    assert choice["finish_reason"] == "length"
    assert len(choice["message"]["reasoning"]) <= 12 and choice["message"]["content"] == ""
    assert response["usage"]["completion_tokens"] <= 3


def test_web_citations_point_into_the_content(http: httpx.Client) -> None:
    for model, fields in (
        ("openai/gpt-4o-mini", {"plugins": [{"id": "web"}]}),
        ("openai/gpt-4o-mini:online", {}),
    ):
        message = _message(http, model, **fields)
        content = message["content"]
        assert message["annotations"], model
        for annotation in message["annotations"]:
            assert annotation["type"] == "url_citation"
            citation = annotation["url_citation"]
            assert citation["url"].startswith("https://") and citation["title"]
            assert content[citation["start_index"] : citation["end_index"]] == citation["content"]
    assert "annotations" not in _message(
        http, "openai/gpt-4o-mini", plugins=[{"id": "web", "enabled": False}]
    )


def test_logprobs_give_one_entry_per_token_with_the_top_alternatives(http: httpx.Client) -> None:
    response = http.post(
        "/chat/completions", json=_body("openai/gpt-4o-mini", {"logprobs": True, "top_logprobs": 3}, False)
    ).json()
    choice = response["choices"][0]
    entries = choice["logprobs"]["content"]
    assert "".join(entry["token"] for entry in entries) == choice["message"]["content"]
    assert len(entries) == response["usage"]["completion_tokens"]
    for entry in entries:
        assert entry["logprob"] <= 0 and bytes(entry["bytes"]).decode() == entry["token"]
        assert len(entry["top_logprobs"]) == 3 and entry["top_logprobs"][0]["token"] == entry["token"]
    without = http.post("/chat/completions", json=_body("openai/gpt-4o-mini", {}, False)).json()
    assert without["choices"][0]["logprobs"] is None


def test_refuse_directive_answers_with_a_refusal_that_is_billed(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    message = _message(
        http, "openai/gpt-4o-mini", messages=[{"role": "user", "content": "[[emulator: refuse]] x"}]
    )
    assert message["content"] is None and message["refusal"]
    assert emulator.stats()["billed_generations"] == 1


def test_images_come_only_from_a_model_with_image_output(http: httpx.Client) -> None:
    listed = http.get("/models", params={"output_modalities": "image"}).json()["data"]
    image_model = next(model for model in listed if "image" in model["architecture"]["output_modalities"])
    message = _message(http, image_model["id"], modalities=["image", "text"])
    (image,) = message["images"]
    assert image["type"] == "image_url"
    url = image["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    assert "images" not in _message(http, "openai/gpt-4o-mini", modalities=["image", "text"])


def test_routing_metadata_names_the_request_and_the_endpoint_that_served(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    emulator.configure(down_model=["openai/gpt-4o"])
    body = {**_body("openai/gpt-4o", {}, False), "models": ["openai/gpt-4o-mini"]}
    result = http.post("/chat/completions", json=body, headers=METADATA).json()
    metadata = result["openrouter_metadata"]
    assert metadata["requested"] == "openai/gpt-4o" and metadata["strategy"] == "fallback"
    assert metadata["attempts"][-1] == {
        "model": "openai/gpt-4o-mini",
        "provider": result["provider"],
        "status": 200,
    }
    assert [e["provider"] for e in metadata["endpoints"]["available"] if e["selected"]] == [
        result["provider"]
    ]
    assert (
        "openrouter_metadata"
        not in http.post("/chat/completions", json=_body("openai/gpt-4o-mini", {}, False)).json()
    )


def test_the_openrouter_sdk_parses_every_part_in_both_modes(sdk: OpenRouter) -> None:
    everything: dict[str, Any] = {
        "model": "openai/o3-mini",
        "messages": PROMPT,
        "reasoning": {"effort": "low"},
        "logprobs": True,
        "top_logprobs": 2,
    }
    result = sdk.chat.send(**everything, x_open_router_metadata="enabled")
    choice = result.choices[0]
    assert [detail.type for detail in choice.message.reasoning_details] == [
        "reasoning.summary",
        "reasoning.encrypted",
    ]
    assert choice.message.reasoning == choice.message.reasoning_details[0].summary
    assert choice.logprobs.content[0].top_logprobs[0].token == choice.logprobs.content[0].token
    assert result.openrouter_metadata.requested == "openai/o3-mini"
    assert result.openrouter_metadata.endpoints.available[0].selected

    chunks = list(sdk.chat.send(**everything, stream=True, x_open_router_metadata="enabled"))
    reasoning = "".join(c.choices[0].delta.reasoning or "" for c in chunks if c.choices)
    assert reasoning == choice.message.reasoning
    tokens = [
        e.token for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content
    ]
    assert tokens == [e.token for e in choice.logprobs.content]
    assert any(c.openrouter_metadata is not None for c in chunks)

    refused = [{"role": "user", "content": "[[emulator: refuse]] Hi"}]
    whole = sdk.chat.send(model="openai/gpt-4o-mini", messages=refused)
    streamed = list(sdk.chat.send(model="openai/gpt-4o-mini", messages=refused, stream=True))
    assert (
        "".join(c.choices[0].delta.refusal or "" for c in streamed if c.choices)
        == whole.choices[0].message.refusal
    )

    painted = sdk.chat.send(
        model="google/gemini-2.5-flash-image", messages=PROMPT, modalities=["image", "text"]
    )
    assert painted.choices[0].message.images[0].image_url.url.startswith("data:image/png;base64,")


def test_the_openai_sdk_parses_citations_images_refusal_and_logprobs_in_both_modes(
    emulator: RunningEmulator,
) -> None:
    client = openai.OpenAI(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)
    cited = client.chat.completions.create(
        model="openai/gpt-4o-mini:online", messages=PROMPT, logprobs=True, top_logprobs=2
    )
    message = cited.choices[0].message
    assert message.annotations and message.annotations[0].url_citation.url.startswith("https://")
    assert "".join(e.token for e in cited.choices[0].logprobs.content) == message.content

    chunks = list(
        client.chat.completions.create(
            model="openai/gpt-4o-mini:online", messages=PROMPT, logprobs=True, top_logprobs=2, stream=True
        )
    )
    streamed = [c.choices[0] for c in chunks if c.choices]
    assert "".join(c.delta.content or "" for c in streamed) == message.content
    annotations = [a for c in streamed for a in (c.delta.model_extra or {}).get("annotations", [])]
    assert annotations == [a.model_dump(exclude_none=True) for a in message.annotations]
    assert [e.token for c in streamed if c.logprobs for e in c.logprobs.content] == [
        e.token for e in cited.choices[0].logprobs.content
    ]

    refused = client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "[[emulator: refuse]] Hi"}]
    )
    assert refused.choices[0].message.refusal and refused.choices[0].message.content is None

    painted = client.chat.completions.create(
        model="google/gemini-2.5-flash-image", messages=PROMPT, extra_body={"modalities": ["image", "text"]}
    )
    images = (painted.choices[0].message.model_extra or {})["images"]
    assert images[0]["image_url"]["url"].startswith("data:image/png;base64,")


def test_the_generation_record_counts_reasoning_tokens_and_generated_images(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    emulator.configure(generation_delay_s=0)
    thinking = http.post(
        "/chat/completions", json=_body("deepseek/deepseek-r1", {"include_reasoning": True}, False)
    ).json()
    record = generation_stats(http, thinking["id"])
    usage = thinking["usage"]
    assert record["native_tokens_reasoning"] == usage["completion_tokens_details"]["reasoning_tokens"] > 0
    assert record["tokens_completion"] == usage["completion_tokens"]
    painted = http.post(
        "/chat/completions",
        json=_body("google/gemini-2.5-flash-image", {"modalities": ["image", "text"]}, False),
    ).json()
    record = generation_stats(http, painted["id"])
    assert record["num_media_completion"] == 1
    assert (
        record["native_tokens_completion_images"]
        == painted["usage"]["completion_tokens_details"]["image_tokens"]
    )
