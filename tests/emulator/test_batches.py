"""The Batch API: lifecycle, results, billing once, listing and paging, delete, 402 and per-request faults."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
from openrouter import OpenRouter, errors

from airflow_provider_openrouter.emulator.testing import RunningEmulator

from .conftest import catalog_prices, chat, generation_stats

MODEL = "openai/gpt-4o-mini"


def rows(count: int, prefix: str = "row") -> Any:
    return [
        {"custom_id": f"{prefix}-{i}", "body": {"messages": [{"role": "user", "content": f"{prefix} {i}"}]}}
        for i in range(count)
    ]


def create(http: httpx.Client, requests: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    response = http.post(
        "/batches", json={"endpoint": "/v1/chat/completions", "model": MODEL, "requests": requests, **fields}
    )
    assert response.status_code == 202, response.text
    return response.json()


def wait_terminal(http: httpx.Client, batch_id: str, timeout: float = 30) -> tuple[httpx.Response, list[str]]:
    """Poll GET /batches/{id} until a terminal answer; returns it and every status seen on the way."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(f"/batches/{batch_id}")
        status = response.json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in ("completed", "failed", "expired", "cancelled"):
            return response, seen
        assert time.monotonic() < deadline, f"batch still {status}"
        time.sleep(0.02)


def test_lifecycle_moves_through_every_status_and_results_arrive_inline(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    emulator.configure(batch_duration_s=1.0)
    created = create(http, rows(3))
    assert created["status"] == "validating"
    assert created["results"] is None and created["usage"] is None and created["provider"] is None
    response, seen = wait_terminal(http, created["id"])
    assert seen[-1] == "completed"
    order = ["validating", "in_progress", "finalizing", "completed"]
    assert seen == sorted(seen, key=order.index) and len(seen) >= 3
    batch = response.json()
    assert batch["request_counts"] == {"total": 3, "completed": 3, "failed": 0}
    assert batch["provider"] == "OpenAI" and batch["finalized_at"] is not None
    results = batch["results"]
    assert [r["custom_id"] for r in results] == ["row-0", "row-1", "row-2"]
    for result in results:
        assert result["error"] is None
        body = result["response"]["body"]
        assert result["response"]["request_id"] == body["id"]
        assert set(body["choices"][0]) >= {"native_finish_reason", "logprobs", "finish_reason"}
        assert body["choices"][0]["message"]["refusal"] is None


def test_each_result_is_billed_once_with_its_own_generation(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    emulator.configure(batch_duration_s=0)
    created = create(http, rows(4))
    batch = wait_terminal(http, created["id"])[0].json()
    again = http.get(f"/batches/{created['id']}").json()
    assert again == batch
    prompt_price, completion_price = catalog_prices(http, MODEL)
    expected_total = Decimal(0)
    for result in batch["results"]:
        usage = result["response"]["body"]["usage"]
        cost = usage["prompt_tokens"] * prompt_price + usage["completion_tokens"] * completion_price
        generation = generation_stats(http, result["response"]["request_id"])
        assert Decimal(str(generation["total_cost"])) == cost
        expected_total += cost
    assert Decimal(str(batch["usage"]["cost"])) == expected_total
    stats = emulator.stats()
    assert stats["billed_generations"] == 4 and Decimal(stats["total_cost"]) == expected_total


def test_a_fault_directive_ends_as_a_per_result_error_and_is_not_billed(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    emulator.configure(batch_duration_s=0)
    requests = rows(2)
    requests.append(
        {
            "custom_id": "broken",
            "body": {"messages": [{"role": "user", "content": "[[emulator: fault=503]]"}]},
        }
    )
    requests.append({"custom_id": "bad-role", "body": {"messages": [{"role": "robot", "content": "x"}]}})
    batch = wait_terminal(http, create(http, requests)["id"])[0].json()
    assert batch["request_counts"] == {"total": 4, "completed": 2, "failed": 2}
    failed = {r["custom_id"]: r for r in batch["results"] if r["error"] is not None}
    assert set(failed) == {"broken", "bad-role"}
    assert (
        failed["broken"]["response"] is None
        and failed["broken"]["error"]["error_type"] == "provider_unavailable"
    )
    assert "not a valid role" in failed["bad-role"]["error"]["message"]
    assert emulator.stats()["billed_generations"] == 2


def run_to_outcome(http: httpx.Client, emulator: RunningEmulator, outcome: str) -> dict[str, Any]:
    """A batch of four whose third request carries ``[[emulator: batch=<outcome>]]``, read once terminal."""
    emulator.configure(batch_duration_s=0.5)
    marked = {
        "custom_id": "marked",
        "body": {"messages": [{"role": "user", "content": f"[[emulator: batch={outcome}]]"}]},
    }
    created = create(http, [*rows(2), marked, *rows(1, prefix="later")])
    assert created["status"] == "validating"
    response, seen = wait_terminal(http, created["id"])
    assert response.status_code == 200 and seen[-1] == outcome
    return dict(response.json())


def test_a_batch_failed_directive_ends_the_batch_failed_with_its_reason_and_bills_nothing(
    http: httpx.Client, emulator: RunningEmulator, sdk: OpenRouter
) -> None:
    batch = run_to_outcome(http, emulator, "failed")
    assert batch["error"]["message"] and batch["results"] is None
    assert batch["request_counts"] == {"total": 4, "completed": 0, "failed": 4}
    assert batch["finalized_at"] is not None
    parsed = sdk.batch.get_batches(id=batch["id"])  # the SDK's shape: every key present, results null
    assert parsed.status == "failed" and parsed.results is None
    assert parsed.error is not None and parsed.error.message == batch["error"]["message"]
    listed = http.get("/batches", params=[("status", "failed")]).json()["data"]
    assert [b["id"] for b in listed] == [batch["id"]]
    assert emulator.stats()["billed_generations"] == 0
    assert http.delete(f"/batches/{batch['id']}").status_code == 200  # failed is terminal


def test_a_batch_expired_directive_ends_the_batch_expired_from_that_request_on(
    http: httpx.Client, emulator: RunningEmulator, sdk: OpenRouter
) -> None:
    batch = run_to_outcome(http, emulator, "expired")
    assert batch["error"] is None
    assert batch["request_counts"] == {"total": 4, "completed": 2, "failed": 2}
    assert batch["expires_at"] == batch["finalized_at"]
    results = {result["custom_id"]: result for result in batch["results"]}
    assert [results[f"row-{i}"]["response"]["status_code"] for i in range(2)] == [200, 200]
    for custom_id in ("marked", "later-0"):
        assert results[custom_id]["response"] is None
        assert results[custom_id]["error"]["type"] == "batch_expired"
    parsed = sdk.batch.get_batches(id=batch["id"])
    assert parsed.status == "expired" and parsed.results is not None and len(parsed.results) == 4
    assert emulator.stats()["billed_generations"] == 2


def test_a_batch_directive_is_refused_outside_a_batch_and_checked(http: httpx.Client) -> None:
    outside = chat(http, "[[emulator: batch=failed]] hi")
    assert outside.status_code == 400 and "inside a batch" in outside.json()["error"]["message"]
    unknown = chat(http, "[[emulator: batch=cancelled]] hi")
    assert unknown.status_code == 400 and "failed, expired" in unknown.json()["error"]["message"]


def test_listing_is_newest_first_with_cursor_paging_and_an_empty_page_after_the_last(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    emulator.configure(batch_duration_s=0)
    ids = [create(http, rows(1, prefix=f"b{i}"))["id"] for i in range(3)]
    first = http.get("/batches", params={"limit": 2}).json()
    assert [b["id"] for b in first["data"]] == [ids[2], ids[1]]
    assert first["has_more"] is True and first["first_id"] == ids[2] and first["last_id"] == ids[1]
    assert all(b["results"] is None for b in first["data"])
    second = http.get("/batches", params={"limit": 2, "after": first["last_id"]}).json()
    assert [b["id"] for b in second["data"]] == [ids[0]] and second["has_more"] is False
    last = http.get("/batches", params={"limit": 2, "after": second["last_id"]}).json()
    assert last == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


def test_status_filter_and_delete_rules(http: httpx.Client, emulator: RunningEmulator) -> None:
    emulator.configure(batch_duration_s=60)
    slow = create(http, rows(1, prefix="slow"))
    emulator.configure(batch_duration_s=0)
    fast = create(http, rows(1, prefix="fast"))
    wait_terminal(http, fast["id"])
    completed = http.get("/batches", params=[("status", "completed")]).json()["data"]
    assert [b["id"] for b in completed] == [fast["id"]]
    conflict = http.delete(f"/batches/{slow['id']}")
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == 409
    assert http.delete("/batches/batch_unknown").status_code == 404
    deleted = http.delete(f"/batches/{fast['id']}")
    assert deleted.status_code == 200 and deleted.json()["deletion"]["openrouter"] == "deleted"
    assert http.get(f"/batches/{fast['id']}").status_code == 404


def test_short_credits_withhold_results_with_402_until_they_are_covered(
    emulator: RunningEmulator, sdk: OpenRouter
) -> None:
    emulator.configure(batch_duration_s=0, credits="0.0000001")
    created = sdk.batch.create_batches(endpoint="/v1/chat/completions", model=MODEL, requests=rows(3))
    deadline = time.monotonic() + 30
    while True:
        try:
            sdk.batch.get_batches(id=created.id)
        except errors.BatchPaymentRequiredResponseError as exc:
            assert exc.data.status == "completed" and exc.data.results is None
            assert exc.data.error is not None
            break
        assert time.monotonic() < deadline
    assert emulator.stats()["billed_generations"] == 0
    emulator.configure(credits=100)
    released = sdk.batch.get_batches(id=created.id)
    assert released.results is not None and len(released.results) == 3
    assert emulator.stats()["billed_generations"] == 3


def test_create_validates_the_submission(http: httpx.Client) -> None:
    def post(body: dict[str, Any]) -> httpx.Response:
        return http.post("/batches", json={"endpoint": "/v1/chat/completions", "model": MODEL, **body})

    duplicate = post({"requests": [rows(1)[0], rows(1)[0]]})
    assert duplicate.status_code == 400 and "used twice" in duplicate.json()["error"]["message"]
    assert post({"requests": []}).status_code == 400
    assert post({"requests": rows(1), "model": "acme/none"}).status_code == 400
    assert post({"requests": rows(1), "endpoint": "/v1/embeddings"}).status_code == 400


def test_resubmitting_the_same_custom_id_and_content_counts_as_a_duplicate(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    emulator.configure(batch_duration_s=0)
    for _ in range(2):
        wait_terminal(http, create(http, rows(2))["id"])
    wait_terminal(http, create(http, rows(2, prefix="other"))["id"])
    stats = emulator.stats()
    assert stats["billed_generations"] == 6 and stats["duplicate_billed"] == 2


@pytest.mark.parametrize("count", [2500])
def test_a_large_batch_completes_in_slices(http: httpx.Client, emulator: RunningEmulator, count: int) -> None:
    emulator.configure(batch_duration_s=0)
    created = create(http, rows(count))
    assert http.get("/providers").status_code == 200  # the server answers while the batch runs
    batch = wait_terminal(http, created["id"], timeout=120)[0].json()
    assert batch["request_counts"]["completed"] == count
    assert emulator.stats()["billed_generations"] == count
