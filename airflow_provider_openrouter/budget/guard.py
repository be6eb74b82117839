"""The budget guard's check, shared by the operator and its trigger: what is left on the key (``GET /key``)
or the account (``GET /credits``), and of a named budget, against a threshold in dollars or as a fraction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from airflow_provider_openrouter.models import Money, OpenRouterModel, plain_decimal

SOURCES = ("key", "credits", "none")
ON_UNMET = ("fail", "skip", "defer")


class GuardPool(OpenRouterModel):
    """One balance the guard checked: the key, the account's credits, or a budget's current period."""

    name: str
    limit: Money | None = None
    used: Money | None = None
    remaining: Money | None = None
    met: bool
    reason: str | None = None


class BudgetGuardResult(OpenRouterModel):
    """What the guard saw: ``met`` (every pool meets the threshold), each ``pool``, the key's ``limit_reset``
    when the source is ``key``, and when it checked."""

    met: bool
    pools: list[GuardPool]
    limit_reset: str | None = None
    checked_at: str

    def reasons(self) -> str:
        return "; ".join(pool.reason for pool in self.pools if pool.reason) or "met"


def check_pool(
    name: str,
    limit: Decimal | None,
    used: Decimal | None,
    remaining: Decimal | None,
    min_usd: Decimal | None,
    min_fraction: Decimal | None,
) -> GuardPool:
    """Whether ``remaining`` is at least ``min_usd`` and at least ``min_fraction`` of ``limit``. A pool
    without a limit (a key with no spending cap) has no bound to fall below: it is met."""
    if remaining is None:
        return GuardPool(name=name, limit=limit, used=used, remaining=None, met=True)
    reasons = []
    if min_usd is not None and remaining < min_usd:
        reasons.append(f"{plain_decimal(remaining)} USD left, below {plain_decimal(min_usd)} USD")
    if min_fraction is not None and limit and remaining < min_fraction * limit:
        share = (remaining / limit * 100).quantize(Decimal("0.1"))
        wanted = plain_decimal((min_fraction * 100).normalize())
        reasons.append(f"{share}% of {plain_decimal(limit)} USD left, below {wanted}%")
    return GuardPool(
        name=name,
        limit=limit,
        used=used,
        remaining=remaining,
        met=not reasons,
        reason=f"{name}: {' and '.join(reasons)}" if reasons else None,
    )


def _money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def account_pool(
    source: str, data: Mapping[str, Any], min_usd: Decimal | None, min_fraction: Decimal | None
) -> GuardPool:
    """The pool of a ``GET /key`` or ``GET /credits`` answer's ``data``."""
    if source == "credits":
        total, used = _money(data.get("total_credits")), _money(data.get("total_usage"))
        remaining = None if total is None or used is None else total - used
        return check_pool("credits", total, used, remaining, min_usd, min_fraction)
    limit = _money(data.get("limit"))
    remaining = _money(data.get("limit_remaining"))
    if limit is not None and remaining is None:
        remaining = limit - (_money(data.get("usage")) or Decimal(0))
    return check_pool("key", limit, _money(data.get("usage")), remaining, min_usd, min_fraction)


def budget_pool(
    balance: Mapping[str, Any], min_usd: Decimal | None, min_fraction: Decimal | None
) -> GuardPool:
    """The pool of a budget's :func:`~airflow_provider_openrouter.budget.ledger.balance`."""
    return check_pool(
        f"budget {balance['budget']!r} ({balance['period']})",
        balance["limit"],
        balance["spent"] + balance["reserved"],
        balance["remaining"],
        min_usd,
        min_fraction,
    )


def result(pools: list[GuardPool], limit_reset: str | None = None) -> BudgetGuardResult:
    return BudgetGuardResult(
        met=all(pool.met for pool in pools),
        pools=pools,
        limit_reset=limit_reset,
        checked_at=datetime.now(UTC).isoformat(),
    )


def budget_balance(budget_settings: Mapping[str, Any], run_id: str | None) -> dict[str, Any]:
    """The current period's balance of a budget given as :meth:`OpenRouterBudget.to_dict` (SQL; no hook)."""
    from airflow_provider_openrouter.budget import OpenRouterBudget
    from airflow_provider_openrouter.budget.ledger import Database, balance

    budget = OpenRouterBudget(**budget_settings).validate()
    database = Database.from_conn_id(budget.sql_conn_id)
    try:
        database.ensure_tables()
        return balance(database, budget, budget.period_key(run_id))
    finally:
        database.close()
