"""Batch API records against the emulator: rows whose answer breaks the output_type are ``invalid_output``
(with their validation errors and cost; emulator directive invalid-json), and a budget cuts a chunk where it
runs out (the rest ``not_sent``) and is settled per result on landing."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from airflow_provider_openrouter.batch.inputs import normalise_row
from airflow_provider_openrouter.budget import OpenRouterBudget
from airflow_provider_openrouter.budget.worst_case import Catalog, worst_case_cost
from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook
from airflow_provider_openrouter.structured import response_format_for

CHAT_MODEL = "openai/gpt-4o-mini"


class Ticket(BaseModel):
    """Module scope: the batch validates answers into it."""

    category: str
    urgent: bool


def test_batch_api_rows_that_break_the_output_type_are_invalid_output_and_keep_their_cost(
    emulator: RunningEmulator, hook: OpenRouterHook, batch_api_run: Any, tmp_path: Path
) -> None:
    response_format = response_format_for(Ticket, strict=False)
    rows = ["my invoice is wrong", "[[emulator: invalid-json]] the app crashes", "please add dark mode"]
    output = tmp_path / "out.jsonl"

    def build_body(row: Any) -> dict[str, Any]:
        return hook.build_chat_request(CHAT_MODEL, messages=row.messages, response_format=response_format)

    spec = {"model": CHAT_MODEL, "build_body": build_body}
    manifest = batch_api_run(output, rows, spec, {"output_type": Ticket})
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["status"] for line in lines] == ["succeeded", "invalid_output", "succeeded"]
    assert Ticket.model_validate(lines[0]["output"])  # the validated instance, as JSON
    bad = lines[1]
    assert bad["error"]["type"] == "InvalidOutputError" and bad["error"]["billed"] is True
    assert bad["cost"] > 0 and bad["text"]
    assert (manifest.counts.succeeded, manifest.counts.invalid_output) == (2, 1)
    assert manifest.failed_fraction == pytest.approx(1 / 3)
    assert emulator.stats()["billed_generations"] == 3  # the invalid answer was paid for, and only once


def test_a_budget_cuts_the_chunk_where_it_runs_out_and_landing_settles_each_row(
    emulator: RunningEmulator,
    hook: OpenRouterHook,
    batch_api_run: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENROUTER_BUDGET_DB", str(tmp_path / "budgets.db"))
    rows = [f"question {n}" for n in range(5)]

    def build_body(row: Any) -> dict[str, Any]:
        return hook.build_chat_request(CHAT_MODEL, messages=row.messages, max_tokens=20, attribution=False)

    catalog = Catalog(hook)
    worst = [
        worst_case_cost(build_body(normalise_row(n, "-", row)), catalog)[0] for n, row in enumerate(rows)
    ]
    limit = worst[0] + worst[1] + worst[2] / 2  # room for two rows' worst case, not three
    ledger = OpenRouterBudget("batch-chunk", limit, period="total").open(hook, run_id=None)
    output = tmp_path / "out.jsonl"
    manifest = batch_api_run(
        output, rows, {"model": CHAT_MODEL, "build_body": build_body}, {"ledger": ledger}
    )
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["status"] for line in lines] == ["succeeded"] * 2 + ["not_sent"] * 3
    assert all(line["error"]["billed"] is False for line in lines[2:])
    assert emulator.stats()["billed_generations"] == 2
    balance = ledger.balance()
    assert balance["reserved"] == 0  # every submitted row settled on landing
    assert balance["spent"] == manifest.cost == Decimal(str(emulator.stats()["total_cost"]))
