"""Where snapshots are kept: a SQL table (through the cost audit's :class:`~..cost.store.SqlStore`: any
common-sql connection, or an embedded SQLite file when no connection is named) or a JSON/JSONL file.

Each store answers the latest snapshot of a watch (:meth:`previous`) and keeps a new one (:meth:`save`).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from pathlib import Path
from typing import Any, Protocol

from airflow_provider_openrouter.catalog.snapshot import CatalogEntry, CatalogError, Snapshot
from airflow_provider_openrouter.cost.schema import Table, check_table_name
from airflow_provider_openrouter.cost.store import SqlStore
from airflow_provider_openrouter.models import plain_decimal

DEFAULT_TABLE = "openrouter_model_catalog"
EMBEDDED_FILE = "openrouter_catalog.db"

CATALOG_COLUMNS: tuple[tuple[str, str], ...] = (
    ("watch", "text"),
    ("snapshot_at", "text"),
    ("entry_id", "text"),
    ("kind", "text"),
    ("model", "text"),
    ("provider", "text"),
    ("name", "text"),
    ("context_length", "integer"),
    ("max_completion_tokens", "integer"),
    ("prompt_price", "money"),
    ("completion_price", "money"),
    ("pricing", "text"),  # every price: a JSON object of plain decimal strings
)


class SnapshotStore(Protocol):
    description: str

    def previous(self, watch: str) -> Snapshot | None: ...

    def save(self, snapshot: Snapshot) -> None: ...


def catalog_table(name: str = DEFAULT_TABLE) -> Table:
    """One row per entry per snapshot; the primary key keeps a rerun at the same instant from doubling."""
    return Table(check_table_name(name), CATALOG_COLUMNS, ("watch", "snapshot_at", "entry_id"))


def _pricing_json(entry: CatalogEntry) -> str:
    return json.dumps({field: plain_decimal(price) for field, price in entry.pricing.items()}, sort_keys=True)


def _money(entry: CatalogEntry, field: str) -> str | None:
    price = entry.pricing.get(field)
    return None if price is None else plain_decimal(price)


class _EmbeddedSqlite:
    """The part of a ``DbApiHook`` that :class:`SqlStore` uses, for a SQLite file without an Airflow
    connection (and without common-sql installed)."""

    placeholder = "?"

    def __init__(self, path: Path) -> None:
        self.path = path

    def get_conn(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(self.path)


def embedded_path() -> Path:
    """``$AIRFLOW_HOME/openrouter_catalog.db`` (``~/airflow`` when AIRFLOW_HOME is unset)."""
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow") / EMBEDDED_FILE


class SqlSnapshotStore:
    def __init__(self, store: SqlStore, table: str = DEFAULT_TABLE, *, description: str) -> None:
        self.sql = store
        self.table = catalog_table(table)
        self.description = description
        store.ensure(self.table)

    @classmethod
    def open(cls, conn_id: str | None, table: str = DEFAULT_TABLE) -> SqlSnapshotStore:
        """The table on ``conn_id``, or in the embedded SQLite file when ``conn_id`` is ``None``."""
        if conn_id is None:
            path = embedded_path()
            return cls(SqlStore(_EmbeddedSqlite(path), "sqlite"), table, description=f"{path} ({table})")
        return cls(SqlStore.from_conn_id(conn_id), table, description=f"{conn_id} ({table})")

    def previous(self, watch: str) -> Snapshot | None:
        mark = self.sql.placeholder
        latest = f"(SELECT MAX(snapshot_at) FROM {self.table.name} WHERE watch = {mark})"
        rows = self.sql.select(
            self.table, where=f"watch = {mark} AND snapshot_at = {latest}", parameters=[watch, watch]
        )
        if not rows:
            return None
        entries = {}
        for row in rows:
            entry = CatalogEntry(
                id=row["entry_id"],
                kind=row["kind"],
                model=row["model"],
                provider=row["provider"],
                name=row["name"],
                context_length=row["context_length"],
                max_completion_tokens=row["max_completion_tokens"],
                pricing=json.loads(row["pricing"] or "{}"),
            )
            entries[entry.id] = entry
        return Snapshot(watch=watch, snapshot_at=rows[0]["snapshot_at"], entries=entries)

    def save(self, snapshot: Snapshot) -> None:
        rows: list[list[Any]] = [
            [
                snapshot.watch,
                snapshot.snapshot_at,
                entry.id,
                entry.kind,
                entry.model,
                entry.provider,
                entry.name,
                entry.context_length,
                entry.max_completion_tokens,
                _money(entry, "prompt"),
                _money(entry, "completion"),
                _pricing_json(entry),
            ]
            for entry in snapshot.entries.values()
        ]
        self.sql.upsert(self.table, rows)


class FileSnapshotStore:
    """``.json``: the latest snapshot of each watch, rewritten whole; ``.jsonl``: one line per snapshot, the
    whole history (the previous snapshot is the last line of the watch). Written through a temporary
    sibling, so a failed write leaves the previous file."""

    def __init__(self, path: Any) -> None:
        suffix = path.suffix.lower()
        if suffix not in (".json", ".jsonl"):
            raise CatalogError(
                f"output_path {str(path)!r} must end in .json (latest snapshot per watch) or .jsonl (history)"
            )
        self.path = path
        self.lines = suffix == ".jsonl"
        self.description = str(path)

    def _read(self) -> list[Snapshot]:
        if not self.path.exists():
            return []
        text = self.path.read_text()
        try:
            if self.lines:
                return [Snapshot.model_validate_json(line) for line in text.splitlines() if line.strip()]
            return [Snapshot.model_validate(item) for item in json.loads(text or "[]")]
        except ValueError as err:
            raise CatalogError(
                f"{self.path}: not a catalog snapshot file ({str(err).splitlines()[0]}); point output_path "
                "at a new file or remove this one"
            ) from None

    def previous(self, watch: str) -> Snapshot | None:
        return next((snap for snap in reversed(self._read()) if snap.watch == watch), None)

    def save(self, snapshot: Snapshot) -> None:
        from airflow_provider_openrouter.batch.outputs import publish

        kept = self._read()
        if self.lines:
            data = "".join(snap.model_dump_json() + "\n" for snap in [*kept, snapshot])
        else:
            latest = [snap for snap in kept if snap.watch != snapshot.watch] + [snapshot]
            data = json.dumps([snap.model_dump(mode="json") for snap in latest], indent=1)
        if self.path.protocol in ("", "file"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f"{self.path.name}.partial-{secrets.token_hex(4)}")
        with partial.open("wb") as handle:
            handle.write(data.encode())
        publish(partial, self.path)
