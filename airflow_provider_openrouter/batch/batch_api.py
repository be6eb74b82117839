"""OpenRouter's Batch API (``POST /batches``, ``GET /batches/{id}``, ``GET /batches``) through the transport.

Submitting: the pending rows are cut into chunks of at most ``max_requests`` requests and ``max_bytes`` of
JSON, in input order, each chunk one batch. The state file ``<output>.batches.json`` brackets each submission:

1. before the POST, the chunk is written to the state file as an *intent* (its first and last row index, row
   count, and the time);
2. the POST carries ``X-Idempotency-Key`` = hash(identity, chunk number);
3. the moment the answer arrives, the batch id is written next to the intent.

Re-attaching: a retry, a cleared task or a new worker reads the state file first. A chunk with a batch id is
never submitted again; its batch is polled and landed. A chunk with an intent but no id (the worker died, or
the answer was lost, between 1 and 3) is looked up in ``GET /batches``: a batch of the same model and row
count, created from one minute before the intent on, not claimed by another chunk. One match is adopted; none
means the POST never created a batch, so the chunk is submitted; several is an error that names them (nothing
is sent). Landing checks that a batch's results carry only the chunk's custom_ids, so a wrong adoption cannot
land another batch's rows.

Landing: results come inline from ``GET /batches/{id}`` once the batch is terminal (there is no file
endpoint). Each result becomes an output record in the checkpoint, so a landing interrupted half-way resumes.
A chat result is validated into the run's ``output_type`` when it has one (``invalid_output`` when it does not
fit); an embeddings result (``endpoint="embeddings"``: the batch runs ``/v1/embeddings``) becomes an
:func:`~.outputs.embedding_record`.

Budget: with a ledger (:mod:`airflow_provider_openrouter.budget`), every row of a chunk is reserved (its
request's worst case) before the chunk's ``POST /batches``, in input order; the chunk is cut at the first row
that does not fit, and that row and every later one are not submitted (the output records them
``not_sent``; :attr:`BatchApiClient.budget_stop` says why). The reservations are kept in the state file, so
the landing, on another worker after the wait, settles each row with its result's cost, releases the rows
that never ran (not billed), and keeps those whose outcome is unknown for the cost audit. A submission
OpenRouter refuses releases its chunk's reservations.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_openrouter.batch import MAX_BATCH_REQUESTS
from airflow_provider_openrouter.batch._log import Log
from airflow_provider_openrouter.batch.engine import BatchJob, canonical_json
from airflow_provider_openrouter.batch.errors import BatchStateError
from airflow_provider_openrouter.batch.inputs import CHAT, EMBEDDINGS, BatchRow
from airflow_provider_openrouter.batch.outputs import (
    FAILED,
    answer_record,
    error_info,
    failure_record,
    publish,
    record_cost,
    sibling,
)
from airflow_provider_openrouter.exceptions import OpenRouterError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath
    from pydantic import BaseModel

    from airflow_provider_openrouter.budget.ledger import BudgetLedger

BATCH_ENDPOINTS = {CHAT: "/v1/chat/completions", EMBEDDINGS: "/v1/embeddings"}
"""The Batch API ``endpoint`` of each batch endpoint (:data:`~.inputs.ENDPOINTS`)."""
BATCH_ENDPOINT = BATCH_ENDPOINTS[CHAT]
TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
STATE_SUFFIX = ".batches.json"
STATE_VERSION = 1
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
_ADOPTION_SLACK_S = 60
# Per-result error types worth sending again in a later run (the request never ran).
_TRANSIENT_ERROR_TYPES = frozenset(
    {
        "server",
        "server_error",
        "provider_overloaded",
        "provider_unavailable",
        "rate_limit_exceeded",
        "timeout",
    }
)


class SyncTransport(Protocol):
    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]: ...

    def post(
        self, path: str, body: dict[str, Any], *, billable: bool = True, idempotency_key: str | None = None
    ) -> dict[str, Any]: ...


@dataclass
class ChunkState:
    """One chunk of rows and the batch that runs it (``batch_id`` is None while only the intent exists)."""

    chunk: int
    first_index: int
    last_index: int
    rows: int
    intent_at: float
    batch_id: str | None = None
    submitted_at: float | None = None
    landed: bool = False
    reservations: dict[str, list[Any]] = field(default_factory=dict)
    """custom_id -> [reservation id, period, amount in units] of each row's budget reservation."""


@dataclass
class BatchApiState:
    """The state file: which chunks exist and which batch runs each. Small (one entry per batch)."""

    identity: str
    model: str
    chunks: list[ChunkState] = field(default_factory=list)
    all_submitted: bool = False
    mode_reason: str = ""
    submit_seconds: float = 0.0
    budget_stop: str | None = None

    @property
    def batch_ids(self) -> list[str]:
        return [chunk.batch_id for chunk in self.chunks if chunk.batch_id]

    def to_json(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchApiState:
        return cls(
            identity=data["identity"],
            model=data["model"],
            chunks=[ChunkState(**chunk) for chunk in data.get("chunks", [])],
            all_submitted=bool(data.get("all_submitted")),
            mode_reason=str(data.get("mode_reason", "")),
            submit_seconds=float(data.get("submit_seconds", 0.0)),
            budget_stop=data.get("budget_stop"),
        )


def state_path(output_path: ObjectStoragePath) -> ObjectStoragePath:
    return sibling(output_path, STATE_SUFFIX)


def load_state(output_path: ObjectStoragePath, identity: str, model: str) -> BatchApiState:
    """The state of this identity; a fresh one when there is none (or only one of an older run)."""
    path = state_path(output_path)
    if not path.exists():
        return BatchApiState(identity=identity, model=model)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        state = BatchApiState.from_json(data)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise BatchStateError(
            f"The Batch API state file {path} cannot be read ({type(err).__name__}: {err}). It records which "
            "batches were submitted; restore it, or delete it to submit again (which pays again)"
        ) from err
    if state.identity != identity:
        return BatchApiState(identity=identity, model=model)
    return state


def save_state(output_path: ObjectStoragePath, state: BatchApiState) -> None:
    """Write the state file whole (partial file, then rename), so a crash leaves the old or the new one."""
    path = state_path(output_path)
    partial = sibling(output_path, f"{STATE_SUFFIX}.partial-{secrets.token_hex(4)}")
    with partial.open("w", encoding="utf-8") as handle:
        json.dump(state.to_json(), handle, indent=1)
    publish(partial, path)


def submission_key(identity: str, chunk: int) -> str:
    return "orbatch-" + hashlib.sha256(f"{identity}\nchunk {chunk}".encode()).hexdigest()[:48]


# -- submitting -------------------------------------------------------------------------------------------


@dataclass
class _Chunk:
    number: int
    rows: list[BatchRow]
    requests: list[dict[str, Any]]
    size: int


def _chunks(
    job: BatchJob, rows: Iterator[BatchRow], first_number: int, max_requests: int, max_bytes: int
) -> Iterator[_Chunk]:
    current = _Chunk(first_number, [], [], 0)
    for row in rows:
        request = {"custom_id": row.custom_id, "body": job.request_body(row)}
        size = len(canonical_json(request)) + 1
        if current.rows and (len(current.rows) >= max_requests or current.size + size > max_bytes):
            yield current
            current = _Chunk(current.number + 1, [], [], 0)
        current.rows.append(row)
        current.requests.append(request)
        current.size += size
    if current.rows:
        yield current


class BatchApiClient:
    """Submits, re-attaches and lands the batches of one :class:`BatchJob`.

    ``endpoint`` is what the rows run (``"chat"`` or ``"embeddings"``); ``output_type`` validates chat
    results (``invalid_output`` rows); ``ledger`` (an open budget ledger) reserves each submitted row's worst
    case and settles it on landing. Pass the same three to the client that lands as to the one that submits.
    """

    def __init__(
        self,
        job: BatchJob,
        transport: SyncTransport,
        *,
        max_requests: int = MAX_BATCH_REQUESTS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        provider: dict[str, Any] | None = None,
        log: Log,
        endpoint: str = CHAT,
        output_type: type[BaseModel] | None = None,
        ledger: BudgetLedger | None = None,
    ) -> None:
        self.job = job
        self.transport = transport
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.provider = provider
        self.log = log
        self.endpoint = endpoint
        self.output_type = output_type
        self.ledger = ledger
        self.requests_sent = 0
        scan = job.scanned
        self.state = load_state(job.spec.output_path, scan.identity, job.spec.model)

    def _save(self) -> None:
        save_state(self.job.spec.output_path, self.state)

    def submit_all(self, on_submitted: Callable[[list[str]], None] | None = None) -> list[str]:
        """Make sure every pending row is in a submitted batch; return every batch id of this run.

        ``on_submitted`` gets the ids known so far after each submission (the operator pushes them to XCom).
        """
        self._resolve_intents()
        if self._landed_batches_left_rows_to_send():
            self.log.info(
                "every earlier batch of this run has landed, and %d rows did not run in them (a batch failed "
                "or expired, or a request met a transient error, none billed); submitting them again",
                self.job.pending_count(),
            )
            self.state.all_submitted = False
        if not self.state.all_submitted:
            running = [entry for entry in self.state.chunks if not entry.landed]
            in_flight = [(entry.first_index, entry.last_index) for entry in running]
            rows = (
                row
                for row in self.job.pending_rows()
                if not any(first <= row.index <= last for first, last in in_flight)
            )
            first_number = max((entry.chunk for entry in self.state.chunks), default=-1) + 1
            self.state.budget_stop = None
            for chunk in _chunks(self.job, rows, first_number, self.max_requests, self.max_bytes):
                reservations = self._reserve(chunk)
                if chunk.rows:
                    self._submit(chunk, reservations)
                    if on_submitted is not None:
                        on_submitted(self.state.batch_ids)
                if self.state.budget_stop is not None:
                    break
            self.state.all_submitted = True
            self._save()
        return self.state.batch_ids

    def _landed_batches_left_rows_to_send(self) -> bool:
        """A new attempt after every batch of the earlier ones landed with rows to send again.

        Those rows are recorded as provably not billed and transient (or outcome-unknown with
        ``resend_unknown``), so they go into new chunks; rows in a batch still running are never resubmitted.
        """
        chunks = self.state.chunks
        return (
            self.state.all_submitted
            and bool(chunks)
            and all(entry.landed for entry in chunks)
            and self.job.pending_count() > 0
        )

    def note_submission(self, mode_reason: str, submit_seconds: float) -> None:
        """Keep why the Batch API was chosen and how long submitting took, for the manifest after the wait
        (a resumed task is a new instance, and the state file outlives it)."""
        self.state.mode_reason = mode_reason
        self.state.submit_seconds = submit_seconds
        self._save()

    @property
    def budget_stop(self) -> str | None:
        """Why rows were left unsubmitted (the budget ran out), or ``None``; kept across the wait."""
        return self.state.budget_stop

    def _reserve(self, chunk: _Chunk) -> dict[str, list[Any]]:
        """Reserve each row's worst case in input order; cut ``chunk`` at the first row that does not fit.

        The rows cut off are not submitted (they end ``not_sent``); ``state.budget_stop`` records why.
        """
        if self.ledger is None:
            return {}
        from airflow_provider_openrouter.budget import BudgetExhaustedError

        reservations: dict[str, list[Any]] = {}
        for position, request in enumerate(chunk.requests):
            try:
                held = self.ledger.reserve(request["body"])
            except BudgetExhaustedError as err:
                self.state.budget_stop = str(err)
                self.log.warning(
                    "budget: %d of the chunk's %d rows fit; the rest of this run's rows are not submitted "
                    "(%s)",
                    position,
                    len(chunk.rows),
                    err,
                )
                del chunk.rows[position:], chunk.requests[position:]
                break
            reservations[request["custom_id"]] = [held.reservation_id, held.period, held.amount_units]
        return reservations

    def _reservation(self, entry: ChunkState, custom_id: str) -> Any:
        """The budget reservation of a submitted row, rebuilt from the state file (``None`` without one)."""
        held = entry.reservations.get(custom_id)
        if self.ledger is None or held is None:
            return None
        from airflow_provider_openrouter.budget.ledger import Reservation

        reservation_id, period, units = held
        return Reservation(self.ledger, reservation_id, period, units, self.job.spec.model)

    def _release_all(self, entry: ChunkState) -> None:
        for custom_id in entry.reservations:
            reservation = self._reservation(entry, custom_id)
            if reservation is not None:
                reservation.release()

    def _submit(self, chunk: _Chunk, reservations: dict[str, list[Any]]) -> None:
        entry = ChunkState(
            chunk=chunk.number,
            first_index=chunk.rows[0].index,
            last_index=chunk.rows[-1].index,
            rows=len(chunk.rows),
            intent_at=time.time(),
            reservations=reservations,
        )
        self.state.chunks.append(entry)
        self._save()
        body: dict[str, Any] = {
            "endpoint": BATCH_ENDPOINTS[self.endpoint],
            "model": self.job.spec.model,
            "requests": chunk.requests,
            "completion_window": "24h",
        }
        if self.provider:
            body["provider"] = self.provider
        self.requests_sent += 1
        try:
            answer = self.transport.post(
                "/batches",
                body,
                billable=True,
                idempotency_key=submission_key(self.state.identity, chunk.number),
            )
        except OpenRouterError as err:
            if err.billed is False:
                # OpenRouter answered with an error, so no batch exists: drop the intent; a retry submits.
                self._release_all(entry)
                self.state.chunks.remove(entry)
                self._save()
                raise
            if self._adopt(entry) is None:
                raise  # the intent stays: the next attempt looks for the batch again before submitting
            return
        self._record_batch(entry, answer)

    def _record_batch(self, entry: ChunkState, answer: dict[str, Any]) -> None:
        batch_id = answer.get("id")
        if not isinstance(batch_id, str) or not batch_id:
            raise BatchStateError(f"POST /batches answered without a batch id: {sorted(answer)}")
        entry.batch_id = batch_id
        entry.submitted_at = time.time()
        self._save()
        self.log.info(
            "submitted batch %s: chunk %d, %d requests (rows %d..%d)",
            batch_id,
            entry.chunk,
            entry.rows,
            entry.first_index,
            entry.last_index,
        )

    def _resolve_intents(self) -> None:
        """Give every chunk that has only an intent its batch, or drop the intent so it is submitted."""
        for entry in list(self.state.chunks):
            if entry.batch_id is not None:
                continue
            if self._adopt(entry) is None:
                self.log.info("chunk %d was never created on OpenRouter; it will be submitted", entry.chunk)
                self.state.chunks.remove(entry)
                self.state.all_submitted = False
                self._save()

    def _adopt(self, entry: ChunkState) -> str | None:
        claimed = set(self.state.batch_ids)
        since = datetime.fromtimestamp(entry.intent_at - _ADOPTION_SLACK_S, tz=UTC)
        candidates = [
            item
            for item in self._list_batches(since)
            if item.get("model") == self.job.spec.model
            and (item.get("request_counts") or {}).get("total") == entry.rows
            and item.get("id") not in claimed
        ]
        if not candidates:
            return None
        if len(candidates) > 1:
            ids = ", ".join(str(item.get("id")) for item in candidates)
            raise BatchStateError(
                f"Chunk {entry.chunk} ({entry.rows} rows) was submitted but its answer was lost, and several "
                f"batches could be it: {ids}. Write the right id into "
                f"{state_path(self.job.spec.output_path)} "
                "(chunks[].batch_id) and retry; nothing was resubmitted"
            )
        self.log.warning(
            "chunk %d: the answer to its submission was lost; adopting batch %s (same model, %d requests, "
            "created after the submission); its results are checked against the chunk's custom_ids",
            entry.chunk,
            candidates[0]["id"],
            entry.rows,
        )
        self._record_batch(entry, candidates[0])
        return str(candidates[0]["id"])

    def _list_batches(self, since: datetime) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"limit": 100, "created_after": since.strftime("%Y-%m-%dT%H:%M:%SZ")}
        while True:
            page = self.transport.get("/batches", params)
            data = page.get("data") or []
            yield from data
            last_id = page.get("last_id")
            if not data or not last_id:
                return
            params = {**params, "after": last_id}

    # -- landing ------------------------------------------------------------------------------------------

    def pending_batch_ids(self) -> list[str]:
        return [chunk.batch_id for chunk in self.state.chunks if chunk.batch_id and not chunk.landed]

    def land_all(self) -> None:
        """Fetch every submitted batch not landed yet and record its rows in the checkpoint.

        One pass over the input; at most one chunk's rows and one batch's results are held at a time.
        """
        waiting = sorted(
            (entry for entry in self.state.chunks if entry.batch_id and not entry.landed),
            key=lambda entry: entry.first_index,
        )
        if not waiting:
            return
        chunks = iter(waiting)
        entry: ChunkState | None = next(chunks)
        rows: list[BatchRow] = []
        for row in self.job.rows():
            while entry is not None and row.index > entry.last_index:
                self._land(entry, rows)
                entry, rows = next(chunks, None), []
            if entry is None:
                break
            if row.index >= entry.first_index:
                rows.append(row)
        while entry is not None:
            self._land(entry, rows)
            entry, rows = next(chunks, None), []

    def _land(self, entry: ChunkState, chunk_rows: list[BatchRow]) -> None:
        batch = self.transport.get(f"/batches/{entry.batch_id}")
        status = batch.get("status")
        if status not in TERMINAL_STATUSES:
            raise BatchStateError(
                f"Batch {entry.batch_id} is {status!r}, not finished, though the wait reported it finished. "
                "Retry the task: it re-attaches to the batch and waits again"
            )
        results: dict[str, dict[str, Any]] = {
            str(result.get("custom_id")): result for result in batch.get("results") or []
        }
        unexpected = set(results) - {row.custom_id for row in chunk_rows}
        if unexpected:
            raise BatchStateError(
                f"Batch {entry.batch_id} holds results for custom_ids chunk {entry.chunk} never sent "
                f"(e.g. {sorted(unexpected)[:3]}), so it is not this run's batch. Remove it from "
                f"{state_path(self.job.spec.output_path)} and retry"
            )
        checkpoint = self.job.opened
        resend_unknown = self.job.spec.resend_unknown
        batch_error = (batch.get("error") or {}).get("message") or f"the batch ended {status!r}"
        landed = 0
        for row in chunk_rows:
            if not checkpoint.needs_sending(row.index, resend_unknown=resend_unknown):
                continue  # recorded by an earlier landing of this chunk
            record = _result_record(
                row,
                results.get(row.custom_id),
                batch_error,
                entry.batch_id or "",
                endpoint=self.endpoint,
                output_type=self.output_type,
            )
            checkpoint.record(record)
            _close_reservation(self._reservation(entry, row.custom_id), record)
            landed += 1
        entry.landed = True
        self._save()
        self.log.info(
            "landed batch %s (%s): %d rows recorded, %d results", entry.batch_id, status, landed, len(results)
        )
        if status != "completed":
            self.log.warning(
                "batch %s ended %s (%s): its %d rows without a result are recorded failed, not billed; a "
                "retry of the task submits them again",
                entry.batch_id,
                status,
                batch_error,
                entry.rows - len(results),
            )


def _close_reservation(reservation: Any, record: dict[str, Any]) -> None:
    """Settle a landed row's reservation with its cost, release it when the row provably was not billed,
    and keep it (for the cost audit) otherwise."""
    if reservation is None:
        return
    error = record.get("error") or {}
    if record.get("cost") is not None:
        reservation.settle(record_cost(record), record.get("generation_id"))
    elif error.get("billed") is False:
        reservation.release()
    else:
        reservation.keep(record.get("generation_id"))


def _result_record(
    row: BatchRow,
    result: dict[str, Any] | None,
    batch_error: str,
    batch_id: str,
    *,
    endpoint: str = CHAT,
    output_type: type[BaseModel] | None = None,
) -> dict[str, Any]:
    if result is None:  # the batch failed, expired or was cancelled before this request ran: not billed
        error = {
            "type": "BatchResultMissing",
            "status": None,
            "message": f"{batch_id}: {batch_error}",
            "retryable": True,
            "billed": False,
        }
        return failure_record(row.index, row.custom_id, FAILED, error, 1)
    response = result.get("response")
    if isinstance(response, dict) and isinstance(response.get("body"), dict) and not result.get("error"):
        try:
            return answer_record(row, response["body"], 1, endpoint=endpoint, output_type=output_type)
        except OpenRouterError as err:
            error = {**error_info(err), "message": f"{batch_id}: {err.message}"}
            error["status"] = response.get("status_code")
            return failure_record(row.index, row.custom_id, FAILED, error, 1)
    error_body = result.get("error") or {}
    error_type = error_body.get("error_type") or error_body.get("type")
    error = {
        "type": str(error_body.get("type") or "BatchRequestError"),
        "status": response.get("status_code") if isinstance(response, dict) else None,
        "message": str(error_body.get("message") or "the batch request failed"),
        "retryable": error_type in _TRANSIENT_ERROR_TYPES,
        "billed": False,
    }
    return failure_record(row.index, row.custom_id, FAILED, error, 1)
