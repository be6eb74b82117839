"""Typed results: parsing realistic wire bodies, exact money, conveniences, and the XCom round trip."""

# The wire bodies are kept verbatim, one JSON object per line group, as OpenRouter sends them.
# ruff: noqa: E501

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from decimal import Decimal

import pytest
from pydantic import ValidationError

from airflow_provider_openrouter.models import (
    RESULT_MODELS,
    ChatCompletion,
    Credits,
    Endpoint,
    Generation,
    KeyInfo,
    Model,
    ModelEndpoints,
    ModelList,
    TextCompletion,
    Usage,
    register_with_serde,
)

# Bodies below are the SDK-validated examples of the OpenRouter reference (Appendix A), plus fields that the
# API added later ("brand_new_field") to prove tolerance.
CHAT_BODY = """
{"id":"gen-1700000000-abc123","object":"chat.completion","created":1700000000,"model":"openai/gpt-4o-mini",
 "system_fingerprint":null,
 "choices":[{"index":0,"finish_reason":"stop","native_finish_reason":"stop","logprobs":null,
   "message":{"role":"assistant","content":"Hello!","refusal":null,"reasoning":null,"brand_new_field":1}}],
 "usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"cost":0.0000066,"is_byok":false,
   "prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},
   "completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0},
   "cost_details":{"upstream_inference_cost":null,"upstream_inference_prompt_cost":0.0000018,
                   "upstream_inference_completions_cost":0.0000048}},
 "provider":"OpenAI","brand_new_field":{"nested":[1,2]}}
"""

TOOL_BODY = """
{"id":"gen-2","object":"chat.completion","created":1700000000,"model":"openai/gpt-4o-mini","system_fingerprint":"fp_x",
 "choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":null,
   "tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}}]}}]}
"""

GENERATION_BODY = """
{"data":{"id":"gen-1700000000-abc123","api_type":"completions","app_id":null,"cache_discount":null,"cancelled":false,
 "created_at":"2025-01-01T00:00:00.000Z","data_region":"global","external_user":null,"finish_reason":"stop","generation_time":850,
 "http_referer":null,"is_byok":false,"latency":1200,"model":"openai/gpt-4o-mini","moderation_latency":null,"native_finish_reason":"stop",
 "native_tokens_cached":0,"native_tokens_completion":3,"native_tokens_completion_images":0,"native_tokens_prompt":12,"native_tokens_reasoning":0,
 "num_fetches":0,"num_input_audio_prompt":0,"num_media_completion":0,"num_media_prompt":0,"num_search_results":0,"origin":"",
 "preset_id":null,"provider_name":"OpenAI","provider_responses":[{"status":200,"provider_name":"OpenAI","latency":1100,"is_byok":false}],
 "router":null,"service_tier":null,"streamed":false,"tokens_completion":3,"tokens_prompt":12,"total_cost":0.0000066,
 "upstream_id":"chatcmpl-xyz","upstream_inference_cost":null,"usage":0.0000066,"user_agent":"speakeasy-sdk/python",
 "web_search_engine":null,"workspace_id":null,"request_id":"req-1","response_cache_source_id":null,"session_id":null}}
"""

MODELS_BODY = """
{"data":[
 {"id":"openai/gpt-4o-mini","canonical_slug":"openai/gpt-4o-mini-2024-07-18","name":"OpenAI: GPT-4o-mini","created":1721260800,
 "description":"Small model","context_length":128000,
 "architecture":{"modality":"text+image->text","input_modalities":["text","image"],"output_modalities":["text"],"tokenizer":"GPT","instruct_type":null},
 "pricing":{"prompt":"0.00000015","completion":"0.0000006","request":"0","image":"0"},
 "top_provider":{"context_length":128000,"max_completion_tokens":16384,"is_moderated":true},
 "per_request_limits":null,"supported_parameters":["temperature","max_tokens","tools","tool_choice","response_format"],
 "default_parameters":null,"supported_voices":null,"links":{"details":"/api/v1/models/openai/gpt-4o-mini/endpoints"}},
 {"id":"acme/tiny","canonical_slug":"acme/tiny","name":"Acme Tiny","created":1721260800,"context_length":4096,
 "architecture":{"modality":"text->text","input_modalities":["text"],"output_modalities":["text"],"tokenizer":"Other","instruct_type":null},
 "pricing":{"prompt":"0.0000001","completion":"0.0000002"},
 "top_provider":{"context_length":4096,"max_completion_tokens":1024,"is_moderated":false},
 "per_request_limits":null,"supported_parameters":["temperature"],"default_parameters":null,"supported_voices":null,
 "links":{"details":"/api/v1/models/acme/tiny/endpoints"},"future_field":true},
 {"id":"acme/free:free","canonical_slug":"acme/free","name":"Acme Free","created":1721260800,"context_length":8192,
 "architecture":{"modality":"text->text","input_modalities":["text"],"output_modalities":["text"],"tokenizer":"Other","instruct_type":null},
 "pricing":{"prompt":"0","completion":"0"},"top_provider":{"is_moderated":false},"per_request_limits":null,
 "supported_parameters":["temperature","tools"],"default_parameters":null,"supported_voices":null,"links":{"details":"x"}}],
 "links":{"next":null},"total_count":3}
"""

ENDPOINTS_BODY = """
{"data":{"id":"openai/gpt-4o-mini","name":"OpenAI: GPT-4o-mini","created":1721260800,"description":"Small model",
 "architecture":{"tokenizer":"GPT","instruct_type":null,"modality":"text+image->text","input_modalities":["text","image"],"output_modalities":["text"]},
 "endpoints":[{"name":"OpenAI | openai/gpt-4o-mini","model_id":"openai/gpt-4o-mini","model_name":"GPT-4o-mini","context_length":128000,
   "pricing":{"prompt":"0.00000015","completion":"0.0000006","request":"0","image":"0"},"provider_name":"OpenAI","tag":"openai",
   "quantization":null,"max_completion_tokens":16384,"max_prompt_tokens":null,"supported_parameters":["temperature","tools"],"status":0,
   "uptime_last_30m":99.9,"uptime_last_5m":null,"uptime_last_1d":99.5,"supports_implicit_caching":true,"supports_diarization":false,
   "latency_last_30m":null,"throughput_last_30m":null,"service_tier":null,"native_tools":{},
   "supports_tool_choice":{"auto":true,"none":true,"required":true,"function":true}}]}}
"""

KEY_BODY = """
{"data":{"label":"sk-or-v1-abc...xyz","limit":null,"limit_remaining":null,"limit_reset":null,"usage":1.5,"usage_daily":0.1,"usage_weekly":0.5,
 "usage_monthly":1.5,"byok_usage":0,"byok_usage_daily":0,"byok_usage_weekly":0,"byok_usage_monthly":0,"include_byok_in_limit":false,
 "is_free_tier":false,"is_management_key":false,"is_provisioning_key":false,"creator_user_id":"user_1","organization_id":null,
 "workspace_id":"ws_1","expires_at":null,"allowed_data_regions":["global"],"budgets":[],"effective_budget":null,
 "free_model_daily_requests":{"limit":1000,"remaining":1000,"used":0},
 "rate_limit":{"requests":-1,"interval":"10s","note":"This field is deprecated and safe to ignore."}}}
"""


def test_chat_completion_parses_with_conveniences_and_keeps_unknown_fields() -> None:
    chat = ChatCompletion.model_validate_json(CHAT_BODY)

    assert chat.text == "Hello!"
    assert chat.generation_id == "gen-1700000000-abc123"
    assert chat.finish_reason == "stop"
    assert chat.provider == "OpenAI"
    assert chat.cost == Decimal("0.0000066")
    assert chat.usage is not None and chat.usage.cost_details is not None
    assert chat.usage.cost_details.upstream_inference_prompt_cost == Decimal("0.0000018")
    assert chat.usage.completion_tokens_details is not None
    assert chat.usage.completion_tokens_details.reasoning_tokens == 0
    dumped = chat.model_dump(mode="json")
    assert dumped["brand_new_field"] == {"nested": [1, 2]}
    assert dumped["choices"][0]["message"]["brand_new_field"] == 1


def test_tool_calls_and_null_content() -> None:
    chat = ChatCompletion.model_validate_json(TOOL_BODY)

    assert chat.text == ""
    assert chat.finish_reason == "tool_calls"
    assert [call.function.name for call in chat.tool_calls] == ["get_weather"]
    assert chat.tool_calls[0].function.parsed_arguments() == {"city": "Paris"}
    assert chat.cost is None


def test_text_from_content_parts() -> None:
    chat = ChatCompletion.model_validate(
        {
            "id": "gen-parts",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": [
                            {"type": "text", "text": "a"},
                            {"type": "image_url"},
                            {"type": "text", "text": "b"},
                        ],
                    },
                }
            ],
        }
    )
    assert chat.text == "ab"


@pytest.mark.parametrize(
    "content, expected",
    [('{"a": 1}', {"a": 1}), ('```json\n{"a": [1, 2]}\n```', {"a": [1, 2]}), ("```\n[true]\n```", [True])],
)
def test_parsed_json(content: str, expected: object) -> None:
    chat = ChatCompletion.model_validate(
        {"id": "gen-j", "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
    )
    assert chat.parsed_json() == expected


def test_parsed_json_names_the_generation_when_text_is_not_json() -> None:
    chat = ChatCompletion.model_validate(
        {"id": "gen-notjson", "choices": [{"index": 0, "message": {"content": "Sure! Here it is"}}]}
    )
    with pytest.raises(ValueError, match=r"gen-notjson did not return JSON.*Sure! Here it is"):
        chat.parsed_json()


def test_empty_choices_give_empty_text() -> None:
    chat = ChatCompletion.model_validate({"id": "gen-e", "choices": []})
    assert chat.text == ""
    assert chat.finish_reason is None
    assert chat.tool_calls == []


def test_text_completion() -> None:
    body = (
        '{"id":"gen-t","object":"text_completion","created":1730000000,"model":"m","provider":"P",'
        '"system_fingerprint":"fp","choices":[{"text":"lo world","index":0,"logprobs":null,"finish_reason":"length",'
        '"native_finish_reason":"MAX_TOKENS","reasoning":null}],'
        '"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12,"cost":0.00000735}}'
    )
    completion = TextCompletion.model_validate_json(body)
    assert completion.text == "lo world"
    assert completion.finish_reason == "length"
    assert completion.generation_id == "gen-t"
    assert completion.cost == Decimal("0.00000735")


def test_credits_remaining_is_exact() -> None:
    credits = Credits.model_validate(json.loads('{"total_credits":50.0,"total_usage":12.3456}'))
    # 50.0 - 12.3456 in float arithmetic is 37.654399999999995; money must stay exact.
    assert credits.remaining == Decimal("37.6544")
    assert isinstance(credits.total_usage, Decimal)


@pytest.mark.parametrize(
    "wire, expected",
    [
        ("0.00000735", "0.00000735"),
        ("1e-7", "1E-7"),
        ("0.1", "0.1"),
        ("3", "3"),
        ("123456.000001", "123456.000001"),
    ],
)
def test_json_number_costs_become_the_literal_decimal(wire: str, expected: str) -> None:
    usage = Usage.model_validate(
        json.loads(f'{{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2,"cost":{wire}}}')
    )
    assert usage.cost == Decimal(expected)
    assert str(usage.cost) == str(Decimal(expected))


def test_money_rejects_booleans_and_garbage() -> None:
    with pytest.raises(ValidationError):
        Credits.model_validate({"total_credits": True, "total_usage": 0})
    with pytest.raises(ValidationError, match="valid decimal"):
        Credits.model_validate({"total_credits": "ten", "total_usage": 0})


def test_generation_has_every_connector_and_sdk_field() -> None:
    generation = Generation.model_validate(json.loads(GENERATION_BODY)["data"])
    # The connector's (seed) documented fields of "Get generation".
    connector_fields = [
        "id",
        "total_cost",
        "created_at",
        "model",
        "origin",
        "usage",
        "is_byok",
        "upstream_id",
        "cache_discount",
        "app_id",
        "streamed",
        "cancelled",
        "provider_name",
        "latency",
        "moderation_latency",
        "generation_time",
        "finish_reason",
        "native_finish_reason",
        "tokens_prompt",
        "tokens_completion",
        "native_tokens_prompt",
        "native_tokens_completion",
        "native_tokens_reasoning",
        "num_media_prompt",
        "num_media_completion",
        "num_search_results",
    ]
    declared = set(Generation.model_fields)
    assert set(connector_fields) <= declared
    sdk_only = [
        "api_type",
        "data_region",
        "external_user",
        "http_referer",
        "user_agent",
        "native_tokens_cached",
        "native_tokens_completion_images",
        "num_fetches",
        "num_input_audio_prompt",
        "preset_id",
        "provider_responses",
        "router",
        "service_tier",
        "upstream_inference_cost",
        "web_search_engine",
        "workspace_id",
        "request_id",
        "response_cache_source_id",
        "session_id",
    ]
    assert set(sdk_only) <= declared
    assert generation.total_cost == Decimal("0.0000066")
    assert generation.usage == Decimal("0.0000066")
    assert generation.provider_responses is not None
    assert generation.provider_responses[0].status == 200
    assert generation.tokens_prompt == 12
    assert generation.model_extra == {}


def test_model_list_prices_and_cheapest() -> None:
    models = ModelList.model_validate_json(MODELS_BODY)
    assert models.total_count == 3
    assert models.ids == ["openai/gpt-4o-mini", "acme/tiny", "acme/free:free"]
    mini = models.get("openai/gpt-4o-mini")
    assert mini is not None
    assert mini.prompt_price == Decimal("0.00000015")
    assert mini.completion_price == Decimal("0.0000006")
    assert mini.author == "openai" and mini.slug == "gpt-4o-mini"
    assert mini.supports("tools", "response_format")
    # 1000 prompt + 500 completion tokens: mini = 0.00015 + 0.0003; tiny = 0.0001 + 0.0001.
    assert mini.cost_for(1000, 500) == Decimal("0.00045")
    tiny = models.get("acme/tiny")
    assert tiny is not None and tiny.model_extra == {"future_field": True}
    assert models.cheapest(prompt_tokens=1000, completion_tokens=500) is models.get("acme/free:free")
    assert models.cheapest(prompt_tokens=1000, completion_tokens=500, include_free=False) is tiny
    assert models.cheapest(include_free=False, supports=["tools"]) is mini
    assert models.cheapest(include_free=False, min_context_length=100_000) is mini
    assert models.cheapest(min_context_length=1_000_000) is None


def test_cheapest_skips_routers_listed_at_a_negative_price() -> None:
    # OpenRouter lists openrouter/auto at "-1": its cost depends on the model it routes to.
    models = ModelList.model_validate(
        {
            "data": [
                {"id": "openrouter/auto", "pricing": {"prompt": "-1", "completion": "-1"}},
                {
                    "id": "acme/odd",
                    "pricing": {"prompt": "0.000001", "completion": "0.000001", "request": "-1"},
                },
                {"id": "acme/small", "pricing": {"prompt": "0.000002", "completion": "0.000004"}},
                {"id": "acme/large", "pricing": {"prompt": "0.00001", "completion": "0.00003"}},
            ]
        }
    )
    auto = models.get("openrouter/auto")
    assert auto is not None and auto.pricing is not None and auto.pricing.is_variable
    assert models.cheapest() is models.get("acme/small")
    assert models.cheapest(include_free=False) is models.get("acme/small")
    assert ModelList(data=[auto]).cheapest() is None


def test_cheapest_endpoint_skips_a_negative_price() -> None:
    endpoints = ModelEndpoints.model_validate(
        {
            "id": "openrouter/auto",
            "endpoints": [
                {"provider_name": "Router", "pricing": {"prompt": "-1", "completion": "-1"}},
                {"provider_name": "Real", "pricing": {"prompt": "0.000003", "completion": "0.000003"}},
            ],
        }
    )
    best = endpoints.cheapest_endpoint()
    assert best is not None and best.provider_name == "Real"


def test_model_endpoints_connector_fields() -> None:
    endpoints = ModelEndpoints.model_validate(json.loads(ENDPOINTS_BODY)["data"])
    assert endpoints.architecture is not None and endpoints.architecture.tokenizer == "GPT"
    endpoint = endpoints.endpoints[0]
    assert isinstance(endpoint, Endpoint)
    assert endpoint.pricing is not None and endpoint.pricing.request == Decimal("0")
    assert endpoint.provider_name == "OpenAI"
    assert endpoint.supported_parameters == ["temperature", "tools"]
    assert endpoint.context_length == 128000
    assert endpoints.cheapest_endpoint() is endpoint
    for name in ("name", "context_length", "pricing", "provider_name", "supported_parameters"):
        assert name in Endpoint.model_fields
    for name in ("id", "name", "created", "description", "architecture", "endpoints"):
        assert name in ModelEndpoints.model_fields


def test_connector_float_fields_accept_floats() -> None:
    # The connector documents created and context_length as floats.
    endpoints = ModelEndpoints.model_validate(
        {"id": "a/b", "created": 1721260800.5, "endpoints": [{"context_length": 8192.0}]}
    )
    assert endpoints.created == 1721260800.5
    assert endpoints.endpoints[0].context_length == 8192.0


def test_key_info() -> None:
    key = KeyInfo.model_validate(json.loads(KEY_BODY)["data"])
    assert key.usage == Decimal("1.5")
    assert key.limit is None
    assert key.is_management_key is False
    assert key.free_model_daily_requests == {"limit": 1000, "remaining": 1000, "used": 0}


def test_model_requires_an_id() -> None:
    with pytest.raises(ValidationError):
        Model.model_validate({"name": "nameless"})


def test_result_models_are_the_operator_results() -> None:
    assert {cls.__name__ for cls in RESULT_MODELS} >= {
        "ChatCompletion",
        "TextCompletion",
        "Credits",
        "Generation",
        "ModelList",
        "ModelEndpoints",
        "KeyInfo",
    }


_ROUND_TRIP = textwrap.dedent(
    """
    import json, sys
    from decimal import Decimal
    try:
        from airflow.sdk import serde
    except ImportError:  # Airflow 3.1: XCom's serde is still in the core
        from airflow.serialization import serde
    serialize, deserialize = serde.serialize, serde.deserialize
    chat_body = json.loads(sys.argv[1])
    models_body = json.loads(sys.argv[2])
    from airflow_provider_openrouter import models
    stored = json.dumps(serialize(models.ChatCompletion.model_validate(chat_body)))
    stored_list = json.dumps(serialize(models.ModelList.model_validate(models_body)))
    stored_credits = json.dumps(serialize(models.Credits(total_credits="50", total_usage="12.3456")))
    if {forget}:
        serde._extra_allowed.clear()
    chat = deserialize(json.loads(stored))
    catalog = deserialize(json.loads(stored_list))
    credits = deserialize(json.loads(stored_credits))
    print(json.dumps({{
        "type": type(chat).__name__,
        "usage_type": type(chat.usage).__name__,
        "message_type": type(chat.choices[0].message).__name__,
        "cost": repr(chat.cost),
        "extra": chat.model_extra.get("brand_new_field"),
        "catalog_type": type(catalog.data[0]).__name__,
        "price": repr(catalog.data[0].pricing.prompt),
        "remaining": repr(credits.remaining),
    }}))
    """
)


def _run_round_trip(tmp_path: object, *, forget: bool) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW__")}
    env["AIRFLOW_HOME"] = str(tmp_path)
    code = _ROUND_TRIP.format(forget=forget)
    return subprocess.run(
        [sys.executable, "-c", code, CHAT_BODY, MODELS_BODY],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_xcom_serde_round_trip_with_default_allow_list(tmp_path: object) -> None:
    result = _run_round_trip(tmp_path, forget=False)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {
        "type": "ChatCompletion",
        "usage_type": "Usage",
        "message_type": "ChatMessage",
        "cost": "Decimal('0.0000066')",
        "extra": {"nested": [1, 2]},
        "catalog_type": "Model",
        "price": "Decimal('1.5E-7')",
        "remaining": "Decimal('37.6544')",
    }


def test_without_registration_the_default_allow_list_rejects_the_class(tmp_path: object) -> None:
    # The negative control: proves the round trip above passes because models.py registers its classes.
    result = _run_round_trip(tmp_path, forget=True)
    assert result.returncode != 0
    assert "was not found in allow list" in result.stderr


# --- register_with_serde on every serde generation --------------------------------------------------------
# The fakes stand in for the three shapes of Airflow's XCom serde: task-sdk >= 1.3 (``allow_class``),
# Airflow 3.2 (``airflow.sdk.serde`` with only ``_extra_allowed``) and Airflow 3.1 (no ``airflow.sdk.serde``;
# ``airflow.serialization.serde`` with ``_extra_allowed``). The real 3.1/3.2 proof runs in the lowest-Airflow CI.


def _fake_serde(*, with_allow_class: bool) -> types.ModuleType:
    fake = types.ModuleType("fake_serde")
    fake._extra_allowed = set()  # type: ignore[attr-defined]
    if with_allow_class:
        fake.allowed_via_call = []  # type: ignore[attr-defined]
        fake.allow_class = fake.allowed_via_call.append  # type: ignore[attr-defined]
    return fake


def _encoded_classname(obj: object) -> str:
    # What XCom stores as the class name, computed by Airflow's own serializer: the name deserialize checks.
    try:
        from airflow.sdk.serde import CLASSNAME, serialize
    except ImportError:  # Airflow 3.1
        from airflow.serialization.serde import CLASSNAME, serialize

    return str(serialize(obj)[CLASSNAME])


def test_register_with_serde_uses_allow_class_when_the_sdk_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_serde(with_allow_class=True)
    monkeypatch.setitem(sys.modules, "airflow.sdk.serde", fake)
    register_with_serde(ChatCompletion, Credits)
    assert fake.allowed_via_call == [ChatCompletion, Credits]  # type: ignore[attr-defined]
    assert fake._extra_allowed == set()  # type: ignore[attr-defined]


def test_register_with_serde_falls_back_to_the_extra_allowed_set_on_airflow_3_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    credits = Credits(total_credits="1", total_usage="0")
    expected = {_encoded_classname(credits), _encoded_classname(Usage())}
    fake = _fake_serde(with_allow_class=False)
    monkeypatch.setitem(sys.modules, "airflow.sdk.serde", fake)
    register_with_serde(Credits, Usage)
    assert fake._extra_allowed == expected  # type: ignore[attr-defined]


def test_register_with_serde_falls_back_to_airflow_3_1_serde(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_serde(with_allow_class=False)
    monkeypatch.setitem(sys.modules, "airflow.sdk.serde", None)  # None in sys.modules: the import fails
    monkeypatch.setitem(sys.modules, "airflow.serialization.serde", fake)
    register_with_serde(KeyInfo)
    assert fake._extra_allowed == {"airflow_provider_openrouter.models.KeyInfo"}  # type: ignore[attr-defined]


def test_register_with_serde_without_any_serde_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "airflow.sdk.serde", None)
    monkeypatch.setitem(sys.modules, "airflow.serialization.serde", None)
    register_with_serde(KeyInfo)  # nothing to register with: the config allow-list stays the way


def test_register_with_serde_fallback_rejects_a_class_xcom_cannot_reimport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Local(Credits):
        pass

    fake = _fake_serde(with_allow_class=False)
    monkeypatch.setitem(sys.modules, "airflow.sdk.serde", fake)
    with pytest.raises(ValueError, match=r"not defined at module scope.*Define the class at module scope"):
        register_with_serde(Local)
    assert fake._extra_allowed == set()  # type: ignore[attr-defined]
