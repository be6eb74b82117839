"""OpenRouterHook pure units: connection reading, request building and validation (nothing is sent)."""

from __future__ import annotations

import copy
import json
import threading
from decimal import Decimal
from typing import Any

import pytest
from airflow.sdk import Connection
from pydantic import BaseModel

from airflow_provider_openrouter import _coerce
from airflow_provider_openrouter.exceptions import (
    OpenRouterConfigurationError,
    OpenRouterError,
    OpenRouterRequestError,
)
from airflow_provider_openrouter.hooks import OpenRouterHook
from airflow_provider_openrouter.hooks._connection import normalize_base_url, settings_from_connection
from airflow_provider_openrouter.hooks._requests import build_chat_request, build_completion_request, failing

KEY = "sk-or-v1-1234567890abcdef1234567890abcdef"


def conn(host: str | None = None, password: str | None = KEY, **extra: Any) -> Connection:
    return Connection(
        conn_id="or_test",
        conn_type="openrouter",
        host=host,
        password=password,
        extra=json.dumps(extra) if extra else None,
    )


# --- connection -> settings --------------------------------------------------------------------------------


def test_defaults_follow_the_connector() -> None:
    settings = settings_from_connection(conn())
    assert settings.base_url == "https://openrouter.ai/api/v1"
    assert settings.api_key == KEY
    assert settings.requests_per_minute == 100.0  # the connector's throttling: 100 calls per 60 s
    assert settings.timeout == 120.0 and settings.connect_timeout == 10.0
    assert settings.max_retries == 5 and settings.max_retry_wait == 300.0
    assert settings.retry_ambiguous is False
    assert settings.default_model is None and settings.app_url is None


def test_extras_are_read_with_numeric_strings_and_legacy_prefixes() -> None:
    settings = settings_from_connection(
        conn(
            app_url="https://example.com/app",
            extra__openrouter__app_title="Nightly",
            default_model="openai/gpt-4o-mini",
            timeout="30",
            connect_timeout=2,
            max_retries="3",
            max_retry_wait=60,
            requests_per_minute="0",
            retry_ambiguous="true",
        )
    )
    assert settings.app_url == "https://example.com/app"
    assert settings.app_title == "Nightly"
    assert settings.default_model == "openai/gpt-4o-mini"
    assert (settings.timeout, settings.connect_timeout) == (30.0, 2.0)
    assert (settings.max_retries, settings.max_retry_wait) == (3, 60.0)
    assert settings.requests_per_minute == 0.0
    assert settings.retry_ambiguous is True


def test_blank_extras_fall_back_to_defaults() -> None:
    settings = settings_from_connection(conn(timeout="", app_title="  ", extra__openrouter__timeout="15"))
    assert settings.timeout == 15.0
    assert settings.app_title is None


@pytest.mark.parametrize(
    "extra, phrase",
    [
        ({"timeout": "soon"}, "extra 'timeout' must be a number >= 0, got 'soon'"),
        ({"max_retries": 2.5}, "extra 'max_retries' must be a whole number >= 0"),
        ({"requests_per_minute": -1}, "extra 'requests_per_minute' must be a number >= 0"),
        ({"retry_ambiguous": "maybe"}, "extra 'retry_ambiguous' must be true or false"),
    ],
)
def test_bad_extras_give_one_clear_error(extra: dict[str, Any], phrase: str) -> None:
    with pytest.raises(OpenRouterConfigurationError) as caught:
        settings_from_connection(conn(**extra))
    assert phrase in str(caught.value)
    assert "connection 'or_test'" in str(caught.value)


def test_invalid_extra_json_is_reported() -> None:
    broken = Connection(conn_id="or_test", conn_type="openrouter", password=KEY, extra="{not json")
    with pytest.raises(OpenRouterConfigurationError, match="extra of connection 'or_test' is not valid JSON"):
        settings_from_connection(broken)


@pytest.mark.parametrize("password", [None, "", "   "])
def test_missing_key_names_the_connection(password: str | None) -> None:
    with pytest.raises(OpenRouterConfigurationError) as caught:
        settings_from_connection(conn(password=password))
    assert "connection 'or_test' has no API key" in str(caught.value)


def test_bearer_prefix_is_tolerated_and_the_key_never_shows() -> None:
    settings = settings_from_connection(conn(password=f"Bearer {KEY}"))
    assert settings.api_key == KEY
    assert KEY not in repr(settings)


@pytest.mark.parametrize(
    "host, port, schema, expected",
    [
        (None, None, None, "https://openrouter.ai/api/v1"),
        ("", None, None, "https://openrouter.ai/api/v1"),
        ("openrouter.ai", None, None, "https://openrouter.ai/api/v1"),
        ("https://openrouter.ai/api/v1/", None, None, "https://openrouter.ai/api/v1"),
        ("127.0.0.1:8080", None, None, "http://127.0.0.1:8080/api/v1"),
        ("localhost", 9000, None, "http://localhost:9000/api/v1"),
        ("http://127.0.0.1:8080/api/v1", 9999, None, "http://127.0.0.1:8080/api/v1"),
        (
            "gateway.example.com",
            8443,
            "proxy/openrouter/v1",
            "https://gateway.example.com:8443/proxy/openrouter/v1",
        ),
    ],
)
def test_base_url_normalisation(
    host: str | None, port: int | None, schema: str | None, expected: str
) -> None:
    assert normalize_base_url(host, port=port, schema=schema) == expected


def test_non_http_base_url_is_a_configuration_error() -> None:
    with pytest.raises(OpenRouterConfigurationError, match="not an http"):
        settings_from_connection(conn(host="ftp://openrouter.ai"))


# --- chat request building ---------------------------------------------------------------------------------


def test_connector_flat_form() -> None:
    body = build_chat_request("openai/gpt-4o-mini", "user", "Hello")
    assert body == {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}


def test_full_api_with_rendered_strings() -> None:
    # What templates render is read back by the operators' coercion; the hook builds from the typed values.
    fail = failing("POST /chat/completions")
    body = build_chat_request(
        "openai/gpt-4o-mini",
        content="Summarise",
        messages=_coerce.json_list(
            "messages",
            json.dumps([{"role": "user", "content": "context"}, {"role": "assistant", "content": "ok"}]),
            fail,
            "a JSON list",
        ),
        **_coerce.chat_parameters(
            {
                "system_prompt": "Be brief.",
                "temperature": "0.2",
                "max_tokens": "64",
                "top_p": 0.9,
                "stop": ["\n\n"],
                "seed": "7",
                "response_format": "json_object",
                "tools": '[{"type": "function", "function": {"name": "f", "parameters": {}}}]',
                "tool_choice": "auto",
                "models": "a/b, c/d",
                "provider": '{"order": ["openai"], "allow_fallbacks": false}',
                "reasoning": {"effort": "low"},
                "extra_body": {"user": "etl", "plugins": [{"id": "web"}]},
            },
            fail,
        ),
    )
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][-1] == {"role": "user", "content": "Summarise"}
    assert body["temperature"] == 0.2 and isinstance(body["temperature"], float)
    assert body["max_tokens"] == 64 and body["seed"] == 7
    assert body["top_p"] == 0.9 and body["stop"] == ["\n\n"]
    assert body["response_format"] == {"type": "json_object"}
    assert body["tools"][0]["function"]["name"] == "f"
    assert body["tool_choice"] == "auto"
    assert body["models"] == ["a/b", "c/d"]
    assert body["provider"] == {"order": ["openai"], "allow_fallbacks": False}
    assert body["reasoning"] == {"effort": "low"}
    assert body["user"] == "etl" and body["plugins"] == [{"id": "web"}]


def test_unset_options_are_not_sent() -> None:
    body = build_chat_request("m/x", content="hi")
    assert set(body) == {"model", "messages"}


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        ({"temperature": "0.2"}, "temperature must be a number from 0 to 2, got '0.2'"),
        ({"max_tokens": "64"}, "max_tokens must be a whole number >= 1, got '64'"),
        ({"seed": "7"}, "seed must be a whole number, got '7'"),
        ({"provider": '{"order": ["openai"]}'}, "provider must be an object (dict), got '{"),
        ({"extra_body": '{"user": "etl"}'}, "extra_body must be an object (dict), got '{"),
        ({"models": "a/b, c/d"}, "models must be a list of strings, got 'a/b, c/d'"),
        ({"tools": "[]"}, "tools must be a list of tool objects, got '[]'"),
        ({"messages": '[{"role": "user", "content": "hi"}]'}, "messages must be a list of {role, content}"),
        (
            {"response_format": '{"type": "json_object"}'},
            "response_format must be an object (dict) or 'text'",
        ),
        ({"temprature": 0.2}, "unknown parameter 'temprature'; known: system_prompt, temperature"),
    ],
)
def test_the_hook_takes_typed_values_and_reads_no_template_text(kwargs: dict[str, Any], phrase: str) -> None:
    # Rendered text is the operators' to read (_coerce); a text where a number or an object is meant is a
    # caller's mistake the hook names before anything is sent.
    kwargs.setdefault("content", "hi")
    with pytest.raises(OpenRouterRequestError) as caught:
        build_chat_request("m/x", **kwargs)
    assert phrase in str(caught.value) and "POST /chat/completions" in str(caught.value)
    with pytest.raises(OpenRouterRequestError, match="max_tokens must be a whole number >= 1, got '5'"):
        build_completion_request("m/x", "Once upon", max_tokens="5")  # type: ignore[arg-type]


def test_default_model_fills_in_and_models_alone_is_enough() -> None:
    assert build_chat_request(content="hi", default_model="d/m")["model"] == "d/m"
    body = build_chat_request(content="hi", models=["a/b", "c/d"])
    assert "model" not in body and body["models"] == ["a/b", "c/d"]


def test_no_model_anywhere_is_a_clear_error() -> None:
    with pytest.raises(OpenRouterRequestError) as caught:
        build_chat_request(content="hi", conn_id="or_test")
    text = str(caught.value)
    assert "no model given and connection 'or_test' has no default_model" in text
    assert "default_model extra of connection 'or_test'" in text
    assert caught.value.status is None and "POST /chat/completions" in text


@pytest.mark.parametrize(
    "kwargs, phrase",
    [
        ({}, "messages are empty: there is nothing to send"),
        ({"messages": []}, "messages are empty"),
        ({"system_prompt": "Be nice."}, "only a system prompt was given"),
        ({"content": "  "}, "content must be non-empty text"),
        (
            {"role": "bot", "content": "hi"},
            "request: role must be one of system, developer, user, assistant, tool, got 'bot'",
        ),
        ({"role": 3, "content": "hi"}, "request: role must be one of system"),
        ({"role": "user"}, "request: content must be non-empty text, got None"),
        (
            {"messages": [{"role": "user", "content": "hi"}], "role": "user", "content": 7},
            "request: content must be a string or a list of content parts, got 7",
        ),
        (
            {"messages": [{"role": "user", "content": 5}]},
            "messages[0].content must be a string or a list of content parts, got 5",
        ),
        ({"messages": [{"role": "user"}]}, "messages[0].content must be a string or a list"),
        ({"messages": ["hello"]}, "messages[0] must be an object with 'role' and 'content'"),
        ({"messages": "not json"}, "messages must be a list of {role, content} objects, got 'not json'"),
        (
            {"messages": [{"role": "tool", "content": "42"}]},
            "messages[0].tool_call_id must be the id of the tool call",
        ),
        (
            {"messages": [{"role": "user", "content": [{"text": "no type"}]}]},
            "messages[0].content[0] must be a content part",
        ),
        ({"content": "hi", "temperature": "hot"}, "temperature must be a number from 0 to 2, got 'hot'"),
        ({"content": "hi", "temperature": 3}, "temperature must be a number from 0 to 2, got 3"),
        ({"content": "hi", "temperature": True}, "temperature must be a number from 0 to 2, got True"),
        ({"content": "hi", "max_tokens": "12.5"}, "max_tokens must be a whole number >= 1, got '12.5'"),
        ({"content": "hi", "max_tokens": 0}, "max_tokens must be a whole number >= 1, got 0"),
        ({"content": "hi", "seed": "abc"}, "seed must be a whole number, got 'abc'"),
        (
            {"content": "hi", "stop": ["a", "b", "c", "d", "e"]},
            "stop must be a string or a list of at most 4 strings",
        ),
        ({"content": "hi", "provider": "[1]"}, "provider must be an object (dict)"),
        (
            {"content": "hi", "response_format": {"schema": {}}},
            "response_format must be an object with a 'type'",
        ),
        ({"content": "hi", "tools": [{"function": {}}]}, "tools[0] must be an object such as"),
        ({"content": "hi", "models": ["a/b", ""]}, "models must be a list of non-empty strings"),
        ({"content": "hi", "extra_body": {"stream": True}}, "extra_body.stream must be false"),
        ({"content": "hi", "model": 42}, "model must be a model id string"),
    ],
)
def test_bad_arguments_fail_before_anything_is_sent(kwargs: dict[str, Any], phrase: str) -> None:
    kwargs.setdefault("model", "m/x")
    with pytest.raises(OpenRouterRequestError) as caught:
        build_chat_request(**kwargs)
    assert phrase in str(caught.value)
    assert caught.value.status is None
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("role", "sent"), [("User", "user"), (" ASSISTANT ", "assistant"), ("", "user")])
def test_the_flat_role_is_stripped_and_lower_cased(role: str, sent: str) -> None:
    body = build_chat_request("m/x", role, "hi")
    assert body["messages"] == [{"role": sent, "content": "hi"}]


def test_errors_raised_before_sending_read_as_invalid_input() -> None:
    with pytest.raises(OpenRouterRequestError) as caught:
        build_chat_request("m/x", "bot", "hi")
    assert str(caught.value).startswith("Invalid OpenRouter request: role must be one of")


def test_assistant_message_with_only_tool_calls_is_valid() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    assert len(build_chat_request("m/x", messages=messages)["messages"]) == 3


def test_completion_request() -> None:
    assert build_completion_request("m/x", "Once upon", max_tokens=5) == {
        "model": "m/x",
        "prompt": "Once upon",
        "max_tokens": 5,
    }
    with pytest.raises(OpenRouterRequestError, match="prompt must be non-empty text"):
        build_completion_request("m/x", "")
    with pytest.raises(OpenRouterRequestError, match="prompt must be non-empty text"):
        build_completion_request("m/x", None)


# --- the hook object ---------------------------------------------------------------------------------------


def test_init_does_no_io() -> None:
    hook = OpenRouterHook(openrouter_conn_id="does_not_exist_anywhere")
    assert hook.openrouter_conn_id == "does_not_exist_anywhere"
    assert hook._settings is None and hook._transport is None


def test_hook_identity_for_the_providers_manager() -> None:
    assert OpenRouterHook.conn_name_attr == "openrouter_conn_id"
    assert OpenRouterHook.default_conn_name == "openrouter_default"
    assert OpenRouterHook.conn_type == "openrouter"
    assert OpenRouterHook.hook_name == "OpenRouter"


def test_ui_field_behaviour_for_older_airflow() -> None:
    behaviour = OpenRouterHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == ["schema", "port", "login"]
    assert behaviour["relabeling"] == {"password": "API Key", "host": "Base URL"}
    assert behaviour["placeholders"]["host"] == "https://openrouter.ai/api/v1"


class FakeTransport:
    """Stands in for the wire in pure units: records calls, answers from a script."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.calls: list[tuple[str, dict[str, Any] | None]] = []

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.calls.append((path, dict(params) if params else None))
        return self.pages.pop(0)

    def post(self, path: str, body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        self.calls.append((path, dict(body)))
        return self.pages.pop(0)


def hook_with(transport: FakeTransport) -> OpenRouterHook:
    hook = OpenRouterHook("or_test")
    hook._settings = settings_from_connection(conn())
    hook._transport = transport  # type: ignore[assignment]
    return hook


def _models(*ids: str) -> list[dict[str, Any]]:
    return [{"id": model_id, "pricing": {"prompt": "0.000001", "completion": "0.000002"}} for model_id in ids]


def test_list_models_follows_pages_until_all_are_collected() -> None:
    transport = FakeTransport(
        [
            {"data": _models("a/1", "a/2"), "total_count": 5, "links": {"next": "/api/v1/models?offset=2"}},
            {"data": _models("a/3", "a/4"), "total_count": 5, "links": {"next": "/api/v1/models?offset=4"}},
            {"data": _models("a/5"), "total_count": 5, "links": {"next": None}},
        ]
    )
    catalog = hook_with(transport).list_models(category="programming", supported_parameters=["tools", "seed"])
    assert catalog.ids == ["a/1", "a/2", "a/3", "a/4", "a/5"]
    assert catalog.total_count == 5
    assert transport.calls[0] == (
        "/models",
        {"category": "programming", "supported_parameters": "tools,seed"},
    )
    assert transport.calls[1][1] is not None and transport.calls[1][1]["offset"] == 2
    assert transport.calls[2][1] is not None and transport.calls[2][1]["offset"] == 4


def test_list_models_with_limit_fetches_one_page() -> None:
    transport = FakeTransport([{"data": _models("a/1"), "total_count": 9, "links": {"next": "x"}}])
    catalog = hook_with(transport).list_models(limit=1, offset=3, distillable=True)
    assert catalog.ids == ["a/1"]
    assert transport.calls == [("/models", {"distillable": "true", "limit": 1, "offset": 3})]


def test_list_models_stops_on_an_empty_page() -> None:
    transport = FakeTransport(
        [
            {"data": _models("a/1"), "total_count": 3, "links": {"next": None}},
            {"data": [], "links": {"next": None}},
        ]
    )
    assert hook_with(transport).list_models().ids == ["a/1"]
    assert len(transport.calls) == 2


def test_missing_data_envelope_is_a_response_error() -> None:
    hook = hook_with(FakeTransport([{"unexpected": True}]))
    with pytest.raises(OpenRouterError, match="the answer has no 'data' object"):
        hook.get_key()


def test_answer_that_does_not_fit_the_model_names_the_field() -> None:
    hook = hook_with(FakeTransport([{"data": {"total_credits": "lots", "total_usage": 1}}]))
    with pytest.raises(OpenRouterError, match="does not fit Credits: total_credits"):
        hook.get_credits()


@pytest.mark.parametrize(
    "author, slug, phrase",
    [
        (
            "",
            "x",
            "author must be an author such as 'openai' (letters, digits, '.', '_', '-'; no '/'), got ''",
        ),
        (
            "openai",
            "",
            "slug must be a slug such as 'gpt-4o-mini' (letters, digits, '.', '_', '-', ':variant'",
        ),
        (
            "a/b",
            "c",
            "author must not contain '/' when slug is given, got 'a/b' [GET /models/{author}/{slug}/"
            "endpoints]. Pass the whole model id alone (list_model_endpoints('author/slug')), or author and "
            "slug separately.",
        ),
        (
            "gpt-4o-mini",
            None,
            "the model id 'gpt-4o-mini' has no '/': expected 'author/slug' such as 'openai/gpt-4o-mini'",
        ),
        (None, None, "author must be an author such as 'openai'"),
    ],
)
def test_model_endpoints_arguments_are_checked(author: Any, slug: Any, phrase: str) -> None:
    transport = FakeTransport([])
    with pytest.raises(OpenRouterRequestError) as caught:
        hook_with(transport).list_model_endpoints(author, slug)
    assert phrase in str(caught.value)
    assert transport.calls == []


def test_model_endpoints_accepts_a_whole_model_id() -> None:
    transport = FakeTransport([{"data": {"id": "openai/gpt-4o:free", "endpoints": []}}])
    assert hook_with(transport).list_model_endpoints("openai/gpt-4o:free").id == "openai/gpt-4o:free"
    assert transport.calls[0][0] == "/models/openai/gpt-4o%3Afree/endpoints"


@pytest.mark.parametrize("generation_id", ["  ", "None", "null"])
def test_generation_id_is_required(generation_id: str) -> None:
    transport = FakeTransport([])
    with pytest.raises(OpenRouterRequestError, match="generation_id must be a generation id"):
        hook_with(transport).get_generation(generation_id)
    assert transport.calls == []


def test_test_connection_reports_failure_without_the_key() -> None:
    class Refusing(FakeTransport):
        def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
            raise RuntimeError(f"socket trouble near {KEY}")

    ok, message = hook_with(Refusing([])).test_connection()
    assert not ok
    assert "RuntimeError: socket trouble" in message and KEY not in message


def test_assemble_chat_stream_joins_deltas_tool_calls_and_usage() -> None:
    from airflow_provider_openrouter.hooks._stream import assemble_chat_stream
    from airflow_provider_openrouter.models import ChatCompletion

    base = {"id": "gen-3", "object": "chat.completion.chunk", "created": 1700000000, "model": "m/x"}
    events = [
        {
            **base,
            "provider": "P",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}],
        },
        {**base, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
        {
            **base,
            "choices": [
                {
                    "index": 1,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "c1", "function": {"name": "w", "arguments": '{"ci'}}
                        ]
                    },
                }
            ],
        },
        {
            **base,
            "choices": [
                {
                    "index": 1,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty":1}'}}]},
                    "finish_reason": "tool_calls",
                }
            ],
        },
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14, "cost": 0.000003},
        },
    ]
    chat = ChatCompletion.model_validate(assemble_chat_stream(events))
    assert chat.id == "gen-3" and chat.provider == "P"
    assert chat.text == "Hello" and chat.finish_reason == "stop"
    second = chat.choices[1]
    assert second.finish_reason == "tool_calls" and second.message.content is None
    assert second.message.tool_calls is not None
    assert second.message.tool_calls[0].function.parsed_arguments() == {"city": 1}
    assert str(chat.cost) == "0.000003"


# --- the hook's life cycle: kwargs, lazy creation under threads, close -------------------------------------


@pytest.fixture
def counted_transports(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every OpenRouterTransport built while the test runs (the real class, counted), with the connection
    ``or_test`` in the environment."""
    import airflow_provider_openrouter.transport as transport_module

    monkeypatch.setenv(
        "AIRFLOW_CONN_OR_TEST",
        json.dumps({"conn_type": "openrouter", "password": KEY, "extra": {"requests_per_minute": 100}}),
    )
    built: list[Any] = []
    first_entered = threading.Event()

    class Counted(transport_module.OpenRouterTransport):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            built.append(self)
            self.closed = False
            if not first_entered.is_set():
                first_entered.set()
                # Hold the first builder a moment so that unlocked racers would reach here too.
                threading.Event().wait(0.2)
            super().__init__(*args, **kwargs)

        def close(self) -> None:
            self.closed = True
            super().close()

    monkeypatch.setattr(transport_module, "OpenRouterTransport", Counted)
    return built


def test_kwargs_replace_the_connection_rate_and_size_the_pool(counted_transports: list[Any]) -> None:
    hook = OpenRouterHook("or_test", requests_per_minute=30, max_connections=7)
    assert hook.settings.requests_per_minute == 30
    adapter = hook.transport._session.get_adapter("https://openrouter.ai/api/v1")
    assert adapter._pool_maxsize == 7
    assert OpenRouterHook("or_test").settings.requests_per_minute == 100


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        ({"max_connections": 0}, "max_connections must be a whole number >= 1, got 0"),
        ({"requests_per_minute": -1}, "requests_per_minute must be a number >= 0, got -1"),
    ],
)
def test_bad_hook_kwargs_are_refused_at_once(kwargs: dict[str, Any], phrase: str) -> None:
    with pytest.raises(OpenRouterRequestError, match=phrase):
        OpenRouterHook("or_test", **kwargs)


def test_threads_racing_on_a_fresh_hook_build_exactly_one_transport(counted_transports: list[Any]) -> None:
    hook = OpenRouterHook("or_test")
    racers = 16
    start = threading.Barrier(racers)
    seen: list[Any] = []

    def use() -> None:
        start.wait()
        seen.append(hook.transport)

    threads = [threading.Thread(target=use) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(counted_transports) == 1
    assert len(seen) == racers and all(transport is counted_transports[0] for transport in seen)


def test_close_and_the_context_manager_close_the_transport(counted_transports: list[Any]) -> None:
    with OpenRouterHook("or_test") as hook:
        first = hook.transport
    assert first.closed
    second = hook.transport  # a closed hook opens a new pool when used again
    assert second is not first and not second.closed
    hook.close()
    assert second.closed
    OpenRouterHook("or_test").close()  # nothing opened, nothing to close
    assert len(counted_transports) == 2


def test_a_copied_hook_opens_its_own_pool(counted_transports: list[Any]) -> None:
    hook = OpenRouterHook("or_test", max_connections=3)
    original = hook.transport
    copied = copy.deepcopy(hook)
    assert copied.max_connections == 3
    assert copied.transport is not original
    assert len(counted_transports) == 2


# --- bad input refused before anything is sent (issue 8) ---------------------------------------------------


@pytest.mark.parametrize("rendered", ["None", "null", " NULL "])
def test_content_rendered_from_a_missing_value_is_refused(rendered: str) -> None:
    with pytest.raises(OpenRouterRequestError) as caught:
        build_chat_request("m/x", "user", rendered)
    assert str(caught.value).startswith("Invalid OpenRouter request: content must be non-empty text")
    assert "what a template renders for a missing value" in str(caught.value)


@pytest.mark.parametrize("rendered", ["None", "null"])
def test_prompt_rendered_from_a_missing_value_is_refused(rendered: str) -> None:
    with pytest.raises(OpenRouterRequestError, match="prompt must be non-empty text"):
        build_completion_request("m/x", rendered)


@pytest.mark.parametrize("role", ["System", "SYSTEM", " system "])
def test_a_system_role_with_only_content_names_role_and_the_fix(role: str) -> None:
    with pytest.raises(OpenRouterRequestError) as caught:
        build_chat_request("m/x", role, "Summarise this.")
    message = str(caught.value)
    assert f"role {role!r} makes content a system message" in message
    assert "role='user'" in message and "system_prompt" in message


def test_a_tool_role_without_messages_says_what_a_tool_result_needs() -> None:
    with pytest.raises(OpenRouterRequestError) as caught:
        build_chat_request("m/x", "tool", "sunny")
    message = str(caught.value)
    assert "role 'tool' cannot go with content" in message
    assert "tool_call_id" in message and "role='user'" in message
    assert "messages[0]" not in message


@pytest.mark.parametrize(
    ("author", "slug", "named"),
    [
        ("../../credits", None, "author"),
        ("openai", "../../credits", "slug"),
        ("..", "credits", "author"),
        ("openai", "gpt-4o/../../../credits", "slug"),
        ("openai", "gpt 4o", "slug"),
        ("openai", "gpt-4o?x=1", "slug"),
        ("open%2Fai", "gpt-4o", "author"),
    ],
)
def test_model_ids_outside_the_id_shape_never_leave_models(author: str, slug: str | None, named: str) -> None:
    transport = FakeTransport([])
    with pytest.raises(OpenRouterRequestError) as caught:
        hook_with(transport).list_model_endpoints(author, slug)
    assert str(caught.value).startswith(f"Invalid OpenRouter request: {named} must be a")
    assert transport.calls == []


@pytest.mark.parametrize(
    ("model_id", "path"),
    [
        ("~anthropic/claude-sonnet-latest", "/models/~anthropic/claude-sonnet-latest/endpoints"),
        (
            "meta-llama/llama-3.1-8b-instruct:free",
            "/models/meta-llama/llama-3.1-8b-instruct%3Afree/endpoints",
        ),
        ("x-ai/grok-4_fast", "/models/x-ai/grok-4_fast/endpoints"),
    ],
)
def test_real_model_ids_are_sent_as_quoted_segments(model_id: str, path: str) -> None:
    transport = FakeTransport([{"data": {"id": model_id, "endpoints": []}}])
    hook_with(transport).list_model_endpoints(model_id)
    assert transport.calls[0][0] == path


def test_list_models_stops_when_a_page_brings_nothing_new() -> None:
    page = {"data": _models("a/1", "a/2"), "total_count": 900, "links": {"next": "/api/v1/models?offset=2"}}
    transport = FakeTransport([page, page, page])
    assert hook_with(transport).list_models().ids == ["a/1", "a/2"]
    assert len(transport.calls) == 2


def test_list_models_stops_after_the_page_bound() -> None:
    from airflow_provider_openrouter.hooks.openrouter import MAX_MODEL_PAGES

    pages = [
        {"data": _models(f"a/{number}"), "links": {"next": f"/api/v1/models?offset={number + 1}"}}
        for number in range(MAX_MODEL_PAGES + 5)
    ]
    transport = FakeTransport(pages)
    with pytest.raises(OpenRouterError, match=f"did not end after {MAX_MODEL_PAGES} pages"):
        hook_with(transport).list_models()
    assert len(transport.calls) == MAX_MODEL_PAGES


# --- streamed answers keep every field the non-streamed answer carries ------------------------------------


def _chunk(choices: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    return {
        "id": "gen-9",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "m/x",
        "choices": choices,
        **top,
    }


def _token(token: str) -> dict[str, Any]:
    return {"token": token, "logprob": -0.5, "bytes": list(token.encode()), "top_logprobs": []}


CITATION = {
    "type": "url_citation",
    "url_citation": {
        "url": "https://example.com/a",
        "title": "A",
        "content": "x",
        "start_index": 0,
        "end_index": 4,
    },
}
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
METADATA = {"attempt": 1, "strategy": "direct", "requested": "m/x", "summary": "ok", "is_byok": False}
USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13, "cost": 0.00000015}

# A stream as OpenRouter sends it (shapes from the SDK reference, 2.3): role chunk with content "", reasoning
# pieces whose details share an index (the signature arrives last), content with per-chunk logprobs, an
# annotation and an image, the finish chunk, then the usage chunk with empty choices and the metadata.
RECORDED_STREAM = [
    _chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]),
    _chunk(
        [
            {
                "index": 0,
                "delta": {
                    "reasoning": "Think",
                    "reasoning_details": [
                        {
                            "type": "reasoning.text",
                            "text": "Think",
                            "index": 0,
                            "format": "anthropic-claude-v1",
                        }
                    ],
                },
                "finish_reason": None,
            }
        ]
    ),
    _chunk(
        [
            {
                "index": 0,
                "delta": {
                    "reasoning": "ing.",
                    "reasoning_details": [{"type": "reasoning.text", "text": "ing.", "index": 0}],
                },
                "finish_reason": None,
            }
        ]
    ),
    _chunk(
        [
            {
                "index": 0,
                "delta": {
                    "reasoning_details": [
                        {"type": "reasoning.text", "text": "", "signature": "sig==", "index": 0},
                        {"type": "reasoning.encrypted", "data": "enc", "index": 1},
                    ]
                },
                "finish_reason": None,
            }
        ]
    ),
    _chunk(
        [
            {
                "index": 0,
                "delta": {"content": "Hel"},
                "logprobs": {"content": [_token("Hel")], "refusal": None},
                "finish_reason": None,
            }
        ],
        system_fingerprint="fp_1",
    ),
    _chunk(
        [
            {
                "index": 0,
                "delta": {"content": "lo", "annotations": [CITATION], "images": [IMAGE]},
                "logprobs": {"content": [_token("lo")], "refusal": None},
                "finish_reason": None,
            }
        ]
    ),
    _chunk(
        [{"index": 0, "delta": {}, "finish_reason": "stop", "native_finish_reason": "end_turn"}],
        provider="Anthropic",
        service_tier="default",
    ),
    _chunk([], usage=USAGE, openrouter_metadata=METADATA, safeguard_results=[]),
]


def test_a_recorded_stream_assembles_to_the_non_streamed_answer() -> None:
    from airflow_provider_openrouter.hooks._stream import assemble_chat_stream
    from airflow_provider_openrouter.models import ChatCompletion

    streamed = ChatCompletion.model_validate(assemble_chat_stream(RECORDED_STREAM))
    whole = ChatCompletion.model_validate(
        {
            "id": "gen-9",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "m/x",
            "provider": "Anthropic",
            "system_fingerprint": "fp_1",
            "service_tier": "default",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "native_finish_reason": "end_turn",
                    "logprobs": {"content": [_token("Hel"), _token("lo")], "refusal": None},
                    "message": {
                        "role": "assistant",
                        "content": "Hello",
                        "reasoning": "Thinking.",
                        "reasoning_details": [
                            {
                                "type": "reasoning.text",
                                "text": "Thinking.",
                                "signature": "sig==",
                                "index": 0,
                                "format": "anthropic-claude-v1",
                            },
                            {"type": "reasoning.encrypted", "data": "enc", "index": 1},
                        ],
                        "annotations": [CITATION],
                        "images": [IMAGE],
                    },
                }
            ],
            "usage": USAGE,
            "openrouter_metadata": METADATA,
            "safeguard_results": [],
        }
    )
    assert streamed.model_dump() == whole.model_dump()


def test_a_streamed_refusal_and_audio_are_kept() -> None:
    from airflow_provider_openrouter.hooks._stream import assemble_chat_stream

    body = assemble_chat_stream(
        [
            _chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]),
            _chunk([{"index": 0, "delta": {"refusal": "I can't "}, "finish_reason": None}]),
            _chunk([{"index": 0, "delta": {"refusal": "help with that."}, "finish_reason": None}]),
            _chunk(
                [{"index": 0, "delta": {"audio": {"id": "au_1", "data": "AAA", "transcript": "Hi"}}}],
            ),
            _chunk([{"index": 0, "delta": {"audio": {"data": "BBB", "transcript": " there"}}}]),
            _chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        ]
    )
    message = body["choices"][0]["message"]
    assert message["refusal"] == "I can't help with that."
    assert message["content"] is None
    assert message["audio"] == {"id": "au_1", "data": "AAABBB", "transcript": "Hi there"}


def test_test_connection_writes_amounts_in_plain_decimal_notation() -> None:
    transport = FakeTransport(
        [{"data": {"label": "sk-or-v1-abc...xyz", "limit": 0.0000005, "usage": 0.00000015}}]
    )
    ok, message = hook_with(transport).test_connection()
    assert ok
    assert "(limit 0.0000005 USD, 0.00000015 USD used)" in message


class Point(BaseModel):
    x: int
    y: int


def _answer(text: str) -> dict[str, Any]:
    return {
        "id": "gen-1",
        "model": "a/strict",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "cost": 0.00001},
    }


def test_output_type_asks_strict_json_only_of_models_the_catalog_says_support_it() -> None:
    catalog = {
        "data": [
            {"id": "a/strict", "supported_parameters": ["response_format", "structured_outputs"]},
            {"id": "a/loose", "supported_parameters": ["response_format"]},
        ],
        "links": {"next": None},
    }
    transport = FakeTransport([catalog, _answer('{"x": 1, "y": 2}'), _answer('{"x": 3, "y": 4}')])
    hook = hook_with(transport)
    strict = hook.chat_completion("a/strict", content="a point", output_type=Point, attribution=False)
    loose = hook.chat_completion("a/loose", content="a point", output_type=Point, attribution=False)
    assert strict.output == Point(x=1, y=2) and strict.completion.cost == Decimal("0.00001")
    assert loose.output == Point(x=3, y=4)
    (_, _), (_, strict_body), (_, loose_body) = transport.calls  # the catalog was read once
    assert strict_body["response_format"]["type"] == "json_schema"
    assert strict_body["response_format"]["json_schema"]["strict"] is True
    assert loose_body["response_format"]["json_schema"]["strict"] is False
    with pytest.raises(OpenRouterRequestError, match="output_type and response_format were both given"):
        hook.chat_completion("a/loose", content="a point", output_type=Point, response_format="json_object")
