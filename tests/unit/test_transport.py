"""Transport: the one error mapping, the retry decision table, waits, headers, and wire-level retries.

Wire-level tests use a scripted stub server on 127.0.0.1 rather than the emulator: it decides exactly what
each attempt gets, including answers that hang, are reset or are cut off.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import tenacity

from airflow_provider_openrouter import __version__
from airflow_provider_openrouter.exceptions import (
    OpenRouterAuthenticationError,
    OpenRouterConnectionError,
    OpenRouterEndpointGoneError,
    OpenRouterError,
    OpenRouterInsufficientCreditsError,
    OpenRouterModerationError,
    OpenRouterNotFoundError,
    OpenRouterOutcomeUnknownError,
    OpenRouterPayloadTooLargeError,
    OpenRouterPermissionError,
    OpenRouterRateLimitError,
    OpenRouterRequestError,
    OpenRouterResponseError,
    OpenRouterTimeoutError,
    OpenRouterUpstreamError,
)
from airflow_provider_openrouter.ratelimit import clear_buckets
from airflow_provider_openrouter.transport import (
    AsyncOpenRouterTransport,
    OpenRouterTransport,
    TransportSettings,
    raise_for_openrouter_error,
    should_retry,
    wait_retry_after_or_backoff,
)

KEY = "sk-or-v1-feedfacefeedfacefeedfacefeedface"
JSON = {"content-type": "application/json"}
CHAT_OK = {
    "id": "gen-ok",
    "object": "chat.completion",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
}


def envelope(code: int, message: str = "boom", metadata: dict[str, Any] | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if metadata is not None:
        error["metadata"] = metadata
    return json.dumps({"error": error, "user_id": "user_1"}).encode()


def mapped(
    status: int,
    content: bytes,
    *,
    path: str = "/chat/completions",
    method: str = "POST",
    billable: bool = True,
    headers: dict[str, str] | None = None,
) -> OpenRouterError:
    with pytest.raises(OpenRouterError) as caught:
        raise_for_openrouter_error(
            status,
            headers if headers is not None else JSON,
            content,
            method=method,
            path=path,
            conn_id="or_conn",
            billable=billable,
            secrets=(KEY,),
        )
    return caught.value


# --- mapping -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, path, cls",
    [
        (400, "/chat/completions", OpenRouterRequestError),
        (422, "/chat/completions", OpenRouterRequestError),
        (409, "/batches/b1", OpenRouterRequestError),
        (401, "/key", OpenRouterAuthenticationError),
        (402, "/chat/completions", OpenRouterInsufficientCreditsError),
        (403, "/credits", OpenRouterPermissionError),
        (404, "/generation", OpenRouterNotFoundError),
        (404, "/completions", OpenRouterEndpointGoneError),
        (410, "/completions", OpenRouterEndpointGoneError),
        (408, "/chat/completions", OpenRouterTimeoutError),
        (413, "/chat/completions", OpenRouterPayloadTooLargeError),
        (429, "/chat/completions", OpenRouterRateLimitError),
        (500, "/chat/completions", OpenRouterUpstreamError),
        (502, "/chat/completions", OpenRouterUpstreamError),
        (503, "/chat/completions", OpenRouterUpstreamError),
        (504, "/chat/completions", OpenRouterUpstreamError),
        (524, "/chat/completions", OpenRouterUpstreamError),
        (529, "/chat/completions", OpenRouterUpstreamError),
    ],
)
def test_each_status_maps_to_its_class(status: int, path: str, cls: type[OpenRouterError]) -> None:
    err = mapped(status, envelope(status, f"status {status} says no"), path=path)
    assert type(err) is cls
    assert err.status == status and err.code == status
    # The envelope proves nothing was billed (zero-completion insurance), except behind Cloudflare's edge
    # timeout, where the origin may still be generating.
    assert err.billed is (None if status == 524 else False)
    text = str(err)
    assert "\n" not in text
    assert f"HTTP {status}" in text and f"status {status} says no" in text
    assert f"POST {path} on connection 'or_conn'" in text


def test_a_524_on_a_get_is_not_billed() -> None:
    err = mapped(524, envelope(524, "try later"), path="/credits", method="GET", billable=False)
    assert err.billed is False


@pytest.mark.parametrize("code", [408, 429, 500, 502])
def test_an_error_inside_a_200_of_a_billable_post_was_not_billed(code: int) -> None:
    body = (
        b'{"id": "gen-1", "choices": [], "error": {"code": %d, "message": "Provider returned error"}}' % code
    )
    err = mapped(200, body)
    assert err.in_body and err.status == code
    assert err.billed is False


def test_a_524_inside_a_200_may_have_been_billed() -> None:
    err = mapped(200, b'{"error": {"code": 524, "message": "Provider returned error"}}')
    assert err.in_body and err.status == 524
    assert err.billed is None


def test_moderation_403_carries_reasons() -> None:
    err = mapped(403, envelope(403, "flagged", {"reasons": ["violence"], "flagged_input": "x...y"}))
    assert isinstance(err, OpenRouterModerationError)
    assert err.reasons == ["violence"]


def test_key_echoed_by_the_server_is_scrubbed() -> None:
    err = mapped(401, envelope(401, f"Invalid key {KEY}", {"headers": {"authorization": f"Bearer {KEY}"}}))
    assert KEY not in str(err)
    assert KEY not in repr(err.metadata)
    assert "connection 'or_conn'" in str(err)


def test_error_object_inside_a_200_raises_as_the_status_it_carries() -> None:
    body = (
        b'{"error":{"message":"Provider returned error","code":524,'
        b'"metadata":{"raw":"error code: 524","provider_name":"Google AI Studio"}},"user_id":"user_1"}'
    )
    err = mapped(200, body, headers={**JSON, "x-generation-id": "gen-hdr"})
    assert isinstance(err, OpenRouterUpstreamError)
    assert err.status == 524 and err.in_body
    assert err.generation_id == "gen-hdr"
    assert err.metadata["provider_name"] == "Google AI Studio"


def test_finish_reason_error_uses_the_choice_error_and_the_body_id() -> None:
    body = (
        b'{"id":"gen-mid","object":"chat.completion","choices":[{"index":0,"finish_reason":"error",'
        b'"message":{"role":"assistant","content":"par"},'
        b'"error":{"code":429,"message":"Rate limit exceeded"}}]}'
    )
    err = mapped(200, body)
    assert isinstance(err, OpenRouterRateLimitError)
    assert err.in_body and err.generation_id == "gen-mid"
    assert "Rate limit exceeded" in err.message


def test_empty_choices_are_an_error() -> None:
    err = mapped(200, b'{"id":"gen-empty","object":"chat.completion","choices":[]}')
    assert isinstance(err, OpenRouterUpstreamError)
    assert err.in_body and err.code == "empty_choices" and err.generation_id == "gen-empty"


def test_a_failed_batch_in_a_200_is_not_an_error() -> None:
    body = b'{"id":"batch_1","object":"batch","status":"failed","error":{"message":"expired"},"choices":null}'
    assert (
        raise_for_openrouter_error(
            200, JSON, body, method="GET", path="/batches/batch_1", conn_id="c", billable=False
        )["status"]
        == "failed"
    )


def test_html_error_page_is_summarised_not_dumped() -> None:
    page = b"<html><body>" + b"x" * 5000 + b"</body></html>"
    err = mapped(
        502, page, headers={"content-type": "text/html"}, billable=False, method="GET", path="/models"
    )
    assert isinstance(err, OpenRouterUpstreamError)
    assert "HTML page" in err.message and "xxxx" not in err.message


def test_html_5xx_on_a_billable_post_is_an_unknown_outcome() -> None:
    err = mapped(502, b"<html>bad gateway</html>", headers={"content-type": "text/html"})
    assert isinstance(err, OpenRouterOutcomeUnknownError)
    assert err.status == 502 and err.billed is None


def test_html_404_on_legacy_completions_points_to_chat() -> None:
    err = mapped(404, b"<html>Not Found</html>", headers={"content-type": "text/html"}, path="/completions")
    assert isinstance(err, OpenRouterEndpointGoneError)
    assert "OpenRouterChatCompletionOperator" in str(err)


def test_cut_off_json_on_200_is_an_unknown_outcome() -> None:
    err = mapped(200, b'{"id":"gen-1","choi', billable=False, method="GET", path="/key")
    assert isinstance(err, OpenRouterOutcomeUnknownError)


def test_html_200_on_a_get_blames_the_base_url() -> None:
    err = mapped(
        200,
        b"<html>landing page</html>",
        headers={"content-type": "text/html"},
        billable=False,
        method="GET",
        path="/key",
    )
    assert isinstance(err, OpenRouterResponseError)
    assert "Base URL of connection 'or_conn'" in str(err)


def test_retry_after_seconds_http_date_ms_and_ratelimit_reset() -> None:
    assert mapped(429, envelope(429), headers={**JSON, "retry-after": "7"}).retry_after == 7.0  # type: ignore[attr-defined]
    assert mapped(429, envelope(429), headers={**JSON, "retry-after-ms": "250"}).retry_after == 0.25  # type: ignore[attr-defined]
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    from_date = mapped(429, envelope(429), headers={**JSON, "retry-after": future}).retry_after  # type: ignore[attr-defined]
    assert 25 <= from_date <= 31
    reset_ms = str(int((time.time() + 12) * 1000))
    from_reset = mapped(429, envelope(429), headers={**JSON, "x-ratelimit-reset": reset_ms}).retry_after  # type: ignore[attr-defined]
    assert 10 <= from_reset <= 12.5
    in_metadata = mapped(
        429, envelope(429, "free-models-per-day", {"headers": {"X-RateLimit-Reset": reset_ms}})
    )
    assert 10 <= in_metadata.retry_after <= 12.5  # type: ignore[attr-defined]
    assert mapped(429, envelope(429)).retry_after is None  # type: ignore[attr-defined]


# --- the retry decision table ------------------------------------------------------------------------------


def _err(cls: type[OpenRouterError], status: int | None = None, *, in_body: bool = False) -> OpenRouterError:
    """The error as the mapping builds it for a billable request (so a 524 carries ``billed=None``)."""
    if status is None or status == 200:
        return cls("x", status=status, in_body=in_body)
    content = envelope(status)
    if in_body:
        content = json.dumps({"choices": [], "error": {"code": status, "message": "x"}}).encode()
    err = mapped(200 if in_body else status, content)
    assert type(err) is cls
    return err


@pytest.mark.parametrize(
    "error, billable_default, billable_ambiguous, idempotent",
    [
        (_err(OpenRouterConnectionError), True, True, True),
        (_err(OpenRouterRateLimitError, 429), True, True, True),
        (_err(OpenRouterUpstreamError, 502), True, True, True),
        (_err(OpenRouterUpstreamError, 503), True, True, True),
        (_err(OpenRouterUpstreamError, 529), True, True, True),
        (_err(OpenRouterUpstreamError, 500), True, True, True),
        (_err(OpenRouterUpstreamError, 504), True, True, True),
        (_err(OpenRouterTimeoutError, 408), True, True, True),
        (_err(OpenRouterUpstreamError, 502, in_body=True), True, True, True),
        (_err(OpenRouterUpstreamError, 500, in_body=True), True, True, True),
        (_err(OpenRouterRateLimitError, 429, in_body=True), True, True, True),
        (_err(OpenRouterTimeoutError, 408, in_body=True), True, True, True),
        (_err(OpenRouterUpstreamError, 524), False, True, True),
        (_err(OpenRouterUpstreamError, 524, in_body=True), False, True, True),
        (_err(OpenRouterOutcomeUnknownError), False, True, True),
        (_err(OpenRouterRequestError, 400), False, False, False),
        (_err(OpenRouterAuthenticationError, 401), False, False, False),
        (_err(OpenRouterInsufficientCreditsError, 402), False, False, False),
        (_err(OpenRouterPermissionError, 403), False, False, False),
        (_err(OpenRouterNotFoundError, 404), False, False, False),
        (_err(OpenRouterPayloadTooLargeError, 413), False, False, False),
        (_err(OpenRouterRequestError, 422), False, False, False),
        (_err(OpenRouterResponseError, 200), False, False, False),
        (_err(OpenRouterRequestError, 400, in_body=True), False, False, False),
        (_err(OpenRouterInsufficientCreditsError, 402, in_body=True), False, False, False),
    ],
)
def test_retry_decision_table(
    error: OpenRouterError, billable_default: bool, billable_ambiguous: bool, idempotent: bool
) -> None:
    assert should_retry(error, billable=True, retry_ambiguous=False) is billable_default
    assert should_retry(error, billable=True, retry_ambiguous=True) is billable_ambiguous
    assert should_retry(error, billable=False, retry_ambiguous=False) is idempotent


def test_foreign_exceptions_are_not_retried() -> None:
    assert not should_retry(ValueError("bug"), billable=False, retry_ambiguous=True)


# --- waits -------------------------------------------------------------------------------------------------


def _state(attempt: int, error: BaseException) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(error), error, None))
    return state


def test_wait_uses_the_servers_retry_after() -> None:
    wait = wait_retry_after_or_backoff()
    assert wait(_state(1, OpenRouterRateLimitError("x", retry_after=4.5))) == 4.5


def test_wait_backs_off_exponentially_with_jitter_and_a_cap() -> None:
    import random

    wait = wait_retry_after_or_backoff(initial=0.5, cap=4.0, rng=random.Random(7))
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        draws = [wait(_state(attempt, OpenRouterUpstreamError("x"))) for _ in range(50)]
        assert all(base / 2 <= draw <= base for draw in draws)
        assert len(set(draws)) > 1  # jittered, not a fixed delay


# --- settings ----------------------------------------------------------------------------------------------


def test_settings_hide_the_key_and_build_headers() -> None:
    settings = TransportSettings(
        "c", "https://example.invalid/api/v1", KEY, app_url="https://app", app_title="App"
    )
    assert KEY not in repr(settings)
    headers = settings.headers()
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["HTTP-Referer"] == "https://app"
    assert headers["X-OpenRouter-Title"] == headers["X-Title"] == "App"
    assert headers["User-Agent"] == f"airflow-provider-openrouter/{__version__}"
    assert "HTTP-Referer" not in TransportSettings("c", "u", KEY).headers()


# --- wire-level behaviour against the stub server ----------------------------------------------------------


@dataclass
class Reply:
    """What one request gets. ``action``: ``respond`` (default), ``reset`` (RST, no answer), ``truncate``
    (headers promise more bytes than are sent), ``hang`` (no answer until the test releases the server)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    action: str = "respond"
    content_type: str = "application/json"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class StubServer:
    def __init__(self) -> None:
        self.port = 0
        self.replies: list[Reply] = []
        self.seen: list[Seen] = []
        self.release = threading.Event()
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self.replies = list(replies)
            self.seen = []

    def next_reply(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            return self.replies.pop(0) if self.replies else Reply(200, {"ok": True})


def _handler(server_state: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            reply = server_state.next_reply(seen)
            if reply.action == "hang":
                server_state.release.wait(timeout=10)
                self.close_connection = True
                return
            if reply.action == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
            if isinstance(reply.body, bytes):
                payload = reply.body
            elif isinstance(reply.body, str):
                payload = reply.body.encode()
            else:
                payload = json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            promised = len(payload) + 100 if reply.action == "truncate" else len(payload)
            self.send_header("Content-Length", str(promised))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
            if reply.action == "truncate":
                self.wfile.flush()
                self.close_connection = True

        do_GET = do_POST = do_DELETE = _handle

    return Handler


@contextmanager
def stub_server() -> Iterator[StubServer]:
    state = StubServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = int(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with stub_server() as server:
        yield server


def make_transport(base_url: str, sleeps: list[float] | None = None, **overrides: Any) -> OpenRouterTransport:
    clear_buckets()
    options: dict[str, Any] = {"requests_per_minute": None, "timeout": 5.0, "max_retries": 5, **overrides}
    settings = TransportSettings("or_conn", base_url, KEY, app_url="https://app", app_title="App", **options)
    recorded = sleeps if sleeps is not None else []
    return OpenRouterTransport(settings, tenacity_kwargs={"sleep": recorded.append})


def test_billable_post_survives_503s_with_one_idempotency_key(stub: StubServer) -> None:
    stub.script(
        Reply(503, {"error": {"code": 503, "message": "overloaded"}}),
        Reply(503, {"error": {"code": 503, "message": "x"}}),
        Reply(200, CHAT_OK),
    )
    sleeps: list[float] = []
    with make_transport(stub.base_url, sleeps) as transport:
        result = transport.post("/chat/completions", {"model": "m", "messages": []})
    assert result["id"] == "gen-ok"
    assert len(stub.seen) == 3 and len(sleeps) == 2
    keys = {seen.headers["x-idempotency-key"] for seen in stub.seen}
    assert len(keys) == 1
    first = stub.seen[0]
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert first.headers["http-referer"] == "https://app"
    assert first.headers["x-openrouter-title"] == first.headers["x-title"] == "App"
    assert first.headers["user-agent"].startswith("airflow-provider-openrouter/")
    assert first.path == "/api/v1/chat/completions"


def test_given_idempotency_key_is_sent(stub: StubServer) -> None:
    stub.script(Reply(200, CHAT_OK))
    with make_transport(stub.base_url) as transport:
        transport.post("/chat/completions", {"messages": []}, idempotency_key="row-42")
    assert stub.seen[0].headers["x-idempotency-key"] == "row-42"


@pytest.mark.parametrize("status", [408, 500, 504])
def test_billable_envelope_error_is_resent_with_one_idempotency_key(stub: StubServer, status: int) -> None:
    stub.script(Reply(status, {"error": {"code": status, "message": "Internal"}}), Reply(200, CHAT_OK))
    with make_transport(stub.base_url) as transport:
        assert transport.post("/chat/completions", {"messages": []})["id"] == "gen-ok"
    assert len(stub.seen) == 2
    assert stub.seen[0].headers["x-idempotency-key"] == stub.seen[1].headers["x-idempotency-key"]


def test_billable_524_is_not_resent_by_default(stub: StubServer) -> None:
    stub.script(Reply(524, {"error": {"code": 524, "message": "timeout"}}), Reply(200, CHAT_OK))
    with make_transport(stub.base_url) as transport, pytest.raises(OpenRouterUpstreamError) as caught:
        transport.post("/chat/completions", {"messages": []})
    assert len(stub.seen) == 1 and caught.value.billed is None


def test_billable_524_is_resent_when_retry_ambiguous(stub: StubServer) -> None:
    stub.script(Reply(524, {"error": {"code": 524, "message": "timeout"}}), Reply(200, CHAT_OK))
    with make_transport(stub.base_url, retry_ambiguous=True) as transport:
        assert transport.post("/chat/completions", {"messages": []})["id"] == "gen-ok"
    assert len(stub.seen) == 2


@pytest.mark.parametrize(
    "metadata, headers",
    [({"headers": {"Retry-After": "4"}}, {}), ({}, {"Retry-After": "4"})],
    ids=["in-error-metadata", "http-header"],
)
def test_an_upstream_429_inside_a_200_waits_for_retry_after_then_succeeds(
    stub: StubServer, metadata: dict[str, Any], headers: dict[str, str]
) -> None:
    upstream_429 = {
        "id": "gen-limited",
        "choices": [],
        "error": {"code": 429, "message": "Provider rate limited", "metadata": metadata},
    }
    stub.script(Reply(200, upstream_429, headers=headers), Reply(200, CHAT_OK))
    sleeps: list[float] = []
    with make_transport(stub.base_url, sleeps) as transport:
        assert transport.post("/chat/completions", {"messages": []})["id"] == "gen-ok"
    assert sleeps == [4.0] and len(stub.seen) == 2
    assert stub.seen[0].headers["x-idempotency-key"] == stub.seen[1].headers["x-idempotency-key"]


@pytest.mark.parametrize("status", [400, 402, 403])
def test_a_4xx_inside_a_200_is_never_resent(stub: StubServer, status: int) -> None:
    stub.script(Reply(200, {"choices": [], "error": {"code": status, "message": "no"}}), Reply(200, CHAT_OK))
    with (
        make_transport(stub.base_url, retry_ambiguous=True) as transport,
        pytest.raises(OpenRouterError) as caught,
    ):
        transport.post("/chat/completions", {"messages": []})
    assert len(stub.seen) == 1 and caught.value.billed is False


def test_429_waits_for_retry_after_then_succeeds(stub: StubServer) -> None:
    stub.script(
        Reply(429, {"error": {"code": 429, "message": "slow"}}, headers={"Retry-After": "3"}),
        Reply(200, CHAT_OK),
    )
    sleeps: list[float] = []
    with make_transport(stub.base_url, sleeps) as transport:
        transport.post("/chat/completions", {"messages": []})
    assert sleeps == [3.0]
    assert len(stub.seen) == 2


def test_429_pauses_the_connections_shared_bucket(stub: StubServer) -> None:
    stub.script(Reply(429, {"error": {"code": 429, "message": "slow"}}, headers={"Retry-After": "30"}))
    clear_buckets()
    settings = TransportSettings("or_conn", stub.base_url, KEY, requests_per_minute=6000, max_retries=0)
    with OpenRouterTransport(settings) as transport, pytest.raises(OpenRouterRateLimitError):
        transport.post("/chat/completions", {"messages": []})
    assert transport.bucket is not None
    # Every caller of the connection now waits for the reset: the next free slot is ~30 s away.
    assert transport.bucket._reserve() - time.monotonic() > 25
    clear_buckets()


def test_retry_after_beyond_max_retry_wait_fails_at_once(stub: StubServer) -> None:
    stub.script(Reply(429, {"error": {"code": 429, "message": "daily cap"}}, headers={"Retry-After": "1000"}))
    sleeps: list[float] = []
    transport = make_transport(stub.base_url, sleeps, max_retry_wait=10.0)
    with transport, pytest.raises(OpenRouterRateLimitError) as caught:
        transport.post("/chat/completions", {"messages": []})
    assert sleeps == [] and len(stub.seen) == 1
    assert caught.value.retry_after == 1000.0
    assert "retry after 1000.0 s" in str(caught.value)


def test_max_retries_bounds_attempts(stub: StubServer) -> None:
    stub.script(*[Reply(503, {"error": {"code": 503, "message": "down"}}) for _ in range(10)])
    with make_transport(stub.base_url, max_retries=2) as transport, pytest.raises(OpenRouterUpstreamError):
        transport.get("/models")
    assert len(stub.seen) == 3


def test_401_fails_at_once_naming_the_connection_not_the_key(stub: StubServer) -> None:
    stub.script(Reply(401, {"error": {"code": 401, "message": "User not found."}}))
    with make_transport(stub.base_url) as transport, pytest.raises(OpenRouterAuthenticationError) as caught:
        transport.get("/key")
    assert len(stub.seen) == 1
    assert "connection 'or_conn'" in str(caught.value) and KEY not in str(caught.value)


@pytest.mark.parametrize("action", ["reset", "truncate"])
def test_lost_answer_to_a_billable_post_is_not_resent(stub: StubServer, action: str) -> None:
    stub.script(Reply(200, CHAT_OK, action=action), Reply(200, CHAT_OK))
    with make_transport(stub.base_url) as transport, pytest.raises(OpenRouterOutcomeUnknownError) as caught:
        transport.post("/chat/completions", {"messages": []})
    assert len(stub.seen) == 1
    assert caught.value.billed is None
    assert "may have been processed and billed" in str(caught.value)


@pytest.mark.parametrize("action", ["reset", "truncate"])
def test_lost_answer_to_a_get_is_retried(stub: StubServer, action: str) -> None:
    stub.script(Reply(200, {"data": {}}, action=action), Reply(200, {"data": {"label": "k"}}))
    with make_transport(stub.base_url) as transport:
        assert transport.get("/key") == {"data": {"label": "k"}}
    assert len(stub.seen) == 2


def test_read_timeout_on_a_billable_post_is_not_resent(stub: StubServer) -> None:
    stub.script(Reply(action="hang"), Reply(200, CHAT_OK))
    with (
        make_transport(stub.base_url, timeout=0.3) as transport,
        pytest.raises(OpenRouterOutcomeUnknownError) as caught,
    ):
        transport.post("/chat/completions", {"messages": []})
    stub.release.set()
    assert len(stub.seen) == 1
    assert "no answer within 0.3 s" in str(caught.value)


def test_read_timeout_on_a_get_is_retried(stub: StubServer) -> None:
    stub.script(Reply(action="hang"), Reply(200, {"data": {"label": "k"}}))
    with make_transport(stub.base_url, timeout=0.3) as transport:
        assert transport.get("/key")["data"]["label"] == "k"
    stub.release.set()
    assert len(stub.seen) == 2


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_is_resent_then_reported_as_never_sent() -> None:
    sleeps: list[float] = []
    transport = make_transport(f"http://127.0.0.1:{_closed_port()}/api/v1", sleeps, max_retries=2)
    with transport, pytest.raises(OpenRouterConnectionError) as caught:
        transport.post("/chat/completions", {"messages": []})
    assert len(sleeps) == 2  # a billable POST that never left may be resent
    assert caught.value.billed is False
    assert "Base URL of connection 'or_conn'" in str(caught.value)


SSE_OK = (
    b": OPENROUTER PROCESSING\n\n"
    b'data: {"id":"gen-s","object":"chat.completion.chunk",'
    b'"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n'
    b": OPENROUTER PROCESSING\n\n"
    b'data: {"id":"gen-s","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"lo"},'
    b'"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


def test_stream_yields_events_and_skips_keepalive_comments(stub: StubServer) -> None:
    stub.script(Reply(200, SSE_OK, content_type="text/event-stream"))
    with make_transport(stub.base_url) as transport:
        events = list(transport.stream("/chat/completions", {"messages": []}))
    assert [event["choices"][0]["delta"]["content"] for event in events] == ["Hel", "lo"]
    assert stub.seen[0].body["stream"] is True
    assert stub.seen[0].headers["accept"] == "text/event-stream"


def test_stream_error_event_raises_its_status(stub: StubServer) -> None:
    body = (
        b'data: {"id":"gen-e","choices":[{"index":0,"delta":{"content":"par"}}]}\n\n'
        b'data: {"id":"gen-e","error":{"code":502,"message":"Provider disconnected"},'
        b'"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}\n\n'
    )
    stub.script(
        Reply(200, body, content_type="text/event-stream"),
        Reply(200, SSE_OK, content_type="text/event-stream"),
    )
    with make_transport(stub.base_url) as transport, pytest.raises(OpenRouterUpstreamError) as caught:
        list(transport.stream("/chat/completions", {"messages": []}))
    assert caught.value.in_body and caught.value.generation_id == "gen-e"
    assert len(stub.seen) == 1  # a stream that started is never resent


def test_stream_cut_before_the_end_is_an_unknown_outcome(stub: StubServer) -> None:
    body = b'data: {"id":"gen-c","choices":[{"index":0,"delta":{"content":"par"}}]}\n\n'
    stub.script(Reply(200, body, content_type="text/event-stream"))
    with make_transport(stub.base_url) as transport, pytest.raises(OpenRouterOutcomeUnknownError) as caught:
        list(transport.stream("/chat/completions", {"messages": []}))
    assert caught.value.generation_id == "gen-c"


def test_stream_pre_stream_errors_follow_the_billable_rules(stub: StubServer) -> None:
    stub.script(
        Reply(503, {"error": {"code": 503, "message": "busy"}}),
        Reply(200, SSE_OK, content_type="text/event-stream"),
    )
    with make_transport(stub.base_url) as transport:
        assert len(list(transport.stream("/chat/completions", {"messages": []}))) == 2
    assert len(stub.seen) == 2
    assert stub.seen[0].headers["x-idempotency-key"] == stub.seen[1].headers["x-idempotency-key"]


def test_get_sends_params(stub: StubServer) -> None:
    stub.script(Reply(200, {"data": {"id": "gen-1"}}))
    with make_transport(stub.base_url) as transport:
        transport.get("/generation", {"id": "gen-1", "unused": None})
    assert stub.seen[0].path == "/api/v1/generation?id=gen-1"
    assert "x-idempotency-key" not in stub.seen[0].headers


def test_tenacity_kwargs_may_not_override_the_billing_rules() -> None:
    settings = TransportSettings("c", "http://127.0.0.1:1/api/v1", KEY, requests_per_minute=None)
    with pytest.raises(ValueError, match="may not set 'retry'"):
        OpenRouterTransport(settings, tenacity_kwargs={"retry": tenacity.retry_always})


# --- async twin --------------------------------------------------------------------------------------------


def make_async(base_url: str, sleeps: list[float], **overrides: Any) -> AsyncOpenRouterTransport:
    clear_buckets()

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    options: dict[str, Any] = {"requests_per_minute": None, "timeout": 5.0, **overrides}
    settings = TransportSettings("or_conn", base_url, KEY, **options)
    return AsyncOpenRouterTransport(settings, tenacity_kwargs={"sleep": fake_sleep})


def test_async_get_retries_like_the_sync_transport(stub: StubServer) -> None:
    stub.script(Reply(503, {"error": {"code": 503, "message": "down"}}), Reply(200, {"data": {"label": "k"}}))
    sleeps: list[float] = []

    async def run() -> dict[str, Any]:
        async with make_async(stub.base_url, sleeps) as transport:
            return await transport.get("/key")

    assert asyncio.run(run()) == {"data": {"label": "k"}}
    assert len(stub.seen) == 2 and len(sleeps) == 1
    assert stub.seen[0].headers["authorization"] == f"Bearer {KEY}"


def test_async_billable_post_with_lost_answer_is_not_resent(stub: StubServer) -> None:
    stub.script(Reply(200, CHAT_OK, action="reset"), Reply(200, CHAT_OK))

    async def run() -> None:
        async with make_async(stub.base_url, []) as transport:
            await transport.post("/chat/completions", {"messages": []})

    with pytest.raises(OpenRouterOutcomeUnknownError):
        asyncio.run(run())
    assert len(stub.seen) == 1


def test_async_connection_refused_maps_to_never_sent() -> None:
    sleeps: list[float] = []

    async def run() -> None:
        async with make_async(
            f"http://127.0.0.1:{_closed_port()}/api/v1", sleeps, max_retries=1
        ) as transport:
            await transport.get("/key")

    with pytest.raises(OpenRouterConnectionError):
        asyncio.run(run())
    assert len(sleeps) == 1


def test_proxy_settings_come_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    settings = TransportSettings("c", "https://openrouter.ai/api/v1", KEY, requests_per_minute=None)
    with OpenRouterTransport(settings) as transport:
        assert transport._session.proxies.get("https") == "http://proxy.internal:3128"
    monkeypatch.setenv("NO_PROXY", "openrouter.ai")
    with OpenRouterTransport(settings) as transport:
        assert "https" not in transport._session.proxies
