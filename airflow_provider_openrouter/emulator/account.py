"""``GET /credits``, ``GET /key`` (and ``/auth/key``) and ``GET /generation``: what the account has spent, as
the ledger records it. ``GET /activity`` is in activity.py."""

from __future__ import annotations

import time
from urllib.parse import parse_qs

from airflow_provider_openrouter.emulator.accounting import money
from airflow_provider_openrouter.emulator.asgi import USER_ID, HTTPError, Request, Response
from airflow_provider_openrouter.emulator.config import key_label
from airflow_provider_openrouter.emulator.core import EmulatorCore


class Account:
    """The account routes of one emulator."""

    def __init__(self, core: EmulatorCore) -> None:
        self.core = core

    async def credits(self, request: Request) -> Response:
        _, management = self.core.bearer(request)
        if not management:
            raise HTTPError(
                403,
                "Only management keys can fetch credits: "
                "create one at https://openrouter.ai/settings/management-keys",
                {"error_type": "permission_denied"},
            )
        return Response.json(
            {
                "data": {
                    "total_credits": money(self.core.settings.credits),
                    "total_usage": money(self.core.ledger.total_usage),
                }
            }
        )

    async def key(self, request: Request) -> Response:
        key, management = self.core.bearer(request)
        usage = money(self.core.ledger.key_usage(key))
        limit = self.core.settings.key_limit if not management else None
        remaining = self.core.ledger.key_remaining(key) if limit is not None else None
        budget = None
        if limit is not None and remaining is not None:
            budget = {
                "scope": "api_key",
                "limit_usd": money(limit),
                "spend_usd": usage,
                "remaining_usd": money(remaining),
                "include_byok": False,
                "reset_interval": None,
                "resets_at": None,
                "budget_id": None,
                "guardrail_id": None,
            }
        used = self.core.free_used(key)
        daily = self.core.free_daily_limit()
        return Response.json(
            {
                "data": {
                    "label": key_label(key),
                    "limit": money(limit) if limit is not None else None,
                    "limit_remaining": money(remaining) if remaining is not None else None,
                    "limit_reset": None,
                    "usage": usage,
                    "usage_daily": usage,
                    "usage_weekly": usage,
                    "usage_monthly": usage,
                    "byok_usage": 0,
                    "byok_usage_daily": 0,
                    "byok_usage_weekly": 0,
                    "byok_usage_monthly": 0,
                    "include_byok_in_limit": False,
                    "is_free_tier": self.core.settings.credits < 10,
                    "is_management_key": management,
                    "is_provisioning_key": management,
                    "creator_user_id": USER_ID,
                    "organization_id": None,
                    "workspace_id": None,
                    "expires_at": None,
                    "allowed_data_regions": ["global"],
                    "budgets": [budget] if budget else [],
                    "effective_budget": budget,
                    "free_model_daily_requests": {
                        "limit": daily,
                        "remaining": max(0, daily - used),
                        "used": used,
                    },
                    "rate_limit": {
                        "requests": -1,
                        "interval": "10s",
                        "note": "This field is deprecated and safe to ignore.",
                    },
                }
            }
        )

    async def generation(self, request: Request) -> Response:
        self.core.bearer(request)
        ids = parse_qs(request.query.decode("latin-1")).get("id")
        if not ids or not ids[0]:
            raise HTTPError(400, "id: required query parameter (the gen-... id of a completion)")
        record = self.core.ledger.generations.get(ids[0])
        if record is None or time.monotonic() < record.available_at:
            raise HTTPError(404, "Generation not found")
        return Response.json({"data": record.to_json()})
