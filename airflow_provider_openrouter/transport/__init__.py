"""The one owner of the wire: headers, timeouts, rate limiting, retries and error mapping.

Nothing else in the provider builds headers, sleeps for a retry or turns an HTTP status into an exception.

* :mod:`.billing_rules`: the money rules (what an answer means, whether it was billed, whether the request
  may be sent again), pure functions with the decision table in its docstring;
* ``_sync_client``: :class:`OpenRouterTransport` on ``requests``, for hooks and the batch engine's threads;
* ``_async_client``: :class:`AsyncOpenRouterTransport` on ``httpx``, for triggers;
* ``_settings``: :class:`TransportSettings` and the headers; ``_base``: what both clients share (limiter,
  tenacity arguments); ``_redact``: keeping the key out of answers and messages.

Import the names from this package: the underscored modules may move. A name is loaded on first use, so
``import airflow_provider_openrouter.transport.billing_rules`` (the retry policy does) costs no HTTP library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_openrouter.transport._async_client import AsyncOpenRouterTransport
    from airflow_provider_openrouter.transport._base import wait_retry_after_or_backoff
    from airflow_provider_openrouter.transport._settings import POOL_MAXSIZE, USER_AGENT, TransportSettings
    from airflow_provider_openrouter.transport._sync_client import OpenRouterTransport
    from airflow_provider_openrouter.transport.billing_rules import (
        error_for_status,
        may_resend,
        raise_for_openrouter_error,
        should_retry,
    )

_HOME = {
    "AsyncOpenRouterTransport": "_async_client",
    "OpenRouterTransport": "_sync_client",
    "POOL_MAXSIZE": "_settings",
    "TransportSettings": "_settings",
    "USER_AGENT": "_settings",
    "error_for_status": "billing_rules",
    "may_resend": "billing_rules",
    "raise_for_openrouter_error": "billing_rules",
    "should_retry": "billing_rules",
    "wait_retry_after_or_backoff": "_base",
}

__all__ = [
    "POOL_MAXSIZE",
    "USER_AGENT",
    "AsyncOpenRouterTransport",
    "OpenRouterTransport",
    "TransportSettings",
    "error_for_status",
    "may_resend",
    "raise_for_openrouter_error",
    "should_retry",
    "wait_retry_after_or_backoff",
]


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
