"""The budget guard: checks what is left before a pipeline spends (GET /key or GET /credits, and a budget)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_openrouter.budget import OpenRouterBudget, resolve_budget, skip_exception
from airflow_provider_openrouter.budget.guard import ON_UNMET, SOURCES, BudgetGuardResult
from airflow_provider_openrouter.exceptions import OpenRouterError, OpenRouterResponseError
from airflow_provider_openrouter.operators._base import OpenRouterBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_POLL_INTERVAL = 300.0
DEFAULT_TIMEOUT = 24 * 3600.0


class BudgetGuardUnmetError(OpenRouterError):
    """The guard's threshold is not met (and ``on_unmet="fail"``, or a deferred wait timed out)."""

    title = "OpenRouter budget guard not met"

    def default_hint(self) -> str:
        return (
            "Add credits or raise the key's limit or the budget's limit_usd, lower the threshold, or pass "
            "on_unmet='skip' or 'defer'. Nothing billable was sent."
        )


class OpenRouterBudgetGuardOperator(OpenRouterBaseOperator):
    """Check the money left before spending: the key's limit (``GET /key``: ``limit``, ``usage``,
    ``limit_remaining``, ``limit_reset``) or the account's credits (``GET /credits``, management key), and
    optionally a budget's current period, against a threshold. Sends only idempotent GETs.

    :param source: ``"key"`` (default; a key without a limit has no bound, so it always passes),
        ``"credits"`` (needs a management key in ``openrouter_conn_id``), or ``"none"`` (only ``budget``).
    :param budget: an :class:`~airflow_provider_openrouter.budget.OpenRouterBudget`, or the name of a budget
        declared in the connection extra ``budgets``; its balance (limit minus spent and reserved) is checked.
    :param min_remaining_usd: the least that must be left, in USD, in every checked balance.
    :param min_remaining_fraction: the least that must be left as a fraction of each limit (``0.2``: 20%).
        At least one of the two thresholds.
    :param on_unmet: ``"fail"`` (default), ``"skip"`` (this task and, by the default trigger rule, what
        follows it), or ``"defer"``: wait in the triggerer, polling every ``poll_interval`` seconds for up to
        ``timeout`` seconds, then fail.
    :param poll_interval: seconds between two checks while deferred (default 300).
    :param timeout: seconds to wait while deferred (default 24 h).

    **XCom contract**: ``return_value`` is a
    :class:`~airflow_provider_openrouter.budget.guard.BudgetGuardResult`, pushed when the threshold is met:
    ``met``; ``pools``, one per checked balance (``name``, ``limit``, ``used``, ``remaining`` as ``Decimal``,
    and the ``reason`` it fell short); ``limit_reset``; ``checked_at``. No other keys.
    """

    result_type = BudgetGuardResult
    template_fields: Sequence[str] = (
        "openrouter_conn_id",
        "source",
        "budget",
        "min_remaining_usd",
        "min_remaining_fraction",
        "on_unmet",
    )
    ui_color = "#ffe8cc"

    def __init__(
        self,
        *,
        source: str = "key",
        budget: OpenRouterBudget | str | None = None,
        min_remaining_usd: Decimal | float | str | None = None,
        min_remaining_fraction: Decimal | float | str | None = None,
        on_unmet: str = "fail",
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.budget = budget
        self.min_remaining_usd = min_remaining_usd
        self.min_remaining_fraction = min_remaining_fraction
        self.on_unmet = on_unmet
        self.poll_interval = poll_interval
        self.guard_timeout = timeout
        if min_remaining_usd is None and min_remaining_fraction is None:
            raise self.bad_parameter("min_remaining_usd", None, "given, or min_remaining_fraction")
        if poll_interval <= 0 or timeout <= 0:
            raise self.bad_parameter(
                "poll_interval", poll_interval, "a positive number of seconds (and timeout)"
            )
        self._check_settings(templated_ok=True)

    def _check_settings(self, *, templated_ok: bool = False) -> tuple[Decimal | None, Decimal | None]:
        def pending(value: Any) -> bool:
            return templated_ok and isinstance(value, str) and "{{" in value

        if not pending(self.source) and self.source not in SOURCES:
            raise self.bad_parameter("source", self.source, "'key', 'credits' or 'none'")
        if not pending(self.on_unmet) and self.on_unmet not in ON_UNMET:
            raise self.bad_parameter("on_unmet", self.on_unmet, "'fail', 'skip' or 'defer'")
        if self.source == "none" and self.budget is None:
            raise self.bad_parameter("budget", None, "given when source='none' (nothing else is checked)")
        usd = None if pending(self.min_remaining_usd) else self._amount("min_remaining_usd", None)
        fraction = None if pending(self.min_remaining_fraction) else self._amount("min_remaining_fraction", 1)
        return usd, fraction

    def _amount(self, name: str, high: int | None) -> Decimal | None:
        value = getattr(self, name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        expected = "a number between 0 and 1" if high else "a number of USD >= 0"
        try:
            amount = Decimal(str(value).strip())
        except (InvalidOperation, ValueError):
            raise self.bad_parameter(name, value, expected) from None
        if isinstance(value, bool) or not amount.is_finite() or amount < 0 or (high and amount > high):
            raise self.bad_parameter(name, value, expected)
        return amount

    def _budget(self) -> OpenRouterBudget | None:
        extra = None
        if isinstance(self.budget, str):
            extra = self.hook.get_connection(self.openrouter_conn_id).extra_dejson
        budget = resolve_budget(self.budget, extra)
        return budget.validate() if budget is not None else None

    def check(self, context: Context) -> BudgetGuardResult:
        """One check: the GET of ``source`` and the budget's balance."""
        from airflow_provider_openrouter.budget import guard

        usd, fraction = self._check_settings()
        pools = []
        limit_reset = None
        if self.source == "key":
            key = self.hook.get_key()
            limit_reset = key.limit_reset
            pools.append(guard.account_pool("key", key.model_dump(), usd, fraction))
        elif self.source == "credits":
            pools.append(guard.account_pool("credits", self.hook.get_credits().model_dump(), usd, fraction))
        budget = self._budget()
        if budget is not None:
            balance = guard.budget_balance(budget.to_dict(), context.get("run_id"))
            pools.append(guard.budget_pool(balance, usd, fraction))
        return guard.result(pools, limit_reset)

    def execute(self, context: Context) -> BudgetGuardResult:
        with self.hook:
            try:
                outcome = self.check(context)
            except OpenRouterError as err:
                self.log_failure("budget guard", err)
                raise
        for pool in outcome.pools:
            self.log.info(
                "%s: limit %s, used %s, remaining %s USD", pool.name, pool.limit, pool.used, pool.remaining
            )
        if outcome.met:
            return outcome
        reasons = outcome.reasons()
        if self.on_unmet == "skip":
            raise skip_exception()(f"budget guard not met, skipping: {reasons}")
        if self.on_unmet == "defer":
            self._defer(context, reasons)
        raise self._unmet(reasons)

    def _unmet(self, reasons: str) -> BudgetGuardUnmetError:
        return BudgetGuardUnmetError(f"task {self.task_id!r}: {reasons}", conn_id=self.openrouter_conn_id)

    def _defer(self, context: Context, reasons: str) -> NoReturn:
        from airflow_provider_openrouter.triggers.budget_guard import OpenRouterBudgetGuardTrigger

        usd, fraction = self._check_settings()
        budget = self._budget()
        self.log.info(
            "Budget guard not met (%s); deferring, checking every %.0f s", reasons, self.poll_interval
        )
        self.defer(
            trigger=OpenRouterBudgetGuardTrigger(
                openrouter_conn_id=self.openrouter_conn_id,
                source=self.source,
                budget=budget.to_dict() if budget is not None else None,
                run_id=context.get("run_id"),
                min_remaining_usd=None if usd is None else format(usd, "f"),
                min_remaining_fraction=None if fraction is None else format(fraction, "f"),
                poll_interval=self.poll_interval,
                end_time=time.time() + self.guard_timeout,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.guard_timeout + 60),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> BudgetGuardResult:
        """Resume after the trigger: the result when met; otherwise fail with what fell short."""
        from airflow_provider_openrouter.exceptions import error_from_event
        from airflow_provider_openrouter.triggers.budget_guard import EVENT_STATUSES

        status = event.get("status") if isinstance(event, dict) else None
        if status not in EVENT_STATUSES:
            raise OpenRouterResponseError(
                f"task {self.task_id!r}: the budget guard trigger sent an event this operator does not know: "
                f"{repr(event)[:200]}",
                conn_id=self.openrouter_conn_id,
                billed=False,
                hint="Retry the task (it only repeats GETs); align the provider version on workers and "
                "triggerer.",
            )
        assert isinstance(event, dict)  # checked above
        if status == "error":
            raise error_from_event(event.get("error") or {"message": event.get("message")})
        if status == "timeout":
            raise self._unmet(str(event.get("message")))
        return BudgetGuardResult.model_validate(event["result"])
