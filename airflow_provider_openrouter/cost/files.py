"""The audit as a file on ObjectStoragePath: JSONL, CSV, or Parquet (where pyarrow is installed).

The format follows the file's suffix (``.jsonl``/``.json``, ``.csv``, ``.parquet``). Money is plain decimal
text in every format (Parquet: a string column), so no reader rounds it. The file holds the records of one
audit and is rewritten whole, through a temporary sibling renamed into place, so a rerun leaves one copy.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
from collections.abc import Sequence
from typing import Any

from airflow_provider_openrouter.batch.outputs import publish
from airflow_provider_openrouter.cost.records import COLUMNS, CostRecord

_NO_PYARROW = "pyarrow is not installed"
FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def file_format(path: Any) -> str:
    """The format of ``path`` from its suffix, or a clear error."""
    name = str(getattr(path, "name", path)).lower()
    for suffix, kind in FORMATS.items():
        if name.endswith(suffix):
            if kind == "parquet":
                try:
                    import pyarrow  # noqa: F401
                except ImportError:
                    raise ValueError(
                        f"output_path={str(path)!r} asks for Parquet, but {_NO_PYARROW}; install pyarrow or "
                        "use a .jsonl or .csv path"
                    ) from None
            return kind
    raise ValueError(
        f"output_path={str(path)!r} has no known suffix: use .jsonl, .csv or .parquet (Parquet needs pyarrow)"
    )


def render(records: Sequence[CostRecord], kind: str) -> bytes:
    rows = [record.as_json() for record in records]
    if kind == "jsonl":
        return "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows).encode()
    if kind == "csv":
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return text.getvalue().encode()
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # an optional package, not a dependency: file_format() names it
        raise ValueError(f"{_NO_PYARROW}; use a .jsonl or .csv path") from None

    flat = [
        {name: int(value) if isinstance(value, bool) else value for name, value in row.items()}
        for row in rows
    ]
    table = pa.Table.from_pylist(flat, schema=_parquet_schema(pa))
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _parquet_schema(pa: Any) -> Any:
    from airflow_provider_openrouter.cost.schema import cost_table

    types = {"text": pa.string(), "money": pa.string(), "integer": pa.int64(), "real": pa.float64()}
    return pa.schema([(name, types[kind]) for name, kind in cost_table().columns])


def write_records(path: Any, records: Sequence[CostRecord]) -> None:
    """Write ``records`` to ``path`` (an ObjectStoragePath) whole: a temporary sibling, then published as
    the batch outputs are (a rename locally; copy, then delete, on a store)."""
    data = render(records, file_format(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.partial-{secrets.token_hex(4)}")
    with partial.open("wb") as handle:
        handle.write(data)
    publish(partial, path)
