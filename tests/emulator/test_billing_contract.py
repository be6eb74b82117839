"""OpenRouter's billing contract as the emulator keeps it: no error envelope is billed (zero-completion
insurance), a batch holds at most 5,000 requests, and the stats show how often each row was billed."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from openrouter import OpenRouter, errors

from airflow_provider_openrouter.emulator.testing import RunningEmulator

from .test_batches import MODEL, rows, wait_terminal


def _post_batch(http: httpx.Client, count: int, prefix: str = "row") -> httpx.Response:
    return http.post(
        "/batches",
        json={"endpoint": "/v1/chat/completions", "model": MODEL, "requests": rows(count, prefix)},
    )


def test_a_batch_of_more_than_5000_requests_is_refused_with_the_envelope_and_5000_are_accepted(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    refused = _post_batch(http, 5001)
    assert refused.status_code == 400
    assert refused.headers["content-type"].startswith("application/json")
    error = refused.json()["error"]
    assert error["code"] == 400
    assert "5,000" in error["message"] and "5,001" in error["message"]
    assert emulator.stats()["batches"] == 0
    assert _post_batch(http, 5000).status_code == 202


def test_the_official_sdk_gets_its_typed_batch_error_for_5001_requests(sdk: OpenRouter) -> None:
    with pytest.raises(errors.BatchErrorResponse) as caught:
        sdk.batch.create_batches(endpoint="/v1/chat/completions", model=MODEL, requests=rows(5001))
    assert caught.value.status_code == 400 and caught.value.data.error.code == 400
    assert "5,000" in caught.value.data.error.message


def test_stats_count_billed_generations_per_idempotency_key_and_custom_id(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    emulator.configure(batch_duration_s=0)

    def send(content: str, key: str | None) -> httpx.Response:
        headers = {"X-Idempotency-Key": key} if key else {}
        return http.post(
            "/chat/completions", json={"messages": [{"role": "user", "content": content}]}, headers=headers
        )

    for row in ("row-1", "row-2"):
        assert send(row, row).status_code == 200
    assert send("row-2", "row-2").status_code == 200  # a resend that was billed again
    assert send("no key", None).status_code == 200
    wait_terminal(http, _post_batch(http, 2, prefix="batch").json()["id"])

    stats = emulator.stats(billed_by_identity=True)
    assert stats["billed_by_identity"] == {"row-1": 1, "row-2": 2, "batch-0": 1, "batch-1": 1}
    assert stats["billed_generations"] == 6
    assert stats["billed_without_identity"] == 1
    assert stats["billed_twice"] == 1 and stats["duplicate_billed"] == 1
    assert stats["billed_identities"] == 4
    assert "billed_by_identity" not in emulator.stats()


def test_billed_by_takes_only_identity(http: httpx.Client, emulator: RunningEmulator) -> None:
    response = httpx.get(emulator.root_url + "/__emulator/stats", params={"billed_by": "row"})
    assert response.status_code == 400 and "billed_by" in response.json()["error"]["message"]


ENVELOPE_FAULTS = [
    *(f"fault={status}" for status in (400, 408, 429, 500, 502, 503, 504, 524, 529)),
    "fault=error_in_200",
    "fault=error_in_200, status=429",
    "fault=empty_choices",
    "fault=mid_stream",
    "fault=mid_stream, status=503",
]


def _send(http: httpx.Client, content: str, stream: bool) -> tuple[int, str]:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "stream": stream,
    }
    with http.stream("POST", "/chat/completions", json=body) as response:
        return response.status_code, "".join(response.iter_text())


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("directive", ENVELOPE_FAULTS)
def test_no_answer_in_the_error_envelope_is_billed(
    http: httpx.Client, emulator: RunningEmulator, directive: str, stream: bool
) -> None:
    status, text = _send(http, f"[[emulator: {directive}]] row", stream)
    # The answer carries the envelope somewhere: the body, an in-body error, or an error event mid-stream.
    assert '"error"' in text or '"choices":[]' in text, text[:200]
    stats = emulator.stats()
    assert stats["billed_generations"] == 0 and stats["total_cost"] == "0", (status, directive)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_faults_from_the_fault_rate_and_the_fail_next_script_are_not_billed(
    http: httpx.Client, emulator: RunningEmulator, stream: bool
) -> None:
    emulator.configure(fault_rate=1, fault_statuses=[500, 502, 503, 524, 529])
    statuses = {_send(http, f"row {i}", stream)[0] for i in range(10)}
    assert statuses <= {500, 502, 503, 524, 529}
    emulator.configure(fault_rate=0, fail_next={"POST /chat/completions": [503, "error_in_200"]})
    assert _send(http, "row", stream)[0] == 503
    status, text = _send(http, "row", stream)
    assert status == 200 and json.loads(text)["error"]["code"] == 502
    stats = emulator.stats()
    assert stats["billed_generations"] == 0 and stats["total_cost"] == "0"


def _attributed(content: str, try_number: int) -> dict[str, Any]:
    """A chat body as an Airflow task sends it: the same content, attribution naming the try."""
    return {
        "messages": [{"role": "user", "content": content}],
        "metadata": {"airflow_dag_id": "nightly", "airflow_try_number": str(try_number)},
        "session_id": "nightly/run-1",
        "trace": {"trace_id": "nightly/run-1", "span_name": "classify"},
    }


def test_a_request_resent_by_a_later_try_counts_as_billed_twice(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    # Only the attribution (the try number) differs: the same question, paid for twice.
    for try_number in (1, 2):
        response = http.post(
            "/chat/completions", json=_attributed("row-7", try_number), headers={"X-Idempotency-Key": "row-7"}
        )
        assert response.status_code == 200
    stats = emulator.stats()
    assert stats["billed_twice"] == 1 and stats["duplicate_billed"] == 1


def test_a_times_directive_counts_attempts_across_tries(http: httpx.Client) -> None:
    content = "classify this [[emulator: fault=503, times=1]]"
    first = http.post("/chat/completions", json=_attributed(content, 1))
    second = http.post("/chat/completions", json=_attributed(content, 2))
    assert (first.status_code, second.status_code) == (503, 200)
