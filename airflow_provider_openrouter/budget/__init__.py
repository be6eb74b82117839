"""Budgets: a named spending limit kept in SQL, reserved before each billable request (see docs/budgets.md).

Cheap to import at DAG parse: this module defines the budget, its error and the choice on exhaustion; the SQL
ledger (:mod:`~airflow_provider_openrouter.budget.ledger`) is imported only when :meth:`OpenRouterBudget.open`
is called in a running task.

Interface for the hook, the operators and the batch engine::

    ledger = budget.open(hook, run_id=context["run_id"])
    reservation = ledger.reserve(body)          # BudgetExhaustedError when the worst case does not fit
    ... send ...
    reservation.settle(cost, generation_id)     # an answer with usage.cost
    reservation.release()                       # provably not charged (never sent, an error envelope)
    reservation.keep(generation_id)             # a lost answer: the cost audit settles it later
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_openrouter.exceptions import OpenRouterError

if TYPE_CHECKING:
    from airflow_provider_openrouter.budget.ledger import BudgetLedger

__all__ = [
    "ON_EXHAUSTED",
    "PERIODS",
    "BudgetConfigurationError",
    "BudgetExhaustedError",
    "OpenRouterBudget",
    "raise_for_exhausted",
    "resolve_budget",
    "skip_exception",
]

PERIODS = ("day", "run", "total")
ON_EXHAUSTED = ("fail", "skip", "wait")
MAX_NAME_CHARS = 200
MAX_LIMIT_USD = Decimal(1_000_000)  # the ledger counts picodollars in a signed 64-bit integer
BUDGETS_EXTRA = "budgets"


class BudgetConfigurationError(ValueError):
    """A budget's settings are unusable: one line saying which setting, what it was and what to use."""


class BudgetExhaustedError(OpenRouterError):
    """The request's worst-case cost does not fit what is left of the budget; nothing was sent.

    ``budget``, ``period``, ``remaining`` and ``max_cost`` (USD ``Decimal``) say which budget, how much was
    left and what the request could have cost at most; ``next_period`` is when a ``day`` budget refills.
    """

    title = "OpenRouter budget exhausted"
    default_billed: ClassVar[bool | None] = False

    def __init__(
        self,
        message: str = "",
        *,
        budget: str = "",
        period: str = "",
        remaining: Decimal = Decimal(0),
        max_cost: Decimal = Decimal(0),
        next_period: datetime | None = None,
        **kwargs: Any,
    ) -> None:
        self.budget = budget
        self.period = period
        self.remaining = remaining
        self.max_cost = max_cost
        self.next_period = next_period
        super().__init__(message, **kwargs)

    def default_hint(self) -> str:
        when = f"; it refills at {self.next_period.isoformat()}" if self.next_period else ""
        return (
            f"Raise limit_usd of budget {self.budget!r}, lower max_tokens (the reservation is the request's "
            f"worst case), or run later{when}. Nothing was sent."
        )


def _templated(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def _bad(name: str, value: Any, expected: str) -> BudgetConfigurationError:
    return BudgetConfigurationError(f"OpenRouterBudget: {name}={value!r} is not valid: expected {expected}")


def _limit(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise _bad("limit_usd", value, "a positive number of USD, e.g. 5 or '2.50'")
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise _bad("limit_usd", value, "a positive number of USD, e.g. 5 or '2.50'") from None
    if not amount.is_finite() or amount <= 0 or amount > MAX_LIMIT_USD:
        raise _bad("limit_usd", value, f"a positive number of USD, at most {MAX_LIMIT_USD}")
    return amount


class OpenRouterBudget:
    """A named spending limit shared by every task, DAG and worker that names it (same SQL database).

    :param name: the budget's name (the ledger's key): tasks naming the same budget spend from one balance.
    :param limit_usd: the most the budget may spend per period, in USD (a number or a decimal string).
    :param period: ``"day"`` (a UTC calendar day), ``"run"`` (one DAG run: the key is the run id) or
        ``"total"`` (never refills).
    :param sql_conn_id: an Airflow SQL connection (common-sql: ``sqlite`` to a file, ``postgres``); ``None``
        keeps the ledger in an embedded SQLite file (``$OPENROUTER_BUDGET_DB``, else
        ``$AIRFLOW_HOME/openrouter_budgets.db``), which only tasks on the same machine share.
    :param on_exhausted: what a task does when a request does not fit: ``"fail"``, ``"skip"`` (the task and
        what follows it), or ``"wait"`` (defer until the next period; ``period="day"`` only).

    Every field is templated (the object may be an operator's template field). Values are checked here,
    except those that are still Jinja templates, which are checked when the ledger opens.
    """

    template_fields: ClassVar[tuple[str, ...]] = (
        "name",
        "limit_usd",
        "period",
        "sql_conn_id",
        "on_exhausted",
    )
    __version__: ClassVar[int] = 1

    def __init__(
        self,
        name: str,
        limit_usd: Decimal | float | int | str,
        period: str = "day",
        sql_conn_id: str | None = None,
        on_exhausted: str = "fail",
    ) -> None:
        self.name = name
        self.limit_usd = limit_usd
        self.period = period
        self.sql_conn_id = sql_conn_id
        self.on_exhausted = on_exhausted
        self.validate(allow_templates=True)

    def validate(self, *, allow_templates: bool = False) -> OpenRouterBudget:
        """Check every field (a field still holding ``{{ ... }}`` passes when ``allow_templates``)."""

        def skip(value: Any) -> bool:
            return allow_templates and _templated(value)

        if not skip(self.name) and (
            not isinstance(self.name, str) or not self.name.strip() or len(self.name) > MAX_NAME_CHARS
        ):
            raise _bad("name", self.name, f"a non-empty text of at most {MAX_NAME_CHARS} characters")
        if not skip(self.limit_usd):
            _limit(self.limit_usd)
        if not skip(self.period) and self.period not in PERIODS:
            raise _bad("period", self.period, "'day', 'run' or 'total'")
        if not skip(self.on_exhausted) and self.on_exhausted not in ON_EXHAUSTED:
            raise _bad("on_exhausted", self.on_exhausted, "'fail', 'skip' or 'wait'")
        if self.on_exhausted == "wait" and self.period in ("run", "total"):
            raise BudgetConfigurationError(
                f"OpenRouterBudget {self.name!r}: on_exhausted='wait' needs period='day' (a {self.period!r} "
                "budget never refills while the task waits); use 'fail' or 'skip'"
            )
        if (
            self.sql_conn_id is not None
            and not skip(self.sql_conn_id)
            and (not isinstance(self.sql_conn_id, str) or not self.sql_conn_id.strip())
        ):
            raise _bad("sql_conn_id", self.sql_conn_id, "an Airflow SQL connection id, or None")
        return self

    @property
    def limit(self) -> Decimal:
        """``limit_usd`` as a ``Decimal`` (after rendering)."""
        return _limit(self.limit_usd)

    def period_key(self, run_id: str | None, now: datetime | None = None) -> str:
        """The ledger row this request spends from: the UTC day, the run id, or ``"total"``."""
        if self.period == "day":
            return (now or datetime.now(UTC)).astimezone(UTC).date().isoformat()
        if self.period == "run":
            if not run_id:
                raise BudgetConfigurationError(
                    f"OpenRouterBudget {self.name!r}: period='run' needs the DAG run id; use it inside a "
                    "task, or choose period='day' or 'total'"
                )
            return f"run:{run_id}"
        return "total"

    def next_period_start(self, now: datetime | None = None) -> datetime | None:
        """When the budget refills: the next UTC midnight for ``day``; ``None`` for ``run`` and ``total``."""
        if self.period != "day":
            return None
        today = (now or datetime.now(UTC)).astimezone(UTC).date()
        return datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=UTC)

    def open(self, hook: Any, *, run_id: str | None) -> BudgetLedger:
        """The ledger of this budget in SQL (tables created when missing), pricing requests from ``hook``'s
        catalog. Opens the database: call it in a running task, not at DAG parse."""
        from airflow_provider_openrouter.budget.ledger import BudgetLedger

        return BudgetLedger(self.validate(), hook, run_id=run_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "limit_usd": str(self.limit_usd),
            "period": self.period,
            "sql_conn_id": self.sql_conn_id,
            "on_exhausted": self.on_exhausted,
        }

    # Airflow's serde (XCom) calls these; the DAG serializer shows the repr of a template field.
    def serialize(self) -> dict[str, Any]:
        return self.to_dict()

    @staticmethod
    def deserialize(data: dict[str, Any], version: int) -> OpenRouterBudget:
        return OpenRouterBudget(**data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OpenRouterBudget) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.to_dict().items()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in self.to_dict().items())
        return f"OpenRouterBudget({fields})"


def _budgets_of(connection_extra: Any) -> Mapping[str, Any]:
    extra = connection_extra
    if isinstance(extra, str):
        try:
            extra = json.loads(extra) if extra.strip() else {}
        except ValueError:
            raise BudgetConfigurationError(
                "the OpenRouter connection's extra is not JSON, so it declares no budgets"
            ) from None
    declared = (extra or {}).get(BUDGETS_EXTRA) if isinstance(extra, Mapping) else None
    if declared is None:
        return {}
    if not isinstance(declared, Mapping):
        raise BudgetConfigurationError(
            f"connection extra {BUDGETS_EXTRA!r} must be an object of budgets by name, e.g. "
            '{"budgets": {"nightly": {"limit_usd": 5, "period": "day"}}}'
        )
    return declared


def resolve_budget(value: OpenRouterBudget | str | None, connection_extra: Any) -> OpenRouterBudget | None:
    """The budget an operator's ``budget=`` names: the object itself, ``None``, or (a string) the budget of
    that name declared in the OpenRouter connection's extra ``budgets``::

        {"budgets": {"nightly": {"limit_usd": 5, "period": "day", "sql_conn_id": "budgets_db",
                                 "on_exhausted": "skip"}}}
    """
    if value is None or isinstance(value, OpenRouterBudget):
        return value
    if not isinstance(value, str) or not value.strip():
        raise BudgetConfigurationError(
            f"budget={value!r}: pass an OpenRouterBudget or the name of a budget declared in the connection "
            f"extra {BUDGETS_EXTRA!r}"
        )
    declared = _budgets_of(connection_extra)
    settings = declared.get(value.strip())
    if not isinstance(settings, Mapping):
        known = ", ".join(sorted(declared)) or "none"
        example = json.dumps({BUDGETS_EXTRA: {value.strip(): {"limit_usd": 5, "period": "day"}}})
        raise BudgetConfigurationError(
            f"budget={value!r} is not declared in the connection extra {BUDGETS_EXTRA!r} (declared: "
            f"{known}); add e.g. {example}"
        )
    unknown = set(settings) - {"limit_usd", "period", "sql_conn_id", "on_exhausted"}
    if unknown or "limit_usd" not in settings:
        raise BudgetConfigurationError(
            f"connection extra budgets.{value.strip()}: "
            + (f"unknown setting(s) {', '.join(sorted(unknown))}; " if unknown else "limit_usd is missing; ")
            + "use limit_usd, period, sql_conn_id, on_exhausted"
        )
    return OpenRouterBudget(name=value.strip(), **settings).validate()


def skip_exception() -> type[Exception]:
    """Airflow's ``AirflowSkipException`` (in ``airflow.sdk.exceptions`` from Airflow 3.2, before that in
    ``airflow.exceptions``)."""
    try:
        from airflow.sdk.exceptions import AirflowSkipException
    except ImportError:
        from airflow.exceptions import AirflowSkipException  # type: ignore[no-redef]
    return AirflowSkipException


def raise_for_exhausted(err: BudgetExhaustedError, budget: OpenRouterBudget) -> datetime:
    """Do what ``budget.on_exhausted`` asks: raise ``err`` (fail), raise ``AirflowSkipException`` (skip), or
    return the datetime the next period starts (wait), for the operator to defer until then."""
    if budget.on_exhausted == "skip":
        raise skip_exception()(str(err))
    if budget.on_exhausted == "wait":
        start = budget.next_period_start()
        if start is not None:
            return start
    raise err
