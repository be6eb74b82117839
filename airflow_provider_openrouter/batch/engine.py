"""What both modes share: input validation, the run's identity, the checkpoint, the output and the manifest.

A run goes: :meth:`BatchJob.scan` reads the whole input once (validating every row and building its request
body, so a bad row fails the run before anything is paid for) and derives the identity; :meth:`BatchJob.open`
checks the output can be written and opens the checkpoint; a mode sends the pending rows, recording each in
the checkpoint; :meth:`BatchJob.finish` writes the output in input order from the checkpoint and commits it.

The identity is a SHA-256 over the run key (DAG, task, run and map index, so a retry or a cleared task of the
same run resumes, and the next run starts afresh) and every row's custom_id and exact request body. Each
row's ``X-Idempotency-Key`` is derived from the identity and the row's custom_id: the same row of the same run
always carries the same key. The attribution (``metadata``, ``session_id``, ``trace``: the task and the row's
custom_id) is added to a row's body only when it is sent (:meth:`BatchJob.request_body`), never to the body
the identity is made of: it holds the try number, which changes between attempts of one run.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_openrouter.batch._log import Log
from airflow_provider_openrouter.batch.checkpoint import Checkpoint
from airflow_provider_openrouter.batch.errors import BatchInputError, BatchStateError
from airflow_provider_openrouter.batch.inputs import BatchRow, InputSource, iter_rows
from airflow_provider_openrouter.batch.manifest import BatchManifest, BatchMode, BatchTimings, Tally
from airflow_provider_openrouter.batch.outputs import (
    NOT_SENT,
    SENDING,
    check_output_location,
    failure_record,
    is_local,
    lost_in_flight,
    probe_writable,
    remove_commit_marker,
    sibling,
    write_commit_marker,
    write_output,
)
from airflow_provider_openrouter.exceptions import OpenRouterError, OpenRouterRequestError
from airflow_provider_openrouter.models import plain_decimal

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

BuildBody = Callable[[BatchRow], dict[str, Any]]
Attribute = Callable[[dict[str, Any], str], dict[str, Any]]

CHECKPOINT_SUFFIX = ".checkpoint.jsonl"
MIRROR_SUFFIX = ".checkpoint"


@dataclass(frozen=True)
class BatchSpec:
    """Everything that defines one run of one shard.

    ``build_body`` turns a row into its full chat request body (the operator's defaults merged in);
    ``attribute`` adds the attribution of the row (given its body and custom_id) to the body that is sent;
    ``checkpoint_dir`` holds the local journal of an output on an object store (which cannot be appended to);
    the journal is mirrored to ``<output>.checkpoint/`` on that store, so another machine can resume.
    """

    source: InputSource
    output_path: ObjectStoragePath
    model: str
    build_body: BuildBody
    run_key: str = ""
    shard_index: int = 0
    shard_count: int = 1
    resend_unknown: bool = False
    checkpoint_dir: Path | None = None
    attribute: Attribute | None = None
    endpoint: str = "chat"
    """What the rows run: ``"chat"`` or ``"embeddings"`` (:data:`~.inputs.ENDPOINTS`)."""


@dataclass(frozen=True)
class InputScan:
    """What one pass over the input found: row count, digest, and the models the rows ask for."""

    total: int
    input_digest: str
    identity: str
    row_models: frozenset[str] = field(default_factory=frozenset)


def _id_hash(custom_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(custom_id.encode(), digest_size=8).digest(), "big")


# One encoder for every row: json.dumps with options builds a new one per call.
canonical_json: Callable[[Any], str] = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
).encode


def idempotency_key(identity: str, custom_id: str) -> str:
    """The ``X-Idempotency-Key`` of one row of one run: stable across retries, distinct across runs."""
    return "orb-" + hashlib.sha256(f"{identity}\n{custom_id}".encode()).hexdigest()[:48]


class BatchJob:
    """One run of one shard: input scan, checkpoint, output and manifest (no HTTP here)."""

    def __init__(self, spec: BatchSpec, log: Log) -> None:
        if not 0 <= spec.shard_index < spec.shard_count:
            raise BatchInputError(
                f"shard_index must be between 0 and shard_count - 1 ({spec.shard_count - 1}), "
                f"got {spec.shard_index}"
            )
        self.spec = spec
        self.log = log
        self.started_at = datetime.now(UTC)
        self._started = time.monotonic()
        self.scan_result: InputScan | None = None
        self.checkpoint: Checkpoint | None = None
        self.resumed_rows = 0

    # -- pass 1 ------------------------------------------------------------------------------------------

    def rows(self) -> Iterator[BatchRow]:
        return iter_rows(self.spec.source, self.spec.shard_index, self.spec.shard_count, self.spec.endpoint)

    def body(self, row: BatchRow) -> dict[str, Any]:
        """The row's request body; a row the builder refuses becomes an error naming the row."""
        try:
            return self.spec.build_body(row)
        except BatchInputError:
            raise
        except OpenRouterRequestError as err:
            raise BatchInputError(f"Input row at {row.where} ({row.custom_id}): {err.message}") from err

    def request_body(self, row: BatchRow) -> dict[str, Any]:
        """The body sent for a row: :meth:`body` with the row's attribution (not part of the identity)."""
        body = self.body(row)
        attribute = self.spec.attribute
        return body if attribute is None else attribute(body, row.custom_id)

    def scan(self) -> InputScan:
        """Validate every row of this shard and build its body once; raise on the first bad row."""
        digest = hashlib.sha256()
        digest.update(canonical_json({"model": self.spec.model, "shard": self.spec.shard_count}).encode())
        # 8 bytes per row instead of a set of ids, so memory stays flat however long the input is.
        id_hashes = array("Q")
        models: set[str] = set()
        total = 0
        for row in self.rows():
            id_hashes.append(_id_hash(row.custom_id))
            body = self.body(row)
            if isinstance(body.get("model"), str):
                models.add(body["model"])
            digest.update(f"{row.custom_id}\0{canonical_json(body)}\n".encode())
            total += 1
        if total == 0:
            self._refuse_empty()
        self._refuse_duplicates(id_hashes)
        input_digest = digest.hexdigest()
        identity = hashlib.sha256(f"{self.spec.run_key}\n{input_digest}".encode()).hexdigest()
        self.scan_result = InputScan(total, input_digest, identity, frozenset(models))
        return self.scan_result

    def _refuse_duplicates(self, id_hashes: array[int]) -> None:
        """Sort the id hashes; only when two are equal, read the input again to name the repeated id."""
        ordered = sorted(id_hashes)
        suspects = {left for left, right in pairwise(ordered) if left == right}
        if not suspects:
            return
        first_row: dict[str, int] = {}
        for row in self.rows():
            if _id_hash(row.custom_id) not in suspects:
                continue
            earlier = first_row.setdefault(row.custom_id, row.index)
            if earlier != row.index:
                raise BatchInputError(
                    f"Input row at {row.where} repeats custom_id {row.custom_id!r} of row {earlier + 1}. "
                    "Each custom_id must be unique; its result is matched by it"
                )

    def _refuse_empty(self) -> None:
        first = next(iter_rows(self.spec.source, endpoint=self.spec.endpoint), None)
        if self.spec.shard_count > 1 and first is not None:
            return  # more shards than rows: this shard is legitimately empty
        raise BatchInputError(
            f"The input {self.spec.source.description} has no rows. Give at least one prompt, message list "
            "or request body (blank JSONL lines are skipped)"
        )

    @property
    def scanned(self) -> InputScan:
        if self.scan_result is None:
            raise BatchStateError("the input was not scanned yet")
        return self.scan_result

    def idempotency_key(self, row: BatchRow) -> str:
        return idempotency_key(self.scanned.identity, row.custom_id)

    # -- checkpoint ----------------------------------------------------------------------------------------

    def checkpoint_path(self) -> Path:
        output = self.spec.output_path
        if is_local(output):
            return Path(sibling(output, CHECKPOINT_SUFFIX).path)
        directory = self.spec.checkpoint_dir or Path(tempfile.gettempdir()) / "openrouter-batch-checkpoints"
        name = hashlib.sha256(str(output).encode()).hexdigest()[:24]
        return directory / f"{name}{CHECKPOINT_SUFFIX}"

    def open(self) -> Checkpoint:
        """Open the checkpoint for sending, after checking everything that could refuse the run.

        The checks come first and only read: the output location, and that an existing checkpoint (or its
        mirror) belongs to this run. Only then is the output probed for write access, its old commit marker
        withdrawn and the checkpoint opened, so a refused run leaves an earlier run's output, commit marker
        and checkpoint exactly as they were.
        """
        scan = self.scanned
        output = self.spec.output_path
        check_output_location(output)
        path = self.checkpoint_path()
        checkpoint = Checkpoint(
            path,
            identity=scan.identity,
            total=scan.total,
            shard_count=self.spec.shard_count,
            mirror=None if is_local(output) else sibling(output, MIRROR_SUFFIX),
        )
        try:
            checkpoint.check()
        except OSError as err:
            raise self._checkpoint_unusable(path, err) from err
        probe_writable(output)
        remove_commit_marker(output)
        try:
            self.resumed_rows = checkpoint.open()
        except OSError as err:
            raise self._checkpoint_unusable(path, err) from err
        if self.resumed_rows:
            self.log.info(
                "resuming from checkpoint %s: %d of %d rows already finished and will not be requested again",
                path,
                self.resumed_rows,
                scan.total,
            )
        self.checkpoint = checkpoint
        return checkpoint

    @staticmethod
    def _checkpoint_unusable(path: Path, err: OSError) -> BatchInputError:
        return BatchInputError(
            f"The checkpoint {path} cannot be read or written ({type(err).__name__}: {err}). "
            "Give a writable checkpoint_dir"
        )

    def close(self) -> None:
        """Flush the checkpoint to disk and close it; every way a run ends calls this (idempotent)."""
        if self.checkpoint is not None:
            self.checkpoint.close()

    @property
    def opened(self) -> Checkpoint:
        if self.checkpoint is None:
            raise BatchStateError("the checkpoint is not open")
        return self.checkpoint

    def pending_rows(self) -> Iterator[BatchRow]:
        """Rows a send must (re)send: never recorded, safely resendable failures, unknown ones if asked."""
        checkpoint = self.opened
        resend_unknown = self.spec.resend_unknown
        return (
            row for row in self.rows() if checkpoint.needs_sending(row.index, resend_unknown=resend_unknown)
        )

    def pending_count(self) -> int:
        return self.opened.pending_count(resend_unknown=self.spec.resend_unknown)

    # -- output --------------------------------------------------------------------------------------------

    def _output_records(self, stop_error: OpenRouterError | None, tally: Tally) -> Iterator[dict[str, Any]]:
        checkpoint = self.opened
        missing = checkpoint.total - checkpoint.recorded_count()
        records = checkpoint.records_in_order()
        if missing:
            reason = (
                {
                    "type": type(stop_error).__name__,
                    "status": stop_error.status,
                    "message": str(stop_error),
                    "retryable": True,
                    "billed": False,
                }
                if stop_error is not None
                else {
                    "type": "NotSent",
                    "status": None,
                    "message": "the run stopped before this row was sent",
                    "retryable": True,
                    "billed": False,
                }
            )
            for row, recorded in zip(self.rows(), records, strict=True):
                record = recorded or failure_record(row.index, row.custom_id, NOT_SENT, reason, 0)
                record = lost_in_flight(record) if record["status"] == SENDING else record
                tally.add(record)
                yield record
            return
        for recorded in records:
            if recorded is None:  # pragma: no cover - ruled out by the count above
                raise BatchStateError("checkpoint lost a row while the output was written")
            record = lost_in_flight(recorded) if recorded["status"] == SENDING else recorded
            tally.add(record)
            yield record

    def finish(
        self,
        *,
        mode: BatchMode,
        mode_reason: str,
        requests_sent: int,
        stop_error: OpenRouterError | None = None,
        batch_ids: list[str] | None = None,
        submit_seconds: float = 0.0,
        wait_seconds: float = 0.0,
        landing_seconds: float = 0.0,
    ) -> BatchManifest:
        """Write the output from the checkpoint (input order), commit it, and return the manifest."""
        self.opened.close()
        tally = Tally()
        summary = write_output(self.spec.output_path, self._output_records(stop_error, tally))
        finished_at = datetime.now(UTC)
        manifest = BatchManifest(
            mode=mode,
            mode_reason=mode_reason,
            model=self.spec.model,
            input=self.spec.source.description,
            output_path=str(self.spec.output_path),
            identity=self.scanned.identity,
            counts=tally.counts(),
            tokens=tally.tokens(),
            cost=tally.cost,
            batch_ids=list(batch_ids or []),
            resumed_rows=self.resumed_rows,
            requests_sent=requests_sent,
            shard_index=self.spec.shard_index,
            shard_count=self.spec.shard_count,
            output_rows=summary.rows,
            output_sha256=summary.sha256,
            vectors=summary.vectors,
            timings=BatchTimings(
                started_at=self.started_at,
                finished_at=finished_at,
                wall_seconds=time.monotonic() - self._started,
                submit_seconds=submit_seconds,
                wait_seconds=wait_seconds,
                landing_seconds=landing_seconds,
            ),
        )
        write_commit_marker(self.spec.output_path, manifest.model_dump(mode="json"))
        self.log.info(
            "batch output committed: %s (%d rows: %d succeeded, %d failed, %d outcome unknown, %d not sent; "
            "%d tokens, cost %s USD)",
            manifest.output_path,
            manifest.counts.total,
            manifest.counts.succeeded,
            manifest.counts.failed,
            manifest.counts.outcome_unknown,
            manifest.counts.not_sent,
            manifest.tokens.total_tokens,
            plain_decimal(manifest.cost.normalize()),
        )
        return manifest
