"""The checkpoint: an append-only JSONL journal of finished rows; a rerun never requests a finished row again.

Layout: line 1 is a header ``{"checkpoint": 1, "identity": ..., "total": ...}``; every other line is one
row's record (see :mod:`airflow_provider_openrouter.batch.outputs`), carrying its ``index`` and ``custom_id``:
a ``sending`` record just before the row's request goes out, then its output record when it finishes. When a
row appears twice, the later line wins; a row whose last line is ``sending`` was in flight when the worker
died, so it may have been billed and counts as ``outcome_unknown``.

Crash safety:

* each record is one ``os.write`` to a file opened with ``O_APPEND``, done the moment the row finishes. Once
  ``record()`` returns, the line is in the kernel, so it survives SIGKILL of the worker;
* ``fsync`` runs at most every ``fsync_interval`` seconds (group commit) and on close, which bounds what a
  power loss can take without making every row wait for the disk;
* a SIGKILL in the middle of a write leaves a torn last line: opening the journal cuts it off (that row was
  not recorded, so it runs again; its idempotency key is the same);
* a journal whose header names another identity (other input rows, model or parameters) is refused, so rows
  from one input are never presented as results of another.

Outputs on object stores: a local disk may not outlive the worker (a Kubernetes pod), and an object store
cannot be appended to. There the journal is also *mirrored* (:class:`Mirror`): the lines written since the
last upload go up as one new immutable segment object. A ``sending`` record reaches the mirror before the
row's request leaves, so no request leaves before the mirror knows it may be billed: the concurrent engine
writes the ``sending`` records of a group of rows (:meth:`Checkpoint.record_many`) and uploads them as one
segment (:meth:`Checkpoint.upload_pending`) before it sends any row of the group; :meth:`Checkpoint.record`
uploads a ``sending`` record before it returns. Outcome records go up at most every ``mirror_interval``
seconds, and on close, where the segments are also compacted into one. Opening the journal on another machine
merges the segments into the local journal; where two histories disagree about a row, the record that says it
may have cost more wins (so a row that might have been billed is never resent). An outcome recorded after the
last upload is lost with the worker's disk; its row then reads as in flight (``outcome_unknown``), never as
unsent.

Memory: the journal keeps one 8-byte offset per row of the run (``array('q')``), never the records.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from airflow_provider_openrouter.batch.errors import BatchStateError
from airflow_provider_openrouter.batch.outputs import (
    FAILED,
    NOT_SENT,
    OUTCOME_UNKNOWN,
    SENDING,
    SUCCEEDED,
    dumps_record,
    loads_record,
)

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

CHECKPOINT_VERSION = 1
_MISSING = -1

# What a recorded row means for a rerun, one byte per slot. The order is how much a record says the row may
# have cost: merging two histories of one row keeps the higher, so a possibly billed row is never resent.
_NONE, _RESENDABLE, _SENDING, _UNKNOWN, _FINAL, _SUCCEEDED = 0, 1, 2, 3, 4, 5


def _code(record: dict[str, Any]) -> int:
    """``_RESENDABLE``: failed, provably not billed and transient, so sending it again is safe."""
    status = record.get("status")
    if status == SUCCEEDED:
        return _SUCCEEDED
    if status == SENDING:
        return _SENDING
    if status == OUTCOME_UNKNOWN:
        return _UNKNOWN
    if status == NOT_SENT:
        return _NONE
    error = record.get("error")
    if (
        status == FAILED
        and isinstance(error, dict)
        and error.get("billed") is False
        and error.get("retryable")
    ):
        return _RESENDABLE
    return _FINAL


class Mirror:
    """A journal's copy on an object store: ``header.json`` and immutable ``part-00000001.jsonl``, ..."""

    def __init__(self, root: ObjectStoragePath, header: dict[str, Any]) -> None:
        self.root = root
        self._header = header
        self._segments: int | None = None

    def _parts(self) -> list[ObjectStoragePath]:
        if not self.root.exists():
            return []
        return sorted(
            (part for part in self.root.iterdir() if part.name.startswith("part-")),
            key=lambda part: part.name,
        )

    @staticmethod
    def _last_number(parts: list[ObjectStoragePath]) -> int:
        """The number of the newest segment (0 for none): the next upload takes the one after it."""
        return int(parts[-1].name.removeprefix("part-").removesuffix(".jsonl")) if parts else 0

    def check(self) -> None:
        """Refuse a mirror of another identity (reads only)."""
        header_path = self.root / "header.json"
        if header_path.exists():
            header = _parse(header_path.read_bytes())
            if header is None or header.get("identity") != self._header["identity"]:
                raise BatchStateError(
                    f"Checkpoint mirror {self.root} belongs to a different batch (other input rows, model or "
                    "parameters). Delete it to start over, or write to another output_path"
                )

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record of every segment, oldest first; refuses a mirror of another identity."""
        self.check()
        parts = self._parts()
        self._segments = self._last_number(parts)
        for part in parts:
            for line in part.read_bytes().splitlines():
                record = _parse(line)
                if record is None:
                    raise BatchStateError(f"Checkpoint mirror segment {part} is corrupt; delete the mirror")
                yield record

    def upload(self, data: bytes | BinaryIO) -> None:
        """Store ``data`` (whole journal lines, or a file positioned at them) as the next segment."""
        if self._segments is None:
            self._segments = self._last_number(self._parts())
        if self._segments == 0:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / "header.json").write_text(json.dumps(self._header), encoding="utf-8")
        self._segments += 1
        segment = self.root / f"part-{self._segments:08d}.jsonl"
        if isinstance(data, bytes):
            segment.write_bytes(data)
            return
        with segment.open("wb") as out:
            shutil.copyfileobj(data, out)

    def compact(self, journal: Path) -> None:
        """Replace every segment with one copy of ``journal``'s records (a superset of them all).

        Streamed, not read whole. The new segment is written before the old ones are deleted, and merging is
        idempotent, so a crash in between leaves duplicates, never a gap.
        """
        older = self._parts()
        if len(older) <= 1:
            return
        with journal.open("rb") as handle:
            handle.readline()  # the header is header.json's
            self.upload(handle)
        for part in older:
            part.unlink()


class Checkpoint:
    """The journal for one run of ``total`` rows; ``slot`` maps a row's input index to 0..total-1.

    Thread-safe: worker threads call :meth:`record` concurrently. ``mirror``: a directory on an object store
    that keeps copies of the journal (for outputs there).
    """

    def __init__(
        self,
        path: Path,
        *,
        identity: str,
        total: int,
        shard_count: int = 1,
        fsync_interval: float = 0.2,
        mirror: ObjectStoragePath | None = None,
        mirror_interval: float = 10.0,
    ) -> None:
        self.path = path
        self.identity = identity
        self.total = total
        self._shard_count = shard_count
        self._fsync_interval = fsync_interval
        self._offsets = array("q", [_MISSING]) * total
        self._codes = bytearray(total)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._last_fsync = 0.0
        self._dirty = False
        self._header = {"checkpoint": CHECKPOINT_VERSION, "identity": identity, "total": total}
        self._mirror = Mirror(mirror, self._header) if mirror is not None else None
        self._mirror_interval = mirror_interval
        self._mirror_lock = threading.Lock()
        self._mirrored = 0  # bytes of the local journal that the mirror holds
        self._last_mirror = time.monotonic()

    def slot(self, index: int) -> int:
        return index // self._shard_count

    # -- opening and resuming ----------------------------------------------------------------------------

    def check(self) -> None:
        """Refuse a journal (or mirror) that belongs to another identity, reading only: a refused run must
        not change anything on disk, least of all the earlier run's output and commit marker."""
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open("rb") as handle:
                self._check_header(_parse(handle.readline()))
        if self._mirror is not None:
            self._mirror.check()

    def _check_header(self, header: dict[str, Any] | None) -> None:
        if header is None or header.get("checkpoint") != CHECKPOINT_VERSION:
            raise BatchStateError(
                f"Checkpoint {self.path} has no valid header; it was not written by this operator. "
                "Move it away (or choose another output_path) and run again."
            )
        if header.get("identity") != self.identity:
            raise BatchStateError(
                f"Checkpoint {self.path} belongs to a different batch (other input rows, model or "
                "parameters). Delete it to start over, or write to another output_path."
            )

    def open(self) -> int:
        """Open (creating or resuming) the journal; return how many rows it already holds.

        Raises :class:`BatchStateError` when the file belongs to another identity or is corrupt before its
        last line, and ``OSError`` when the directory cannot be written. A journal this call created is
        removed again when opening fails, so a refused run leaves no half-made checkpoint behind.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not (self.path.exists() and self.path.stat().st_size > 0)
        try:
            if created:
                self.path.write_bytes(dumps_record(self._header))
                self._size = self.path.stat().st_size
            else:
                self._load_existing()
            header_end = len(dumps_record(self._header))
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            self._sync_directory()
            if self._mirror is not None:
                self._merge_mirror(self._mirror, header_end)
        except BaseException:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if created:
                self.path.unlink(missing_ok=True)
            raise
        return self.recorded_count()

    def _merge_mirror(self, mirror: Mirror, header_end: int) -> None:
        """Append what the mirror knows and the local journal does not; note what the mirror lacks."""
        in_mirror = bytearray(self.total)
        for record in mirror.records():
            self._check_index(record)
            slot = self.slot(record["index"])
            in_mirror[slot] = 1
            if _code(record) > self._codes[slot]:
                self.record(record, mirror_now=False)
        local_only = any(
            offset != _MISSING and not in_mirror[slot] for slot, offset in enumerate(self._offsets)
        )
        # Records only this disk holds (an earlier attempt here) go up with the next upload.
        self._mirrored = header_end if local_only else self._size

    def _load_existing(self) -> None:
        good_end = 0
        with self.path.open("rb") as handle:
            first = handle.readline()
            self._check_header(_parse(first))
            good_end = len(first)
            line_number = 1
            for raw in handle:
                line_number += 1
                record = _parse(raw) if raw.endswith(b"\n") else None
                if record is None:
                    if handle.read(1):
                        raise BatchStateError(
                            f"Checkpoint {self.path} is corrupt at line {line_number} (not JSON). "
                            "Restore it or delete it; deleting it resends rows that were already paid for."
                        )
                    break  # a torn last line from a crash mid-write: that row was never recorded
                self._remember(record, good_end)
                good_end += len(raw)
        if good_end < self.path.stat().st_size:
            with self.path.open("r+b") as handle:
                handle.truncate(good_end)
        self._size = good_end

    def _check_index(self, record: dict[str, Any]) -> None:
        index = record.get("index")
        if not isinstance(index, int):
            raise BatchStateError(f"Checkpoint {self.path} holds a record without an index; delete it.")
        if not 0 <= self.slot(index) < self.total:
            raise BatchStateError(
                f"Checkpoint {self.path} holds row index {index}, outside this input of {self.total} rows. "
                "Delete it to start over."
            )

    def _remember(self, record: dict[str, Any], offset: int) -> None:
        self._check_index(record)
        slot = self.slot(record["index"])
        self._offsets[slot] = offset
        self._codes[slot] = _code(record)

    # -- writing -----------------------------------------------------------------------------------------

    @property
    def mirrored(self) -> bool:
        """Whether the journal has a mirror on an object store (the output is there)."""
        return self._mirror is not None

    @property
    def mirror_interval(self) -> float:
        """Seconds between uploads of outcome records to the mirror."""
        return self._mirror_interval

    def record(self, record: dict[str, Any], *, mirror_now: bool = True) -> None:
        """Append one row's record (with ``index`` and ``custom_id``); durable against SIGKILL on return.

        With a mirror and ``mirror_now``, a ``sending`` record is uploaded before this returns and other
        records at most every ``mirror_interval`` seconds. The concurrent engine passes ``mirror_now=False``
        and uploads groups itself (:meth:`record_many`, :meth:`upload_pending`).
        """
        end, now = self._append((record,))
        if not mirror_now or self._mirror is None:
            return
        if record.get("status") == SENDING:
            self._upload(through=end)
        elif now - self._last_mirror >= self._mirror_interval:
            self._upload()

    def record_many(self, records: list[dict[str, Any]]) -> None:
        """Append several records with one write (durable against SIGKILL on return); no upload."""
        if records:
            self._append(records)

    def upload_pending(self) -> None:
        """Upload what the mirror does not hold yet, as one segment (nothing without a mirror)."""
        if self._mirror is not None:
            self._upload()

    def _append(self, records: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> tuple[int, float]:
        """One ``os.write`` of the records' lines; returns the journal's end and the time."""
        lines = [dumps_record(record) for record in records]
        data = b"".join(lines)
        with self._lock:
            if self._fd is None:
                raise BatchStateError(f"Checkpoint {self.path} is not open")
            offset = self._size
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            self._size += len(data)
            for record, line in zip(records, lines, strict=True):
                slot = self.slot(record["index"])
                self._offsets[slot] = offset
                self._codes[slot] = _code(record)
                offset += len(line)
            self._dirty = True
            now = time.monotonic()
            sync_fd = self._fd if now - self._last_fsync >= self._fsync_interval else None
            if sync_fd is not None:
                self._last_fsync = now
                self._dirty = False
            end = self._size
        if sync_fd is not None:
            # Outside the lock: the disk flush (milliseconds) must not stall the other writers' appends.
            os.fsync(sync_fd)
        return end, now

    def _upload(self, *, through: int = 0) -> None:
        """Send the journal's lines written since the last upload to the mirror, as one new segment.

        ``through``: nothing to do when an upload (perhaps another thread's) already covered that offset.
        """
        assert self._mirror is not None
        with self._mirror_lock:
            if through and self._mirrored >= through:
                return
            self._last_mirror = time.monotonic()
            end = self._size  # whole lines only: _size moves by complete records
            if end <= self._mirrored:
                return
            with self.path.open("rb") as handle:
                handle.seek(self._mirrored)
                data = handle.read(end - self._mirrored)
            self._mirror.upload(data)
            self._mirrored = end

    def close(self) -> None:
        with self._lock:
            if self._fd is None:
                return
            if self._dirty:
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        if self._mirror is not None:
            self._upload()
            with self._mirror_lock:
                self._mirror.compact(self.path)

    def _sync_directory(self) -> None:
        """Make the journal's directory entry durable, so a machine crash cannot lose the whole file."""
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    # -- reading -----------------------------------------------------------------------------------------

    def needs_sending(self, index: int, *, resend_unknown: bool = False) -> bool:
        """True unless the row is recorded with an outcome a rerun must keep.

        Kept: succeeded rows, and failures that were billed or would fail again. Sent again: rows never
        recorded, failures that were provably not billed and transient, and (only with ``resend_unknown``)
        rows whose outcome is unknown.
        """
        code = self._codes[self.slot(index)]
        return code in (_NONE, _RESENDABLE) or (resend_unknown and code in (_SENDING, _UNKNOWN))

    def pending_count(self, *, resend_unknown: bool = False) -> int:
        wanted = {_NONE, _RESENDABLE} | ({_SENDING, _UNKNOWN} if resend_unknown else set())
        return sum(self._codes.count(code) for code in wanted)

    def recorded_count(self) -> int:
        return self.total - self._offsets.count(_MISSING)

    def records_in_order(self) -> Iterator[JournalRecord | None]:
        """Every slot's latest record in input order (``None`` for a slot without one), one read at a time."""
        with self.path.open("rb") as handle:
            for offset in self._offsets:
                if offset == _MISSING:
                    yield None
                    continue
                handle.seek(offset)
                line = handle.readline()
                record = _parse(line)
                if record is None:
                    raise BatchStateError(f"Checkpoint {self.path} changed under this run at byte {offset}")
                yield JournalRecord(record, line)


class JournalRecord(dict[str, Any]):
    """A record read back from the journal; ``line`` is its line there, as :func:`dumps_record` wrote it."""

    __slots__ = ("line",)

    def __init__(self, record: dict[str, Any], line: bytes) -> None:
        super().__init__(record)
        self.line = line


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        value = loads_record(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None
