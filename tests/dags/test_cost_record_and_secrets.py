"""A rejected answer keeps its cost record; a streamed answer keeps the same record; the API key reaches no
log, XCom or database row."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from dag_harness import (
    API_KEY,
    EXAMPLE_DAG_IDS,
    MANAGEMENT_KEY,
    TEST_DAGS,
    AirflowSandbox,
    DagRun,
    openrouter_connection,
)

pytestmark = pytest.mark.dag


def generation_stats(base_url: str, generation_id: str, deadline_s: float = 30.0) -> dict[str, Any]:
    """The emulator's record of a generation, polled until it is published (404 until then)."""
    request = urllib.request.Request(
        f"{base_url}/generation?id={generation_id}", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                data: dict[str, Any] = json.loads(response.read())["data"]
            return data
        except urllib.error.HTTPError as err:
            if err.code != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.2)  # polling interval while the stats are not published yet, bounded by the deadline


def test_rejected_answers_fail_the_task_but_their_cost_was_pushed_first(
    airflow_sandbox: AirflowSandbox, emulator: Any
) -> None:
    run = airflow_sandbox.dags_test("openrouter_rejected_answers", dags_folder=TEST_DAGS)
    assert not run.succeeded, run.explain()
    assert run.task_states() == {"truncated": "failed", "not_json": "failed"}, run.explain()
    assert "finish_reason 'length'" in run.output
    assert "asked for JSON" in run.output

    for task_id in ("truncated", "not_json"):
        assert run.xcom_keys(task_id) == {"generation_id", "text", "usage", "cost"}, task_id
        generation_id = run.xcom(task_id, "generation_id")
        billed = generation_stats(emulator.base_url, generation_id)  # OpenRouter's own record of the charge
        assert Decimal(str(billed["total_cost"])) > 0
        assert Decimal(str(run.xcom(task_id, "usage")["cost"])) == Decimal(str(billed["total_cost"]))
        assert run.xcom(task_id, "usage")["completion_tokens"] == billed["tokens_completion"]
        # Costs are stored in plain decimal notation (a bare Decimal would be stored as a float, 2.4e-06).
        stored = run.query(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key IN ('cost', 'usage')",
            run.dag_id,
            task_id,
        )
        assert stored and not re.search(r"\d[eE][-+]?\d", " ".join(str(value) for (value,) in stored)), stored
        assert run.xcom(task_id, "cost")["__data__"] == run.xcom(task_id, "usage")["cost"]


@pytest.mark.parametrize("dag_id", EXAMPLE_DAG_IDS)
def test_api_key_appears_in_no_log_xcom_or_database_row(
    example_run: Callable[[str], DagRun], dag_id: str
) -> None:
    run = example_run(dag_id)
    assert run.succeeded, run.explain()
    assert run.query("SELECT value FROM xcom WHERE dag_id = ?", dag_id), "XCom rows were stored"
    rendered = run.query("SELECT rendered_fields FROM rendered_task_instance_fields WHERE dag_id = ?", dag_id)
    assert rendered, "rendered template fields were stored"

    for key in (API_KEY, MANAGEMENT_KEY):
        assert key not in run.output
        assert key not in run.log_files_text()
        assert key not in run.all_text_in_database()


def test_rejected_key_fails_naming_the_connection_and_never_the_key(
    airflow_sandbox: AirflowSandbox, emulator: Any
) -> None:
    wrong_key = "sk-or-v1-wrongwrongwrongwrongwrongwrongwrongwrongwrongwrongwrong0003"
    airflow_sandbox.connections["openrouter_default"] = openrouter_connection(emulator.base_url, wrong_key)
    run = airflow_sandbox.dags_test("example_openrouter_chat")
    assert not run.succeeded
    assert run.task_states()["chat"] == "failed", run.explain()
    failure_lines = [line for line in run.output.splitlines() if "OpenRouter chat completion failed" in line]
    assert failure_lines, run.explain()
    assert "HTTP 401" in failure_lines[0] and "'openrouter_default'" in failure_lines[0]

    for text in (run.output, run.log_files_text(), run.all_text_in_database()):
        assert wrong_key not in text
        assert API_KEY not in text


def test_streamed_chat_task_gives_the_same_typed_answer_and_xcom_as_a_plain_one(
    airflow_sandbox: AirflowSandbox, emulator: Any
) -> None:
    run = airflow_sandbox.dags_test("openrouter_streamed_chat", dags_folder=TEST_DAGS)
    assert run.succeeded, run.explain()
    assert run.task_states() == {"plain": "success", "streamed": "success", "compare": "success"}
    streamed_id = run.xcom("streamed", "generation_id")
    plain_id = run.xcom("plain", "generation_id")
    assert generation_stats(emulator.base_url, streamed_id)["streamed"] is True
    assert generation_stats(emulator.base_url, plain_id)["streamed"] is False
    assert run.xcom("streamed", "text") == run.xcom("plain", "text") != ""
    assert run.xcom("streamed", "usage")["cost"] == run.xcom("plain", "usage")["cost"]


def test_a_chat_task_with_retries_is_not_retried_when_its_request_may_have_been_billed(
    airflow_sandbox: AirflowSandbox, emulator: Any
) -> None:
    emulator.reset()
    run = airflow_sandbox.dags_test("openrouter_not_retried", dags_folder=TEST_DAGS)
    assert run.task_states() == {"answer_lost": "failed"}, run.explain()
    tries = run.query("SELECT try_number FROM task_instance WHERE dag_id = ?", "openrouter_not_retried")
    assert tries == [(1,)]  # retries=2, yet one attempt: a retry would have sent the request again
    assert "Not retried, the request may have been billed" in run.output
    assert emulator.stats()["requests"]["POST /chat/completions"] == {"reset": 1}
