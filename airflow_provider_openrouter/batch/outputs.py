"""Output records and the output JSONL, written so that a half-written file is never presented as complete.

One output line per input row, in input order::

    {"custom_id": "row-1", "index": 0, "status": "succeeded", "text": "...", "finish_reason": "stop",
     "model": "openai/gpt-4o-mini", "generation_id": "gen-...", "usage": {...}, "cost": 0.000021,
     "tool_calls": null, "error": null, "attempts": 1}

``status`` is one of :data:`STATUSES`. ``error`` is ``null`` on success, else ``{"type", "status", "message",
"retryable", "billed"}``. ``invalid_output`` is a paid answer that does not validate into the run's
``output_type``: its text, usage and cost are kept and ``error`` holds the validation errors; it counts as a
row that did not succeed. A row validated into an ``output_type`` also has ``output``, the instance as JSON.

An embeddings row (:func:`embedding_record`) has ``model``, ``generation_id``, ``usage``, ``cost``,
``dimensions`` and, in the checkpoint, ``embedding`` (the vector); :func:`write_output` moves the vectors to
a Parquet or JSONL file next to the output (:mod:`.vectors`), so the output lines stay small.

``cost`` is the USD amount OpenRouter reported (``usage.cost``), ``null`` if none, written in plain decimal
notation (``0.00000015``, never ``1.5e-07``), as every money amount here.

Commit protocol (local paths and object stores alike):

1. before a run writes anything, the previous commit marker ``<output>.manifest.json`` is removed, so an old
   marker never vouches for a new, unfinished output;
2. the lines go to ``<output>.partial-<token>``, which is then renamed onto ``<output>`` (``os.replace`` on a
   local path; a copy that appears whole, then a delete, on an object store);
3. only then is the commit marker written: it holds the manifest with the row count and SHA-256 of the output.

A reader trusts ``<output>`` only when the marker exists and matches; :func:`read_commit_marker` does that.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pydantic import ValidationError

from airflow_provider_openrouter.batch.errors import BatchInputError
from airflow_provider_openrouter.embeddings import Embeddings
from airflow_provider_openrouter.exceptions import OpenRouterResponseError
from airflow_provider_openrouter.models import ChatCompletion, plain_decimal

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath
    from pydantic import BaseModel

    from airflow_provider_openrouter.batch.inputs import BatchRow
    from airflow_provider_openrouter.batch.vectors import VectorFile, VectorWriter

SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
OUTCOME_UNKNOWN: Final = "outcome_unknown"
NOT_SENT: Final = "not_sent"
INVALID_OUTPUT: Final = "invalid_output"
"""A paid answer that does not validate into the ``output_type``: kept (never resent), not a success."""
STATUSES: Final = (SUCCEEDED, FAILED, OUTCOME_UNKNOWN, NOT_SENT, INVALID_OUTPUT)
SENDING: Final = "sending"
"""Checkpoint-only status: the row's request is about to go out. Found without a later record on resume, it
means the worker died with the request in flight, so the row may have been billed: it becomes
``outcome_unknown`` and is not resent automatically."""

MARKER_SUFFIX = ".manifest.json"


def sibling(path: ObjectStoragePath, suffix: str) -> ObjectStoragePath:
    """``path`` with ``suffix`` appended to its name, in the same directory and store."""
    return path.with_name(path.name + suffix)


def is_local(path: ObjectStoragePath) -> bool:
    return path.protocol in ("", "file", "local")


# -- records ---------------------------------------------------------------------------------------------


def error_info(err: BaseException) -> dict[str, Any]:
    """The JSON form of a row's error: machine-readable fields first, then the one-line message."""
    return {
        "type": type(err).__name__,
        "status": getattr(err, "status", None),
        "message": str(err),
        "retryable": getattr(err, "retryable", None),
        "billed": getattr(err, "billed", None),
    }


def success_record(
    index: int,
    custom_id: str,
    completion: ChatCompletion,
    attempts: int,
    output_type: type[BaseModel] | None = None,
) -> dict[str, Any]:
    """The output record of a chat completion (from /chat/completions or a Batch API result).

    With ``output_type`` (the batch's pydantic class), the answer is validated into it
    (:func:`~airflow_provider_openrouter.structured.validate_output`): valid, the record is ``succeeded`` and
    carries ``output`` (the instance as JSON); invalid, it is ``invalid_output`` with the validation errors
    in ``error`` (``billed`` true) and the answer's text, usage and cost kept. Money stays Decimal here;
    :func:`dumps_record` writes it as a JSON number.
    """
    usage = completion.usage.model_dump(exclude_none=True) if completion.usage is not None else None
    tool_calls = [call.model_dump(mode="json", exclude_none=True) for call in completion.tool_calls]
    record: dict[str, Any] = {
        "custom_id": custom_id,
        "index": index,
        "status": SUCCEEDED,
        "text": completion.text,
        "finish_reason": completion.finish_reason,
        "model": completion.model,
        "generation_id": completion.id,
        "usage": usage,
        "cost": completion.cost,
        "tool_calls": tool_calls or None,
        "error": None,
        "attempts": attempts,
    }
    if output_type is None:
        return record
    from airflow_provider_openrouter.structured import InvalidOutputError, validate_output

    try:
        record["output"] = validate_output(output_type, completion).model_dump(mode="json")
    except InvalidOutputError as err:
        record.update(status=INVALID_OUTPUT, output=None, error=error_info(err))
    return record


def embedding_record(index: int, custom_id: str, embeddings: Embeddings, attempts: int) -> dict[str, Any]:
    """The record of one embedded row (from ``POST /embeddings`` or a Batch API ``/v1/embeddings`` result).

    A batch row embeds one input, so the answer holds one vector; it goes into ``embedding`` (moved to the
    vectors file when the output is written). An answer with another number of vectors was still paid for:
    it is recorded ``failed`` with ``billed`` true and its cost, and never resent.
    """
    usage = embeddings.usage.model_dump(exclude_none=True) if embeddings.usage is not None else None
    vectors = embeddings.vectors
    record: dict[str, Any] = {
        "custom_id": custom_id,
        "index": index,
        "status": SUCCEEDED,
        "model": embeddings.model,
        "generation_id": embeddings.id,
        "usage": usage,
        "cost": embeddings.cost,
        "dimensions": len(vectors[0]) if len(vectors) == 1 else None,
        "embedding": vectors[0] if len(vectors) == 1 else None,
        "error": None,
        "attempts": attempts,
    }
    if len(vectors) != 1:
        record.update(
            status=FAILED,
            error={
                "type": "OpenRouterResponseError",
                "status": None,
                "message": f"the answer holds {len(vectors)} vectors for one input row",
                "retryable": False,
                "billed": True,
            },
        )
    return record


def answer_record(
    row: BatchRow,
    answer: Mapping[str, Any],
    attempts: int,
    *,
    endpoint: str = "chat",
    output_type: type[BaseModel] | None = None,
) -> dict[str, Any]:
    """The record of a row's answer body: a ``/chat/completions`` answer (validated into ``output_type`` when
    given, see :func:`success_record`) or, for ``endpoint="embeddings"``, an ``/embeddings`` answer (see
    :func:`embedding_record`). The concurrent engine and the Batch API landing both build rows' records here.

    Raises :class:`~airflow_provider_openrouter.exceptions.OpenRouterResponseError` (``billed=True``: the
    answer arrived, so it was paid for) when the body is not of the endpoint's type.
    """
    expected: type[ChatCompletion] | type[Embeddings] = (
        Embeddings if endpoint == "embeddings" else ChatCompletion
    )
    try:
        parsed = expected.model_validate(answer)
    except ValidationError as err:
        generation_id = answer.get("id")
        raise OpenRouterResponseError(
            f"the answer does not fit {expected.__name__}: {str(err).splitlines()[0]}",
            generation_id=generation_id if isinstance(generation_id, str) else None,
            billed=True,
        ) from None
    if isinstance(parsed, Embeddings):
        return embedding_record(row.index, row.custom_id, parsed, attempts)
    return success_record(row.index, row.custom_id, parsed, attempts, output_type)


def sending_record(index: int, custom_id: str) -> dict[str, Any]:
    return {"custom_id": custom_id, "index": index, "status": SENDING}


def lost_in_flight(record: dict[str, Any]) -> dict[str, Any]:
    """The output record of a row whose request was in flight when an earlier worker died."""
    error = {
        "type": "WorkerLost",
        "status": None,
        "message": "the worker stopped while this request was in flight; it may have run and been billed",
        "retryable": False,
        "billed": None,
    }
    return failure_record(record["index"], record["custom_id"], OUTCOME_UNKNOWN, error, 1)


def failure_record(
    index: int, custom_id: str, status: str, error: dict[str, Any], attempts: int
) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "index": index,
        "status": status,
        "text": None,
        "finish_reason": None,
        "model": None,
        "generation_id": error.get("generation_id"),
        "usage": None,
        "cost": None,
        "tool_calls": None,
        "error": error,
        "attempts": attempts,
    }


def record_cost(record: dict[str, Any]) -> Decimal:
    """The row's cost as an exact Decimal (the JSON float's shortest repr is the amount OpenRouter sent)."""
    cost = record.get("cost")
    if cost is None or isinstance(cost, bool):
        return Decimal(0)
    try:
        return cost if isinstance(cost, Decimal) else Decimal(str(cost))
    except InvalidOperation:
        return Decimal(0)


# A Decimal leaves the encoder as a string between two marks; the marks and the string's quotes are then
# removed, so it is written as a JSON number in plain notation (json writes a float as 1.5e-07 and has no hook
# for its own number text). The marks are random per process: no text from an answer can imitate them.
_NUMBER_OPEN = '"\u2063' + secrets.token_hex(8)
_NUMBER_CLOSE = "\u2064" + secrets.token_hex(8) + '"'


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal) and value.is_finite():
        return _NUMBER_OPEN[1:] + plain_decimal(value) + _NUMBER_CLOSE[:-1]
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# One encoder and one decoder for every line: json.dumps and json.loads build a new one per call when given
# options, which cost as much as encoding a record.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default).encode
_decode = json.JSONDecoder(parse_float=Decimal).decode


def dumps_record(record: dict[str, Any]) -> bytes:
    """One JSONL line (with its newline) for the checkpoint and the output; Decimals in plain notation."""
    text = _encode(record)
    if _NUMBER_OPEN in text:
        text = text.replace(_NUMBER_OPEN, "").replace(_NUMBER_CLOSE, "")
    return (text + "\n").encode("utf-8")


def loads_record(raw: bytes | str) -> Any:
    """A JSONL line as written by :func:`dumps_record`: numbers with a fraction come back as exact Decimals,
    so a cost read back from the checkpoint is written to the output exactly as OpenRouter reported it."""
    return _decode(raw.decode("utf-8") if isinstance(raw, bytes) else raw)


# -- the output file -------------------------------------------------------------------------------------


def check_output_location(output_path: ObjectStoragePath) -> None:
    """Refuse an ``output_path`` that cannot become the output file, before anything is written anywhere.

    A directory (an existing one, or an object-store prefix holding objects) is refused, and so is a local
    path under a file or under a directory this process may not write to.
    """
    try:
        is_directory = output_path.is_dir()
    except (OSError, ValueError):
        is_directory = False  # unreachable storage: probe_writable reports it
    if is_directory:
        raise BatchInputError(
            f"output_path {output_path} is a directory; give the path of the output file in it, such as "
            f"{output_path / 'results.jsonl'}"
        )
    if not is_local(output_path):
        return
    existing = Path(output_path.path).parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise BatchInputError(
            f"output_path {output_path} cannot be written: {existing} is a file, not a directory. Give a "
            "path in a directory"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BatchInputError(
            f"output_path {output_path} cannot be written: this process may not write to {existing}. Give "
            "a path in a writable directory"
        )


def probe_writable(output_path: ObjectStoragePath) -> None:
    """Create the output's directory and write/delete a probe file; raise :class:`BatchInputError` if not."""
    probe = sibling(output_path, f".probe-{secrets.token_hex(4)}")
    try:
        if is_local(output_path):
            output_path.parent.mkdir(parents=True, exist_ok=True)
        with probe.open("wb") as handle:
            handle.write(b"{}\n")
        probe.unlink()
    except (OSError, ValueError) as err:
        raise BatchInputError(
            f"output_path {output_path} cannot be written ({type(err).__name__}: {err}). "
            "Fix the path or the storage connection's permissions"
        ) from err


def remove_commit_marker(output_path: ObjectStoragePath) -> None:
    marker = sibling(output_path, MARKER_SUFFIX)
    if marker.exists():
        marker.unlink()


def read_commit_marker(output_path: ObjectStoragePath) -> dict[str, Any] | None:
    """The committed manifest of ``output_path``, or ``None`` when the output is absent or not committed."""
    marker = sibling(output_path, MARKER_SUFFIX)
    try:
        if not marker.exists() or not output_path.exists():
            return None
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_commit_marker(output_path: ObjectStoragePath, manifest_json: dict[str, Any]) -> None:
    marker = sibling(output_path, MARKER_SUFFIX)
    partial = sibling(output_path, f"{MARKER_SUFFIX}.partial-{secrets.token_hex(4)}")
    with partial.open("w", encoding="utf-8") as handle:
        json.dump(manifest_json, handle, indent=2, sort_keys=True)
    publish(partial, marker)


class OutputSummary:
    """What was written: row count and SHA-256 of the bytes, for the commit marker; ``vectors`` is the vectors
    file of an embeddings run (``None`` when no row had a vector)."""

    def __init__(self) -> None:
        self.rows = 0
        self.bytes = 0
        self.vectors: VectorFile | None = None
        self._digest = hashlib.sha256()

    def add(self, data: bytes) -> None:
        self.rows += 1
        self.bytes += len(data)
        self._digest.update(data)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


def write_output(output_path: ObjectStoragePath, records: Iterable[dict[str, Any]]) -> OutputSummary:
    """Write ``records`` as JSONL to a partial file, then move it onto ``output_path`` in one step.

    A record's ``embedding`` goes to the vectors file next to the output (``<output>.vectors.parquet``, or
    ``.vectors.jsonl`` without pyarrow), which is published before the output, so a committed output always
    has its vectors; ``summary.vectors`` says where they are.
    """
    summary = OutputSummary()
    partial = sibling(output_path, f".partial-{secrets.token_hex(4)}")
    vectors: VectorWriter | None = None  # made for the first vector: a chat batch never looks for pyarrow
    try:
        with partial.open("wb") as handle:
            # Lines go out in chunks: each write to an ObjectStoragePath's file is also a lineage event.
            chunk: list[bytes] = []
            chunk_bytes = 0
            for record in records:
                data = _journal_line(record)
                if data is None:
                    vector = record.pop("embedding", None)
                    if vector is not None:
                        vectors = vectors or _vector_writer(output_path)
                        vectors.add({**record, "embedding": vector})
                    data = dumps_record(record)
                chunk.append(data)
                chunk_bytes += len(data)
                summary.add(data)
                if chunk_bytes >= _WRITE_CHUNK_BYTES:
                    handle.write(b"".join(chunk))
                    chunk, chunk_bytes = [], 0
            handle.write(b"".join(chunk))
            if is_local(partial):
                handle.flush()
                os.fsync(handle.fileno())
        summary.vectors = vectors.commit() if vectors is not None else None
        publish(partial, output_path)
    except BaseException:
        if vectors is not None:
            vectors.abort()
        if partial.exists():
            partial.unlink()
        raise
    return summary


_WRITE_CHUNK_BYTES = 1 << 20


def _journal_line(record: dict[str, Any]) -> bytes | None:
    """The record's checkpoint line when it is already the output line (``None``: encode the record).

    A record read back from the checkpoint carries the line :func:`dumps_record` wrote for it. Encoding the
    record again gives the same bytes (Decimals come back as written, in plain notation), except for a float
    that was written with an exponent (``1e-05``): it comes back a Decimal and would be written plain. A line
    with ``e-`` or ``e+`` anywhere (in text too) is therefore encoded again, and so is one with a vector.
    """
    line: bytes | None = getattr(record, "line", None)
    if line is None or b"e-" in line or b"e+" in line or "embedding" in record:
        return None
    return line


def _vector_writer(output_path: ObjectStoragePath) -> VectorWriter:
    from airflow_provider_openrouter.batch.vectors import VectorWriter, batch_vector_path

    return VectorWriter(*batch_vector_path(output_path))


def publish(partial: ObjectStoragePath, final: ObjectStoragePath) -> None:
    """Move a fully written ``partial`` onto ``final`` (a rename locally; copy, then delete, on a store)."""
    if is_local(final):
        os.replace(partial.path, final.path)
        directory = os.open(os.path.dirname(final.path) or ".", os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    else:
        partial.move(final)
