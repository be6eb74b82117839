"""Nightly batch: classify the day's support tickets from a JSONL file, one output line per ticket.

The first task stands in for your export (a warehouse query, an S3 drop): it writes the day's tickets as
JSONL, one ``{"custom_id": ..., "prompt": ...}`` per line. The batch task reads that file as a stream and
writes ``classified.jsonl`` with a status, text, usage and cost per ticket; its XCom is a small manifest
(counts, tokens, total cost), and its Asset event carries the same summary. A retry or a cleared task resumes
from the checkpoint next to the output and pays for no ticket twice.

A budget guard runs first: it reads the key's limit (``GET /key``) and the ``nightly-tickets`` budget's
balance for today, and skips the batch (and the report) when less than ``params.min_remaining_usd`` is left
on either; nothing is spent on a night the money is short. The budget's ledger is an SQLite file under
``$AIRFLOW_HOME`` (give it ``sql_conn_id`` of a shared PostgreSQL when workers run on several machines). See
docs/budgets.md.

Paths are ObjectStoragePath URLs: point ``params.root`` at ``s3://my-bucket/tickets`` (with an ``aws_default``
connection) in production; the default is a local directory. Connection: ``openrouter_default``.
"""

from __future__ import annotations

import json

from airflow.sdk import Asset, ObjectStoragePath, dag, task

from airflow_provider_openrouter.batch.manifest import BatchManifest
from airflow_provider_openrouter.budget import OpenRouterBudget
from airflow_provider_openrouter.operators import (
    OpenRouterBatchCompletionOperator,
    OpenRouterBudgetGuardOperator,
)

CLASSIFIED = Asset(name="classified_tickets", uri="file:///tmp/openrouter-batch-example/classified")

LABELS = "billing, bug, feature_request, account, other"

NIGHTLY = OpenRouterBudget("nightly-tickets", limit_usd=5, period="day", on_exhausted="skip")


@dag(
    schedule="@daily",
    catchup=False,
    tags=["openrouter", "example", "batch"],
    params={
        "root": "file:///tmp/openrouter-batch-example",
        "tickets": 40,
        "model": "openai/gpt-4o-mini",
        "min_remaining_usd": 0.05,
    },
)
def example_openrouter_batch_nightly() -> None:
    guard = OpenRouterBudgetGuardOperator(
        task_id="check_budget",
        source="key",
        budget=NIGHTLY,
        min_remaining_usd="{{ params.min_remaining_usd }}",
        on_unmet="skip",
    )

    @task
    def export_tickets(ds: str | None = None, params: dict | None = None) -> str:
        """Stands in for the real export: write the day's tickets as JSONL and return the file's URL."""
        assert params is not None
        path = ObjectStoragePath(f"{params['root']}/{ds}/tickets.jsonl")
        path.parent.mkdir(parents=True, exist_ok=True)
        issues = ["I was charged twice", "The export button crashes", "Please add dark mode", "Reset my 2FA"]
        with path.open("w") as handle:
            for n in range(int(params["tickets"])):
                ticket = {"custom_id": f"ticket-{n}", "prompt": f"{issues[n % len(issues)]} (#{n})"}
                handle.write(json.dumps(ticket) + "\n")
        return str(path)

    classify = OpenRouterBatchCompletionOperator(
        task_id="classify",
        model="{{ params.model }}",
        mode="auto",  # the Batch API from 1,000 tickets on, concurrent below; the log says which and why
        input_path=export_tickets(),
        output_path="{{ params.root }}/{{ ds }}/classified.jsonl",
        system_prompt=f"Classify the support ticket as exactly one of: {LABELS}. Answer with the label only.",
        temperature=0,
        max_tokens=5,
        concurrency=16,
        max_failed_fraction=0.02,  # a few failed tickets are reported, not fatal
        outlets=[CLASSIFIED],
    )

    @task
    def report(manifest: BatchManifest) -> None:
        counts = manifest.counts
        print(
            f"{counts.succeeded}/{counts.total} tickets classified in mode {manifest.mode} "
            f"({manifest.mode_reason}); {manifest.tokens.total_tokens} tokens, {manifest.cost} USD; "
            f"results in {manifest.output_path}"
        )
        labels: dict[str, int] = {}
        with ObjectStoragePath(manifest.output_path).open("r") as handle:
            for line in handle:
                row = json.loads(line)
                if row["status"] == "succeeded":
                    label = (row["text"] or "").strip().lower()
                    labels[label] = labels.get(label, 0) + 1
        print(f"labels: {labels}")

    guard >> classify
    report(classify.output)


example_openrouter_batch_nightly()
