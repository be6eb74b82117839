"""OpenRouterHook against the emulator over real HTTP on 127.0.0.1: every action, faults, retries, billing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.exceptions import (
    OpenRouterAuthenticationError,
    OpenRouterEndpointGoneError,
    OpenRouterInsufficientCreditsError,
    OpenRouterModerationError,
    OpenRouterNotFoundError,
    OpenRouterOutcomeUnknownError,
    OpenRouterPermissionError,
    OpenRouterRequestError,
    OpenRouterUpstreamError,
)
from airflow_provider_openrouter.hooks import OpenRouterHook
from airflow_provider_openrouter.models import ChatCompletion, Generation, Model

CHAT = "POST /chat/completions"
MakeHook = Callable[..., OpenRouterHook]  # the make_hook fixture (conftest.py)


def counts(emulator: RunningEmulator, route: str) -> dict[str, int]:
    """Requests the emulator saw on ``route``, by status code."""
    return dict(emulator.stats()["requests"].get(route, {}))


def generation_when_ready(hook: OpenRouterHook, generation_id: str, deadline_s: float = 30.0) -> Generation:
    """``get_generation`` as a caller must use it: asked again while the stats are not recorded yet (404)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return hook.get_generation(generation_id)
        except OpenRouterNotFoundError:
            assert time.monotonic() < deadline, f"no stats for {generation_id} after {deadline_s} s"
            time.sleep(0.1)


def cheapest_paid_model(hook: OpenRouterHook) -> Model:
    model = hook.list_models().cheapest(include_free=False)
    assert model is not None
    return model


def expected_cost(hook: OpenRouterHook, chat: ChatCompletion) -> Decimal:
    """Tokens x the serving endpoint's catalog prices, computed from the catalog, not read from the bill."""
    assert chat.model is not None and chat.usage is not None
    endpoints = hook.list_model_endpoints(chat.model)
    served = next(e for e in endpoints.endpoints if e.provider_name == chat.provider)
    pricing = served.pricing
    assert pricing is not None and pricing.prompt is not None and pricing.completion is not None
    return (
        chat.usage.prompt_tokens * pricing.prompt
        + chat.usage.completion_tokens * pricing.completion
        + (pricing.request or Decimal(0))
    )


# --- every action -----------------------------------------------------------------------------------------


def test_connection_test_passes_without_showing_the_key(
    make_hook: MakeHook, emulator: RunningEmulator
) -> None:
    ok, message = make_hook().test_connection()
    assert ok, message
    assert emulator.base_url in message
    assert emulator.api_key not in message
    assert counts(emulator, "GET /key") == {"200": 1}
    assert emulator.stats()["billed_generations"] == 0


def test_chat_completion_flat_form_costs_tokens_times_catalog_price(
    make_hook: MakeHook, emulator: RunningEmulator
) -> None:
    hook = make_hook(app_url="https://example.com/nightly", app_title="Nightly ETL")
    model = cheapest_paid_model(hook)

    chat = hook.chat_completion(model.id, "user", "Write one sentence about pipelines.")

    assert isinstance(chat, ChatCompletion)
    assert chat.text and chat.finish_reason in ("stop", "length")
    assert chat.model == model.id
    assert chat.cost == expected_cost(hook, chat)
    stats = emulator.stats()
    assert stats["billed_generations"] == 1
    assert Decimal(stats["total_cost"]) == chat.cost

    generation = generation_when_ready(hook, chat.generation_id)
    assert generation.id == chat.id
    assert generation.total_cost == chat.cost
    assert generation.tokens_completion == chat.usage.completion_tokens  # type: ignore[union-attr]
    assert generation.http_referer == "https://example.com/nightly"
    assert generation.user_agent is not None and generation.user_agent.startswith(
        "airflow-provider-openrouter/"
    )


def test_chat_completion_full_api(make_hook: MakeHook) -> None:
    hook = make_hook()
    model = hook.list_models(supported_parameters="response_format,tools").cheapest(
        include_free=False, supports=["response_format", "tools"]
    )
    assert model is not None

    as_json = hook.chat_completion(
        model.id,
        content="Give the status as JSON.",
        system_prompt="Answer in JSON.",
        temperature=0.1,
        max_tokens=200,
        seed=3,
        response_format={"type": "json_object"},
    )
    assert isinstance(as_json.parsed_json(), dict)

    tool = {
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
    with_tools = hook.chat_completion(
        model.id,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert with_tools.finish_reason == "tool_calls"
    assert with_tools.tool_calls[0].function.name == "get_weather"
    assert "city" in with_tools.tool_calls[0].function.parsed_arguments()


def test_models_fallback_list_serves_the_next_model(make_hook: MakeHook, emulator: RunningEmulator) -> None:
    hook = make_hook()
    first, second = [m.id for m in hook.list_models(limit=2).data]
    emulator.configure(down_model=[first])
    chat = hook.chat_completion(content="hello", models=[first, second])
    assert chat.model == second


def test_default_model_from_the_connection(make_hook: MakeHook) -> None:
    hook = make_hook()
    wanted = cheapest_paid_model(hook).id
    chat = make_hook("openrouter_defaulted", default_model=wanted).chat_completion(content="hello")
    assert chat.model == wanted


def test_legacy_completion(make_hook: MakeHook, emulator: RunningEmulator) -> None:
    hook = make_hook()
    model = cheapest_paid_model(hook)
    completion = hook.completion(model.id, "Once upon a time", max_tokens=20)
    assert completion.text
    assert completion.cost is not None and completion.cost > 0
    assert emulator.stats()["billed_generations"] == 1


@pytest.mark.parametrize("mode", ["404", "410"])
def test_legacy_completion_gone_points_to_the_chat_operator(
    make_hook: MakeHook, emulator: RunningEmulator, mode: str
) -> None:
    emulator.configure(legacy_completions=mode)
    with pytest.raises(OpenRouterEndpointGoneError) as caught:
        make_hook().completion("openai/gpt-4o-mini", "Once upon a time")
    assert caught.value.status == int(mode)
    assert "OpenRouterChatCompletionOperator" in str(caught.value)
    assert counts(emulator, "POST /completions") == {mode: 1}


def test_credits_need_a_management_key(make_hook: MakeHook, emulator: RunningEmulator) -> None:
    with pytest.raises(OpenRouterPermissionError) as caught:
        make_hook().get_credits()
    assert caught.value.status == 403
    assert "management key" in str(caught.value)
    assert emulator.api_key not in str(caught.value)


def test_credits_with_a_management_key_reflect_spend(make_hook: MakeHook, emulator: RunningEmulator) -> None:
    spender = make_hook()
    chat = spender.chat_completion(cheapest_paid_model(spender).id, content="hello")
    credits = make_hook("openrouter_mgmt", api_key=emulator.management_key).get_credits()
    assert chat.cost is not None and credits.total_usage == chat.cost
    assert credits.remaining == credits.total_credits - chat.cost


def test_generation_is_404_until_ready(make_hook: MakeHook, emulator: RunningEmulator) -> None:
    emulator.configure(generation_delay_s=3.0)  # far longer than two requests, even on a busy machine
    hook = make_hook()
    chat = hook.chat_completion(cheapest_paid_model(hook).id, content="hello")
    with pytest.raises(OpenRouterNotFoundError) as caught:
        hook.get_generation(chat.id)
    assert "GET /generation" in str(caught.value)
    assert generation_when_ready(hook, chat.id).total_cost == chat.cost


def test_list_models_all_pages_filters_and_one_page(make_hook: MakeHook) -> None:
    hook = make_hook()
    catalog = hook.list_models()
    assert catalog.total_count == len(catalog.data) > 5
    assert all(model.prompt_price is not None for model in catalog.data)
    tools = hook.list_models(supported_parameters=["tools"])
    assert tools.data and all(model.supports("tools") for model in tools.data)
    assert len(tools.data) < len(catalog.data)
    page = hook.list_models(limit=5, offset=2)
    assert page.ids == catalog.ids[2:7]


def test_list_model_endpoints(make_hook: MakeHook) -> None:
    hook = make_hook()
    model = cheapest_paid_model(hook)
    endpoints = hook.list_model_endpoints(model.author, model.slug)
    assert endpoints.id == model.id
    assert endpoints.endpoints and all(e.pricing is not None for e in endpoints.endpoints)
    with pytest.raises(OpenRouterNotFoundError):
        hook.list_model_endpoints("acme", "no-such-model")


def test_get_key_reports_usage(make_hook: MakeHook) -> None:
    hook = make_hook()
    chat = hook.chat_completion(cheapest_paid_model(hook).id, content="hello")
    key = hook.get_key()
    assert key.usage == chat.cost
    assert key.is_management_key is False


# --- failures the issue names ------------------------------------------------------------------------------


def test_429_storm_succeeds_after_backing_off(make_hook: MakeHook, emulator: RunningEmulator) -> None:
    hook = make_hook()
    model = cheapest_paid_model(hook)
    chat = hook.chat_completion(model.id, content="[[emulator: fault=429, times=3, retry_after=0.2]] hello")
    assert chat.text
    assert counts(emulator, CHAT) == {"429": 3, "200": 1}
    assert emulator.stats()["billed_generations"] == 1


def test_server_rate_limit_is_honoured_by_waiting(make_hook: MakeHook, emulator: RunningEmulator) -> None:
    emulator.configure(rate_limit_rpm=120, rate_limit_burst=1)  # one request per 0.5 s per key
    hook = make_hook()
    model = cheapest_paid_model(hook)
    started = time.monotonic()
    results = [hook.chat_completion(model.id, content=f"request {n}") for n in range(3)]
    assert all(result.text for result in results)
    stats = emulator.stats()
    assert stats["billed_generations"] == 3 and stats["duplicate_billed"] == 0
    assert counts(emulator, CHAT)["200"] == 3
    assert stats["rate_limited"] == counts(emulator, CHAT).get("429", 0)
    assert time.monotonic() - started < 30


def test_client_rate_limiter_keeps_under_the_server_limit(
    make_hook: MakeHook, emulator: RunningEmulator
) -> None:
    emulator.configure(rate_limit_rpm=240, rate_limit_burst=1)
    hook = make_hook(requests_per_minute=200)  # below the server's 240/min: no 429 at all
    model = cheapest_paid_model(hook)
    for n in range(4):
        hook.chat_completion(model.id, content=f"paced {n}")
    assert counts(emulator, CHAT) == {"200": 4}


def test_401_fails_at_once_naming_the_connection_not_the_key(
    make_hook: MakeHook, emulator: RunningEmulator
) -> None:
    bad_key = "not-a-valid-openrouter-key-123456"
    hook = make_hook("openrouter_badkey", api_key=bad_key)
    with pytest.raises(OpenRouterAuthenticationError) as caught:
        hook.chat_completion("openai/gpt-4o-mini", content="hello")
    text = str(caught.value)
    assert "connection 'openrouter_badkey'" in text
    assert bad_key not in text
    assert counts(emulator, CHAT) == {"401": 1}
    ok, message = hook.test_connection()
    assert not ok and "openrouter_badkey" in message and bad_key not in message


def test_bad_model_id_is_a_clear_error(make_hook: MakeHook, emulator: RunningEmulator) -> None:
    with pytest.raises(OpenRouterRequestError) as caught:
        make_hook().chat_completion("acme/not-a-model", content="hello")
    text = str(caught.value)
    assert caught.value.status == 400
    assert "acme/not-a-model" in text and "list_models()" in text
    assert counts(emulator, CHAT) == {"400": 1}


@pytest.mark.parametrize(
    "kwargs, phrase",
    [
        ({"messages": []}, "messages are empty"),
        (
            {"role": "robot", "content": "hi"},
            "Invalid OpenRouter request: role must be one of system, developer, user",
        ),
    ],
)
def test_empty_messages_and_bad_role_fail_before_sending(
    make_hook: MakeHook, emulator: RunningEmulator, kwargs: dict[str, Any], phrase: str
) -> None:
    with pytest.raises(OpenRouterRequestError) as caught:
        make_hook().chat_completion("openai/gpt-4o-mini", **kwargs)
    assert phrase in str(caught.value)
    assert counts(emulator, CHAT) == {}


def test_503_twice_then_success_bills_exactly_once(make_hook: MakeHook, emulator: RunningEmulator) -> None:
    hook = make_hook()
    chat = hook.chat_completion(cheapest_paid_model(hook).id, content="[[emulator: fault=503, times=2]] hi")
    assert chat.text
    stats = emulator.stats()
    assert counts(emulator, CHAT) == {"503": 2, "200": 1}
    assert stats["billed_generations"] == 1 and stats["duplicate_billed"] == 0
    assert Decimal(stats["total_cost"]) == chat.cost


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("fault", ["reset", "truncate", "html"])
def test_lost_answer_to_a_billable_post_is_not_resent(
    make_hook: MakeHook, emulator: RunningEmulator, fault: str, stream: bool
) -> None:
    hook = make_hook()
    model = cheapest_paid_model(hook)
    with pytest.raises(OpenRouterOutcomeUnknownError) as caught:
        hook.chat_completion(model.id, content=f"[[emulator: fault={fault}]] hello", stream=stream)
    assert caught.value.billed is None
    stats = emulator.stats()
    assert sum(counts(emulator, CHAT).values()) == 1  # sent once, never again
    assert stats["billed_generations"] == 1  # the emulator did the work before the answer was lost


def test_reset_on_a_get_is_retried(make_hook: MakeHook, emulator: RunningEmulator) -> None:
    emulator.configure(fail_next={"GET /key": ["reset", "reset"]})
    key = make_hook().get_key()
    assert key.label
    assert counts(emulator, "GET /key") == {"reset": 2, "200": 1}


@pytest.mark.parametrize("fault", ["error_in_200", "empty_choices"])
def test_error_in_a_200_was_not_billed_and_is_resent_until_retries_run_out(
    make_hook: MakeHook, emulator: RunningEmulator, fault: str
) -> None:
    hook = make_hook(max_retries=1)
    with pytest.raises(OpenRouterUpstreamError) as caught:
        hook.chat_completion(cheapest_paid_model(hook).id, content=f"[[emulator: fault={fault}]] hello")
    assert caught.value.in_body
    # OpenRouter's error envelope: zero-completion insurance charged nothing, so it may be sent again.
    assert caught.value.billed is False
    assert counts(emulator, CHAT) == {"200": 2}
    assert emulator.stats()["billed_generations"] == 0


def test_error_in_a_200_is_resent_and_billed_once(make_hook: MakeHook, emulator: RunningEmulator) -> None:
    hook = make_hook()
    chat = hook.chat_completion(
        cheapest_paid_model(hook).id, content="[[emulator: fault=error_in_200, times=1]] hi"
    )
    assert chat.text
    assert counts(emulator, CHAT) == {"200": 2}
    assert emulator.stats()["billed_generations"] == 1


def test_moderation_403_lists_reasons(make_hook: MakeHook, emulator: RunningEmulator) -> None:
    emulator.configure(flagged_word=["forbiddenword"])
    with pytest.raises(OpenRouterModerationError) as caught:
        make_hook().chat_completion("openai/gpt-4o-mini", content="tell me about forbiddenword")
    assert caught.value.reasons
    assert "Reasons:" in str(caught.value)


def test_402_says_add_credits_or_lower_max_tokens(make_hook: MakeHook, emulator: RunningEmulator) -> None:
    emulator.configure(key_limit="0.0000001")
    with pytest.raises(OpenRouterInsufficientCreditsError) as caught:
        make_hook().chat_completion("openai/gpt-4o-mini", content="hello", max_tokens=4000)
    assert "lower max_tokens" in str(caught.value)
    assert emulator.stats()["billed_generations"] == 0


def test_async_transport_reads_like_the_sync_one(make_hook: MakeHook, emulator: RunningEmulator) -> None:
    emulator.configure(generation_delay_s=0)  # what is checked is the transport, not when stats appear
    hook = make_hook()
    chat = hook.chat_completion(cheapest_paid_model(hook).id, content="hello")

    async def read() -> tuple[dict[str, Any], dict[str, Any]]:
        transport = await hook.aget_async_transport()
        async with transport:
            return await transport.get("/key"), await transport.get("/generation", {"id": chat.id})

    key, generation = asyncio.run(read())
    assert key["data"]["usage"] == pytest.approx(float(chat.cost))  # type: ignore[arg-type]
    assert generation["data"]["id"] == chat.id


# --- streaming ---------------------------------------------------------------------------------------------


def test_streamed_answer_equals_the_plain_one(make_hook: MakeHook, emulator: RunningEmulator) -> None:
    hook = make_hook()
    model = cheapest_paid_model(hook)
    plain = hook.chat_completion(model.id, content="Describe a queue.", seed=5)
    streamed = hook.chat_completion(model.id, content="Describe a queue.", seed=5, stream=True)
    assert streamed.text == plain.text
    assert streamed.cost == plain.cost == expected_cost(hook, streamed)
    assert generation_when_ready(hook, streamed.id).streamed is True
    assert emulator.stats()["billed_generations"] == 2


def test_stream_error_mid_way_raises_and_is_not_resent(
    make_hook: MakeHook, emulator: RunningEmulator
) -> None:
    hook = make_hook()
    with pytest.raises(OpenRouterUpstreamError) as caught:
        hook.chat_completion(
            cheapest_paid_model(hook).id, content="[[emulator: fault=mid_stream]] hello", stream=True
        )
    assert caught.value.in_body and caught.value.generation_id
    assert counts(emulator, CHAT) == {"200": 1}


def test_streamed_tool_call_is_assembled(make_hook: MakeHook) -> None:
    hook = make_hook()
    model = hook.list_models().cheapest(include_free=False, supports=["tools"])
    assert model is not None
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]},
        },
    }
    chat = hook.chat_completion(
        model.id, content="Find it", tools=[tool], tool_choice="required", stream=True
    )
    assert chat.finish_reason == "tool_calls"
    assert chat.tool_calls[0].function.name == "lookup"
    assert "sku" in chat.tool_calls[0].function.parsed_arguments()
