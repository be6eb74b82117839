"""The checkpoint journal: durable on return (also across SIGKILL), torn tails cut, other batches refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_openrouter.batch.checkpoint import Checkpoint
from airflow_provider_openrouter.batch.errors import BatchStateError


def _succeeded(index: int) -> dict[str, Any]:
    return {"index": index, "custom_id": f"row-{index + 1}", "status": "succeeded", "text": f"answer {index}"}


def _failed(index: int, *, billed: bool | None, retryable: bool) -> dict[str, Any]:
    error = {"type": "X", "status": 503, "message": "m", "billed": billed, "retryable": retryable}
    return {"index": index, "custom_id": f"row-{index + 1}", "status": "failed", "error": error}


def _open(path: Path, total: int = 5, identity: str = "id-1") -> Checkpoint:
    checkpoint = Checkpoint(path, identity=identity, total=total)
    checkpoint.open()
    return checkpoint


def test_reopening_restores_what_was_recorded(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl.checkpoint.jsonl"
    checkpoint = _open(path)
    checkpoint.record(_succeeded(0))
    checkpoint.record(_succeeded(3))
    checkpoint.close()

    again = Checkpoint(path, identity="id-1", total=5)
    assert again.open() == 2
    assert list(again.records_in_order()) == [_succeeded(0), None, None, _succeeded(3), None]
    assert [again.needs_sending(n) for n in range(5)] == [False, True, True, False, True]


def test_which_recorded_rows_a_rerun_sends_again(tmp_path: Path) -> None:
    checkpoint = _open(tmp_path / "c.jsonl", total=5)
    checkpoint.record(_succeeded(0))
    checkpoint.record(_failed(1, billed=False, retryable=True))  # a 503 answered before generation
    checkpoint.record(_failed(2, billed=False, retryable=False))  # a 400: would fail again
    checkpoint.record({"index": 3, "custom_id": "row-4", "status": "outcome_unknown", "error": {}})
    assert [checkpoint.needs_sending(n) for n in range(5)] == [False, True, False, False, True]
    assert [checkpoint.needs_sending(n, resend_unknown=True) for n in range(5)] == [
        False,
        True,
        False,
        True,
        True,
    ]
    assert checkpoint.pending_count() == 2
    assert checkpoint.pending_count(resend_unknown=True) == 3


def test_a_later_record_of_the_same_row_wins(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    checkpoint = _open(path, total=2)
    checkpoint.record(_failed(1, billed=False, retryable=True))
    checkpoint.record(_succeeded(1))
    checkpoint.close()
    again = Checkpoint(path, identity="id-1", total=2)
    assert again.open() == 1
    assert list(again.records_in_order()) == [None, _succeeded(1)]
    assert not again.needs_sending(1)


def test_a_torn_last_line_is_cut_off_and_the_journal_stays_appendable(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    checkpoint = _open(path, total=3)
    checkpoint.record(_succeeded(0))
    checkpoint.close()
    with path.open("ab") as handle:
        handle.write(b'{"index": 1, "custom_id": "row-2", "sta')  # killed mid-write

    again = Checkpoint(path, identity="id-1", total=3)
    assert again.open() == 1
    assert again.needs_sending(1)
    again.record(_succeeded(2))
    again.close()
    lines = path.read_bytes().splitlines()
    assert [json.loads(line).get("index") for line in lines[1:]] == [0, 2]


def test_a_corrupt_line_before_the_end_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    checkpoint = _open(path, total=3)
    checkpoint.record(_succeeded(0))
    checkpoint.close()
    with path.open("ab") as handle:
        handle.write(b"garbage\n")
        handle.write(json.dumps(_succeeded(1)).encode() + b"\n")
    with pytest.raises(BatchStateError, match="corrupt at line 3"):
        Checkpoint(path, identity="id-1", total=3).open()


def test_a_checkpoint_of_another_batch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    _open(path, identity="id-1").close()
    with pytest.raises(BatchStateError, match="belongs to a different batch"):
        Checkpoint(path, identity="id-2", total=5).open()


def test_a_row_outside_the_input_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    checkpoint = _open(path, total=10)
    checkpoint.record(_succeeded(9))
    checkpoint.close()
    with pytest.raises(BatchStateError, match="outside this input of 5 rows"):
        Checkpoint(path, identity="id-1", total=5).open()


def test_shard_rows_map_onto_dense_slots(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path / "c.jsonl", identity="s", total=3, shard_count=4)
    checkpoint.open()
    for index in (1, 5, 9):  # shard 1 of 4
        checkpoint.record(_succeeded(index))
    assert checkpoint.recorded_count() == 3
    assert [record["index"] for record in checkpoint.records_in_order() if record] == [1, 5, 9]


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    total = 800
    checkpoint = _open(path, total=total)
    big = "x" * 5000  # larger than a pipe buffer chunk, so an interleaving would show

    def write(start: int) -> None:
        for index in range(start, total, 8):
            checkpoint.record({**_succeeded(index), "text": big})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    checkpoint.close()
    indexes = sorted(json.loads(line)["index"] for line in path.read_bytes().splitlines()[1:])
    assert indexes == list(range(total))


_KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from airflow_provider_openrouter.batch.checkpoint import Checkpoint

checkpoint = Checkpoint(Path(sys.argv[1]), identity="id-1", total=100, fsync_interval=3600)
checkpoint.open()
for index in range(37):
    checkpoint.record({"index": index, "custom_id": f"row-{index + 1}", "status": "succeeded"})
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_recorded_row_survives_sigkill_of_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    process = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(path)], check=False, timeout=120)
    assert process.returncode == -signal.SIGKILL
    again = Checkpoint(path, identity="id-1", total=100)
    assert again.open() == 37
    assert [record is not None for record in again.records_in_order()] == [True] * 37 + [False] * 63


def test_an_unwritable_directory_raises_oserror(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError):
        Checkpoint(blocker / "c.jsonl", identity="i", total=1).open()
    assert os.path.isfile(blocker)


@pytest.fixture
def object_store() -> Iterator[ObjectStoragePath]:
    """An object store in memory (no append, no rename), as ``memory://`` ObjectStoragePaths."""
    from airflow.sdk.io.store import attach
    from fsspec.implementations.memory import MemoryFileSystem

    store = MemoryFileSystem()
    attach("memory", fs=store)
    root = ObjectStoragePath(f"memory://checkpoint-tests/{os.getpid()}-{threading.get_ident()}")
    yield root
    store.store.clear()
    store.pseudo_dirs.clear()
    store.pseudo_dirs.append("")


def test_another_machine_resumes_from_the_mirror(tmp_path: Path, object_store: ObjectStoragePath) -> None:
    mirror = object_store / "out.jsonl.checkpoint"
    first = Checkpoint(tmp_path / "machine-a" / "c.jsonl", identity="id-1", total=6, mirror=mirror)
    first.open()
    for index in (0, 1, 2):
        first.record(_succeeded(index))
    first.record({"index": 3, "custom_id": "row-4", "status": "sending"})
    first.close()  # uploads what was not mirrored yet

    second = Checkpoint(tmp_path / "machine-b" / "c.jsonl", identity="id-1", total=6, mirror=mirror)
    assert second.open() == 4
    assert [second.needs_sending(n) for n in range(6)] == [False, False, False, False, True, True]
    second.record(_succeeded(4))
    second.close()

    third = Checkpoint(tmp_path / "machine-c" / "c.jsonl", identity="id-1", total=6, mirror=mirror)
    assert third.open() == 5
    assert [record["index"] for record in third.records_in_order() if record] == [0, 1, 2, 3, 4]


def test_merging_histories_keeps_the_record_that_may_have_cost_more(
    tmp_path: Path, object_store: ObjectStoragePath
) -> None:
    mirror = object_store / "out.jsonl.checkpoint"
    remote = Checkpoint(tmp_path / "b" / "c.jsonl", identity="id-1", total=3, mirror=mirror)
    remote.open()
    remote.record({"index": 0, "custom_id": "row-1", "status": "sending"})  # in flight when B died
    remote.record(_succeeded(1))
    remote.close()

    local = Checkpoint(tmp_path / "a" / "c.jsonl", identity="id-1", total=3)  # an older attempt on A
    local.open()
    local.record(_failed(0, billed=False, retryable=True))
    local.record(_succeeded(2))  # never mirrored
    local.close()

    merged = Checkpoint(tmp_path / "a" / "c.jsonl", identity="id-1", total=3, mirror=mirror)
    assert merged.open() == 3
    assert [merged.needs_sending(n) for n in range(3)] == [False, False, False]  # row 0 may have been billed
    merged.close()
    again = Checkpoint(tmp_path / "elsewhere" / "c.jsonl", identity="id-1", total=3, mirror=mirror)
    assert again.open() == 3  # row 2, once only on A's disk, reached the mirror


def test_a_mirror_of_another_batch_is_refused(tmp_path: Path, object_store: ObjectStoragePath) -> None:
    mirror = object_store / "out.jsonl.checkpoint"
    other = Checkpoint(tmp_path / "x" / "c.jsonl", identity="id-other", total=2, mirror=mirror)
    other.open()
    other.record(_succeeded(0))
    other.close()
    with pytest.raises(BatchStateError, match=r"mirror .* belongs to a different batch"):
        Checkpoint(tmp_path / "y" / "c.jsonl", identity="id-1", total=2, mirror=mirror).open()


def test_a_row_in_flight_is_on_the_mirror_before_its_request_leaves(
    tmp_path: Path, object_store: ObjectStoragePath
) -> None:
    mirror = object_store / "out.jsonl.checkpoint"
    pod_a = Checkpoint(tmp_path / "pod-a" / "c.jsonl", identity="id-1", total=3, mirror=mirror)
    pod_a.open()
    pod_a.record(_succeeded(0))  # an outcome: mirrored later (mirror_interval)
    pod_a.record({"index": 1, "custom_id": "row-2", "status": "sending"})
    # Pod A is evicted here with row 2's request in flight: no close, its disk is gone.

    pod_b = Checkpoint(tmp_path / "pod-b" / "c.jsonl", identity="id-1", total=3, mirror=mirror)
    pod_b.open()
    assert [pod_b.needs_sending(n) for n in range(3)] == [False, False, True]


def test_close_compacts_the_mirror_into_one_segment_and_later_uploads_add_to_it(
    tmp_path: Path, object_store: ObjectStoragePath
) -> None:
    mirror = object_store / "out.jsonl.checkpoint"
    first = Checkpoint(tmp_path / "a" / "c.jsonl", identity="id-1", total=4, mirror=mirror)
    first.open()
    for index in (0, 1):
        first.record({"index": index, "custom_id": f"row-{index + 1}", "status": "sending"})
        first.record(_succeeded(index))
    assert len([part for part in mirror.iterdir() if part.name.startswith("part-")]) == 2
    first.close()
    assert len([part for part in mirror.iterdir() if part.name.startswith("part-")]) == 1

    second = Checkpoint(tmp_path / "b" / "c.jsonl", identity="id-1", total=4, mirror=mirror)
    assert second.open() == 2
    second.record({"index": 2, "custom_id": "row-3", "status": "sending"})  # a new segment beside it

    third = Checkpoint(tmp_path / "c" / "c.jsonl", identity="id-1", total=4, mirror=mirror)
    third.open()
    assert [third.needs_sending(n) for n in range(4)] == [False, False, False, True]
