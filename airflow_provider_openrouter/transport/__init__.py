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

from typing import TYPE_CHECKING

from airflow_provider_openrouter import _lazy_exports

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
    "AsyncOpenRouterTransport": f"{__name__}._async_client",
    "OpenRouterTransport": f"{__name__}._sync_client",
    "POOL_MAXSIZE": f"{__name__}._settings",
    "TransportSettings": f"{__name__}._settings",
    "USER_AGENT": f"{__name__}._settings",
    "error_for_status": f"{__name__}.billing_rules",
    "may_resend": f"{__name__}.billing_rules",
    "raise_for_openrouter_error": f"{__name__}.billing_rules",
    "should_retry": f"{__name__}.billing_rules",
    "wait_retry_after_or_backoff": f"{__name__}._base",
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


__getattr__, __dir__ = _lazy_exports(__name__, _HOME)
