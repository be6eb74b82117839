"""Embeddings over real HTTP against the emulator: the hook, the operator (vectors file + manifest), the Batch
API's /v1/embeddings batches, and Batch API rows whose answer breaks the output_type (invalid_output)."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_openrouter.batch.concurrent import RunnerSettings, run_job
from airflow_provider_openrouter.batch.engine import BatchJob, BatchSpec
from airflow_provider_openrouter.batch.inputs import EMBEDDINGS, InlineInputSource, embedding_body
from airflow_provider_openrouter.batch.vectors import pyarrow_available, read_vectors
from airflow_provider_openrouter.budget import BudgetExhaustedError, OpenRouterBudget
from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.exceptions import OpenRouterRequestError
from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook
from airflow_provider_openrouter.operators.embeddings import EmbeddingsManifest, OpenRouterEmbeddingOperator

LOG = logging.getLogger("tests.embeddings")
CHAT_MODEL = "openai/gpt-4o-mini"
TEXTS = ["the cat sat on the mat", "a cat sat on a mat", "quarterly tax filing deadline"]


class TaskInstance:
    """What the operator reads from ``context["ti"]`` when a test calls ``execute`` outside a DAG run."""

    dag_id, task_id, run_id, map_index, try_number = "embeddings_tests", "embed", "manual__1", -1, 1

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def embedding_model(hook: OpenRouterHook) -> str:
    listed = hook.list_embedding_models()
    assert listed.data, "the emulator lists no embedding model"
    return listed.data[0].id


def posts(emulator: RunningEmulator, route: str) -> int:
    return sum(emulator.stats()["requests"].get(route, {}).values())


def test_the_hook_embeds_every_input_deterministically_with_its_cost(
    emulator: RunningEmulator, hook: OpenRouterHook
) -> None:
    model = embedding_model(hook)
    result = hook.embeddings(model, [TEXTS[0], TEXTS[2], TEXTS[0]])
    assert [item.index for item in result.data] == [0, 1, 2]
    assert len({len(vector) for vector in result.vectors}) == 1
    assert result.vectors[0] == result.vectors[2]  # the same text, the same vector
    assert result.vectors[0] != result.vectors[1]
    assert result.usage is not None and result.usage.prompt_tokens > 0
    assert result.cost == Decimal(str(emulator.stats()["total_cost"]))
    as_base64 = hook.embeddings(model, TEXTS[0], encoding_format="base64")
    assert as_base64.vectors[0] == pytest.approx(result.vectors[0], rel=1e-6)  # float32 on the wire


def test_bad_input_is_refused_before_anything_is_sent(
    emulator: RunningEmulator, hook: OpenRouterHook
) -> None:
    model = embedding_model(hook)
    with pytest.raises(OpenRouterRequestError, match=r"input\[1\] must be non-empty text"):
        hook.embeddings(model, ["fine", "None"])
    assert posts(emulator, "POST /embeddings") == 0


def test_the_operator_writes_one_vector_row_per_input_and_returns_a_manifest(
    emulator: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    model = embedding_model(hook)
    expected = hook.embeddings(model, TEXTS).vectors  # the emulator's vectors are deterministic
    before = Decimal(str(emulator.stats()["total_cost"]))
    ti = TaskInstance()
    operator = OpenRouterEmbeddingOperator(
        task_id="embed",
        model=model,
        input=json.dumps(TEXTS),  # as a template renders an upstream list
        custom_ids=["a", "b", "c"],
        output_path=str(tmp_path / "out" / "vectors.parquet"),
    )
    manifest = operator.execute({"ti": ti})  # type: ignore[arg-type]
    assert isinstance(manifest, EmbeddingsManifest)
    kind = "parquet" if pyarrow_available() else "jsonl"
    assert manifest.vectors.format == kind
    assert manifest.vectors.path.endswith(f"vectors.{kind}")
    assert (manifest.vectors.rows, manifest.vectors.dimensions) == (3, len(expected[0]))
    rows = read_vectors(ObjectStoragePath(manifest.vectors.path))
    assert [row["custom_id"] for row in rows] == ["a", "b", "c"]
    assert [row["embedding"] for row in rows] == expected
    assert {row["model"] for row in rows} == {model}
    assert manifest.cost == Decimal(str(emulator.stats()["total_cost"])) - before
    assert sum(Decimal(str(row["cost"])) for row in rows) == manifest.cost
    assert ti.xcoms["cost"] == manifest.cost


def test_the_operator_without_output_path_returns_the_typed_answer(
    emulator: RunningEmulator, hook: OpenRouterHook
) -> None:
    model = embedding_model(hook)
    ti = TaskInstance()
    result = OpenRouterEmbeddingOperator(task_id="embed", model=model, input=TEXTS[:2]).execute(
        {"ti": ti}  # type: ignore[arg-type]
    )
    assert len(result.data) == 2
    assert ti.xcoms["cost"] == result.cost == Decimal(str(emulator.stats()["total_cost"]))


# --- the Batch API ---------------------------------------------------------------------------------------


def test_batch_api_embeddings_land_as_vectors_next_to_the_output(
    emulator: RunningEmulator, hook: OpenRouterHook, batch_api_run: Any, tmp_path: Path
) -> None:
    model = embedding_model(hook)
    expected = hook.embeddings(model, TEXTS).vectors
    rows = [{"custom_id": f"d{n}", "input": text} for n, text in enumerate(TEXTS)]
    output = tmp_path / "out.jsonl"
    spec = {"model": model, "build_body": lambda row: embedding_body(row, model), "endpoint": EMBEDDINGS}
    manifest = batch_api_run(output, rows, spec, {"endpoint": EMBEDDINGS})
    submitted = emulator.stats()["batches"]
    assert submitted == 1
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(line["custom_id"], line["status"]) for line in lines] == [
        (f"d{n}", "succeeded") for n in range(3)
    ]
    assert all("embedding" not in line and line["dimensions"] == len(expected[0]) for line in lines)
    assert manifest.counts.succeeded == 3
    assert manifest.vectors is not None and manifest.vectors.rows == 3
    vectors = read_vectors(ObjectStoragePath(manifest.vectors.path))
    assert [row["embedding"] for row in vectors] == expected
    assert manifest.cost == sum(Decimal(str(line["cost"])) for line in lines) > 0


def test_a_budget_reserves_the_embeddings_worst_case_and_settles_its_cost(
    emulator: RunningEmulator, hook: OpenRouterHook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_BUDGET_DB", str(tmp_path / "budgets.db"))
    model = embedding_model(hook)
    budget = OpenRouterBudget("embeddings", "1", period="total")
    result = hook.embeddings(model, TEXTS, budget=budget)
    with budget.open(hook, run_id=None) as ledger:
        balance = ledger.balance()
    assert balance["reserved"] == 0
    assert balance["spent"] == result.cost == Decimal(str(emulator.stats()["total_cost"]))
    tiny = OpenRouterBudget("embeddings-tiny", "0.000000001", period="total")
    with pytest.raises(BudgetExhaustedError, match="embeddings-tiny"):
        hook.embeddings(model, TEXTS, budget=tiny)
    assert posts(emulator, "POST /embeddings") == 1  # the refused request was never sent


def test_the_operator_sends_nothing_when_its_budget_cannot_hold_the_request(
    emulator: RunningEmulator, hook: OpenRouterHook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_BUDGET_DB", str(tmp_path / "budgets.db"))
    operator = OpenRouterEmbeddingOperator(
        task_id="embed",
        model=embedding_model(hook),
        input=TEXTS,
        budget=OpenRouterBudget("embeddings-op", "0.000000001", period="total", on_exhausted="fail"),
    )
    with pytest.raises(BudgetExhaustedError, match="embeddings-op"):
        operator.execute({"ti": TaskInstance()})  # type: ignore[arg-type]
    assert posts(emulator, "POST /embeddings") == 0


def test_concurrent_embeddings_rows_go_to_the_embeddings_endpoint_and_their_vectors_to_a_file(
    emulator: RunningEmulator, hook: OpenRouterHook, tmp_path: Path
) -> None:
    model = embedding_model(hook)
    expected = hook.embeddings(model, TEXTS).vectors
    output = tmp_path / "out.jsonl"
    job = BatchJob(
        BatchSpec(
            source=InlineInputSource([{"custom_id": f"d{n}", "input": text} for n, text in enumerate(TEXTS)]),
            output_path=ObjectStoragePath(f"file://{output}"),
            model=model,
            build_body=lambda row: embedding_body(row, model),
            run_key="dag/task/run-1/-1",
            endpoint=EMBEDDINGS,
        ),
        LOG,
    )
    job.scan()
    job.open()
    manifest, _ = run_job(job, hook, RunnerSettings(concurrency=3), LOG, mode_reason="test")
    assert manifest.counts.succeeded == 3
    assert posts(emulator, "POST /embeddings") == 1 + 3  # the hook's call, then one request per row
    assert manifest.vectors is not None
    vectors = read_vectors(ObjectStoragePath(manifest.vectors.path))
    assert [(row["custom_id"], row["embedding"]) for row in vectors] == [
        (f"d{n}", vector) for n, vector in enumerate(expected)
    ]
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert manifest.cost == sum(Decimal(str(line["cost"])) for line in lines) > 0
