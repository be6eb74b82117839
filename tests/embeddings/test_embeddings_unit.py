"""Embeddings without a server: the typed answer, the request builder's refusals, batch rows and records,
the vectors file next to a batch output, and invalid_output records."""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath
from pydantic import BaseModel

from airflow_provider_openrouter.batch import vectors as vectors_module
from airflow_provider_openrouter.batch.errors import BatchInputError
from airflow_provider_openrouter.batch.inputs import EMBEDDINGS, embedding_body, normalise_row
from airflow_provider_openrouter.batch.manifest import Tally
from airflow_provider_openrouter.batch.outputs import (
    INVALID_OUTPUT,
    STATUSES,
    dumps_record,
    embedding_record,
    success_record,
    write_output,
)
from airflow_provider_openrouter.batch.vectors import read_vectors
from airflow_provider_openrouter.embeddings import Embeddings, build_embeddings_request
from airflow_provider_openrouter.exceptions import OpenRouterRequestError
from airflow_provider_openrouter.models import ChatCompletion
from airflow_provider_openrouter.operators.embeddings import row_costs

MODEL = "openai/text-embedding-3-small"


def answer(vectors: list[Any], cost: float | None = 0.00000015) -> dict[str, Any]:
    usage: dict[str, Any] = {"prompt_tokens": 4, "total_tokens": 4}
    if cost is not None:
        usage["cost"] = cost
    return {
        "id": "gen-emb-1",
        "object": "list",
        "model": MODEL,
        "data": [{"object": "embedding", "embedding": v, "index": i} for i, v in enumerate(vectors)],
        "usage": usage,
    }


# --- the typed answer --------------------------------------------------------------------------------------


def test_a_base64_answer_is_decoded_into_the_little_endian_float32_values() -> None:
    values = (1.0, -0.5, 0.25, 3.0)
    encoded = base64.b64encode(struct.pack("<4f", *values)).decode()
    result = Embeddings.model_validate(answer([encoded]))
    assert result.data[0].embedding == list(values)
    assert result.dimensions == 4


def test_a_base64_text_that_is_not_float32_is_refused() -> None:
    with pytest.raises(ValueError, match="4 bytes each"):
        Embeddings.model_validate(answer([base64.b64encode(b"abc").decode()]))


def test_vectors_follow_the_answers_index_not_its_order() -> None:
    body = answer([[0.0], [1.0]])
    body["data"].reverse()
    assert Embeddings.model_validate(body).vectors == [[0.0], [1.0]]


def test_cost_is_exact_and_written_in_plain_decimal_notation() -> None:
    result = Embeddings.model_validate(answer([[0.5]], cost=0.00000015))
    assert result.cost == Decimal("0.00000015")
    dumped = json.loads(result.model_dump_json())
    assert dumped["usage"]["cost"] == "0.00000015"


# --- the request builder -----------------------------------------------------------------------------------


def test_the_builder_reads_rendered_values_and_keeps_the_input() -> None:
    body = build_embeddings_request(
        MODEL, ["a", "b"], dimensions="256", encoding_format="base64", provider='{"only": ["openai"]}'
    )
    assert body == {
        "model": MODEL,
        "input": ["a", "b"],
        "dimensions": 256,
        "encoding_format": "base64",
        "provider": {"only": ["openai"]},
    }


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"input": "None"}, r"input must be non-empty text"),
        ({"input": "  "}, r"input must be non-empty text"),
        ({"input": []}, r"input must be a non-empty string, a list of"),
        ({"input": ["ok", ""]}, r"input\[1\] must be non-empty text"),
        ({"input": ["ok", 3]}, r"input\[1\] must be a non-empty string"),
        ({"input": [{"content": "x"}]}, r"input\[0\] must be \{'content'"),
        ({"input": "x", "dimensions": 0}, r"dimensions must be a whole number >= 1"),
        ({"input": "x", "encoding_format": "int8"}, r"encoding_format must be 'float' or 'base64'"),
        ({"input": "x", "extra_body": {"input": "y"}}, r"extra_body must be fields other than"),
        ({"input": "x", "model": None}, r"no model given"),
    ],
)
def test_bad_arguments_fail_in_one_line_before_anything_is_sent(kwargs: dict[str, Any], match: str) -> None:
    arguments = {"model": MODEL, **kwargs}
    with pytest.raises(OpenRouterRequestError, match=match) as caught:
        build_embeddings_request(arguments.pop("model"), arguments.pop("input"), **arguments)
    assert "\n" not in str(caught.value)
    assert caught.value.status is None  # refused here, never sent


# --- batch rows and records --------------------------------------------------------------------------------


def test_embedding_rows_take_text_objects_and_batch_file_lines() -> None:
    text = normalise_row(0, "inputs[0]", "hello", EMBEDDINGS)
    assert (text.custom_id, text.input, text.messages) == ("row-1", "hello", [])
    item = normalise_row(1, "inputs[1]", {"custom_id": "d1", "input": "doc", "dimensions": 8}, EMBEDDINGS)
    assert (item.custom_id, item.input, item.overrides) == ("d1", "doc", {"dimensions": 8})
    line = {"custom_id": "d2", "url": "/v1/embeddings", "body": {"input": "doc two", "input_type": "q"}}
    from_file = normalise_row(2, "line 3", line, EMBEDDINGS)
    assert (from_file.input, from_file.overrides) == ("doc two", {"input_type": "q"})
    assert embedding_body(item, MODEL, {"dimensions": 16, "user": "u"}) == {
        "model": MODEL,
        "input": "doc",
        "dimensions": 8,  # the row's own field wins
        "user": "u",
    }


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (["one", "two"], r"inputs\[0\] has an input that is not one text.*give each text its own row"),
        ({"prompt": "hi"}, r"exactly one of 'input' or 'body'.*'prompt' and 'messages' are chat rows"),
        ({"input": "null"}, r"inputs\[0\] has no input \(got 'null'\)"),
        ({"url": "/v1/chat/completions", "body": {"input": "x"}}, r"targets url.*runs /v1/embeddings"),
    ],
)
def test_bad_embedding_rows_are_refused_naming_the_row(row: Any, match: str) -> None:
    with pytest.raises(BatchInputError, match=match):
        normalise_row(0, "inputs[0]", row, EMBEDDINGS)


def test_a_chat_batch_points_an_embeddings_line_to_the_embeddings_endpoint() -> None:
    with pytest.raises(BatchInputError, match="set endpoint='embeddings'"):
        normalise_row(0, "line 1", {"url": "/v1/embeddings", "body": {"messages": []}})


def test_an_embedding_record_holds_one_vector_and_a_paid_answer_with_more_is_a_billed_failure() -> None:
    record = embedding_record(0, "d1", Embeddings.model_validate(answer([[0.5, 0.25]])), 1)
    assert (record["status"], record["dimensions"], record["embedding"]) == ("succeeded", 2, [0.5, 0.25])
    assert record["cost"] == Decimal("0.00000015")
    two = embedding_record(0, "d1", Embeddings.model_validate(answer([[0.5], [0.25]])), 1)
    assert two["status"] == "failed"
    assert two["error"]["billed"] is True and two["cost"] == Decimal("0.00000015")


@pytest.mark.parametrize("pyarrow", [False, True], ids=["jsonl", "parquet"])
def test_write_output_moves_vectors_to_a_file_next_to_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pyarrow: bool
) -> None:
    if pyarrow:
        pytest.importorskip("pyarrow")
    else:
        monkeypatch.setattr(vectors_module, "pyarrow_available", lambda: False)
    records = [
        embedding_record(i, f"d{i}", Embeddings.model_validate(answer([[float(i), 0.5]])), 1)
        for i in range(3)
    ]
    output = ObjectStoragePath(f"file://{tmp_path}/out.jsonl")
    summary = write_output(output, records)
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["custom_id"] for line in lines] == ["d0", "d1", "d2"]
    assert all("embedding" not in line for line in lines)
    assert summary.vectors is not None
    suffix = "parquet" if pyarrow else "jsonl"
    assert summary.vectors.path.endswith(f"out.jsonl.vectors.{suffix}")
    assert (summary.vectors.rows, summary.vectors.dimensions, summary.vectors.format) == (3, 2, suffix)
    rows = read_vectors(ObjectStoragePath(summary.vectors.path))
    assert [row["embedding"] for row in rows] == [[0.0, 0.5], [1.0, 0.5], [2.0, 0.5]]
    assert [row["custom_id"] for row in rows] == ["d0", "d1", "d2"]
    assert {Decimal(str(row["cost"])) for row in rows} == {Decimal("0.00000015")}
    if not pyarrow:  # JSONL: the number as written, in plain notation (Parquet: a string column)
        assert '"cost":0.00000015,' in Path(summary.vectors.path.removeprefix("file://")).read_text()
    assert {row["model"] for row in rows} == {MODEL}


def test_a_chat_output_writes_no_vectors_file(tmp_path: Path) -> None:
    completion = ChatCompletion.model_validate(
        {"id": "gen-1", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}
    )
    summary = write_output(
        ObjectStoragePath(f"file://{tmp_path}/out.jsonl"), [success_record(0, "r", completion, 1)]
    )
    assert summary.vectors is None
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.jsonl"]


class Ticket(BaseModel):
    priority: int


def _chat(content: str) -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": "gen-7",
            "model": "m",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "cost": 0.0000021},
        }
    )


def test_an_answer_that_does_not_fit_the_output_type_is_invalid_output_with_its_cost_kept() -> None:
    assert INVALID_OUTPUT in STATUSES
    good = success_record(0, "t0", _chat('{"priority": 2}'), 1, Ticket)
    bad = success_record(1, "t1", _chat('{"priority": "urgent"}'), 1, Ticket)
    assert (good["status"], good["output"]) == ("succeeded", {"priority": 2})
    assert bad["status"] == INVALID_OUTPUT
    assert bad["cost"] == Decimal("0.0000021")
    assert bad["error"]["billed"] is True and bad["error"]["retryable"] is False
    assert "priority" in bad["error"]["message"] and "\n" not in bad["error"]["message"]
    assert b'"cost":0.0000021' in dumps_record(bad)
    tally = Tally()
    tally.add_all([good, bad])
    counts = tally.counts()
    assert (counts.total, counts.succeeded, counts.invalid_output) == (2, 1, 1)
    assert tally.cost == Decimal("0.0000042")


def test_row_costs_share_the_request_cost_and_sum_to_it_exactly() -> None:
    shares = row_costs(Decimal("0.0000001"), 3)
    assert sum(share for share in shares if share is not None) == Decimal("0.0000001")
    assert row_costs(None, 2) == [None, None]


_ROUND_TRIP = textwrap.dedent(
    """
    import json, sys
    try:
        from airflow.sdk import serde
    except ImportError:
        from airflow.serialization import serde
    from airflow_provider_openrouter.embeddings import Embeddings
    stored = json.dumps(serde.serialize(Embeddings.model_validate(json.loads(sys.argv[1]))))
    back = serde.deserialize(json.loads(stored))
    out = {"type": type(back).__name__, "vector": back.data[0].embedding, "cost": repr(back.cost)}
    print(json.dumps(out))
    """
)


def test_embeddings_round_trip_through_xcom_serde_with_the_default_allow_list(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW__")}
    env["AIRFLOW_HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", _ROUND_TRIP, json.dumps(answer([[0.5, -1.0]]))],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"type": "Embeddings", "vector": [0.5, -1.0], "cost": "Decimal('1.5E-7')"}


def test_answer_record_builds_the_record_of_each_endpoint_and_refuses_a_body_of_another_shape() -> None:
    from airflow_provider_openrouter.batch.outputs import answer_record
    from airflow_provider_openrouter.exceptions import OpenRouterResponseError

    row = normalise_row(0, "inputs[0]", "doc", EMBEDDINGS)
    record = answer_record(row, answer([[0.5, 0.25]]), 2, endpoint=EMBEDDINGS)
    assert (record["status"], record["embedding"], record["attempts"]) == ("succeeded", [0.5, 0.25], 2)
    chat = {"id": "gen-9", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}
    with pytest.raises(OpenRouterResponseError, match="does not fit Embeddings") as caught:
        answer_record(row, chat, 1, endpoint=EMBEDDINGS)
    assert caught.value.billed is True and caught.value.generation_id == "gen-9"
