"""Keys and hostile servers: a malformed key is refused before anything is sent, and a server that echoes the
key back (in headers, ids, bodies, error messages, stream events) cannot put any part of it into an exception
or into what the transport hands to the hook.

The hostile server is a small stdlib HTTP server on 127.0.0.1: the emulator never echoes a key.
"""

from __future__ import annotations

import asyncio
import json
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_provider_openrouter.exceptions import (
    OpenRouterAuthenticationError,
    OpenRouterConfigurationError,
    OpenRouterError,
    OpenRouterOutcomeUnknownError,
    OpenRouterRateLimitError,
    OpenRouterRequestError,
)
from airflow_provider_openrouter.ratelimit import clear_buckets
from airflow_provider_openrouter.transport import (
    POOL_MAXSIZE,
    AsyncOpenRouterTransport,
    OpenRouterTransport,
    TransportSettings,
)

# Distinctive, and not shaped like an OpenRouter key, so only the connection-key redaction can catch it.
KEY = "orkey-Zq8XwV3pLm2Nt7Rb5Yc9Hd4Kf6Jg1Ts0Wu"
PARTS = (KEY[:12], KEY[12:24], KEY[-12:])


def leaked(*things: Any) -> list[str]:
    """Every piece of ``KEY`` found in what a user, a log or XCom could see of ``things``."""
    texts = []
    for thing in things:
        texts.append(repr(thing))
        if isinstance(thing, BaseException):
            texts += [str(thing), repr(thing.args), "".join(traceback.format_exception(thing))]
            texts.append(repr(vars(thing)))
            if isinstance(thing, OpenRouterError):
                texts.append(json.dumps(thing.to_event()))
    return [part for part in PARTS if any(part in text for text in texts)]


# --- the key's shape, checked when the settings are built --------------------------------------------------


@pytest.mark.parametrize(
    "bad_key, what",
    [
        (KEY[:20] + "\n" + KEY[20:], "a line break (character 21 of"),
        (KEY[:20] + "\r\n" + KEY[20:], "a line break"),
        (KEY[:20] + " " + KEY[20:], "whitespace (character 21 of"),
        (KEY[:20] + "\t" + KEY[20:], "a control character"),
        (KEY[:20] + "\x00" + KEY[20:], "a control character"),
        (KEY[:20] + "é" + KEY[20:], "a non-ASCII character"),
        (KEY[:20] + "\u2019" + KEY[20:], "a non-ASCII character"),
    ],
)
def test_a_key_an_http_header_cannot_carry_is_refused_naming_the_connection_not_the_key(
    bad_key: str, what: str
) -> None:
    with pytest.raises(OpenRouterConfigurationError) as caught:
        TransportSettings("or_prod", "https://openrouter.ai/api/v1", bad_key)
    err = caught.value
    assert "API key (password field) of connection 'or_prod'" in str(err) and what in str(err)
    assert err.billed is False and err.conn_id == "or_prod"
    assert leaked(err) == []


def test_the_hook_refuses_a_key_with_a_newline_before_anything_is_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_openrouter.hooks import OpenRouterHook

    secret = f"sk-or-v1-{KEY[6:20]}\nINJECTED-{KEY[20:]}"
    value = {"conn_type": "openrouter", "host": "http://127.0.0.1:9/api/v1", "password": secret}
    monkeypatch.setenv("AIRFLOW_CONN_OR_NEWLINE", json.dumps(value))
    with pytest.raises(OpenRouterConfigurationError) as caught:
        OpenRouterHook(openrouter_conn_id="or_newline").settings  # noqa: B018 - reading it builds the settings
    assert "connection 'or_newline'" in str(caught.value) and "line break" in str(caught.value)
    assert leaked(caught.value) == [] and "INJECTED" not in repr(vars(caught.value))


@pytest.mark.parametrize("field", ["app_title", "app_url"])
def test_an_attribution_header_with_a_line_break_is_refused(field: str) -> None:
    with pytest.raises(OpenRouterConfigurationError, match=f"extra {field} of connection 'c'"):
        TransportSettings("c", "https://openrouter.ai/api/v1", KEY, **{field: "My app\r\nX-Evil: 1"})


def test_a_latin1_app_title_is_allowed() -> None:
    assert TransportSettings("c", "https://openrouter.ai/api/v1", KEY, app_title="Café Über").app_title


@pytest.mark.parametrize(
    "base_url",
    [
        "https://user:PASSWORD-IN-URL@openrouter.ai/api/v1",
        "https://PASSWORD-IN-URL@openrouter.ai/api/v1",
        "http://user:PASSWORD-IN-URL@127.0.0.1:8080/api/v1",
    ],
)
def test_a_base_url_with_userinfo_is_refused_without_showing_it(base_url: str) -> None:
    with pytest.raises(OpenRouterConfigurationError) as caught:
        TransportSettings("or_prod", base_url, KEY)
    text = str(caught.value) + repr(caught.value.args) + "".join(traceback.format_exception(caught.value))
    assert "Base URL of connection 'or_prod'" in text and "password field" in text
    assert "PASSWORD-IN-URL" not in text and "user:" not in text


def test_the_hook_refuses_userinfo_in_the_host_field(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_openrouter.hooks import OpenRouterHook

    host = "https://user:PASSWORD-IN-URL@openrouter.ai/api/v1"
    monkeypatch.setenv(
        "AIRFLOW_CONN_OR_USERINFO", json.dumps({"conn_type": "openrouter", "host": host, "password": KEY})
    )
    with pytest.raises(OpenRouterConfigurationError, match="Base URL of connection 'or_userinfo'") as caught:
        OpenRouterHook(openrouter_conn_id="or_userinfo").settings  # noqa: B018 - reading it builds the settings
    assert "PASSWORD-IN-URL" not in str(caught.value)


# --- a hostile server on 127.0.0.1 -------------------------------------------------------------------------

Reply = tuple[int, dict[str, str], bytes]
"""status, headers, body"""


class HostileServer:
    """Answers every request with ``answer(key)``, where ``key`` is the bearer token the request carried."""

    def __init__(self) -> None:
        self.answer: Callable[[str], Reply] = lambda key: (200, {}, b"{}")
        self.received = 0

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.received += 1
                status, headers, body = server.answer(self.headers["Authorization"].removeprefix("Bearer "))
                self.send_response(status)
                headers = {"Content-Type": "application/json", **headers}
                if "Content-Length" not in headers:
                    headers["Content-Length"] = str(len(body))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
                if headers["Content-Length"] != str(len(body)):
                    self.close_connection = True

            do_GET = do_POST

        return Handler


@contextmanager
def hostile_server() -> Iterator[tuple[HostileServer, str]]:
    state = HostileServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), state.handler())
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{httpd.server_address[1]}/api/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def hostile() -> Iterator[tuple[HostileServer, OpenRouterTransport]]:
    clear_buckets()
    with hostile_server() as (server, base_url):
        settings = TransportSettings("or_conn", base_url, KEY, requests_per_minute=None, max_retries=0)
        with OpenRouterTransport(settings) as transport:
            yield server, transport


def chat(completion_id: str, content: str) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
        ],
    }


def as_json(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def test_a_key_echoed_in_the_generation_header_and_body_id_is_not_returned(
    hostile: tuple[HostileServer, OpenRouterTransport],
) -> None:
    server, transport = hostile
    server.answer = lambda key: (
        200,
        {"X-Generation-Id": key},
        as_json(chat(f"gen-{key}", f"your key is {key}")),
    )
    answer = transport.post("/chat/completions", {"messages": []})
    assert leaked(answer) == []
    assert answer["id"] == "gen-***" and answer["choices"][0]["message"]["content"] == "your key is ***"


def test_a_key_escaped_in_the_json_body_is_not_returned(
    hostile: tuple[HostileServer, OpenRouterTransport],
) -> None:
    server, transport = hostile
    escaped = "".join(f"\\u{ord(char):04x}" for char in KEY)
    server.answer = lambda key: (200, {}, b'{"id": "gen-1", "data": {"label": "' + escaped.encode() + b'"}}')
    assert leaked(transport.get("/key")) == []


def test_a_bearer_phrase_in_an_answer_is_left_alone(
    hostile: tuple[HostileServer, OpenRouterTransport],
) -> None:
    # A model explaining HTTP auth is not a leak; only keys are redacted from successful answers.
    server, transport = hostile
    text = "Send it as Bearer authentication, e.g. sk-or-v1-0123456789 in a header."
    server.answer = lambda key: (200, {}, as_json(chat("gen-1", text)))
    content = transport.post("/chat/completions", {"messages": []})["choices"][0]["message"]["content"]
    assert content == "Send it as Bearer authentication, e.g. *** in a header."


def _error_answers() -> dict[str, Callable[[str], Reply]]:
    return {
        "401-echo": lambda key: (
            401,
            {"X-Generation-Id": key},
            as_json({"error": {"code": key, "message": f"Invalid key {key}", "metadata": {key: key}}}),
        ),
        "429-in-200": lambda key: (
            200,
            {"X-Generation-Id": key},
            as_json(
                {"choices": [], "error": {"code": 429, "message": "x" * 290 + key, "metadata": {"raw": key}}}
            ),
        ),
        "non-json-400": lambda key: (400, {"Content-Type": "text/plain"}, ("x" * 100 + key).encode()),
        "truncated-200": lambda key: (
            200,
            {"X-Generation-Id": key, "Content-Length": "9999"},
            ('{"id": "' + "y" * 100 + key).encode(),
        ),
    }


@pytest.mark.parametrize("name", list(_error_answers()))
def test_a_key_echoed_in_an_error_answer_appears_in_no_part_of_the_exception(
    hostile: tuple[HostileServer, OpenRouterTransport], name: str
) -> None:
    server, transport = hostile
    server.answer = _error_answers()[name]
    with pytest.raises(OpenRouterError) as caught:
        transport.post("/chat/completions", {"messages": []})
    err = caught.value
    assert leaked(err) == []
    assert err.generation_id in (None, "***")


def _events(*events: Any, done: bool = True) -> bytes:
    lines = [f"data: {event if isinstance(event, str) else json.dumps(event)}\n\n" for event in events]
    return ("".join(lines) + ("data: [DONE]\n\n" if done else "")).encode()


def _chunk(completion_id: str, content: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": completion_id,
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }


SSE = {"Content-Type": "text/event-stream"}


def test_a_key_echoed_in_stream_events_is_not_yielded(
    hostile: tuple[HostileServer, OpenRouterTransport],
) -> None:
    server, transport = hostile
    server.answer = lambda key: (
        200,
        {**SSE, "X-Generation-Id": key},
        _events(_chunk(f"gen-{key}", f"it is {key}"), _chunk(f"gen-{key}", "", "stop")),
    )
    events = list(transport.stream("/chat/completions", {"messages": []}))
    assert len(events) == 2 and leaked(events) == []


@pytest.mark.parametrize(
    "body",
    [
        lambda key: _events(_chunk("gen-1", "par"), {"id": key, "error": {"code": 502, "message": key}}),
        lambda key: _events(_chunk(key, "par"), done=False),
        lambda key: _events(_chunk("gen-1", "par"), "z" * 60 + key),
    ],
    ids=["error-event", "cut-off", "unreadable-event"],
)
def test_a_key_echoed_in_a_failing_stream_appears_in_no_part_of_the_exception(
    hostile: tuple[HostileServer, OpenRouterTransport], body: Callable[[str], bytes]
) -> None:
    server, transport = hostile
    server.answer = lambda key: (200, {**SSE, "X-Generation-Id": key}, body(key))
    with pytest.raises(OpenRouterError) as caught:
        list(transport.stream("/chat/completions", {"messages": []}))
    assert leaked(caught.value) == []


def test_an_error_event_with_a_key_of_another_shape_cut_at_the_limit_is_scrubbed_before_it_is_cut(
    hostile: tuple[HostileServer, OpenRouterTransport],
) -> None:
    server, transport = hostile
    server.answer = lambda key: (
        200,
        SSE,
        _events(_chunk("gen-1", "par"), {"error": {"code": 429, "message": "m" * 280 + key}}),
    )
    with pytest.raises(OpenRouterRateLimitError) as caught:
        list(transport.stream("/chat/completions", {"messages": []}))
    assert leaked(caught.value) == [] and caught.value.billed is False


# --- defence in depth: a header the HTTP library refuses ---------------------------------------------------


def _bypassing_the_checks(settings: TransportSettings, api_key: str) -> TransportSettings:
    """Settings holding a key ``__post_init__`` would refuse: what reaches the wire if a check is missed."""
    object.__setattr__(settings, "api_key", api_key)
    return settings


@pytest.mark.parametrize("bad_key", [KEY[:20] + "\nINJECTED" + KEY[20:], KEY[:20] + "\u2019" + KEY[20:]])
def test_a_key_the_http_library_refuses_is_never_sent_and_not_billed(bad_key: str) -> None:
    clear_buckets()
    with hostile_server() as (server, base_url):
        settings = _bypassing_the_checks(
            TransportSettings("or_conn", base_url, KEY, requests_per_minute=None), bad_key
        )
        with (
            OpenRouterTransport(settings) as transport,
            pytest.raises(OpenRouterConfigurationError) as caught,
        ):
            transport.post("/chat/completions", {"messages": []})
        assert server.received == 0
    err = caught.value
    assert err.billed is False and "nothing was sent" in str(err)
    assert "API key (password field) of connection 'or_conn'" in str(err)
    assert leaked(err) == [] and "INJECTED" not in "".join(traceback.format_exception(err))
    assert err.__context__ is None and err.__cause__ is None


def test_a_caller_header_the_http_library_refuses_is_an_invalid_request_never_sent(
    hostile: tuple[HostileServer, OpenRouterTransport],
) -> None:
    server, transport = hostile
    with pytest.raises(OpenRouterRequestError) as caught:
        transport.post("/chat/completions", {"messages": []}, idempotency_key="row\r\n1")
    assert server.received == 0 and caught.value.billed is False and caught.value.status is None
    assert "request header X-Idempotency-Key contains a line break" in str(caught.value)


@pytest.mark.parametrize("bad_key", [KEY[:20] + "\nINJECTED" + KEY[20:], KEY[:20] + "\u2019" + KEY[20:]])
def test_the_async_transport_never_sends_a_key_the_http_library_refuses(bad_key: str) -> None:
    clear_buckets()

    async def run(base_url: str) -> None:
        settings = TransportSettings("or_conn", base_url, KEY, requests_per_minute=None, max_retries=0)
        async with AsyncOpenRouterTransport(_bypassing_the_checks(settings, bad_key)) as transport:
            await transport.post("/chat/completions", {"messages": []})

    with hostile_server() as (server, base_url), pytest.raises(OpenRouterConfigurationError) as caught:
        asyncio.run(run(base_url))
    assert server.received == 0 and caught.value.billed is False
    assert leaked(caught.value) == [] and "INJECTED" not in "".join(traceback.format_exception(caught.value))


def test_a_server_that_rejects_the_key_does_not_see_it_echoed_back(
    hostile: tuple[HostileServer, OpenRouterTransport],
) -> None:
    server, transport = hostile
    server.answer = lambda key: (
        401,
        {},
        as_json({"error": {"code": 401, "message": f"Bearer {key} unknown"}}),
    )
    with pytest.raises(OpenRouterAuthenticationError) as caught:
        transport.post("/chat/completions", {"messages": []})
    assert leaked(caught.value) == [] and server.received == 1


def test_a_lost_answer_names_no_key(hostile: tuple[HostileServer, OpenRouterTransport]) -> None:
    server, transport = hostile
    server.answer = lambda key: (200, {"Content-Length": "500", "X-Generation-Id": key}, b'{"id": "')
    with pytest.raises(OpenRouterOutcomeUnknownError) as caught:
        transport.post("/chat/completions", {"messages": []})
    assert leaked(caught.value) == [] and caught.value.billed is None


# --- the connection pool -----------------------------------------------------------------------------------


@pytest.mark.parametrize("pool_maxsize, expected", [(None, POOL_MAXSIZE), (8, 8), (300, 300)])
def test_the_pool_is_sized_to_the_concurrency_that_uses_it(pool_maxsize: int | None, expected: int) -> None:
    settings = TransportSettings("c", "https://openrouter.ai/api/v1", KEY, requests_per_minute=None)
    with OpenRouterTransport(settings, pool_maxsize=pool_maxsize) as transport:
        pool = transport._session.get_adapter(transport.base_url).poolmanager.connection_from_url(
            transport.base_url
        )
        assert pool.pool.maxsize == expected


@pytest.mark.parametrize("pool_maxsize", [0, -1])
def test_a_pool_without_connections_is_refused(pool_maxsize: int) -> None:
    settings = TransportSettings("c", "https://openrouter.ai/api/v1", KEY, requests_per_minute=None)
    with pytest.raises(ValueError, match="pool_maxsize must be a positive number"):
        OpenRouterTransport(settings, pool_maxsize=pool_maxsize)
