"""Embeddings: embed a day's documents into a Parquet file, then find each document's nearest neighbour.

The first task stands in for your source (a warehouse query, a folder of pages). The embeddings task sends
them in one ``POST /embeddings`` and writes one row per document to ``documents.parquet`` (``custom_id``,
``index``, ``model``, ``dimensions``, ``cost``, ``embedding``); where pyarrow is not installed it writes
``documents.jsonl`` instead. Its XCom is a small ``EmbeddingsManifest`` (where the file is, how many vectors,
their dimensions, tokens and the exact cost), never the vectors. For thousands of documents, use
``OpenRouterBatchCompletionOperator(endpoint="embeddings")`` (one row per document, resumable, Batch API).

Paths are ObjectStoragePath URLs: point ``params.root`` at ``s3://my-bucket/embeddings`` (with an
``aws_default`` connection) in production. Connection: ``openrouter_default``.
"""

from __future__ import annotations

import math

from airflow.sdk import ObjectStoragePath, dag, task

from airflow_provider_openrouter.operators.embeddings import EmbeddingsManifest, OpenRouterEmbeddingOperator


@dag(
    schedule=None,
    catchup=False,
    tags=["openrouter", "example", "embeddings"],
    params={"root": "file:///tmp/openrouter-embeddings-example", "model": "openai/text-embedding-3-small"},
)
def example_openrouter_embeddings() -> None:
    @task
    def load_documents() -> list[str]:
        """Stands in for the real source: the texts to embed, one vector each."""
        return [
            "How do I reset my password?",
            "I forgot my password and cannot log in",
            "The invoice for March is wrong",
            "I was charged twice this month",
            "Please add a dark mode to the app",
        ]

    embed = OpenRouterEmbeddingOperator(
        task_id="embed",
        model="{{ params.model }}",
        input=load_documents(),
        custom_ids=[f"doc-{n}" for n in range(5)],
        output_path="{{ params.root }}/{{ ds }}/documents.parquet",
    )

    @task
    def nearest_neighbours(manifest: EmbeddingsManifest) -> dict[str, str]:
        from airflow_provider_openrouter.batch.vectors import read_vectors

        rows = read_vectors(ObjectStoragePath(manifest.vectors.path))
        assert len(rows) == manifest.vectors.rows, "the file holds fewer vectors than the manifest says"

        def cosine(left: list[float], right: list[float]) -> float:
            dot = sum(a * b for a, b in zip(left, right, strict=True))
            return dot / (math.sqrt(sum(a * a for a in left)) * math.sqrt(sum(b * b for b in right)))

        nearest = {
            row["custom_id"]: max(
                (other for other in rows if other is not row),
                key=lambda other: cosine(row["embedding"], other["embedding"]),
            )["custom_id"]
            for row in rows
        }
        print(
            f"{manifest.vectors.rows} vectors of {manifest.vectors.dimensions} dimensions in "
            f"{manifest.vectors.path} ({manifest.vectors.format}), cost {manifest.cost} USD"
        )
        print(f"nearest neighbours: {nearest}")
        return nearest

    nearest_neighbours(embed.output)


example_openrouter_embeddings()
