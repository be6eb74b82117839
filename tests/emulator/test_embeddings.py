"""POST /embeddings and GET /embeddings/models: shapes the official SDKs parse, deterministic vectors whose
cosine follows shared words, billing, faults and the Batch API's /v1/embeddings rows."""

# The SDKs type most response fields as Optional; these tests assert on what is present.
# mypy: disable-error-code="union-attr, arg-type, index"

from __future__ import annotations

import math
import time
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from openrouter import OpenRouter

from airflow_provider_openrouter.emulator.testing import RunningEmulator

from .conftest import generation_stats

SMALL = "openai/text-embedding-3-small"
TEXTS = ["The cat sat on the mat", "A cat was sitting on the mat", "Quarterly revenue grew in Europe"]


def embed(http: httpx.Client, input: Any, model: str = SMALL, **fields: Any) -> httpx.Response:
    return http.post("/embeddings", json={"model": model, "input": input, **fields})


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


def listed_price(http: httpx.Client, model_id: str) -> Decimal:
    models = http.get("/embeddings/models").json()["data"]
    return Decimal(next(model["pricing"]["prompt"] for model in models if model["id"] == model_id))


def test_the_official_sdks_parse_embeddings_and_the_model_listing(
    sdk: OpenRouter, emulator: RunningEmulator
) -> None:
    result = sdk.embeddings.generate(model=SMALL, input=TEXTS)
    assert result.object == "list" and result.model == SMALL and result.id
    assert [item.index for item in result.data] == [0, 1, 2]
    assert all(len(item.embedding) == 1536 for item in result.data)
    assert result.usage.total_tokens == result.usage.prompt_tokens > 0 and result.usage.cost > 0

    listing = sdk.embeddings.list_models().result
    ids = {model.id for model in listing.data}
    assert SMALL in ids and "openai/gpt-4o-mini" not in ids
    assert all("embeddings" in model.architecture.output_modalities for model in listing.data)

    client = openai.OpenAI(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        max_retries=0,
        http_client=openai.DefaultHttpxClient(trust_env=False),
    )
    as_base64 = client.embeddings.create(model=SMALL, input=TEXTS)  # the openai SDK asks for base64
    as_floats = client.embeddings.create(model=SMALL, input=TEXTS, encoding_format="float")
    for packed, floats, ours in zip(as_base64.data, as_floats.data, result.data, strict=True):
        assert floats.embedding == ours.embedding
        assert packed.embedding == pytest.approx(floats.embedding, abs=1e-6)  # float32 on the wire
    assert as_floats.usage.prompt_tokens == result.usage.prompt_tokens


def test_vectors_are_deterministic_unit_length_and_closer_for_shared_words(http: httpx.Client) -> None:
    first = [item["embedding"] for item in embed(http, TEXTS).json()["data"]]
    again = embed(http, TEXTS[0]).json()["data"][0]["embedding"]
    assert again == first[0]
    assert all(abs(math.fsum(x * x for x in vector) - 1) < 1e-6 for vector in first)
    assert cosine(first[0], first[1]) > cosine(first[0], first[2]) + 0.3
    other_model = embed(http, TEXTS[0], model="openai/text-embedding-3-large").json()["data"][0]["embedding"]
    assert len(other_model) == 3072

    short = embed(http, TEXTS, dimensions=64).json()["data"]
    assert [len(item["embedding"]) for item in short] == [64, 64, 64]
    assert cosine(short[0]["embedding"], short[1]["embedding"]) > cosine(
        short[0]["embedding"], short[2]["embedding"]
    )

    tokens = embed(http, [[101, 2023, 2003], [101, 2023, 2004]]).json()
    assert tokens["usage"]["prompt_tokens"] == 6 and len(tokens["data"]) == 2


@pytest.mark.parametrize(
    ("model", "fields", "expected"),
    [
        (SMALL, {"input": []}, "input: expected"),
        (SMALL, {"input": ["ok", ""]}, "input[1]: expected"),
        (SMALL, {"input": "x", "dimensions": 5000}, "dimensions: expected a whole number from 1 to 1536"),
        (
            "mistralai/mistral-embed-2312",
            {"input": "x", "dimensions": 8},
            "does not support choosing dimensions",
        ),
        (SMALL, {"input": "x", "encoding_format": "int8"}, "encoding_format: expected 'float' or 'base64'"),
        ("openai/gpt-4o-mini", {"input": "x"}, "is not an embeddings model"),
        (SMALL, {"input": "x [[emulator: refuse]]"}, "refuse only applies to POST /chat/completions"),
    ],
)
def test_bad_embeddings_requests_are_a_400_naming_the_field(
    http: httpx.Client, emulator: RunningEmulator, model: str, fields: dict[str, Any], expected: str
) -> None:
    response = http.post("/embeddings", json={"model": model, **fields})
    assert response.status_code == 400
    assert expected in response.json()["error"]["message"]
    assert emulator.stats()["billed_generations"] == 0


def test_an_embeddings_model_is_refused_by_chat_and_hidden_from_the_default_listing(
    http: httpx.Client,
) -> None:
    chat = http.post(
        "/chat/completions", json={"model": SMALL, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert chat.status_code == 400 and "send it to POST /embeddings" in chat.json()["error"]["message"]
    assert SMALL not in {model["id"] for model in http.get("/models").json()["data"]}
    embeddings = http.get("/models", params={"output_modalities": "embeddings"}).json()["data"]
    assert SMALL in {model["id"] for model in embeddings}


def test_cost_is_the_prompt_tokens_at_the_current_listed_price_and_recorded_as_a_generation(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    emulator.configure(generation_delay_s=0)
    body = embed(http, TEXTS).json()
    usage = body["usage"]
    assert Decimal(str(usage["cost"])) == usage["prompt_tokens"] * listed_price(http, SMALL)
    stats = generation_stats(http, body["id"])
    assert stats["api_type"] == "embeddings" and stats["tokens_prompt"] == usage["prompt_tokens"]
    assert Decimal(str(stats["total_cost"])) == Decimal(str(usage["cost"]))

    emulator.update_model(SMALL, pricing={"prompt": "0.000001"})
    raised = embed(http, TEXTS).json()["usage"]
    assert Decimal(str(raised["cost"])) == raised["prompt_tokens"] * Decimal("0.000001")
    assert Decimal(emulator.stats()["total_cost"]) == Decimal(str(usage["cost"])) + Decimal(
        str(raised["cost"])
    )


def test_short_credits_are_a_402_before_anything_is_billed(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    emulator.configure(credits="0.0000001")
    response = embed(http, TEXTS)
    assert response.status_code == 402
    assert "input tokens cost" in response.json()["error"]["message"]
    assert emulator.stats()["billed_generations"] == 0


def test_faults_bill_as_for_completions(http: httpx.Client, emulator: RunningEmulator) -> None:
    assert embed(http, "a [[emulator: fault=503]]").status_code == 503
    answered_error = embed(http, "b [[emulator: fault=error_in_200]]")
    assert answered_error.status_code == 200 and "error" in answered_error.json()
    assert emulator.stats()["billed_generations"] == 0  # answered errors are free

    with pytest.raises(httpx.HTTPError):  # the answer is lost after the generation was billed
        embed(http, "c [[emulator: fault=truncate]]").json()
    assert emulator.stats()["billed_generations"] == 1

    headers = {"X-Idempotency-Key": "row-1"}
    for _ in range(2):
        http.post("/embeddings", json={"model": SMALL, "input": "d"}, headers=headers)
    assert emulator.stats()["duplicate_billed"] == 1


def test_a_batch_runs_v1_embeddings_rows_as_post_embeddings_answers_them(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    emulator.configure(batch_duration_s=0)
    rows = [{"custom_id": f"row-{i}", "body": {"input": text}} for i, text in enumerate(TEXTS)]
    rows.append({"custom_id": "broken", "body": {"input": "x [[emulator: fault=503]]"}})
    created = http.post("/batches", json={"endpoint": "/v1/embeddings", "model": SMALL, "requests": rows})
    assert created.status_code == 202, created.text
    deadline = time.monotonic() + 30
    while (batch := http.get(f"/batches/{created.json()['id']}").json())["status"] != "completed":
        assert time.monotonic() < deadline, batch["status"]
        time.sleep(0.02)
    assert batch["request_counts"] == {"total": 4, "completed": 3, "failed": 1}
    synchronous = embed(http, TEXTS).json()["data"]
    for result, expected in zip(batch["results"], synchronous, strict=False):
        body = result["response"]["body"]
        assert body["object"] == "list" and body["data"][0]["embedding"] == expected["embedding"]
        assert body["usage"]["cost"] > 0
    assert emulator.stats()["billed_generations"] == 3 + 1  # the rows, then the synchronous request

    chat_model = http.post(
        "/batches", json={"endpoint": "/v1/embeddings", "model": "openai/gpt-4o", "requests": rows}
    )
    assert chat_model.status_code == 400 and "does not run" in chat_model.json()["error"]["message"]
