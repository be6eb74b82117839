"""Users run the emulator in their own CI: bad input gets a 400 naming what was wrong, never a 500 or a
hang, and hostile or broken clients (HTTP/1.0, half-open connections, endless distinct paths) cannot wear it
down."""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from airflow_provider_openrouter.emulator.testing import RunningEmulator, running_emulator

from .test_batches import wait_terminal

MODEL = "openai/gpt-4o-mini"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}


def _raw_post(http: httpx.Client, content: bytes) -> httpx.Response:
    return http.post("/chat/completions", content=content, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 100_000,
        b'{"model": "openai/gpt-4o-mini", "metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=["bare", "inside-an-object"],
)
def test_deeply_nested_json_is_a_400_with_the_envelope(http: httpx.Client, content: bytes) -> None:
    response = _raw_post(http, content)
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["error"]["message"]


def test_a_schema_that_recurses_without_end_is_a_400(http: httpx.Client) -> None:
    schema = {"$ref": "#"}  # parses, but following it recurses past Python's limit
    body = {
        **CHAT,
        "response_format": {"type": "json_schema", "json_schema": {"name": "loop", "schema": schema}},
    }
    response = http.post("/chat/completions", json=body)
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["error"]["message"]


@pytest.mark.parametrize("name", ["min_price", "max_price", "min_output_price", "max_output_price"])
@pytest.mark.parametrize("value", ["NaN", "inf", "-Infinity", "-1", "garbage", "sNaN"])
def test_a_price_filter_that_is_not_a_price_is_a_400_naming_it(
    http: httpx.Client, name: str, value: str
) -> None:
    for path in ("/models", "/models/count"):
        response = http.get(path, params={name: value})
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"]["message"].startswith(f"{name}: ")
    assert http.get("/models", params={name: "0.5"}).status_code == 200


def _configure(emulator: RunningEmulator, raw: str) -> httpx.Response:
    return httpx.post(
        emulator.root_url + "/__emulator/config", content=raw, headers={"Content-Type": "application/json"}
    )


@pytest.mark.parametrize("field", ["latency_ms", "latency_jitter_ms"])
@pytest.mark.parametrize("value", ["Infinity", "NaN", "-1", "60001", "1e308", '"inf"', "true"])
def test_live_config_refuses_latency_that_would_hang_or_break_requests(
    emulator: RunningEmulator, field: str, value: str
) -> None:
    response = _configure(emulator, f'{{"{field}": {value}}}')
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message.startswith(f"{field}: ") and "60000" in message
    assert emulator.configure()[field] == 0  # nothing changed
    assert _configure(emulator, f'{{"{field}": 60000}}').status_code == 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("generation_delay_s", "Infinity"),
        ("batch_duration_s", "NaN"),
        ("rate_limit_rpm", "Infinity"),
        ("rate_limit_burst", "1e400"),
        ("credits", '"1e400"'),
        ("seed", "-1"),
    ],
)
def test_live_config_refuses_other_numbers_that_are_not_finite_or_too_large(
    emulator: RunningEmulator, http: httpx.Client, field: str, value: str
) -> None:
    response = _configure(emulator, f'{{"{field}": {value}}}')
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(f"{field}: ")
    assert http.post("/chat/completions", json=CHAT).status_code == 200


@pytest.mark.parametrize("fault", ["999", "bogus", 200, True, None, "503x"])
def test_fail_next_refuses_values_that_crash_a_request_or_mean_something_else(
    emulator: RunningEmulator, http: httpx.Client, fault: Any
) -> None:
    response = _configure(emulator, json.dumps({"fail_next": {"POST /chat/completions": [fault]}}))
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message.startswith("fail_next['POST /chat/completions'][0]: ")
    assert "400-599" in message and "error_in_200" in message
    assert http.post("/chat/completions", json=CHAT).status_code == 200


def test_a_latency_directive_beyond_a_minute_is_a_400(http: httpx.Client) -> None:
    content = "[[emulator: latency_ms=1e12]] hi"
    response = http.post(
        "/chat/completions", json={**CHAT, "messages": [{"role": "user", "content": content}]}
    )
    assert response.status_code == 400 and "latency_ms" in response.json()["error"]["message"]


def _raw_request(
    emulator: RunningEmulator, method: str, path: str, body: bytes = b"", version: str = "1.1"
) -> tuple[bytes, bytes]:
    """(head, body) of a request written by hand, for what HTTP libraries will not send."""
    url = urlsplit(emulator.base_url)
    head = (
        f"{method} {url.path}{path} HTTP/{version}\r\nHost: {url.netloc}\r\n"
        f"Authorization: Bearer {emulator.api_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head, body


def _connect(emulator: RunningEmulator) -> socket.socket:
    url = urlsplit(emulator.base_url)
    return socket.create_connection((url.hostname, url.port), timeout=60)


def _http10(
    emulator: RunningEmulator, method: str, path: str, body: bytes = b""
) -> tuple[dict[str, str], bytes]:
    """One HTTP/1.0 exchange on a raw socket: (lower-cased headers, body read until the server closes)."""
    with _connect(emulator) as sock:
        sock.sendall(b"".join(_raw_request(emulator, method, path, body, version="1.0")))
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, payload = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 200"), lines[0]
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return headers, payload


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_http_1_0_client_gets_an_answer_it_can_read_without_chunked_encoding(
    emulator: RunningEmulator, stream: bool
) -> None:
    headers, payload = _http10(
        emulator, "POST", "/chat/completions", json.dumps({**CHAT, "stream": stream}).encode()
    )
    assert "transfer-encoding" not in headers
    assert int(headers["content-length"]) == len(payload)
    if stream:
        text = payload.decode()
        assert text.startswith(": OPENROUTER PROCESSING") and text.endswith("data: [DONE]\n\n")
    else:
        assert json.loads(payload)["object"] == "chat.completion"
    headers, payload = _http10(emulator, "GET", "/models")
    assert "transfer-encoding" not in headers and json.loads(payload)["data"]
    # A truncate fault still reads as a cut answer: less than the length the answer announced.
    truncated = {
        **CHAT,
        "stream": stream,
        "messages": [{"role": "user", "content": "[[emulator: fault=truncate]]"}],
    }
    headers, payload = _http10(emulator, "POST", "/chat/completions", json.dumps(truncated).encode())
    assert "transfer-encoding" not in headers and len(payload) < int(headers["content-length"])


def test_stats_count_unserved_paths_one_by_one_only_up_to_a_bound(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    for index in range(150):
        assert http.get(f"/nope-{index}").status_code == 404
    requests = emulator.stats()["requests"]
    unserved = {route: counts for route, counts in requests.items() if route.endswith("(not served)")}
    assert len(unserved) == 101
    assert unserved["other paths (not served)"] == {"404": 50}
    assert unserved["GET /api/v1/nope-0 (not served)"] == {"404": 1}


@contextlib.contextmanager
def _descriptor_soft_limit(limit: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


HALF_OPEN = 1000


def test_a_thousand_half_open_connections_neither_stop_normal_requests_nor_stay_open() -> None:
    with contextlib.ExitStack() as stack:
        # A fresh process started with macOS's default soft limit of 256 descriptors: the emulator must raise
        # it (to the hard limit) to hold a thousand connections, and close those that never finish a request.
        with _descriptor_soft_limit(256):
            emulator = stack.enter_context(running_emulator("--request-timeout-s", "3"))
        needed = HALF_OPEN + 100
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < needed:  # this test process holds the thousand sockets too
            stack.enter_context(_descriptor_soft_limit(max(needed, min(hard, 4096))))
        head, body = _raw_request(emulator, "POST", "/chat/completions", json.dumps(CHAT).encode())
        stalled = [
            b"",  # connected, nothing sent
            head[: len(head) // 2],  # half the headers
            head + body[: len(body) // 2],  # the headers and half of a billable body
        ]
        sockets = []
        for index in range(HALF_OPEN):
            sock = stack.enter_context(_connect(emulator))
            sock.sendall(stalled[index % len(stalled)])
            sockets.append(sock)

        with httpx.Client(
            base_url=emulator.base_url, headers={"Authorization": f"Bearer {emulator.api_key}"}, timeout=60
        ) as client:
            assert client.post("/chat/completions", json=CHAT).status_code == 200
            for sock in sockets:  # each is closed by the server once its request timeout has passed
                assert sock.recv(1) == b""
            assert client.post("/chat/completions", json=CHAT).status_code == 200
        stats = emulator.stats()
        assert stats["billed_generations"] == 2  # no half-sent request ran


def _read_answer(sock: socket.socket) -> bytes:
    """One HTTP/1.1 answer with Content-Length from a kept-alive socket; b"" if the server closed it."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_a_kept_alive_connection_that_pauses_between_requests_is_not_cut_by_the_request_timeout() -> None:
    with running_emulator("--request-timeout-s", "1") as emulator:
        request = b"".join(_raw_request(emulator, "POST", "/chat/completions", json.dumps(CHAT).encode()))
        with _connect(emulator) as sock:
            for _ in range(8):  # a client's think time between requests, over several request timeouts
                sock.sendall(request)
                assert _read_answer(sock).startswith(b"HTTP/1.1 200")
                time.sleep(0.4)


def test_a_kept_alive_connection_whose_next_request_stalls_is_closed_by_the_request_timeout() -> None:
    # One timer serves all requests of a connection: armed when it connected, it must restart its count
    # from the first byte of the stalled request, not end it at the first request's deadline nor never.
    with running_emulator("--request-timeout-s", "1") as emulator:
        head, body = _raw_request(emulator, "POST", "/chat/completions", json.dumps(CHAT).encode())
        with _connect(emulator) as sock:
            sock.sendall(head + body)
            assert _read_answer(sock).startswith(b"HTTP/1.1 200")
            time.sleep(0.5)  # the stalled request starts halfway through the first timer's period
            sock.sendall(head + body[: len(body) // 2])
            assert sock.recv(1) == b""
        assert emulator.stats()["billed_generations"] == 1


def test_a_batch_row_too_deep_to_follow_fails_alone(http: httpx.Client, emulator: RunningEmulator) -> None:
    emulator.configure(batch_duration_s=0)
    loop = {"type": "json_schema", "json_schema": {"name": "loop", "schema": {"$ref": "#"}}}
    requests = [
        {"custom_id": "fine", "body": {"messages": [{"role": "user", "content": "hi"}]}},
        {
            "custom_id": "deep",
            "body": {"messages": [{"role": "user", "content": "hi"}], "response_format": loop},
        },
    ]
    created = http.post(
        "/batches", json={"endpoint": "/v1/chat/completions", "model": MODEL, "requests": requests}
    )
    assert created.status_code == 202
    batch = wait_terminal(http, created.json()["id"])[0].json()
    results = {result["custom_id"]: result for result in batch["results"]}
    assert results["fine"]["response"]["status_code"] == 200
    assert "nested too deeply" in results["deep"]["error"]["message"]
    assert emulator.stats()["billed_generations"] == 1


@pytest.mark.parametrize(
    ("provider", "field"),
    [
        ({"order": 5}, "provider.order"),
        ({"only": "openai"}, "provider.only"),
        ({"ignore": [1]}, "provider.ignore"),
        ({"quantizations": 5}, "provider.quantizations"),
        ({"sort": 5}, "provider.sort"),
        ({"max_price": {"prompt": "abc"}}, "provider.max_price.prompt"),
        ({"max_price": {"completion": "NaN"}}, "provider.max_price.completion"),
        ({"max_price": 5}, "provider.max_price"),
    ],
)
def test_provider_preferences_of_the_wrong_type_are_a_400_naming_them(
    http: httpx.Client, provider: dict[str, Any], field: str
) -> None:
    for stream in (False, True):
        response = http.post("/chat/completions", json={**CHAT, "provider": provider, "stream": stream})
        assert response.status_code == 400
        assert response.json()["error"]["message"].startswith(f"{field}: ")
    batch = http.post(
        "/batches",
        json={
            "endpoint": "/v1/chat/completions",
            "model": MODEL,
            "requests": [{"custom_id": "a", "body": {}}],
        }
        | {"provider": provider},
    )
    assert batch.status_code == 400 and batch.json()["error"]["message"].startswith(f"{field}: ")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "array", "minItems": "many"},
        {"type": "object", "properties": ["a"]},
        {"type": "integer", "minimum": "low"},
        {"type": "array", "minItems": 10**9},  # would hold the server for minutes
        {"type": "array", "minItems": 200, "items": {"type": "array", "minItems": 200}},
        {"type": "string", "minLength": 10**9},
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_schema_no_value_can_be_made_for_is_a_400_naming_where(
    http: httpx.Client, emulator: RunningEmulator, schema: dict[str, Any], stream: bool
) -> None:
    formats = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    response = http.post("/chat/completions", json={**CHAT, "response_format": formats, "stream": stream})
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("response_format.json_schema.schema: ")
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    response = http.post("/chat/completions", json={**CHAT, "tools": [tool], "tool_choice": "required"})
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("tools: function 'f' parameters: ")
    assert emulator.stats()["billed_generations"] == 0


def test_an_image_part_without_an_object_is_a_400(http: httpx.Client) -> None:
    content = [{"type": "image_url", "image_url": "https://example.com/a.png"}]
    response = http.post(
        "/chat/completions", json={**CHAT, "messages": [{"role": "user", "content": content}]}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("messages[0].content[0].image_url: ")
