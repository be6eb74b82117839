"""The SQL access layer: tables of :mod:`~airflow_provider_openrouter.cost.schema` through any Airflow SQL
connection (common-sql's ``DbApiHook``: a ``sqlite`` connection to a file by default, ``postgres`` in
production).

Rows are upserted by primary key: in one transaction, the rows with the incoming keys are deleted and the new
rows inserted. That is the same SQL on every database (no dialect's ``ON CONFLICT``/``MERGE``), and a rerun
of an audit leaves exactly one row per generation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from airflow_provider_openrouter.cost.schema import (
    DEFAULT_TABLE,
    Table,
    cost_table,
    reconciliation_table,
)

_CHUNK = 500  # keys per DELETE ... IN (...): below every database's bound-parameter limit


class CostStoreError(ValueError):
    """The SQL connection cannot hold the audit: what is wrong and what to configure."""


def sql_hook(conn_id: str) -> tuple[Any, str]:
    """``(DbApiHook, dialect)`` of an Airflow connection, or a clear error when it is no SQL connection."""
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as err:
        raise CostStoreError(
            f"sql_conn_id={conn_id!r}: the connection cannot be read ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); create it, e.g. "
            f"AIRFLOW_CONN_{conn_id.upper()}='sqlite:////path/to/costs.db'"
        ) from None
    try:
        hook = conn.get_hook()
    except Exception as err:  # no provider installed for this connection type, or a broken one
        raise CostStoreError(
            f"sql_conn_id={conn_id!r}: no hook for its connection type {conn.conn_type!r} "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); install the provider "
            "of that database, e.g. apache-airflow-providers-postgres"
        ) from None
    if not all(hasattr(hook, name) for name in ("get_conn", "placeholder")):
        raise CostStoreError(
            f"sql_conn_id={conn_id!r} is a {conn.conn_type!r} connection, which is not a SQL database "
            "(common-sql DbApiHook); use a sqlite or postgres connection"
        )
    return hook, str(conn.conn_type or "")


class SqlStore:
    """Create, upsert and read :class:`~airflow_provider_openrouter.cost.schema.Table` rows through one
    ``DbApiHook``."""

    def __init__(self, hook: Any, dialect: str) -> None:
        self.hook = hook
        self.dialect = dialect
        self.placeholder: str = hook.placeholder

    @classmethod
    def from_conn_id(cls, conn_id: str) -> SqlStore:
        return cls(*sql_hook(conn_id))

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        with contextlib.closing(self.hook.get_conn()) as conn:
            cursor = conn.cursor()
            try:
                yield cursor
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            finally:
                cursor.close()

    def ensure(self, *tables: Table) -> None:
        with self._cursor() as cursor:
            for table in tables:
                cursor.execute(table.create_sql(self.dialect))

    def upsert(self, table: Table, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` (in ``table.column_names`` order), replacing rows with the same primary key."""
        if not rows:
            return
        names = table.column_names
        key_positions = [names.index(column) for column in table.primary_key]
        marks = ", ".join([self.placeholder] * len(names))
        insert = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})"
        with self._cursor() as cursor:
            for start in range(0, len(rows), _CHUNK):
                chunk = rows[start : start + _CHUNK]
                if len(key_positions) == 1:
                    keys = list(dict.fromkeys(row[key_positions[0]] for row in chunk))
                    where = f"{table.primary_key[0]} IN ({', '.join([self.placeholder] * len(keys))})"
                    cursor.execute(f"DELETE FROM {table.name} WHERE {where}", keys)
                else:
                    where = " AND ".join(f"{column} = {self.placeholder}" for column in table.primary_key)
                    cursor.executemany(
                        f"DELETE FROM {table.name} WHERE {where}",
                        [[row[position] for position in key_positions] for row in chunk],
                    )
                cursor.executemany(insert, [list(row) for row in chunk])

    def select(
        self, table: Table, *, where: str = "", parameters: Sequence[Any] = ()
    ) -> list[dict[str, Any]]:
        names = table.column_names
        sql = f"SELECT {', '.join(names)} FROM {table.name}" + (f" WHERE {where}" if where else "")
        with self._cursor() as cursor:
            cursor.execute(sql, list(parameters))
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def count(self, table: Table) -> int:
        with self._cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {table.name}")
            return int(cursor.fetchone()[0])

    def in_days(self, column: str, days: Iterable[str]) -> tuple[str, list[str]]:
        """A ``WHERE`` clause and its parameters selecting rows whose ``column`` is one of ``days``."""
        listed = sorted(set(days))
        return f"{column} IN ({', '.join([self.placeholder] * len(listed))})", listed


class CostStore:
    """The audit table and its reconciliation table on one SQL connection."""

    def __init__(self, store: SqlStore, table: str = DEFAULT_TABLE) -> None:
        self.sql = store
        self.costs = cost_table(table)
        self.reconciliation = reconciliation_table(table)

    @classmethod
    def open(cls, conn_id: str, table: str = DEFAULT_TABLE) -> CostStore:
        """The store of ``conn_id``, its tables created when missing."""
        store = cls(SqlStore.from_conn_id(conn_id), table)
        store.sql.ensure(store.costs, store.reconciliation)
        return store

    def upsert_costs(self, rows: Sequence[Sequence[Any]]) -> None:
        self.sql.upsert(self.costs, rows)

    def cost_rows(self, days: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Audit rows (all, or of these UTC days), money as ``Decimal``."""
        return self._rows(self.costs, days)

    def upsert_reconciliation(self, rows: Sequence[Sequence[Any]]) -> None:
        self.sql.upsert(self.reconciliation, rows)

    def reconciliation_rows(self, days: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Reconciliation rows (all, or of these UTC days), money as ``Decimal``."""
        return self._rows(self.reconciliation, days)

    def _rows(self, table: Table, days: Iterable[str] | None) -> list[dict[str, Any]]:
        if days is not None:
            days = set(days)
            if not days:
                return []
        where, parameters = ("", []) if days is None else self.sql.in_days("day", days)
        return [_money_as_decimal(row) for row in self.sql.select(table, where=where, parameters=parameters)]


_MONEY_NAMES = frozenset(
    {
        "cost",
        "upstream_cost",
        "cache_discount",
        "billed_usage",
        "billed_byok_usage",
        "recorded_cost",
        "difference",
    }
)


def _money_as_decimal(row: dict[str, Any]) -> dict[str, Any]:
    for name in _MONEY_NAMES & row.keys():
        value = row[name]
        if value is not None and not isinstance(value, Decimal):
            row[name] = Decimal(str(value))
    return row
