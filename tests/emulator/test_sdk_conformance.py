"""The official SDKs cannot tell the emulator from OpenRouter: every endpoint parses, every error is typed."""

# The SDKs type request bodies as TypedDicts and most response fields as Optional or Unset; these tests pass
# plain dicts and assert on what is present, so those checks add nothing here.
# mypy: disable-error-code="union-attr, arg-type, call-overload, attr-defined, operator"

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest
from openrouter import OpenRouter, errors

from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.hooks import OpenRouterHook

from .conftest import NO_RETRIES

USER: Any = [{"role": "user", "content": "Say hello"}]


def test_chat_completion_parses_with_the_official_sdk(sdk: OpenRouter) -> None:
    result = sdk.chat.send(model="openai/gpt-4o-mini", messages=USER, max_tokens=500, temperature=0.2)
    assert result.id.startswith("gen-")
    assert result.object == "chat.completion"
    assert result.model == "openai/gpt-4o-mini"
    assert result.choices[0].message.role == "assistant"
    assert result.choices[0].message.content
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    assert result.usage.cost is not None and result.usage.cost > 0


def test_streamed_chat_parses_and_matches_the_non_streamed_answer(sdk: OpenRouter) -> None:
    whole = sdk.chat.send(model="openai/gpt-4o-mini", messages=USER)
    chunks = list(sdk.chat.send(model="openai/gpt-4o-mini", messages=USER, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert len({c.id for c in chunks}) == 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == whole.usage.completion_tokens


def test_stream_starts_with_the_processing_comment_and_ends_with_done(http: httpx.Client) -> None:
    body = {"model": "openai/gpt-4o-mini", "messages": USER, "stream": True}
    with http.stream("POST", "/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = "".join(response.iter_text())
    assert raw.startswith(": OPENROUTER PROCESSING\n\n")
    assert raw.endswith("data: [DONE]\n\n")
    assert response.headers["x-generation-id"].startswith("gen-")


def test_processing_comments_come_between_data_events_and_while_latency_is_waited_out(
    http: httpx.Client,
) -> None:
    content = "[[emulator: latency_ms=2000]] Say hello"
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": content}], "stream": True}
    with http.stream("POST", "/chat/completions", json=body) as response:
        lines = [line for line in response.iter_lines() if line]
    first_data = next(index for index, line in enumerate(lines) if line.startswith("data: "))
    before, after = lines[:first_data], lines[first_data + 1 :]
    comment = ": OPENROUTER PROCESSING"
    # One to open the stream, then more every half second of the second before the first token.
    assert before == [comment, comment]
    # Right after the first data event, then again during the second the rest of the answer takes.
    assert after[0] == comment and after.count(comment) >= 2
    assert after[-1] == "data: [DONE]"


def test_generation_parses_and_agrees_with_the_completion(sdk: OpenRouter, emulator: RunningEmulator) -> None:
    emulator.configure(generation_delay_s=0)  # what is checked here is the shape, not when it appears
    result = sdk.chat.send(
        model="anthropic/claude-3.5-haiku", messages=USER, http_referer="https://example.test/app"
    )
    generation = sdk.generations.get_generation(id=result.id).data
    assert generation.id == result.id
    assert generation.model == "anthropic/claude-3.5-haiku"
    assert generation.tokens_prompt == result.usage.prompt_tokens
    assert generation.tokens_completion == result.usage.completion_tokens
    assert generation.total_cost == generation.usage == result.usage.cost
    assert generation.provider_name == "Anthropic"
    assert generation.finish_reason == "stop" and generation.native_finish_reason == "end_turn"
    assert generation.streamed is False
    assert generation.http_referer == "https://example.test/app"
    assert generation.user_agent is not None and generation.user_agent.startswith("speakeasy-sdk/python")
    assert generation.created_at.endswith("Z")


def test_credits_with_a_management_key(sdk_management: OpenRouter) -> None:
    credits = sdk_management.credits.get_credits().data
    assert credits.total_credits == 100.0
    assert credits.total_usage == 0


def test_credits_with_an_inference_key_is_forbidden(sdk: OpenRouter) -> None:
    with pytest.raises(errors.ForbiddenResponseError, match="management key"):
        sdk.credits.get_credits()


def test_key_parses_for_both_kinds_of_key(sdk: OpenRouter, sdk_management: OpenRouter) -> None:
    inference = sdk.api_keys.get_current_key_metadata().data
    assert inference.is_management_key is False
    assert "emulator-test" not in inference.label  # the key itself is never shown
    assert sdk_management.api_keys.get_current_key_metadata().data.is_management_key is True


def test_models_pages_with_next_until_the_catalog_is_exhausted(sdk: OpenRouter) -> None:
    everything = sdk.models.list()
    total = everything.result.total_count
    assert len(everything.result.data) == total >= 20
    page: Any = sdk.models.list(offset=0, limit=7)
    seen: list[str] = []
    while page is not None:
        assert page.result.total_count == total
        seen.extend(model.id for model in page.result.data)
        page = page.next()
    assert seen == [model.id for model in everything.result.data]


def test_model_endpoints_count_single_model_and_providers_parse(sdk: OpenRouter) -> None:
    endpoints = sdk.endpoints.list(author="meta-llama", slug="llama-3.3-70b-instruct").data
    assert [e.provider_name for e in endpoints.endpoints] == ["DeepInfra", "Groq", "Together"]
    free = sdk.endpoints.list(author="meta-llama", slug="llama-3.3-70b-instruct:free").data
    assert free.endpoints[0].pricing.prompt == "0"
    assert sdk.models.count().data.count == sdk.models.list().result.total_count
    assert sdk.models.get(author="openai", slug="gpt-4o").data.id == "openai/gpt-4o"
    providers = sdk.providers.list().data
    assert {"OpenAI", "Anthropic", "DeepInfra"} <= {p.name for p in providers}


def test_unknown_model_endpoints_is_a_typed_404(sdk: OpenRouter) -> None:
    with pytest.raises(errors.NotFoundResponseError):
        sdk.endpoints.list(author="openai", slug="gpt-99")


def test_batch_create_get_list_and_delete_parse(sdk: OpenRouter, emulator: RunningEmulator) -> None:
    emulator.configure(batch_duration_s=0.3)
    created = sdk.batch.create_batches(
        endpoint="/v1/chat/completions",
        model="openai/gpt-4o-mini",
        requests=[
            {"custom_id": f"row-{i}", "body": {"messages": [{"role": "user", "content": f"n{i}"}]}}
            for i in range(3)
        ],
    )
    assert created.status == "validating" and created.results is None
    deadline = time.monotonic() + 30
    batch = sdk.batch.get_batches(id=created.id)
    while batch.status != "completed":
        assert time.monotonic() < deadline, f"batch stuck in {batch.status}"
        batch = sdk.batch.get_batches(id=created.id)
    assert batch.results is not None and [r.custom_id for r in batch.results] == ["row-0", "row-1", "row-2"]
    listing: Any = sdk.batch.list(limit=1)
    assert listing.result.data[0].id == created.id
    assert listing.next() is not None and listing.next().result.data == []
    deleted = sdk.batch.delete(id=created.id)
    assert deleted.deletion.openrouter == "deleted"


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, errors.BadRequestResponseError),
        (401, errors.UnauthorizedResponseError),
        (402, errors.PaymentRequiredResponseError),
        (403, errors.ForbiddenResponseError),
        (404, errors.NotFoundResponseError),
        (408, errors.RequestTimeoutResponseError),
        (413, errors.PayloadTooLargeResponseError),
        (422, errors.UnprocessableEntityResponseError),
        (429, errors.TooManyRequestsResponseError),
        (500, errors.InternalServerResponseError),
        (502, errors.BadGatewayResponseError),
        (503, errors.ServiceUnavailableResponseError),
        (524, errors.EdgeNetworkTimeoutResponseError),
        (529, errors.ProviderOverloadedResponseError),
    ],
)
def test_each_error_status_arrives_as_the_sdk_typed_error(
    sdk: OpenRouter, status: int, error_class: type[errors.OpenRouterError]
) -> None:
    messages: Any = [{"role": "user", "content": f"[[emulator: fault={status}]] hi"}]
    with pytest.raises(error_class) as caught:
        sdk.chat.send(model="openai/gpt-4o-mini", messages=messages)
    assert caught.value.status_code == status
    assert caught.value.data.error.code == status


def test_real_error_causes_are_typed_too(emulator: RunningEmulator, sdk: OpenRouter) -> None:
    with pytest.raises(errors.BadRequestResponseError, match="openai/gpt-99 is not a valid model ID"):
        sdk.chat.send(model="openai/gpt-99", messages=USER)
    with OpenRouter(api_key="sk-or-unknown", server_url=emulator.base_url, retry_config=NO_RETRIES) as anyone:
        assert anyone.chat.send(model="openai/gpt-4o-mini", messages=USER).id  # any sk-or- key is accepted
    with (
        OpenRouter(api_key="not-a-key", server_url=emulator.base_url, retry_config=NO_RETRIES) as stranger,
        pytest.raises(errors.UnauthorizedResponseError, match="User not found"),
    ):
        stranger.chat.send(model="openai/gpt-4o-mini", messages=USER)
    emulator.configure(credits=0)
    with pytest.raises(errors.PaymentRequiredResponseError, match="requires more credits"):
        sdk.chat.send(model="openai/gpt-4o-mini", messages=USER)
    with pytest.raises(errors.NotFoundResponseError, match="Generation not found"):
        sdk.generations.get_generation(id="gen-0-unknown")


def test_openai_sdk_chat_stream_tools_and_legacy_completions(emulator: RunningEmulator) -> None:
    client = openai.OpenAI(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        max_retries=0,
        http_client=openai.DefaultHttpxClient(trust_env=False),
    )
    result = client.chat.completions.create(model="openai/gpt-4o", messages=USER)
    assert result.choices[0].message.content
    stream = client.chat.completions.create(model="openai/gpt-4o", messages=USER, stream=True)
    assert (
        "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        == result.choices[0].message.content
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    called = client.chat.completions.create(
        model="openai/gpt-4o",
        messages=USER,
        tools=tools,
        tool_choice="required",
    )
    assert called.choices[0].finish_reason == "tool_calls"
    assert called.choices[0].message.tool_calls[0].function.name == "get_weather"
    legacy = client.completions.create(model="openai/gpt-3.5-turbo-instruct", prompt="Once upon a time")
    assert legacy.object == "text_completion" and legacy.choices[0].text
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            api_key="nope",
            base_url=emulator.base_url,
            max_retries=0,
            http_client=openai.DefaultHttpxClient(trust_env=False),
        ).chat.completions.create(model="openai/gpt-4o", messages=USER)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="openai/gpt-4o",
            messages=[{"role": "user", "content": "[[emulator: fault=429]]"}],
        )


def _raw_usage_chunk(http: httpx.Client) -> dict[str, Any]:
    body = {"model": "openai/gpt-4o-mini", "messages": USER, "stream": True}
    with http.stream("POST", "/chat/completions", json=body) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: {")]
    return dict(json.loads(events[-1]))


def test_usage_chunk_choices_follow_the_setting_and_every_client_reads_both_forms(
    emulator: RunningEmulator, http: httpx.Client, sdk: OpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_OPENROUTER_DEFAULT", emulator.conn_uri(requests_per_minute=0))
    client = openai.OpenAI(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        max_retries=0,
        http_client=openai.DefaultHttpxClient(trust_env=False),
    )
    whole = OpenRouterHook().chat_completion("anthropic/claude-3.5-haiku", content="Say hello")
    assembled = {}
    for form, choices in (
        ("empty", []),
        ("one", [{"index": 0, "delta": {}, "finish_reason": None, "native_finish_reason": None}]),
    ):
        emulator.configure(usage_chunk_choices=form)
        usage_chunk = _raw_usage_chunk(http)
        assert usage_chunk["choices"] == choices and usage_chunk["usage"]["total_tokens"] > 0

        hook = OpenRouterHook()
        streamed = hook.chat_completion("anthropic/claude-3.5-haiku", content="Say hello", stream=True)
        # The usage chunk's null finish_reason must not replace the one the last content chunk carried.
        assert streamed.finish_reason == "stop"
        assert streamed.choices[0].native_finish_reason == "end_turn"
        assert streamed.text == whole.text and streamed.usage == whole.usage
        assembled[form] = streamed.model_dump(exclude={"id", "created"})

        chunks = list(
            client.chat.completions.create(model="anthropic/claude-3.5-haiku", messages=USER, stream=True)
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.text
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
            "stop"
        ]
        assert (
            chunks[-1].usage is not None
            and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
        )

        sdk_chunks = list(sdk.chat.send(model="anthropic/claude-3.5-haiku", messages=USER, stream=True))
        assert sdk_chunks[-1].usage is not None and len(sdk_chunks[-1].choices) == len(choices)
    assert assembled["empty"] == assembled["one"]
