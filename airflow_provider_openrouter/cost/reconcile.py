"""Reconciliation: OpenRouter's own ledger (``GET /activity``, management key only) beside the audit.

``GET /activity?date=YYYY-MM-DD`` answers the account's usage of one UTC day grouped by endpoint (model and
provider). Grouped here by day and model and set beside the audit's rows of the same days, so the difference
shows spend the pipeline never saw (other apps on the same account, generations not audited).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from airflow_provider_openrouter.cost.records import money
from airflow_provider_openrouter.cost.summary import UNKNOWN, Reconciliation, ReconciliationRow
from airflow_provider_openrouter.exceptions import (
    OpenRouterAuthenticationError,
    OpenRouterError,
    OpenRouterPermissionError,
)
from airflow_provider_openrouter.models import plain_decimal

ACTIVITY_PATH = "/activity"


class ReconciliationError(OpenRouterError):
    """``GET /activity`` cannot be read with this connection (it needs a management key)."""

    title = "OpenRouter activity unavailable"


def fetch_activity(
    transport: Any, days: Iterable[str], conn_id: str
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """``(items, unavailable_days)``: the ``/activity`` items of each day, and why a day had none.

    A 403 (an inference key) or 401 stops with :class:`ReconciliationError`: no day can be read. Any other
    error of one day (400 for a day outside the last 30 completed days) is noted for that day.
    """
    items: list[dict[str, Any]] = []
    unavailable: dict[str, str] = {}
    for day in sorted(set(days)):
        try:
            answer = transport.get(ACTIVITY_PATH, {"date": day})
        except (OpenRouterPermissionError, OpenRouterAuthenticationError) as err:
            raise ReconciliationError(
                f"GET /activity was refused ({err.status_code or type(err).__name__}): reconciliation "
                "needs a management key",
                status=err.status,
                conn_id=conn_id,
                request=f"GET {ACTIVITY_PATH}",
                hint=f"Put a management key (https://openrouter.ai/settings/management-keys) in connection "
                f"{conn_id!r} and pass it as management_conn_id; inference keys cannot read /activity.",
            ) from None
        except OpenRouterError as err:
            unavailable[day] = " ".join(str(err).split())[:300]
            continue
        data = answer.get("data") if isinstance(answer, Mapping) else None
        if not isinstance(data, list):
            unavailable[day] = "the answer had no 'data' list"
            continue
        items.extend(dict(item) for item in data if isinstance(item, Mapping) and item.get("date") == day)
    return items, unavailable


def reconcile(
    activity: Iterable[Mapping[str, Any]],
    recorded: Iterable[Mapping[str, Any]],
    days: Iterable[str],
    unavailable_days: Mapping[str, str] | None = None,
) -> Reconciliation:
    """Per UTC day and model: billed ``usage`` (and BYOK usage, requests) beside the recorded cost and count.

    A recorded model matches an activity item by its ``model`` or ``model_permaslug``. Days in
    ``unavailable_days`` are left out (nothing to compare with).
    """
    wanted = set(days) - set(unavailable_days or {})
    billed: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [Decimal(0), Decimal(0), 0])
    alias: dict[tuple[str, str], str] = {}
    for item in activity:
        day = str(item.get("date") or "")
        if day not in wanted:
            continue
        model = str(item.get("model") or UNKNOWN)
        entry = billed[(day, model)]
        entry[0] += money(item.get("usage")) or Decimal(0)
        entry[1] += money(item.get("byok_usage_inference")) or Decimal(0)
        entry[2] += int(item.get("requests") or 0)
        permaslug = item.get("model_permaslug")
        if isinstance(permaslug, str) and permaslug:
            alias[(day, permaslug)] = model
    seen: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [Decimal(0), 0])
    for row in recorded:
        day = str(row.get("day") or "")
        if day not in wanted:
            continue
        model = str(row.get("model") or UNKNOWN)
        key = (day, alias.get((day, model), model))
        seen[key][0] += row.get("cost") or Decimal(0)
        seen[key][1] += 1
    rows = []
    for day, model in sorted(billed.keys() | seen.keys()):
        usage, byok, requests = billed.get((day, model), (Decimal(0), Decimal(0), 0))
        cost, count = seen.get((day, model), (Decimal(0), 0))
        rows.append(
            ReconciliationRow(
                day=day,
                model=model,
                billed_usage=usage,
                billed_byok_usage=byok,
                billed_requests=requests,
                recorded_cost=cost,
                recorded_requests=count,
                difference=usage - cost,
            )
        )
    billed_total = sum((row.billed_usage for row in rows), Decimal(0))
    recorded_total = sum((row.recorded_cost for row in rows), Decimal(0))
    return Reconciliation(
        rows=rows,
        unavailable_days=dict(unavailable_days or {}),
        billed_total=billed_total,
        recorded_total=recorded_total,
        difference_total=billed_total - recorded_total,
    )


def reconciliation_sql_rows(
    reconciliation: Reconciliation, checked_at: datetime | None = None
) -> list[tuple[Any, ...]]:
    """The rows of the reconciliation table (schema.RECONCILIATION_COLUMNS order), money as plain text."""
    moment = (checked_at or datetime.now(UTC)).isoformat()
    return [
        (
            row.day,
            row.model,
            plain_decimal(row.billed_usage),
            plain_decimal(row.billed_byok_usage),
            row.billed_requests,
            plain_decimal(row.recorded_cost),
            row.recorded_requests,
            plain_decimal(row.difference),
            moment,
        )
        for row in reconciliation.rows
    ]
