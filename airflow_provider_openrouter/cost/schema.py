"""The tables the provider keeps in a SQL database, one place for their columns and portable types.

Shared by the cost audit and (later) budgets and the catalog. Column types are logical (``text``,
``integer``, ``real``, ``money``) and map per dialect: money is exact everywhere, ``NUMERIC(38,18)`` where
the database has exact decimals that its driver returns as ``Decimal`` (PostgreSQL), and ``TEXT`` holding
plain decimal notation (``"0.00000015"``) on SQLite, whose NUMERIC affinity would turn it into a float.
Booleans are ``0``/``1`` integers on every database.
"""

from __future__ import annotations

import dataclasses
import re

from airflow_provider_openrouter.cost.records import COLUMNS, MONEY_COLUMNS

_TYPES: dict[str, dict[str, str]] = {
    "sqlite": {"text": "TEXT", "integer": "INTEGER", "real": "REAL", "money": "TEXT"},
    "postgres": {"text": "TEXT", "integer": "BIGINT", "real": "DOUBLE PRECISION", "money": "NUMERIC(38,18)"},
}
_GENERIC = {
    "text": "VARCHAR(512)",
    "integer": "BIGINT",
    "real": "DOUBLE PRECISION",
    "money": "DECIMAL(38,18)",
}
_DIALECT_ALIASES = {"postgresql": "postgres", "sqlite3": "sqlite"}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")

DEFAULT_TABLE = "openrouter_generation_costs"
RECONCILIATION_SUFFIX = "_reconciliation"


@dataclasses.dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, logical type)
    primary_key: tuple[str, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def create_sql(self, dialect: str) -> str:
        types = _TYPES.get(_DIALECT_ALIASES.get(dialect, dialect), _GENERIC)
        # Keys are bounded text on every database (MySQL cannot index unbounded TEXT).
        columns = [
            f"{name} {'VARCHAR(512)' if name in self.primary_key and kind == 'text' else types[kind]}"
            + (" NOT NULL" if name in self.primary_key else "")
            for name, kind in self.columns
        ]
        columns.append(f"PRIMARY KEY ({', '.join(self.primary_key)})")
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n  " + ",\n  ".join(columns) + "\n)"


def check_table_name(name: str, parameter: str = "table") -> str:
    """``name`` when it is a plain SQL identifier (``table`` or ``schema.table``), else a clear error."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name.strip()):
        raise ValueError(
            f"{parameter}={name!r} is not a plain SQL table name: use letters, digits and '_' (optionally "
            "'schema.table'), starting with a letter or '_'"
        )
    return name.strip()


_COST_TYPES = {
    "map_index": "integer",
    "try_number": "integer",
    "prompt_tokens": "integer",
    "completion_tokens": "integer",
    "reasoning_tokens": "integer",
    "cached_tokens": "integer",
    "is_byok": "integer",
    "latency_ms": "real",
    "generation_time_ms": "real",
}


def cost_table(name: str = DEFAULT_TABLE) -> Table:
    """The audit table: one row per generation (a :class:`~.records.CostRecord`)."""
    columns = tuple(
        (column, "money" if column in MONEY_COLUMNS else _COST_TYPES.get(column, "text"))
        for column in COLUMNS
    )
    return Table(check_table_name(name), columns, ("generation_id",))


RECONCILIATION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("day", "text"),
    ("model", "text"),
    ("billed_usage", "money"),
    ("billed_byok_usage", "money"),
    ("billed_requests", "integer"),
    ("recorded_cost", "money"),
    ("recorded_requests", "integer"),
    ("difference", "money"),
    ("checked_at", "text"),
)


def reconciliation_table(cost_table_name: str = DEFAULT_TABLE) -> Table:
    """Beside the audit table: per UTC day and model, what OpenRouter billed and what the audit recorded."""
    return Table(
        check_table_name(cost_table_name + RECONCILIATION_SUFFIX), RECONCILIATION_COLUMNS, ("day", "model")
    )
