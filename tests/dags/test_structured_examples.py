"""The structured-output examples under ``airflow dags test`` (SQLite, default deserialization settings).

A downstream task receives the user's pydantic instances: from the chat operator's ``output_type`` (mapped, in
the tickets example, which loads them to SQLite) and from ``@task.openrouter``, mapped with ``.expand()`` and
unmapped (the TaskFlow example). The stored XComs name the user's class; the downstream tasks read its typed
attributes (a dict would fail there) and print the class name they received; the figures are checked against
the emulator's catalog.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from dag_harness import API_KEY, DagRun, decode_xcom

pytestmark = pytest.mark.dag


def mapped_xcoms(run: DagRun, task_id: str, key: str = "return_value") -> list[Any]:
    rows = run.query(
        "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = ? ORDER BY map_index",
        run.dag_id,
        task_id,
        key,
    )
    return [decode_xcom(value) for (value,) in rows]


def user_class(value: Any, dag_file: str, class_name: str) -> dict[str, Any]:
    """The serde form of an instance of the DAG file's own class: assert the class, return the fields."""
    assert isinstance(value, dict), value
    assert value["__classname__"].endswith(f"{dag_file}.{class_name}"), value["__classname__"]
    data: dict[str, Any] = value["__data__"]
    return data


def list_prices(base_url: str, model_id: str) -> tuple[Decimal, Decimal]:
    request = urllib.request.Request(f"{base_url}/models", headers={"Authorization": f"Bearer {API_KEY}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        model = next(item for item in json.loads(response.read())["data"] if item["id"] == model_id)
    return Decimal(model["pricing"]["prompt"]), Decimal(model["pricing"]["completion"])


def test_tickets_become_typed_records_in_sqlite(example_run: Callable[[str], DagRun], emulator: Any) -> None:
    run = example_run("example_openrouter_structured_tickets")
    assert run.succeeded, run.explain()
    states = run.query("SELECT task_id, state FROM task_instance WHERE dag_id = ?", run.dag_id)
    assert sorted(states) == [("extract", "success")] * 3 + [("load", "success")], states

    records = [
        user_class(value, "example_openrouter_structured_tickets", "TicketRecord")
        for value in mapped_xcoms(run, "extract")
    ]
    assert len(records) == 3
    generation_ids = mapped_xcoms(run, "extract", "generation_id")
    usages = mapped_xcoms(run, "extract", "usage")

    with contextlib.closing(sqlite3.connect(run.home / "tickets.sqlite")) as db:
        rows = db.execute("SELECT category, urgent, summary, generation_id, cost_usd FROM tickets").fetchall()
    assert "loaded 3 TicketRecord records into" in run.output
    stored = {row[3]: row for row in rows}
    assert set(stored) == set(generation_ids)
    prompt_price, completion_price = list_prices(emulator.base_url, "openai/gpt-4o-mini")
    for record, generation_id, usage in zip(records, generation_ids, usages, strict=True):
        category, urgent, summary, _, cost = stored[generation_id]
        assert (category, bool(urgent), summary) == (record["category"], record["urgent"], record["summary"])
        assert category in {"billing", "shipping", "product", "how_to"}
        expected = prompt_price * usage["prompt_tokens"] + completion_price * usage["completion_tokens"]
        assert Decimal(cost) == expected


def test_taskflow_decorator_hands_instances_downstream(example_run: Callable[[str], DagRun]) -> None:
    run = example_run("example_openrouter_taskflow")
    assert run.succeeded, run.explain()
    states = run.query("SELECT task_id, state FROM task_instance WHERE dag_id = ?", run.dag_id)
    assert sorted(states) == [("classify", "success")] * 3 + [("headline", "success"), ("report", "success")]

    labels = [
        user_class(v, "example_openrouter_taskflow", "ReviewLabel") for v in mapped_xcoms(run, "classify")
    ]
    assert [label["sentiment"] in {"positive", "negative", "mixed"} for label in labels] == [True] * 3
    headline = user_class(run.xcom("headline"), "example_openrouter_taskflow", "Headline")
    assert isinstance(headline["headline"], str) and isinstance(headline["reviews_read"], int)
    # The decorator pushes what the chat operator pushes: the bill of every call is in XCom.
    assert {"generation_id", "usage", "cost"} <= run.xcom_keys("headline")
    assert f"headline (Headline): {headline['headline']}" in run.output
    assert run.output.count("ReviewLabel: ") == 3
