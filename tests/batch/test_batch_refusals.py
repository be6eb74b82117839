"""Refuse before paying, and never destroy a good result (issue 8): every bad parameter, output location or
row is refused before the first billable request, naming what was wrong, and a refused run leaves an earlier
run's output, commit marker and checkpoint exactly as they were."""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import LOG, MODEL, TaskInstanceStandIn, context_for

from airflow_provider_openrouter.batch.errors import BatchStateError
from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.exceptions import OpenRouterRequestError
from airflow_provider_openrouter.operators.batch import OpenRouterBatchCompletionOperator


def _operator(output: Path | str, **kwargs: Any) -> OpenRouterBatchCompletionOperator:
    options: dict[str, Any] = {
        "task_id": "batch",
        "model": MODEL,
        "output_path": str(output),
        "inputs": ["one question", "another question"],
        "concurrency": 2,
        "progress_interval": 3600,
    }
    options.update(kwargs)
    return OpenRouterBatchCompletionOperator(**options)


def _billable_requests(emulator: RunningEmulator) -> int:
    requests = emulator.stats()["requests"]
    return sum(sum(requests.get(route, {}).values()) for route in ("POST /chat/completions", "POST /batches"))


def _refused(emulator: RunningEmulator, op: OpenRouterBatchCompletionOperator, **context: Any) -> str:
    """Run ``op``, expecting a refusal before anything is paid for; return its one-line message."""
    with pytest.raises(OpenRouterRequestError) as caught:
        op.execute(context_for(TaskInstanceStandIn(**context)))
    assert _billable_requests(emulator) == 0
    assert emulator.stats()["billed_generations"] == 0
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("parameter", "value", "expected"),
    [
        ("max_failed_fraction", 2, "a number from 0 to 1, got 2"),
        ("max_failed_fraction", -0.5, "a number from 0 to 1, got -0.5"),
        ("concurrency", 1_000_000, "a whole number from 1 to 1,024 (shard the input for more), got 1000000"),
        ("concurrency", 0, "a whole number from 1 to 1,024"),
        ("max_batch_requests", 10_000, "a whole number from 1 to 5,000, OpenRouter's limit of requests per"),
        ("row_retries", -1, "a whole number >= 0"),
        ("poll_interval", 0, "a number of seconds > 0"),
        ("requests_per_minute", -5, "a number >= 0"),
    ],
)
def test_a_bad_parameter_fails_at_once_naming_it(
    emulator: RunningEmulator, tmp_path: Path, parameter: str, value: Any, expected: str
) -> None:
    output = tmp_path / "result.jsonl"
    message = _refused(emulator, _operator(output, **{parameter: value}))
    assert f"parameter {parameter!r} must be {expected}" in message
    assert list(tmp_path.iterdir()) == []  # nothing written either


def test_an_output_path_that_is_a_directory_is_refused_before_sending(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    directory = tmp_path / "results"
    directory.mkdir()
    message = _refused(emulator, _operator(directory))
    assert f"output_path {directory} is a directory" in message
    assert f"such as {directory / 'results.jsonl'}" in message
    assert list(tmp_path.iterdir()) == [directory]  # no checkpoint beside the directory
    assert list(directory.iterdir()) == []


def test_an_output_path_under_a_file_is_refused_before_sending(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    (tmp_path / "taken").write_text("a file")
    message = _refused(emulator, _operator(tmp_path / "taken" / "deeper" / "result.jsonl"))
    assert "cannot be written" in message and "is a file, not a directory" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_output_path_in_a_read_only_directory_is_refused_before_sending(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    message = _refused(emulator, _operator(locked / "result.jsonl"))
    assert "this process may not write to" in message


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"prompt": "x", "response_format": {"type": "xml"}}, "response_format must be an object with"),
        ({"prompt": "x", "temperature": 9}, "temperature must be a number from 0 to 2"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"prompt": "None"}, "has no prompt (got 'None')"),
        ({"prompt": None}, "a prompt that is not text (None)"),
        ("None", "has no prompt (got 'None')"),
    ],
)
def test_a_bad_row_fails_the_input_scan_before_any_row_is_sent(
    emulator: RunningEmulator, tmp_path: Path, row: Any, expected: str
) -> None:
    # The good rows come first: today's failure mode was paying for them, then a 400 on the bad one.
    inputs = ["fine", "also fine", row]
    message = _refused(emulator, _operator(tmp_path / "result.jsonl", inputs=inputs, concurrency=1))
    assert "inputs[2]" in message
    assert expected in message
    assert list(tmp_path.iterdir()) == []


def test_a_template_rendering_none_for_a_prompt_is_refused(emulator: RunningEmulator, tmp_path: Path) -> None:
    # What {{ ti.xcom_pull(...) }} of a missing value renders to, row by row.
    op = _operator(tmp_path / "result.jsonl", inputs='[{"custom_id": "a", "prompt": "None"}]')
    assert "Input row at inputs[0] has no prompt (got 'None')" in _refused(emulator, op)


def test_never_more_requests_in_flight_than_rows(emulator: RunningEmulator, tmp_path: Path) -> None:
    op = _operator(tmp_path / "result.jsonl", inputs=["a", "b", "c"], concurrency=512)
    manifest = op.execute(context_for(TaskInstanceStandIn()))
    assert manifest.counts.succeeded == 3
    assert op._runner is not None and op._runner.concurrency == 3


# -- never destroy a good result -------------------------------------------------------------------------


def _files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file()}


@pytest.mark.parametrize(
    ("change", "context"),
    [
        ({}, {"run_id": "manual__another_run"}),
        ({"model": "openai/gpt-4o"}, {}),
        ({"temperature": 0.5}, {}),
    ],
)
def test_a_refused_run_leaves_the_earlier_output_marker_and_checkpoint_byte_identical(
    emulator: RunningEmulator, tmp_path: Path, change: dict[str, Any], context: dict[str, Any]
) -> None:
    output = tmp_path / "result.jsonl"
    first = _operator(output).execute(context_for(TaskInstanceStandIn()))
    assert first.counts.succeeded == 2
    before = _files(tmp_path)
    assert set(before) == {"result.jsonl", "result.jsonl.manifest.json", "result.jsonl.checkpoint.jsonl"}
    billed = emulator.stats()["billed_generations"]

    with pytest.raises(BatchStateError, match="belongs to a different batch"):
        _operator(output, **change).execute(context_for(TaskInstanceStandIn(**context)))

    assert _files(tmp_path) == before
    assert emulator.stats()["billed_generations"] == billed


def test_a_refused_run_on_an_object_store_leaves_no_half_made_local_checkpoint(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io.store import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach("memory", fs=MemoryFileSystem())
    output = "memory://bucket/refused-remote/answers.jsonl"
    _operator(output, checkpoint_dir=str(tmp_path / "pod-1")).execute(context_for(TaskInstanceStandIn()))
    marker = ObjectStoragePath(output + ".manifest.json").read_bytes()

    other_run = _operator(output, checkpoint_dir=str(tmp_path / "pod-2"))
    with pytest.raises(BatchStateError, match=r"mirror .* belongs to a different batch"):
        other_run.execute(context_for(TaskInstanceStandIn(run_id="manual__another_run")))
    assert not (tmp_path / "pod-2").exists() or list((tmp_path / "pod-2").iterdir()) == []
    assert ObjectStoragePath(output + ".manifest.json").read_bytes() == marker


def test_an_invalid_run_leaves_nothing_on_disk(emulator: RunningEmulator, tmp_path: Path) -> None:
    message = _refused(emulator, _operator(tmp_path / "result.jsonl", model="nobody/no-such-model"))
    assert "not in OpenRouter's catalog" in message
    assert list(tmp_path.iterdir()) == []


# -- closing what was opened ------------------------------------------------------------------------------


def _open_files_under(directory: Path) -> list[str]:
    opened = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory)):
            opened.append(target)
    return opened


def test_a_run_that_crashes_closes_its_checkpoint_and_hooks(
    emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_openrouter.batch.concurrent import RowSender

    op = _operator(tmp_path / "result.jsonl", concurrency=1)
    hook = op.engine_hook
    closed: list[str] = []
    real_close = hook.close

    async def crash(sender: RowSender, row: Any) -> Any:
        raise RuntimeError("a bug in the sender")

    def note_close() -> None:
        closed.append("engine_hook")
        real_close()

    monkeypatch.setattr(RowSender, "__call__", crash)
    hook.close = note_close  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="a bug in the sender"):
        op.execute(context_for(TaskInstanceStandIn()))
    assert _open_files_under(tmp_path) == []  # the checkpoint was closed (and flushed) on the way out
    assert closed == ["engine_hook"]
    checkpoint = (tmp_path / "result.jsonl.checkpoint.jsonl").read_text().splitlines()
    assert json.loads(checkpoint[-1])["status"] == "sending"  # the row in flight is on disk


# -- money in plain decimal notation -----------------------------------------------------------------------


def test_costs_are_written_in_plain_decimal_notation(emulator: RunningEmulator, tmp_path: Path) -> None:
    output = tmp_path / "result.jsonl"
    manifest = _operator(output, inputs=["hi"], max_tokens=1).execute(context_for(TaskInstanceStandIn()))
    raw = output.read_text()
    costs = re.findall(r'"cost":([^,}]+)', raw)
    assert costs and all(re.fullmatch(r"0\.\d+", cost) for cost in costs), costs  # never 1.5e-07
    assert Decimal(costs[0]) == manifest.cost == Decimal(str(emulator.stats()["total_cost"])) > 0
    marker = json.loads((tmp_path / "result.jsonl.manifest.json").read_text())
    assert re.fullmatch(r"0\.\d+", marker["cost"])
    assert re.fullmatch(r"0\.\d+", manifest.summary()["cost"])


def test_a_cost_read_back_from_the_checkpoint_keeps_its_digits(tmp_path: Path) -> None:
    from airflow_provider_openrouter.batch.outputs import dumps_record, loads_record

    line = dumps_record({"cost": Decimal("1.5E-7"), "usage": {"cost": Decimal("0.00000765")}, "text": "1e-7"})
    assert line == b'{"cost":0.00000015,"usage":{"cost":0.00000765},"text":"1e-7"}\n'
    assert dumps_record(loads_record(line)) == line


def test_the_progress_line_writes_the_cost_in_plain_decimal_notation() -> None:
    from airflow_provider_openrouter.batch.concurrent import Progress

    progress = Progress(total=2, already_done=0, log=LOG, interval=3600)
    progress.add({"status": "succeeded", "usage": None, "cost": Decimal("1.5E-7")})
    assert "cost 0.00000015 USD" in progress.line()
