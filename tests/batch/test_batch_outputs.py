"""The output file and its commit marker: whole or absent, never half-written and presented as complete."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_openrouter.batch.errors import BatchInputError
from airflow_provider_openrouter.batch.manifest import Tally
from airflow_provider_openrouter.batch.outputs import (
    dumps_record,
    probe_writable,
    read_commit_marker,
    record_cost,
    remove_commit_marker,
    success_record,
    write_commit_marker,
    write_output,
)
from airflow_provider_openrouter.models import ChatCompletion


def _records(count: int, fail_at: int | None = None) -> Iterator[dict[str, Any]]:
    for index in range(count):
        if index == fail_at:
            raise RuntimeError("worker died while writing")
        yield {"custom_id": f"row-{index + 1}", "index": index, "status": "succeeded"}


def test_output_is_written_whole_with_its_digest(tmp_path: Path) -> None:
    output = ObjectStoragePath(str(tmp_path / "out" / "result.jsonl"))
    probe_writable(output)
    summary = write_output(output, _records(3))
    lines = Path(output.path).read_bytes().splitlines()
    assert [json.loads(line)["custom_id"] for line in lines] == ["row-1", "row-2", "row-3"]
    assert summary.rows == 3
    assert summary.sha256 == hashlib.sha256(Path(output.path).read_bytes()).hexdigest()
    assert sorted(p.name for p in Path(output.path).parent.iterdir()) == ["result.jsonl"]


def test_a_failure_mid_write_leaves_the_previous_output_untouched(tmp_path: Path) -> None:
    output = ObjectStoragePath(str(tmp_path / "result.jsonl"))
    write_output(output, _records(2))
    before = Path(output.path).read_bytes()
    with pytest.raises(RuntimeError, match="worker died"):
        write_output(output, _records(5, fail_at=3))
    assert Path(output.path).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.jsonl"]


def test_commit_marker_vouches_only_for_an_existing_output(tmp_path: Path) -> None:
    output = ObjectStoragePath(str(tmp_path / "result.jsonl"))
    assert read_commit_marker(output) is None
    write_output(output, _records(1))
    write_commit_marker(output, {"output_rows": 1})
    assert read_commit_marker(output) == {"output_rows": 1}
    remove_commit_marker(output)
    assert read_commit_marker(output) is None
    assert Path(output.path).exists()


def test_object_store_output_is_published_by_move() -> None:
    from airflow.sdk.io.store import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach("memory", fs=MemoryFileSystem())  # an object store without rename or append, in memory
    output = ObjectStoragePath("memory://batch-tests/run-1/result.jsonl")
    probe_writable(output)
    write_output(output, _records(2))
    write_commit_marker(output, {"output_rows": 2})
    store = output.parent
    assert sorted(p.name for p in store.iterdir()) == ["result.jsonl", "result.jsonl.manifest.json"]
    assert len(output.read_text().splitlines()) == 2
    assert read_commit_marker(output) == {"output_rows": 2}


def test_an_unwritable_output_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(BatchInputError, match=r"output_path .*taken/out\.jsonl cannot be written"):
        probe_writable(ObjectStoragePath(str(blocker / "out.jsonl")))


def test_success_record_keeps_text_usage_exact_cost_and_id_through_json() -> None:
    response = {
        "id": "gen-1",
        "model": "openai/gpt-4o-mini",
        "choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4, "cost": 0.00000735},
    }
    record = success_record(4, "r5", ChatCompletion.model_validate(response), attempts=2)
    line = json.loads(dumps_record(record))
    assert line["text"] == "hi"
    assert line["generation_id"] == "gen-1"
    assert line["status"] == "succeeded"
    assert line["attempts"] == 2
    assert line["cost"] == 0.00000735
    assert line["usage"]["total_tokens"] == 4
    assert record_cost(line) == Decimal("0.00000735")


def test_tally_sums_cost_exactly_and_counts_outcomes() -> None:
    tally = Tally()
    for cost in (0.1, 0.2, 0.000003):
        tally.add({"status": "succeeded", "cost": cost, "usage": {"total_tokens": 10, "prompt_tokens": 7}})
    tally.add({"status": "failed", "cost": None, "usage": None})
    tally.add({"status": "not_sent", "cost": None, "usage": None})
    assert tally.cost == Decimal("0.300003")  # float addition would give 0.30000300000000004
    counts = tally.counts()
    assert (counts.total, counts.succeeded, counts.failed, counts.not_sent) == (5, 3, 1, 1)
    assert tally.tokens().total_tokens == 30
    assert tally.tokens().prompt_tokens == 21


def test_output_lines_go_out_in_chunks_and_a_chat_output_never_looks_for_a_vectors_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_openrouter.batch import outputs, vectors

    def refuse(path: Any) -> Any:
        raise AssertionError("a batch without vectors looked for a vectors file (and imported pyarrow)")

    monkeypatch.setattr(vectors, "batch_vector_path", refuse)
    monkeypatch.setattr(outputs, "_WRITE_CHUNK_BYTES", 4096)
    writes: list[int] = []
    open_path = ObjectStoragePath.open

    def counting_open(path: ObjectStoragePath, mode: str = "r", **kwargs: Any) -> Any:
        handle = open_path(path, mode, **kwargs)
        if "w" in mode:
            write = handle.write
            monkeypatch.setattr(handle, "write", lambda data: writes.append(len(data)) or write(data))
        return handle

    monkeypatch.setattr(ObjectStoragePath, "open", counting_open)
    output = ObjectStoragePath(str(tmp_path / "result.jsonl"))

    summary = write_output(output, _records(2_000))

    expected = b"".join(dumps_record(record) for record in _records(2_000))
    assert Path(output.path).read_bytes() == expected
    assert summary.rows == 2_000 and summary.vectors is None
    assert sum(writes) == len(expected)
    assert len(writes) <= len(expected) // 4096 + 2  # one write per chunk, not one per line


def test_decimals_anywhere_in_a_record_are_plain_json_numbers_and_text_is_kept() -> None:
    record = {
        "cost": Decimal("1.5E-7"),
        "usage": {"cost": Decimal("-0.25"), "details": [Decimal("123456789012345678901234567890.5")]},
        "text": '"\u2063 0.5 \u2064" looks like a mark',
    }
    line = dumps_record(record)
    assert (
        line
        == (
            '{"cost":0.00000015,"usage":{"cost":-0.25,"details":[123456789012345678901234567890.5]},'
            '"text":"\\"\u2063 0.5 \u2064\\" looks like a mark"}\n'
        ).encode()
    )
    assert json.loads(line, parse_float=Decimal) == record


def test_an_output_from_the_checkpoint_copies_its_lines_and_keeps_every_number_plain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_openrouter.batch import outputs
    from airflow_provider_openrouter.batch.checkpoint import Checkpoint

    money = {"status": "succeeded", "cost": Decimal("0.0000216"), "usage": {"total_tokens": 48}}
    records = [
        {"custom_id": "a", "index": 0, **money, "text": "Plain."},
        {"custom_id": "b", "index": 1, **money, "text": "Spread", "usage": {"ratio": 1e-05}},
        {"custom_id": "c", "index": 2, **money, "text": "Write to my e-mail"},
        {"custom_id": "d", "index": 3, "status": "failed", "error": {"billed": True}, "cost": None},
    ]
    checkpoint = Checkpoint(tmp_path / "journal.jsonl", identity="i", total=len(records))
    checkpoint.open()
    for record in reversed(records):
        checkpoint.record(record, mirror_now=False)
    checkpoint.close()
    encoded: list[Any] = []
    dumps = outputs.dumps_record
    monkeypatch.setattr(outputs, "dumps_record", lambda record: encoded.append(record) or dumps(record))
    output = ObjectStoragePath(str(tmp_path / "result.jsonl"))

    write_output(output, checkpoint.records_in_order())

    lines = Path(output.path).read_bytes().splitlines(keepends=True)
    journal = (tmp_path / "journal.jsonl").read_bytes().splitlines(keepends=True)
    assert lines[0] == journal[4] and lines[3] == journal[1]  # copied, not encoded again
    assert b'"cost":0.0000216' in lines[0]
    assert b'"usage":{"ratio":0.00001}' in lines[1]  # a float's exponent form is written plain
    assert [json.loads(line)["custom_id"] for line in lines] == ["a", "b", "c", "d"]
    assert [record["custom_id"] for record in encoded] == ["b", "c"]
