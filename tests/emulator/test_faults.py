"""Fault injection: directives, server-wide and scripted faults, rate limits, moderation, size, validation.

For each fault the test also checks the billing rule: answered errors are not billed; reset, truncate and html
bill the generation first.
"""

from __future__ import annotations

import json
import math
import time

import httpx
import pytest

from airflow_provider_openrouter.emulator.testing import RunningEmulator

from .conftest import chat, generation_stats


def billed(emulator: RunningEmulator) -> int:
    return int(emulator.stats()["billed_generations"])


def test_status_fault_with_times_fails_exactly_that_many_attempts_of_that_body(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    prompt = "[[emulator: fault=503, times=2]] summarise"
    statuses = [chat(http, prompt).status_code for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    assert chat(http, prompt + " (another body)").status_code == 503  # counted per body
    assert billed(emulator) == 2
    stats = emulator.stats()
    assert stats["requests"]["POST /chat/completions"] == {"503": 3, "200": 2}


def test_status_fault_carries_the_real_envelope_and_an_optional_retry_after(http: httpx.Client) -> None:
    response = chat(http, "[[emulator: fault=529, retry_after=0.5]]")
    assert response.status_code == 529
    assert response.headers["retry-after"] == "0.5"
    error = response.json()["error"]
    assert error["code"] == 529 and error["metadata"]["error_type"] == "provider_overloaded"


def test_reset_bills_then_drops_the_connection(http: httpx.Client, emulator: RunningEmulator) -> None:
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        chat(http, "[[emulator: fault=reset]]")
    assert billed(emulator) == 1
    assert chat(http, "after a reset").status_code == 200  # the server itself is fine


def test_truncate_bills_then_cuts_the_body(http: httpx.Client, emulator: RunningEmulator) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        chat(http, "[[emulator: fault=truncate]]")
    assert billed(emulator) == 1


def test_html_bills_and_answers_like_a_proxy_error_page(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    response = chat(http, "[[emulator: fault=html, status=504]]")
    assert response.status_code == 504
    assert response.headers["content-type"].startswith("text/html")
    assert "<html>" in response.text
    assert billed(emulator) == 1


def test_error_in_200_is_an_error_body_without_choices_and_not_billed(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    response = chat(http, "[[emulator: fault=error_in_200, status=524]]")
    assert response.status_code == 200
    body = response.json()
    assert "choices" not in body
    assert body["error"]["code"] == 524 and body["error"]["message"] == "Provider returned error"
    assert billed(emulator) == 0


def test_empty_choices_is_a_200_without_choices_and_not_billed(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    response = chat(http, "[[emulator: fault=empty_choices]]")
    assert response.status_code == 200
    body = response.json()
    assert body["choices"] == [] and body["usage"]["completion_tokens"] == 0 and body["usage"]["cost"] == 0
    assert billed(emulator) == 0


def test_mid_stream_error_ends_the_stream_with_an_error_chunk_and_is_not_billed(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    body = {
        "model": "openai/gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "[[emulator: fault=mid_stream]] write a long story"}],
    }
    with http.stream("POST", "/chat/completions", json=body) as response:
        assert response.status_code == 200
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] != "[DONE]"
    last = json.loads(events[-1])
    assert last["choices"][0]["finish_reason"] == "error"
    assert last["error"]["code"] == 502 and last["error"]["metadata"]["error_type"] == "provider_unavailable"
    assert billed(emulator) == 0


def test_mid_stream_fault_on_a_non_streamed_request_is_a_choice_with_finish_reason_error(
    http: httpx.Client,
) -> None:
    choice = chat(http, "[[emulator: fault=mid_stream, status=503]]").json()["choices"][0]
    assert choice["finish_reason"] == "error"
    assert choice["error"]["code"] == 503


def test_truncated_stream_is_billed(http: httpx.Client, emulator: RunningEmulator) -> None:
    body = {
        "model": "openai/gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "[[emulator: fault=truncate]]"}],
    }
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", "/chat/completions", json=body) as response,
    ):
        list(response.iter_lines())
    assert billed(emulator) == 1


def test_latency_directive_is_reported_in_the_generation_latency(http: httpx.Client) -> None:
    gen_id = chat(http, "[[emulator: latency_ms=300]] slow please").json()["id"]
    generation = generation_stats(http, gen_id)
    assert generation["latency"] >= 300


def test_a_malformed_directive_is_a_400_that_names_it(http: httpx.Client) -> None:
    response = chat(http, "[[emulator: fualt=503]]")
    assert response.status_code == 400
    assert "fualt=503" in response.json()["error"]["message"]


def test_server_wide_fault_rate_uses_the_configured_statuses_and_never_bills(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    emulator.configure(fault_rate=1, fault_statuses=[502, 529])
    statuses = {chat(http, f"request {i}").status_code for i in range(20)}
    assert statuses <= {502, 529} and statuses
    assert billed(emulator) == 0
    emulator.configure(fault_rate=0)
    assert chat(http, "healthy again").status_code == 200


def test_fail_next_script_fails_the_next_requests_of_a_route(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    management = {"Authorization": f"Bearer {emulator.management_key}"}
    emulator.configure(fail_next={"GET /credits": [503, "html"]})
    assert http.get("/credits", headers=management).status_code == 503
    assert http.get("/credits", headers=management).status_code == 502
    assert http.get("/credits", headers=management).status_code == 200


def test_rate_limit_answers_429_with_precise_headers(http: httpx.Client, emulator: RunningEmulator) -> None:
    emulator.configure(rate_limit_rpm=6, rate_limit_burst=2)  # one token every 10 s, two at once
    assert [chat(http, "a").status_code, chat(http, "b").status_code] == [200, 200]
    before = time.time()
    limited = chat(http, "c")
    after = time.time()
    assert limited.status_code == 429
    assert limited.json()["error"]["message"] == "Rate limit exceeded: requests-per-min"
    assert limited.headers["x-ratelimit-limit"] == "6"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    reset_ms = int(limited.headers["x-ratelimit-reset"])
    retry_after = int(limited.headers["retry-after"])
    # Two takes emptied the full bucket; the next token comes 10 s after the first take, less the time spent.
    assert (before + 5) * 1000 < reset_ms <= (after + 10) * 1000 + 1
    assert math.ceil(reset_ms / 1000 - after) <= retry_after <= math.ceil(reset_ms / 1000 - before)
    assert emulator.stats()["rate_limited"] == 1
    other_key = http.post(
        "/chat/completions",
        json={"messages": [{"role": "user", "content": "d"}]},
        headers={"Authorization": "Bearer sk-or-another-key"},
    )
    assert other_key.status_code == 200  # buckets are per key


def test_free_models_allow_twenty_requests_a_minute_per_key(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    model = "meta-llama/llama-3.3-70b-instruct:free"
    statuses = [chat(http, f"q{i}", model=model).status_code for i in range(21)]
    assert statuses == [200] * 20 + [429]
    assert chat(http, "paid model still fine").status_code == 200
    key = http.get("/key").json()["data"]
    assert key["free_model_daily_requests"]["used"] == 20


def test_free_models_daily_cap_is_a_429_whose_headers_reset_at_utc_midnight(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    emulator.configure(credits=5, free_model_rpm=0)  # below 10 USD of credits: 50 a day; no per-minute limit
    model = "meta-llama/llama-3.3-70b-instruct:free"
    assert {chat(http, f"q{i}", model=model).status_code for i in range(50)} == {200}
    before = time.time()
    limited = chat(http, "one too many", model=model)
    after = time.time()
    assert limited.status_code == 429
    error = limited.json()["error"]
    assert error["message"] == "Rate limit exceeded: free-models-per-day"
    assert limited.headers["x-ratelimit-limit"] == "50"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    next_midnights_ms = {(math.floor(moment / 86400) + 1) * 86_400_000 for moment in (before, after)}
    assert int(limited.headers["x-ratelimit-reset"]) in next_midnights_ms
    assert error["metadata"]["headers"]["x-ratelimit-reset"] == limited.headers["x-ratelimit-reset"]
    assert "retry-after" not in limited.headers


def test_flagged_word_is_a_403_with_moderation_metadata(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    emulator.configure(flagged_word=["forbidden"])
    long_prompt = "x" * 120 + " this is FORBIDDEN " + "y" * 120
    response = chat(http, long_prompt, model="openai/gpt-4o")
    assert response.status_code == 403
    metadata = response.json()["error"]["metadata"]
    assert metadata["reasons"] == ["forbidden"]
    assert metadata["provider_name"] == "OpenAI" and metadata["model_slug"] == "openai/gpt-4o"
    assert len(metadata["flagged_input"]) == 100 and "..." in metadata["flagged_input"]
    assert billed(emulator) == 0


def test_body_over_the_limit_is_a_413(http: httpx.Client, emulator: RunningEmulator) -> None:
    emulator.configure(max_body_bytes=1000)
    response = chat(http, "z" * 2000)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == 413


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"model": "acme/fake-1.0", "messages": [{"role": "user", "content": "hi"}]},
            "acme/fake-1.0 is not a valid",
        ),
        ({"model": "openai/gpt-4o", "messages": []}, "messages: expected a non-empty array"),
        ({"model": "openai/gpt-4o"}, 'Input required: specify "messages"'),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role: 'robot' is not a valid role"),
        (
            {"messages": [{"role": "user", "content": 5}]},
            "messages[0].content: expected a string or an array",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"},
            "temperature: expected a number",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0},
            "max_tokens: expected a whole number",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]},
            "stop: expected",
        ),
        ({"messages": [{"role": "tool", "content": "42"}]}, "messages[0].tool_call_id"),
        (
            {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "yaml"}},
            "response_format",
        ),
    ],
)
def test_invalid_requests_get_400_with_the_envelope(http: httpx.Client, body: dict, message: str) -> None:
    response = http.post("/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 400 and message in error["message"]


def test_malformed_json_and_missing_key(http: httpx.Client, emulator: RunningEmulator) -> None:
    broken = http.post(
        "/chat/completions", content=b'{"messages": [', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]["message"]
    anonymous = httpx.post(emulator.base_url + "/chat/completions", json={}, trust_env=False)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == {"code": 401, "message": "No auth credentials found"}


def test_management_key_cannot_run_completions(http: httpx.Client, emulator: RunningEmulator) -> None:
    response = http.post(
        "/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {emulator.management_key}"},
    )
    assert response.status_code == 403


def test_legacy_completions_can_be_switched_off(http: httpx.Client, emulator: RunningEmulator) -> None:
    assert http.post("/completions", json={"prompt": "hi"}).status_code == 200
    emulator.configure(legacy_completions="410")
    gone = http.post("/completions", json={"prompt": "hi"})
    assert gone.status_code == 410 and "/chat/completions" in gone.json()["error"]["message"]
