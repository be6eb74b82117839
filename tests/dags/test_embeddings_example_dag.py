"""The embeddings example in a real Airflow run (``airflow dags test`` on SQLite, emulator on 127.0.0.1): the
vectors land in a file, one row per document, and the downstream task receives the typed manifest with
Airflow's default deserialization settings (it reads ``manifest.vectors.path``; a dict would fail it)."""

from __future__ import annotations

import json
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath
from dag_harness import API_KEY, AirflowSandbox

from airflow_provider_openrouter.batch.vectors import pyarrow_available, read_vectors

pytestmark = pytest.mark.dag

MODEL = "openai/text-embedding-3-small"


def catalog_prompt_price(base_url: str) -> Decimal:
    request = urllib.request.Request(
        f"{base_url}/embeddings/models", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=30) as answer:
        models = json.loads(answer.read())["data"]
    return Decimal(next(model["pricing"]["prompt"] for model in models if model["id"] == MODEL))


def test_the_embeddings_example_writes_vectors_and_hands_on_the_typed_manifest(
    airflow_sandbox: AirflowSandbox, emulator: Any, tmp_path: Path
) -> None:
    root = tmp_path / "vectors"
    run = airflow_sandbox.dags_test("example_openrouter_embeddings", conf={"root": f"file://{root}"})
    assert run.succeeded, run.explain()
    assert run.task_states() == dict.fromkeys(("load_documents", "embed", "nearest_neighbours"), "success")

    manifest = run.xcom("embed")
    assert manifest["__classname__"] == "airflow_provider_openrouter.operators.embeddings.EmbeddingsManifest"
    data = manifest["__data__"]
    kind = "parquet" if pyarrow_available() else "jsonl"
    [written] = list(root.rglob(f"documents.{kind}"))
    rows = read_vectors(ObjectStoragePath(f"file://{written}"))
    assert [row["custom_id"] for row in rows] == [f"doc-{n}" for n in range(5)]
    assert {len(row["embedding"]) for row in rows} == {1536}
    cost = Decimal(str(data["cost"]))
    assert cost == Decimal(data["prompt_tokens"]) * catalog_prompt_price(emulator.base_url)
    assert sum(Decimal(str(row["cost"])) for row in rows) == cost
    # The two password questions share words: each is the other's nearest neighbour.
    nearest = run.xcom("nearest_neighbours")
    assert (nearest["doc-0"], nearest["doc-1"]) == ("doc-1", "doc-0")
