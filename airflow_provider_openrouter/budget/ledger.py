"""The budget ledger in SQL: one row per budget and period, one row per reservation.

A reservation is one transaction whose conditional ``UPDATE`` adds the request's worst case to
``reserved_units`` only where ``spent_units + reserved_units + worst case <= limit``; its affected row count
decides. The database serialises writers to that one row (SQLite: ``BEGIN IMMEDIATE`` takes the write lock,
waiting up to the busy timeout; PostgreSQL: the row lock, then the ``WHERE`` is evaluated again on the
committed row), so no two threads, processes or workers can both fit into the same last dollar.

Money is counted in whole picodollars (10^-12 USD) in 64-bit integers: exact, and the same integer arithmetic
on every database (SQLite has no exact decimal type). Reservations round up, costs round up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any, TypeVar

from airflow_provider_openrouter.budget import BudgetExhaustedError, OpenRouterBudget
from airflow_provider_openrouter.budget.worst_case import Catalog, worst_case_cost
from airflow_provider_openrouter.cost.schema import Table
from airflow_provider_openrouter.exceptions import OpenRouterError
from airflow_provider_openrouter.models import plain_decimal

log = logging.getLogger(__name__)
T = TypeVar("T")

UNIT = Decimal("1e-12")
DB_ENV = "OPENROUTER_BUDGET_DB"
DB_FILE = "openrouter_budgets.db"
BUSY_TIMEOUT_MS = 60_000

LEDGER_TABLE = Table(
    "openrouter_budget_ledger",
    (
        ("budget", "text"),
        ("period", "text"),
        ("limit_units", "integer"),
        ("spent_units", "integer"),
        ("reserved_units", "integer"),
        ("updated_at", "text"),
    ),
    ("budget", "period"),
)
RESERVATIONS_TABLE = Table(
    "openrouter_budget_reservations",
    (
        ("reservation_id", "text"),
        ("budget", "text"),
        ("period", "text"),
        ("state", "text"),
        ("amount_units", "integer"),
        ("cost_units", "integer"),
        ("model", "text"),
        ("generation_id", "text"),
        ("run_id", "text"),
        ("created_at", "text"),
        ("closed_at", "text"),
    ),
    ("reservation_id",),
)
STATES = ("reserved", "settled", "released", "kept")


def to_units(amount: Decimal) -> int:
    """USD to whole picodollars, rounded up (a reservation or a cost is never understated)."""
    return int((Decimal(amount) / UNIT).to_integral_value(rounding=ROUND_CEILING))


def from_units(units: int) -> Decimal:
    return (Decimal(int(units)) * UNIT).normalize() if units else Decimal(0)


def default_db_path() -> Path:
    """The embedded ledger's file: ``$OPENROUTER_BUDGET_DB``, else ``$AIRFLOW_HOME/openrouter_budgets.db``."""
    explicit = os.environ.get(DB_ENV)
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return Path(home) / DB_FILE


def _prepare_sqlite(conn: sqlite3.Connection) -> sqlite3.Connection:
    # Transactions are begun explicitly (BEGIN IMMEDIATE); WAL lets readers run beside the one writer.
    conn.isolation_level = None
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    # In WAL mode NORMAL syncs at checkpoints, not at every commit: a crashed process loses nothing, a power
    # cut may lose the last commits (milliseconds). FULL would put an fsync in every row's path.
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


class Database:
    """One connection per thread to the ledger's database: the embedded SQLite file, or an Airflow SQL
    connection (common-sql ``DbApiHook``)."""

    def __init__(self, hook: Any, dialect: str, path: Path | None = None) -> None:
        self.hook = hook
        self.path = path
        self.dialect = "sqlite" if dialect.startswith("sqlite") else dialect
        self.placeholder = "?" if hook is None else str(hook.placeholder)
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        # SQLite's busy handler sleeps for milliseconds when a writer waits; threads of this process queue
        # here instead, so only other processes ever wait on the file lock.
        self._writer: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self.dialect == "sqlite" else contextlib.nullcontext()
        )

    @classmethod
    def from_conn_id(cls, sql_conn_id: str | None) -> Database:
        """The database of an Airflow SQL connection, or the embedded SQLite file when ``None``."""
        if sql_conn_id is None:
            path = default_db_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            return cls(None, "sqlite", path)
        from airflow_provider_openrouter.cost.store import sql_hook

        return cls(*sql_hook(sql_conn_id))

    def connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.hook is None:
                conn = sqlite3.connect(
                    str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
                )
            else:
                conn = self.hook.get_conn()
            if self.dialect == "sqlite":
                _prepare_sqlite(conn)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        conn = self.connection()
        with self._writer:
            cursor = conn.cursor()
            try:
                if self.dialect == "sqlite":
                    cursor.execute("BEGIN IMMEDIATE")  # the write lock now, not at the first UPDATE
                yield cursor
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            finally:
                cursor.close()

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for conn in connections:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()

    def ensure_tables(self) -> None:
        with self.transaction() as cursor:
            for table in (LEDGER_TABLE, RESERVATIONS_TABLE):
                cursor.execute(table.create_sql(self.dialect))
            cursor.execute(
                "CREATE INDEX IF NOT EXISTS openrouter_budget_reservations_generation "
                f"ON {RESERVATIONS_TABLE.name} (generation_id)"
            )


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Reservation:
    """A request's worst case, held in the ledger until it is settled, released or kept."""

    def __init__(
        self, ledger: BudgetLedger, reservation_id: str, period: str, amount_units: int, model: str | None
    ) -> None:
        self.ledger = ledger
        self.reservation_id = reservation_id
        self.period = period
        self.amount_units = amount_units
        self.model = model
        self.state = "reserved"

    @property
    def max_cost(self) -> Decimal:
        return from_units(self.amount_units)

    def settle(self, cost: Decimal, generation_id: str | None = None) -> None:
        """The answer came with ``usage.cost``: spend it and free the rest of the reservation."""
        self._close("settled", to_units(Decimal(cost)), generation_id)

    def release(self) -> None:
        """The request provably was not charged (never sent, or OpenRouter's error envelope): free it all."""
        self._close("released", 0, None)

    def keep(self, generation_id: str | None = None) -> None:
        """A lost answer: the reservation stays whole until the cost audit finds the generation's cost."""
        if self.state != "reserved":
            return
        with self.ledger.db.transaction() as cursor:
            p = self.ledger.db.placeholder
            cursor.execute(
                f"UPDATE {RESERVATIONS_TABLE.name} SET state = 'kept', generation_id = {p}, closed_at = {p} "
                f"WHERE reservation_id = {p} AND state = 'reserved'",
                [generation_id, _now(), self.reservation_id],
            )
        self.state = "kept"

    def _close(self, state: str, cost_units: int, generation_id: str | None) -> None:
        if self.state not in ("reserved", "kept"):
            return
        if state == "settled" and cost_units > self.amount_units:
            log.warning(
                "budget %r: generation %s cost %s USD, more than its reservation of %s USD (the catalog's "
                "prices changed?); the ledger records the real cost",
                self.ledger.budget.name,
                generation_id,
                plain_decimal(from_units(cost_units)),
                plain_decimal(self.max_cost),
            )
        closed = close_reservation(
            self.ledger.db,
            self.ledger.budget.name,
            self.reservation_id,
            self.period,
            self.amount_units,
            state,
            cost_units,
            generation_id,
        )
        if closed:
            self.state = state

    def close_after(self, result: Any = None, error: BaseException | None = None) -> None:
        """Settle, release or keep according to how the request ended: a result with ``usage.cost`` is
        settled; an error with ``billed=False`` is released; anything else (a lost answer, a result without
        cost) is kept for the cost audit."""
        if error is None:
            cost = getattr(result, "cost", None)
            generation_id = getattr(result, "generation_id", None) or None
            if cost is not None:
                self.settle(cost, generation_id)
            else:
                self.keep(generation_id)
        elif isinstance(error, OpenRouterError) and error.billed is False:
            self.release()
        else:
            self.keep(getattr(error, "generation_id", None))


class BudgetLedger:
    """One budget's ledger, opened in a running task: reserves requests' worst cases from a catalog."""

    def __init__(
        self,
        budget: OpenRouterBudget,
        hook: Any,
        *,
        run_id: str | None,
        database: Database | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.budget = budget
        self.limit_units = to_units(budget.limit)
        self.run_id = run_id
        self.catalog = catalog or Catalog(hook)
        self.db = database or Database.from_conn_id(budget.sql_conn_id)
        self.db.ensure_tables()
        self._periods: set[str] = set()
        self._lock = threading.Lock()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> BudgetLedger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _ensure_period(self, period: str) -> None:
        if period in self._periods:
            return
        p = self.db.placeholder
        key = [self.budget.name, period]
        with self.db.transaction() as cursor:
            cursor.execute(
                f"UPDATE {LEDGER_TABLE.name} SET limit_units = {p} WHERE budget = {p} AND period = {p}",
                [self.limit_units, *key],
            )
            if cursor.rowcount != 1:
                cursor.execute(
                    f"INSERT INTO {LEDGER_TABLE.name} (budget, period, limit_units, spent_units, "
                    f"reserved_units, updated_at) VALUES ({p}, {p}, {p}, 0, 0, {p})",
                    [*key, self.limit_units, _now()],
                )
        with self._lock:
            self._periods.add(period)

    def reserve(self, body: Mapping[str, Any]) -> Reservation:
        """Reserve the worst case of this exact request ``body`` in one transaction, or raise
        :class:`~airflow_provider_openrouter.budget.BudgetExhaustedError` (nothing reserved, nothing sent)."""
        worst, model = worst_case_cost(body, self.catalog)
        units = to_units(worst)
        period = self.budget.period_key(self.run_id)
        try:
            self._ensure_period(period)
        except Exception:  # another worker inserted the row first (PostgreSQL's unique violation)
            self._ensure_period(period)
        p = self.db.placeholder
        reservation_id = uuid.uuid4().hex
        now = _now()
        with self.db.transaction() as cursor:
            cursor.execute(
                f"UPDATE {LEDGER_TABLE.name} SET reserved_units = reserved_units + {p}, updated_at = {p} "
                f"WHERE budget = {p} AND period = {p} AND spent_units + reserved_units + {p} <= {p}",
                [units, now, self.budget.name, period, units, self.limit_units],
            )
            if cursor.rowcount != 1:
                cursor.execute(
                    f"SELECT spent_units + reserved_units FROM {LEDGER_TABLE.name} "
                    f"WHERE budget = {p} AND period = {p}",
                    [self.budget.name, period],
                )
                row = cursor.fetchone()
                raise self._exhausted(period, int(row[0]) if row else 0, units)
            cursor.execute(
                f"INSERT INTO {RESERVATIONS_TABLE.name} (reservation_id, budget, period, state, "
                f"amount_units, cost_units, model, generation_id, run_id, created_at, closed_at) "
                f"VALUES ({p}, {p}, {p}, 'reserved', {p}, NULL, {p}, NULL, {p}, {p}, NULL)",
                [reservation_id, self.budget.name, period, units, model, self.run_id, now],
            )
        return Reservation(self, reservation_id, period, units, model)

    def _exhausted(self, period: str, used_units: int, units: int) -> BudgetExhaustedError:
        remaining = from_units(max(self.limit_units - used_units, 0))
        max_cost = from_units(units)
        return BudgetExhaustedError(
            f"budget {self.budget.name!r} ({plain_decimal(self.budget.limit)} USD per {self.budget.period}, "
            f"period {period}) has {plain_decimal(remaining)} USD left; this request may cost up to "
            f"{plain_decimal(max_cost)} USD",
            budget=self.budget.name,
            period=period,
            remaining=remaining,
            max_cost=max_cost,
            next_period=self.budget.next_period_start(),
        )

    def spend(self, body: Mapping[str, Any], send: Callable[[Mapping[str, Any]], T]) -> T:
        """Reserve ``body``'s worst case, ``send(body)``, then settle, release or keep by the outcome
        (:meth:`Reservation.close_after`); returns what ``send`` returned."""
        reservation = self.reserve(body)
        try:
            result = send(body)
        except BaseException as err:
            reservation.close_after(error=err)
            raise
        reservation.close_after(result)
        return result

    def balance(self, period: str | None = None) -> dict[str, Any]:
        """``limit``, ``spent``, ``reserved`` and ``remaining`` (USD ``Decimal``) of the current period."""
        return balance(self.db, self.budget, period or self.budget.period_key(self.run_id))


def close_reservation(
    db: Database,
    budget: str,
    reservation_id: str,
    period: str,
    amount_units: int,
    state: str,
    cost_units: int,
    generation_id: str | None,
) -> bool:
    p = db.placeholder
    now = _now()
    with db.transaction() as cursor:
        cursor.execute(
            f"UPDATE {RESERVATIONS_TABLE.name} SET state = {p}, cost_units = {p}, "
            f"generation_id = COALESCE({p}, generation_id), closed_at = {p} "
            f"WHERE reservation_id = {p} AND state IN ('reserved', 'kept')",
            [state, cost_units, generation_id, now, reservation_id],
        )
        if cursor.rowcount != 1:
            return False  # closed already (by this process, or by the cost audit)
        cursor.execute(
            f"UPDATE {LEDGER_TABLE.name} SET reserved_units = reserved_units - {p}, "
            f"spent_units = spent_units + {p}, updated_at = {p} WHERE budget = {p} AND period = {p}",
            [amount_units, cost_units, now, budget, period],
        )
    return True


def balance(db: Database, budget: OpenRouterBudget, period: str) -> dict[str, Any]:
    p = db.placeholder
    with db.transaction() as cursor:
        cursor.execute(
            f"SELECT spent_units, reserved_units FROM {LEDGER_TABLE.name} "
            f"WHERE budget = {p} AND period = {p}",
            [budget.name, period],
        )
        row = cursor.fetchone()
    spent, reserved = (int(row[0]), int(row[1])) if row else (0, 0)
    limit_units = to_units(budget.limit)
    return {
        "budget": budget.name,
        "period": period,
        "limit": budget.limit,
        "spent": from_units(spent),
        "reserved": from_units(reserved),
        "remaining": from_units(max(limit_units - spent - reserved, 0)),
    }


def settle_kept(db: Database, costs: Mapping[str, Decimal]) -> int:
    """Settle every kept reservation whose generation id has a cost in ``costs`` (the cost audit's finds).
    Returns how many were settled; 0 when the database holds no budget ledger."""
    ids = [generation_id for generation_id in costs if generation_id]
    if not ids:
        return 0
    p = db.placeholder
    found: list[tuple[Any, ...]] = []
    try:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            with db.transaction() as cursor:
                cursor.execute(
                    f"SELECT reservation_id, budget, period, amount_units, generation_id "
                    f"FROM {RESERVATIONS_TABLE.name} "
                    f"WHERE state = 'kept' AND generation_id IN ({', '.join([p] * len(chunk))})",
                    chunk,
                )
                found.extend(tuple(row) for row in cursor.fetchall())
    except Exception as err:  # no ledger in this database: nothing was kept here
        log.debug("no budget reservations to settle: %s", err)
        return 0
    settled = 0
    for reservation_id, budget, period, amount_units, generation_id in found:
        settled += close_reservation(
            db,
            budget,
            reservation_id,
            period,
            int(amount_units),
            "settled",
            to_units(costs[generation_id]),
            generation_id,
        )
    return settled


__all__ = [
    "LEDGER_TABLE",
    "RESERVATIONS_TABLE",
    "BudgetLedger",
    "Database",
    "Reservation",
    "balance",
    "default_db_path",
    "from_units",
    "settle_kept",
    "to_units",
]
