"""The batch operator in real DAG runs (``airflow dags test`` on SQLite) against the emulator."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_openrouter.emulator.testing import RunningEmulator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dags"))
from dag_harness import AirflowSandbox, airflow_base_env, run_airflow

pytestmark = pytest.mark.dag
DAGS = Path(__file__).resolve().parent / "dags"


@pytest.fixture(scope="module")
def migrated_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("batch-airflow-template")
    done = run_airflow(airflow_base_env(home, DAGS), "db", "migrate")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return home / "airflow.db"


@pytest.fixture
def sandbox(tmp_path: Path, migrated_home: Path, emulator: RunningEmulator) -> Iterator[AirflowSandbox]:
    home = tmp_path / "airflow"
    home.mkdir()
    (home / "airflow.db").write_bytes(migrated_home.read_bytes())
    yield AirflowSandbox(
        home=home, connections={"openrouter_default": emulator.conn_uri(requests_per_minute=0)}
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_concurrent_batch_from_upstream_xcom_to_a_typed_manifest_downstream(
    sandbox: AirflowSandbox, emulator: RunningEmulator, tmp_path: Path
) -> None:
    output = tmp_path / "results" / "answers.jsonl"
    run = sandbox.dags_test(
        "openrouter_batch_concurrent", dags_folder=DAGS, conf={"rows": 12, "output_path": str(output)}
    )
    assert run.succeeded, run.explain()
    assert run.task_states() == {"questions": "success", "batch": "success", "summarise": "success"}

    lines = _lines(output)
    assert [line["custom_id"] for line in lines] == [f"q{n}" for n in range(12)]
    assert {line["status"] for line in lines} == {"succeeded"}
    stats = emulator.stats()
    assert stats["billed_generations"] == 12
    summary = run.xcom("summarise")
    assert summary["succeeded"] == 12
    assert Decimal(summary["cost"]) == Decimal(stats["total_cost"])
    assert summary["path"] == str(output)

    extras = [json.loads(extra) for (extra,) in run.query("SELECT extra FROM asset_event")]
    assert len(extras) == 1
    assert extras[0]["succeeded"] == 12
    assert Decimal(extras[0]["cost"]) == Decimal(stats["total_cost"])


def test_batch_api_defers_then_a_retry_re_attaches_without_a_second_submission(
    sandbox: AirflowSandbox, emulator: RunningEmulator, tmp_path: Path
) -> None:
    input_path = tmp_path / "in.jsonl"
    input_path.write_text(
        "".join(json.dumps({"custom_id": f"r{n}", "prompt": f"p{n}"}) + "\n" for n in range(20))
    )
    output = tmp_path / "out.jsonl"
    # The first wait ends with the batches' list refused (404), so the first attempt fails after submitting,
    # with the error the trigger met, rebuilt from its event.
    emulator.configure(batch_duration_s=0.5, fail_next={"GET /batches": ["404"]})

    run = sandbox.dags_test(
        "openrouter_batch_api",
        dags_folder=DAGS,
        conf={"input_path": str(input_path), "output_path": str(output)},
    )
    assert run.succeeded, run.explain()
    tries = run.query("SELECT try_number FROM task_instance WHERE dag_id = 'openrouter_batch_api'")
    assert tries == [(2,)]
    assert "ended (permanent_error)" in run.output
    assert "OpenRouterNotFoundError: OpenRouter found nothing (HTTP 404)" in run.output
    stats = emulator.stats()
    assert stats["requests"]["POST /batches"] == {"202": 1}
    assert stats["billed_generations"] == 20
    lines = _lines(output)
    assert [line["custom_id"] for line in lines] == [f"r{n}" for n in range(20)]
    assert {line["status"] for line in lines} == {"succeeded"}
    manifest = run.xcom("batch")["__data__"]
    assert manifest["mode"] == "batch_api"
    assert manifest["mode_reason"] == "mode='batch_api' was requested"
    assert manifest["batch_ids"] == run.xcom("batch", "batch_ids")
    assert manifest["timings"]["wait_seconds"] > 0


EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"


def test_the_nightly_example_classifies_every_ticket(sandbox: AirflowSandbox, tmp_path: Path) -> None:
    run = sandbox.dags_test(
        "example_openrouter_batch_nightly",
        dags_folder=EXAMPLES,
        conf={"root": f"file://{tmp_path}", "tickets": 25},
    )
    assert run.succeeded, run.explain()
    outputs = list(tmp_path.glob("*/classified.jsonl"))
    assert len(outputs) == 1
    lines = _lines(outputs[0])
    assert [line["custom_id"] for line in lines] == [f"ticket-{n}" for n in range(25)]
    assert {line["status"] for line in lines} == {"succeeded"}
    assert "25/25 tickets classified in mode concurrent" in run.output


def test_the_sharded_example_splits_rows_and_rate_budget(
    sandbox: AirflowSandbox, emulator: RunningEmulator, tmp_path: Path
) -> None:
    conf = {"root": f"file://{tmp_path}", "rows": 30, "shards": 3, "requests_per_minute": 6000}
    run = sandbox.dags_test("example_openrouter_batch_sharded", dags_folder=EXAMPLES, conf=conf)
    assert run.succeeded, run.explain()
    parts = sorted(tmp_path.glob("*/taglines/part-*-of-00003.jsonl"))
    assert [part.name for part in parts] == [f"part-{n:05d}-of-00003.jsonl" for n in range(3)]
    ids = [line["custom_id"] for part in parts for line in _lines(part)]
    assert sorted(ids) == sorted(f"sku-{n}" for n in range(30))
    assert [line["custom_id"] for line in _lines(parts[1])] == [f"sku-{n}" for n in range(1, 30, 3)]
    assert emulator.stats()["billed_generations"] == 30
    assert "3 shards: 30/30 rows" in run.output
    assert "rate budget of this task: 2000 requests/minute" in run.output
