"""``GET /activity``: the account's billed usage per UTC day and endpoint, from the emulator's ledger.

As OpenRouter (addendum section 3): management keys only (an inference key gets 403), ``date`` is one UTC
day ``YYYY-MM-DD`` within the last 30 days, ``api_key_hash`` (SHA-256 hex of a key) narrows it to one key,
and the answer is ``{"data": [ActivityItem]}`` with every field present. One deviation, so tests need not wait
a day: OpenRouter serves only *completed* days, the emulator serves today's usage too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from airflow_provider_openrouter.emulator.accounting import GenerationRecord, money
from airflow_provider_openrouter.emulator.asgi import HTTPError, Request, Response

if TYPE_CHECKING:
    from airflow_provider_openrouter.emulator.core import EmulatorCore

DAYS_SERVED = 30
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _day(record: GenerationRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).date().isoformat()


def _requested_day(value: str | None) -> str | None:
    if value is None:
        return None
    if not _DATE.match(value):
        raise HTTPError(400, f"date: expected YYYY-MM-DD, got {value[:40]!r}")
    try:
        asked = date.fromisoformat(value)
    except ValueError:
        raise HTTPError(400, f"date: {value!r} is not a calendar day") from None
    today = datetime.now(UTC).date()
    if not today - timedelta(days=DAYS_SERVED) <= asked <= today:
        raise HTTPError(400, f"date: {value} is outside the last {DAYS_SERVED} days")
    return value


def activity_items(
    records: list[GenerationRecord], day: str | None, key_hash: str | None
) -> list[dict[str, Any]]:
    """The ``ActivityItem`` list: billed records grouped by (day, model, provider), newest day first."""
    today = datetime.now(UTC).date()
    oldest = (today - timedelta(days=DAYS_SERVED)).isoformat()
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for record in records:
        record_day = _day(record)
        if (day is not None and record_day != day) or record_day < oldest:
            continue
        if key_hash is not None and hashlib.sha256(record.key.encode()).hexdigest() != key_hash:
            continue
        group = groups.setdefault((record_day, record.model, record.provider_name), [Decimal(0), 0, 0, 0])
        group[0] += record.cost
        group[1] += 1
        group[2] += record.tokens_prompt
        group[3] += record.tokens_completion
    return [
        {
            "date": record_day,
            "model": model,
            "model_permaslug": model,
            "endpoint_id": hashlib.sha256(f"{provider}:{model}".encode()).hexdigest()[:16],
            "provider_name": provider,
            "usage": money(usage),
            "byok_usage_inference": 0,
            "requests": requests,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "reasoning_tokens": 0,
        }
        for (record_day, model, provider), (usage, requests, prompt_tokens, completion_tokens) in sorted(
            groups.items(), key=lambda item: (item[0][0], item[0][1], item[0][2]), reverse=True
        )
    ]


def activity_route(emulator: EmulatorCore) -> Callable[[Request], Awaitable[Response]]:
    """The route handler of ``GET /activity`` on ``emulator``'s ledger."""

    async def activity(request: Request) -> Response:
        _, management = emulator.bearer(request)
        if not management:
            raise HTTPError(
                403,
                "Only management keys can fetch activity: "
                "create one at https://openrouter.ai/settings/management-keys",
                {"error_type": "permission_denied"},
            )
        query = parse_qs(request.query.decode("latin-1"))
        day = _requested_day(query["date"][0] if query.get("date") else None)
        key_hash = query["api_key_hash"][0] if query.get("api_key_hash") else None
        records = list(emulator.ledger.generations.values())
        return Response.json({"data": activity_items(records, day, key_hash)})

    return activity
