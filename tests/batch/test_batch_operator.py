"""OpenRouterBatchCompletionOperator outside a DAG run: defaults merging, mode choice, bad input, failures."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import jinja2
import pytest
from airflow.sdk import BaseOperator
from batch_helpers import MODEL, TaskInstanceStandIn, context_for

from airflow_provider_openrouter.batch.errors import BatchFailedRowsError, BatchInputError
from airflow_provider_openrouter.batch.inputs import BatchRow
from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.exceptions import OpenRouterRequestError
from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook
from airflow_provider_openrouter.operators.batch import OpenRouterBatchCompletionOperator
from airflow_provider_openrouter.operators.chat import OpenRouterChatCompletionOperator
from airflow_provider_openrouter.triggers.batch import OpenRouterBatchTrigger

try:
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 3.1: TaskDeferred is still in the core
    from airflow.exceptions import TaskDeferred


def _operator(tmp_path: Path, **kwargs: Any) -> OpenRouterBatchCompletionOperator:
    options: dict[str, Any] = {
        "task_id": "batch",
        "model": MODEL,
        "output_path": str(tmp_path / "out" / "result.jsonl"),
        "concurrency": 4,
        "progress_interval": 3600,
    }
    options.update(kwargs)
    return OpenRouterBatchCompletionOperator(**options)


def _billable_requests(emulator: RunningEmulator) -> int:
    requests = emulator.stats()["requests"]
    return sum(sum(requests.get(route, {}).values()) for route in ("POST /chat/completions", "POST /batches"))


def test_row_fields_override_the_operators_defaults(emulator: RunningEmulator, tmp_path: Path) -> None:
    op = _operator(
        tmp_path,
        inputs=["unused"],
        system_prompt="Answer in one word.",
        temperature="0.2",
        top_p="0.9",
        max_tokens=50,
        extra_body={"user": "nightly"},
    )
    build = op._body_builder(OpenRouterHook(), MODEL)
    row = BatchRow(
        0, "r1", [{"role": "user", "content": "hi"}], {"temperature": 1.5, "top_k": 3}, "inputs[0]"
    )
    assert build(row) == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "hi"},
        ],
        "temperature": 1.5,
        "top_p": 0.9,
        "max_tokens": 50,
        "user": "nightly",
        "top_k": 3,
    }
    own_top_p = BatchRow(1, "r2", [{"role": "user", "content": "hi"}], {"top_p": 0.5}, "inputs[1]")
    assert build(own_top_p)["top_p"] == 0.5


def test_every_chat_operator_parameter_is_a_templated_row_default(tmp_path: Path) -> None:
    # The chat operator's parameters besides model and messages, listed here from its documented signature.
    chat_parameters = {
        "system_prompt", "temperature", "top_p", "max_tokens", "stop", "seed", "response_format", "tools",
        "tool_choice", "models", "provider", "reasoning", "extra_body",
    }  # fmt: skip
    batch_fields = set(OpenRouterBatchCompletionOperator.template_fields)
    chat_fields = set(OpenRouterChatCompletionOperator.template_fields)
    assert chat_parameters <= batch_fields and chat_parameters <= chat_fields
    op = _operator(tmp_path, inputs=["x"], **{name: None for name in chat_parameters})
    assert all(getattr(op, name) is None for name in chat_parameters)


def test_a_row_with_an_invalid_field_is_refused_before_sending(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    op = _operator(tmp_path, inputs=["fine", {"prompt": "hot", "temperature": 9}])
    with pytest.raises(
        BatchInputError, match=r"inputs\[1\] \(row-2\): temperature must be a number from 0 to 2"
    ):
        op.execute(context_for(TaskInstanceStandIn()))
    assert _billable_requests(emulator) == 0


def _write(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown_model", r"model\(s\) \['nobody/no-such-model'\] are not in OpenRouter's catalog"),
        ("empty_list", "has no rows"),
        ("not_json", r"line 2 of .*in\.jsonl is not valid JSON"),
        ("duplicate_id", "repeats custom_id 'a' of row 1"),
        ("unreadable_file", r"Cannot read input_path .*missing\.jsonl"),
        ("unwritable_output", r"output_path .*cannot be written"),
    ],
)
def test_bad_input_fails_before_anything_is_paid_for(
    emulator: RunningEmulator, tmp_path: Path, case: str, expected: str
) -> None:
    kwargs: dict[str, Any] = {"inputs": ["a question"]}
    if case == "unknown_model":
        kwargs["model"] = "nobody/no-such-model"
    elif case == "empty_list":
        kwargs["inputs"] = []
    elif case == "not_json":
        kwargs = {"input_path": _write(tmp_path, ['"fine"', "{oops"])}
    elif case == "duplicate_id":
        kwargs["inputs"] = [{"custom_id": "a", "prompt": "x"}, {"custom_id": "a", "prompt": "y"}]
    elif case == "unreadable_file":
        kwargs = {"input_path": str(tmp_path / "missing.jsonl")}
    elif case == "unwritable_output":
        (tmp_path / "taken").write_text("a file, not a directory")
        kwargs["output_path"] = str(tmp_path / "taken" / "result.jsonl")
    op = _operator(tmp_path, **kwargs)
    with pytest.raises(BatchInputError, match=expected) as caught:
        op.execute(context_for(TaskInstanceStandIn()))
    assert "\n" not in str(caught.value)
    assert _billable_requests(emulator) == 0
    assert not (tmp_path / "out" / "result.jsonl").exists()


def test_failed_rows_fail_the_task_only_past_the_allowed_fraction(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    inputs = ["ok 1", "[[emulator: fault=400]] rejected", "ok 2", "ok 3"]
    strict = _operator(tmp_path, inputs=inputs)
    ti = TaskInstanceStandIn()
    with pytest.raises(BatchFailedRowsError, match=r"1 of 4 rows did not succeed \(1 failed"):
        strict.execute(context_for(ti))
    output = tmp_path / "out" / "result.jsonl"
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["status"] for line in lines] == ["succeeded", "failed", "succeeded", "succeeded"]
    assert lines[1]["error"]["status"] == 400
    assert ti.xcoms["manifest"].counts.failed == 1
    assert (tmp_path / "out" / "result.jsonl.manifest.json").exists()  # complete, and labelled

    lenient = _operator(tmp_path, inputs=inputs, max_failed_fraction=0.25)
    manifest = lenient.execute(context_for(TaskInstanceStandIn()))
    assert manifest.counts.succeeded == 3
    assert manifest.requests_sent == 0  # same run: the checkpoint answered, nothing was paid again


def test_on_kill_stops_sending_keeps_the_row_in_flight_and_a_retry_sends_only_the_rest(
    emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_openrouter.batch.concurrent import RowSender

    inputs = [f"question {n}" for n in range(10)]
    killed = _operator(tmp_path, inputs=inputs, concurrency=1)
    real_send = RowSender.__call__
    sends = 0

    async def send_then_kill_on_the_third(sender: RowSender, row: Any) -> Any:
        nonlocal sends
        sends += 1
        if sends == 3:  # the kill arrives while the third row is in flight (past the pacer)
            killed.on_kill()
        return await real_send(sender, row)

    monkeypatch.setattr(RowSender, "__call__", send_then_kill_on_the_third)
    ti = TaskInstanceStandIn()
    with pytest.raises(BatchFailedRowsError, match=r"stopped \(on_kill\) before every row was sent: 7 of 10"):
        killed.execute(context_for(ti))
    lines = [json.loads(line) for line in (tmp_path / "out" / "result.jsonl").read_text().splitlines()]
    assert [line["status"] for line in lines] == ["succeeded"] * 3 + ["not_sent"] * 7
    assert emulator.stats()["billed_generations"] == 3
    assert ti.xcoms["manifest"].counts.not_sent == 7

    retry = _operator(tmp_path, inputs=inputs, concurrency=1).execute(context_for(TaskInstanceStandIn()))
    assert retry.counts.succeeded == 10
    assert retry.requests_sent == 7 and retry.resumed_rows == 3
    assert emulator.stats()["billed_generations"] == 10
    assert emulator.stats()["duplicate_billed"] == 0


def test_on_kill_before_the_run_sends_nothing_and_never_raises(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    op = _operator(tmp_path, inputs=["a", "b"])
    op.on_kill()  # nothing runs yet: quiet
    with pytest.raises(BatchFailedRowsError, match="2 of 2 rows not sent"):
        op.execute(context_for(TaskInstanceStandIn()))
    assert emulator.stats()["billed_generations"] == 0


def test_auto_runs_a_small_input_concurrently_and_says_why(emulator: RunningEmulator, tmp_path: Path) -> None:
    manifest = _operator(tmp_path, inputs=["a", "b"]).execute(context_for(TaskInstanceStandIn()))
    assert manifest.mode == "concurrent"
    assert "fewer than batch_api_min_rows=1000" in manifest.mode_reason


def test_auto_uses_the_batch_api_when_large_enough_and_defers_right_after_submitting(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    op = _operator(tmp_path, inputs=["a", "b", "c"], batch_api_min_rows=3, poll_interval=0.1)
    ti = TaskInstanceStandIn()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context_for(ti))
    trigger = deferred.value.trigger
    assert isinstance(trigger, OpenRouterBatchTrigger)
    assert ti.xcoms["batch_ids"] == trigger.batch_ids
    assert deferred.value.method_name == "execute_complete"
    stats = emulator.stats()["requests"]
    assert stats.get("POST /batches") == {"202": 1}
    assert "POST /chat/completions" not in stats


def test_auto_stays_concurrent_when_the_task_cannot_wait_a_batch_window(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    op = _operator(
        tmp_path, inputs=["a", "b", "c"], batch_api_min_rows=3, execution_timeout=timedelta(hours=1)
    )
    manifest = op.execute(context_for(TaskInstanceStandIn()))
    assert manifest.mode == "concurrent"
    assert "execution_timeout 1:00:00 is shorter" in manifest.mode_reason


def test_batch_api_refuses_rows_of_other_models(emulator: RunningEmulator, tmp_path: Path) -> None:
    op = _operator(tmp_path, inputs=[{"prompt": "a", "model": "openai/gpt-4o"}], mode="batch_api")
    with pytest.raises(BatchInputError, match="one model per batch"):
        op.execute(context_for(TaskInstanceStandIn()))


def test_execute_complete_refuses_events_outside_the_allow_list(tmp_path: Path) -> None:
    op = _operator(tmp_path, inputs=["a"])
    for event in (None, {"status": "weird", "reason": "completed", "batch_ids": []}, {"status": "success"}):
        with pytest.raises(Exception, match="does not know"):
            op.execute_complete(context_for(TaskInstanceStandIn()), event)


def test_shards_split_the_connections_rate_budget(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in emulator.airflow_conn_env(requests_per_minute=600).items():
        monkeypatch.setenv(name, value)
    op = OpenRouterBatchCompletionOperator(
        task_id="shard",
        model=MODEL,
        inputs=["a"],
        output_path="/tmp/unused.jsonl",
        shard_index=1,
        shard_count=4,
    )
    assert op.engine_settings.requests_per_minute == 150
    explicit = OpenRouterBatchCompletionOperator(
        task_id="shard",
        model=MODEL,
        inputs=["a"],
        output_path="/tmp/x.jsonl",
        shard_count=4,
        requests_per_minute=90,
    )
    assert explicit.engine_settings.requests_per_minute == 90


def test_literal_mistakes_are_caught_when_the_dag_is_parsed(tmp_path: Path) -> None:
    with pytest.raises(OpenRouterRequestError, match="mode"):
        _operator(tmp_path, inputs=["a"], mode="fast")
    with pytest.raises(OpenRouterRequestError, match="one input, not two"):
        _operator(tmp_path, inputs=["a"], input_path="/in.jsonl")
    with pytest.raises(OpenRouterRequestError, match="nothing to run"):
        _operator(tmp_path)


def test_a_rows_numbers_rendered_as_text_are_read_and_garbage_is_refused_naming_the_row(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    # Inline rows from a template arrive with text where numbers are meant, as the operator's own fields do.
    templated = {"temperature": "0.2", "max_tokens": "16", "seed": "7"}
    build = _operator(tmp_path, inputs=["unused"])._body_builder(OpenRouterHook(), MODEL)
    body = build(BatchRow(0, "r1", [{"role": "user", "content": "hi"}], templated, "inputs[0]"))
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.2, 16, 7)
    op = _operator(tmp_path, inputs=["fine", {"prompt": "hot", "temperature": "warm"}])
    with pytest.raises(BatchInputError) as caught:
        op.execute(context_for(TaskInstanceStandIn()))
    assert "inputs[1] (row-2): temperature must be a number, got 'warm'" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert _billable_requests(emulator) == 0


def test_an_embeddings_batch_sends_the_operators_provider_and_extra_body_with_every_row(
    tmp_path: Path,
) -> None:
    op = _operator(
        tmp_path,
        inputs=["unused"],
        endpoint="embeddings",
        provider='{"order": ["OpenAI"]}',  # as a template renders it
        extra_body={"input_type": "search_document"},
    )
    build = op._body_builder(OpenRouterHook(), "openai/text-embedding-3-small")
    own = BatchRow(0, "doc-1", [], {"input_type": "search_query"}, "inputs[0]", "a text")
    assert build(own) == {
        "model": "openai/text-embedding-3-small",
        "input": "a text",
        "provider": {"order": ["OpenAI"]},
        "input_type": "search_query",  # the row's own field wins
    }
    plain = BatchRow(1, "doc-2", [], {}, "inputs[1]", "another")
    assert build(plain)["input_type"] == "search_document"


class _AirflowRendered(BaseOperator):
    """Airflow's own rendering of one templated field: the reference the batch operator must match."""

    template_fields = ("inputs",)

    def __init__(self, inputs: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inputs = inputs


def test_inputs_render_as_airflow_renders_them_without_compiling_plain_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = [f"Summarise item {n}." for n in range(3)]
    special = [
        "on {{ ds }}",
        "{# a comment #}kept",
        "{% if true %}yes{% endif %}",
        "ends in a newline\n",
        "windows\r\nline",
    ]
    inputs = [*plain, *special, {"prompt": "for {{ ds }}", "custom_id": "templated"}, ["two\nlines"]]
    context: Any = {"ds": "2026-12-03"}
    reference = _AirflowRendered(task_id="reference", inputs=json.loads(json.dumps(inputs)))
    reference.render_template_fields(context)
    compiled: list[str] = []
    from_string = jinja2.Environment.from_string

    def counting(env: jinja2.Environment, source: str, *args: Any, **kwargs: Any) -> jinja2.Template:
        compiled.append(source)
        return from_string(env, source, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "from_string", counting)
    op = _operator(tmp_path, inputs=inputs)
    op.render_template_fields(context)

    assert op.inputs == reference.inputs
    assert op.inputs[0] == "Summarise item 0." and op.inputs[3] == "on 2026-12-03"
    assert sorted(compiled) == sorted([*special, "for {{ ds }}"])


def _counting_hook(monkeypatch: pytest.MonkeyPatch) -> tuple[OpenRouterHook, list[Any]]:
    hook = OpenRouterHook()
    calls: list[Any] = []
    build = hook.build_chat_request

    def counted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs["messages"])
        return build(*args, **kwargs)

    monkeypatch.setattr(hook, "build_chat_request", counted)
    return hook, calls


def test_prompt_rows_get_the_body_the_hook_builds_with_its_checks_run_once(
    emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    op = _operator(
        tmp_path,
        inputs=["unused"],
        system_prompt="Be brief.",
        temperature="0.3",
        max_tokens=20,
        provider={"order": ["OpenAI"]},
        extra_body={"user": "nightly"},
    )
    user = [{"role": "user", "content": f"prompt {n}"} for n in range(4)]
    rows = [
        BatchRow(0, "p0", [user[0]], {}, "inputs[0]"),
        BatchRow(1, "long", [user[1], {"role": "assistant", "content": "a"}, user[2]], {}, "inputs[1]"),
        BatchRow(2, "own", [user[1]], {"temperature": 1.5}, "inputs[2]"),
        BatchRow(3, "named", [{"role": "user", "content": "hi", "name": "ann"}], {}, "inputs[3]"),
        BatchRow(4, "p4", [user[2]], {}, "inputs[4]"),
        BatchRow(5, "p5", [user[3]], {}, "inputs[5]"),
    ]
    hook, calls = _counting_hook(monkeypatch)
    # Each row's body as the hook builds it on its own: the first row of a fresh builder always is.
    expected = [op._body_builder(OpenRouterHook(), MODEL)(row) for row in rows]
    build = op._body_builder(hook, MODEL)

    bodies = [build(row) for row in rows]

    assert bodies == expected
    assert bodies[4]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "prompt 2"},
    ]
    assert len(calls) == 4  # p0, then the rows that are not a bare prompt; p4 and p5 reuse p0's body
    bodies[4]["messages"][0]["content"] = "changed by a caller"
    bodies[4]["provider"] = None
    assert build(rows[5]) == expected[5]


def test_an_extra_body_with_messages_is_built_for_every_row(
    emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    override = [{"role": "user", "content": "from extra_body"}]
    op = _operator(tmp_path, inputs=["unused"], extra_body={"messages": override})
    hook, calls = _counting_hook(monkeypatch)
    build = op._body_builder(hook, MODEL)
    rows = [
        BatchRow(n, f"p{n}", [{"role": "user", "content": f"p{n}"}], {}, f"inputs[{n}]") for n in range(3)
    ]

    assert [build(row)["messages"] for row in rows] == [override] * 3
    assert len(calls) == 3
