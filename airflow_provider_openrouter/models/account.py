"""The account: credits (``GET /credits``) and the API key (``GET /key``)."""

# No ``from __future__ import annotations`` here: real annotation objects spare pydantic from compiling and
# evaluating annotation strings at import, which DAG files pay for at parse time.
from decimal import Decimal
from typing import Any

from airflow_provider_openrouter.models._money import Money, OpenRouterModel


class Credits(OpenRouterModel):
    """``GET /credits`` (``data``): credits bought and used, in USD.

    This is the inner ``data`` object: the connector's ``data.total_credits`` is ``result.total_credits``.
    """

    total_credits: Money
    total_usage: Money

    @property
    def remaining(self) -> Decimal:
        return self.total_credits - self.total_usage


class KeyInfo(OpenRouterModel):
    """``GET /key`` (``data``): the current key's limits and usage, in USD. ``label`` is OpenRouter's masked
    label, not the key."""

    label: str | None = None
    limit: Money | None = None
    limit_remaining: Money | None = None
    limit_reset: str | None = None
    usage: Money | None = None
    usage_daily: Money | None = None
    usage_weekly: Money | None = None
    usage_monthly: Money | None = None
    byok_usage: Money | None = None
    byok_usage_daily: Money | None = None
    byok_usage_weekly: Money | None = None
    byok_usage_monthly: Money | None = None
    include_byok_in_limit: bool | None = None
    is_free_tier: bool | None = None
    is_management_key: bool | None = None
    is_provisioning_key: bool | None = None
    creator_user_id: str | None = None
    organization_id: str | None = None
    workspace_id: str | None = None
    expires_at: str | None = None
    allowed_data_regions: list[str] | None = None
    budgets: list[dict[str, Any]] | None = None
    effective_budget: dict[str, Any] | None = None
    free_model_daily_requests: dict[str, Any] | None = None
    rate_limit: dict[str, Any] | None = None
