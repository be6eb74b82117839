"""The catalog watch in a real Airflow run (``airflow dags test`` on SQLite, emulator on 127.0.0.1): a price
rise between two snapshots lands as one Asset event whose extra holds the diff, and queues the DAG scheduled
on that Asset."""

from __future__ import annotations

import json
import urllib.request
from decimal import Decimal
from typing import Any

import pytest
from dag_harness import API_KEY, TEST_DAGS, AirflowSandbox, DagRun, run_airflow

pytestmark = pytest.mark.dag

MODEL = "openai/gpt-4o-mini"
URI = "openrouter://catalog/dag-test"


def listed_pricing(base_url: str) -> dict[str, str]:
    request = urllib.request.Request(f"{base_url}/models", headers={"Authorization": f"Bearer {API_KEY}"})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=30) as answer:
        models = json.loads(answer.read())["data"]
    return next(model["pricing"] for model in models if model["id"] == MODEL)


def test_price_rise_emits_the_asset_with_the_diff_and_queues_its_consumer(
    airflow_sandbox: AirflowSandbox, emulator: Any
) -> None:
    original = listed_pricing(emulator.base_url)
    old = Decimal(original["prompt"])
    new = old * Decimal("1.5")
    # The consumer must be in the metadata database, and not paused, for an event to queue a run of it.
    env = {**airflow_sandbox.env(TEST_DAGS), "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False"}
    serialized = run_airflow(env, "dags", "reserialize")
    assert serialized.returncode == 0, serialized.stderr[-3000:]
    conf = {"emulator": emulator.root_url, "model": MODEL, "pricing": {"prompt": format(new, "f")}}
    try:
        process = run_airflow(env, "dags", "test", "openrouter_catalog_watch", "--conf", json.dumps(conf))
    finally:
        emulator.update_model(MODEL, pricing=original)
    run = DagRun("openrouter_catalog_watch", airflow_sandbox.home, process)

    assert run.succeeded, run.explain()
    assert run.xcom("after")["__classname__"] == "airflow_provider_openrouter.catalog.diff.CatalogDiff"
    before, after = run.xcom("before")["__data__"], run.xcom("after")["__data__"]
    assert before["first_snapshot"] and not before["changed"]
    events = run.query(
        "SELECT e.extra, e.source_task_id FROM asset_event e JOIN asset a ON a.id = e.asset_id "
        "WHERE a.uri = ?",
        URI,
    )
    assert len(events) == 1, events  # the first snapshot compares nothing, so it emits nothing
    extra, source = json.loads(events[0][0]), events[0][1]
    assert source == "after"
    (change,) = extra["price_changes"]
    assert (change["id"], change["field"], change["direction"], change["flagged"]) == (
        MODEL,
        "prompt",
        "rise",
        True,
    )
    assert (Decimal(change["old"]), Decimal(change["new"])) == (old, new)
    assert Decimal(change["ratio"]) == Decimal("1.5") and Decimal(change["change_percent"]) == 50
    assert extra == {key: after[key] for key in extra}  # the event carries the task's XCom diff
    queued = run.query(
        "SELECT q.target_dag_id FROM asset_dag_run_queue q JOIN asset a ON a.id = q.asset_id WHERE a.uri = ?",
        URI,
    )
    assert queued == [("openrouter_catalog_consumer",)]
