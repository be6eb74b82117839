"""Embedding vectors as a file on ObjectStoragePath: Parquet where pyarrow is installed, else JSONL.

One row per embedded input, in input order, with the columns :data:`COLUMNS`: ``custom_id``, ``index`` (the
row's 0-based position in the input), ``model``, ``dimensions``, ``cost`` and ``embedding`` (the floats).
Money is plain decimal text in both formats (Parquet: a string column, as the cost audit writes it), so no
reader rounds it. Parquet is written one row group at a time, so memory holds at most :data:`ROW_GROUP`
vectors however long the input.

The file appears whole or not at all: rows go to ``<path>.partial-<token>``, which :meth:`VectorWriter.commit`
publishes onto the path (a rename locally; copy, then delete, on an object store), as the batch output is.

Where the file goes: :func:`vector_path` picks it from the path the user gave (``.parquet`` or ``.jsonl``);
a ``.parquet`` path where pyarrow is missing becomes the same name with ``.jsonl``, and says so.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import BaseModel, ConfigDict

from airflow_provider_openrouter.batch.errors import BatchInputError
from airflow_provider_openrouter.batch.outputs import dumps_record, loads_record, publish, sibling
from airflow_provider_openrouter.models import plain_decimal, register_with_serde

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

VectorFormat = Literal["parquet", "jsonl"]
COLUMNS: Final = ("custom_id", "index", "model", "dimensions", "cost", "embedding")
ROW_GROUP: Final = 1024
BATCH_VECTORS_SUFFIX: Final = ".vectors"
"""A batch's vectors go next to its output: ``<output>.vectors.parquet`` (or ``.vectors.jsonl``)."""
_SUFFIXES: Final[dict[str, VectorFormat]] = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def _pyarrow() -> tuple[Any, Any] | None:
    """``(pyarrow, pyarrow.parquet)``, or ``None`` where pyarrow is not installed (it is no dependency)."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        return None
    return pyarrow, pyarrow.parquet


def pyarrow_available() -> bool:
    return _pyarrow() is not None


def _require_pyarrow() -> tuple[Any, Any]:
    modules = _pyarrow()
    if modules is None:
        raise BatchInputError(
            "Parquet vectors need pyarrow, which is not installed; install it or use .jsonl"
        )
    return modules


class VectorFile(BaseModel):
    """Where the vectors were written: the file, its format, and how many vectors of which length."""

    model_config = ConfigDict(frozen=True)

    path: str
    format: VectorFormat
    rows: int
    dimensions: int | None = None


def vector_path(path: ObjectStoragePath) -> tuple[ObjectStoragePath, VectorFormat]:
    """The file the vectors of ``path`` go to, and its format.

    ``.parquet`` is Parquet where pyarrow is installed, else the same name ending ``.jsonl``; ``.jsonl`` (or
    ``.ndjson``) is JSONL; any other name is refused with a one-line error (nothing was sent).
    """
    name = path.name.lower()
    for suffix, kind in _SUFFIXES.items():
        if name.endswith(suffix):
            if kind == "parquet" and not pyarrow_available():
                return path.with_name(path.name[: -len(suffix)] + ".jsonl"), "jsonl"
            return path, kind
    raise BatchInputError(
        f"output_path {path} has no known suffix for vectors: end it with .parquet (written as JSONL where "
        "pyarrow is not installed) or .jsonl"
    )


def batch_vector_path(output_path: ObjectStoragePath) -> tuple[ObjectStoragePath, VectorFormat]:
    """Where a batch's vectors go: next to its output, ``<output>.vectors.parquet`` or ``.vectors.jsonl``."""
    kind: VectorFormat = "parquet" if pyarrow_available() else "jsonl"
    return sibling(output_path, f"{BATCH_VECTORS_SUFFIX}.{kind}"), kind


class VectorWriter:
    """Writes vector rows to a partial file; :meth:`commit` publishes it whole, :meth:`abort` drops it.

    Rows are mappings with the keys of :data:`COLUMNS`; the file is opened on the first row, so a run
    without vectors leaves nothing behind.
    """

    def __init__(self, path: ObjectStoragePath, kind: VectorFormat) -> None:
        self.path = path
        self.kind = kind
        self.rows = 0
        self.dimensions: int | None = None
        self._partial = sibling(path, f".partial-{secrets.token_hex(4)}")
        self._handle: Any = None
        self._parquet: Any = None
        self._pending: list[dict[str, Any]] = []

    def add(self, row: Mapping[str, Any]) -> None:
        if self._handle is None:
            if self.path.protocol in ("", "file", "local"):
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self._partial.open("wb")
        # A vector read back from the checkpoint holds Decimals (its numbers are parsed exactly): floats here.
        vector = [float(value) for value in row["embedding"]]
        if self.dimensions is None:
            self.dimensions = len(vector)
        record = {**{name: row.get(name) for name in COLUMNS}, "embedding": vector}
        if self.kind == "jsonl":
            self._handle.write(dumps_record(record))
        else:
            self._pending.append(record)
            if len(self._pending) >= ROW_GROUP:
                self._flush_group()
        self.rows += 1

    def add_all(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.add(row)

    def _flush_group(self) -> None:
        pa, pq = _require_pyarrow()
        schema = _parquet_schema(pa)
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._handle, schema)
        columns = {name: [row[name] for row in self._pending] for name in COLUMNS}
        columns["cost"] = [None if cost is None else _plain(cost) for cost in columns["cost"]]
        self._parquet.write_table(pa.Table.from_pydict(columns, schema=schema))
        self._pending = []

    def commit(self) -> VectorFile | None:
        """Publish the file (``None`` when no row was added: no file is written)."""
        if self._handle is None:
            return None
        if self._pending:
            self._flush_group()
        if self._parquet is not None:
            self._parquet.close()
        self._handle.close()
        publish(self._partial, self.path)
        return VectorFile(path=str(self.path), format=self.kind, rows=self.rows, dimensions=self.dimensions)

    def abort(self) -> None:
        if self._handle is None:
            return
        if self._parquet is not None:
            self._parquet.close()
        self._handle.close()
        if self._partial.exists():
            self._partial.unlink()


def _plain(cost: Any) -> str:
    return plain_decimal(cost if isinstance(cost, Decimal) else Decimal(str(cost)))


def _parquet_schema(pa: Any) -> Any:
    return pa.schema(
        [
            ("custom_id", pa.string()),
            ("index", pa.int64()),
            ("model", pa.string()),
            ("dimensions", pa.int32()),
            ("cost", pa.string()),
            ("embedding", pa.list_(pa.float64())),
        ]
    )


def read_vectors(path: ObjectStoragePath) -> list[dict[str, Any]]:
    """Every row of a vector file written here (Parquet or JSONL by its suffix); cost as exact Decimal text.

    For tests and small files: it reads the whole file.
    """
    if path.name.lower().endswith(".parquet"):
        _, pq = _require_pyarrow()
        with path.open("rb") as handle:
            return list(pq.read_table(handle).to_pylist())
    with path.open("rb") as handle:
        rows = [loads_record(line) for line in handle if line.strip()]
    for row in rows:
        row["embedding"] = [float(value) for value in row["embedding"]]
    return rows


register_with_serde(VectorFile)
