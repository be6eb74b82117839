"""Attribution in real Airflow: every request of a chat, a completion, a mapped chat and a concurrent batch
names its DAG, task, run and try (and row, and map index) in the emulator's records; off means none."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from dag_harness import API_KEY, TEST_DAGS, AirflowSandbox, DagRun, decode_xcom, openrouter_connection

pytestmark = pytest.mark.dag

DAG_ID = "openrouter_attribution"


@pytest.fixture(scope="module")
def attributed_run(
    tmp_path_factory: pytest.TempPathFactory, migrated_database: Path, emulator: Any
) -> tuple[DagRun, dict[str, dict[str, Any]]]:
    home = tmp_path_factory.mktemp("attribution")
    shutil.copyfile(migrated_database, home / "airflow.db")
    no_attribution = {
        "conn_type": "openrouter",
        "host": emulator.base_url,
        "password": API_KEY,
        "extra": {"attribution": False},
    }
    sandbox = AirflowSandbox(
        home=home,
        connections={
            "openrouter_default": openrouter_connection(emulator.base_url, API_KEY),
            "openrouter_no_attribution": json.dumps(no_attribution),
        },
    )
    run = sandbox.dags_test(DAG_ID, dags_folder=TEST_DAGS, conf={"output_dir": str(home / "out")})
    generations = {generation["id"]: generation for generation in emulator.generations()}
    return run, generations


def _generation_ids(run: DagRun, task_id: str) -> dict[int, str]:
    rows = run.query(
        "SELECT map_index, value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'generation_id'",
        DAG_ID,
        task_id,
    )
    return {map_index: decode_xcom(value) for map_index, value in rows}


def _run_id(run: DagRun) -> str:
    ((run_id,),) = run.query("SELECT run_id FROM dag_run WHERE dag_id = ?", DAG_ID)
    return str(run_id)


def test_the_run_succeeds(attributed_run: tuple[DagRun, dict[str, Any]]) -> None:
    run, _ = attributed_run
    assert run.succeeded, run.explain()


@pytest.mark.parametrize("task_id", ["chat", "completion", "mapped"])
def test_each_task_request_names_dag_task_run_try_and_map_index(
    attributed_run: tuple[DagRun, dict[str, Any]], task_id: str
) -> None:
    run, generations = attributed_run
    run_id = _run_id(run)
    ids = _generation_ids(run, task_id)
    assert ids, run.explain()
    for map_index, generation_id in ids.items():
        generation = generations[generation_id]
        expected = {
            "airflow_dag_id": DAG_ID,
            "airflow_task_id": task_id,
            "airflow_run_id": run_id,
            "airflow_try_number": "1",
        }
        if map_index >= 0:
            expected["airflow_map_index"] = str(map_index)
        if task_id == "chat":
            expected["team"] = "search"
        assert generation["metadata"] == expected
        assert generation["session_id"] == f"{DAG_ID}/{run_id}"
        span = f"{task_id}[{map_index}]" if map_index >= 0 else task_id
        assert generation["trace"]["span_name"] == span
    assert sorted(ids) == ([0, 1] if task_id == "mapped" else [-1])


def test_every_batch_row_names_the_task_and_its_custom_id(
    attributed_run: tuple[DagRun, dict[str, Any]],
) -> None:
    run, generations = attributed_run
    run_id = _run_id(run)
    rows = [
        g["metadata"]
        for g in generations.values()
        if (g["metadata"] or {}).get("airflow_run_id") == run_id
        and g["metadata"].get("airflow_task_id") == "batch"
    ]
    assert sorted(row["airflow_custom_id"] for row in rows) == ["row-a", "row-b"], run.explain()
    assert all(row["airflow_dag_id"] == DAG_ID and row["airflow_try_number"] == "1" for row in rows)


@pytest.mark.parametrize("task_id", ["chat_off", "chat_extra_off"])
def test_turned_off_by_the_parameter_or_the_extra_sends_none(
    attributed_run: tuple[DagRun, dict[str, Any]], task_id: str
) -> None:
    run, generations = attributed_run
    ((_, generation_id),) = _generation_ids(run, task_id).items()
    generation = generations[generation_id]
    assert (generation["metadata"], generation["session_id"], generation["trace"]) == (None, None, None)


def test_a_system_prompt_rendered_from_a_missing_value_is_not_sent(
    attributed_run: tuple[DagRun, dict[str, Any]],
) -> None:
    run, _ = attributed_run
    plain, system_none = run.xcom("plain", "usage"), run.xcom("system_none", "usage")
    assert system_none["prompt_tokens"] == plain["prompt_tokens"], run.explain()
    assert system_none["cost"] == plain["cost"]
