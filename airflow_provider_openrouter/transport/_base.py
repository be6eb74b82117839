"""What the sync and async clients share: the base class holding settings, limiter and secrets, and the
tenacity arguments that make the billing rules their retry rule."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from typing import Any

import tenacity

from airflow_provider_openrouter.exceptions import (
    OpenRouterConfigurationError,
    OpenRouterError,
    OpenRouterRateLimitError,
    OpenRouterRequestError,
)
from airflow_provider_openrouter.ratelimit import TokenBucket, bucket_for
from airflow_provider_openrouter.transport._redact import secret_needles
from airflow_provider_openrouter.transport._settings import TransportSettings, header_value_problem
from airflow_provider_openrouter.transport.billing_rules import raise_for_openrouter_error, should_retry

__all__ = ["TransportBase", "retrying_kwargs", "wait_retry_after_or_backoff"]

log = logging.getLogger("airflow_provider_openrouter.transport")


class wait_retry_after_or_backoff(tenacity.wait.wait_base):
    """Wait what the server asked (``retry_after`` of a 429), else exponential backoff with jitter.

    The backoff for attempt ``n`` is drawn uniformly from ``[b/2, b]`` with
    ``b = min(cap, initial * 2**(n-1))``, so concurrent callers spread out but never retry at once.
    """

    def __init__(self, initial: float = 0.5, cap: float = 30.0, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.cap = cap
        self._uniform = (rng or random.Random()).uniform

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return float(retry_after)
        base = min(self.cap, self.initial * 2 ** (retry_state.attempt_number - 1))
        return self._uniform(base / 2, base)


def _log_retry(retry_state: tenacity.RetryCallState) -> None:
    outcome = retry_state.outcome
    error = outcome.exception() if outcome is not None else None
    method, path = retry_state.args[0], retry_state.args[1]
    log.warning(
        "OpenRouter %s %s attempt %d failed (%s: %s); retrying in %.1f s",
        method,
        path,
        retry_state.attempt_number,
        type(error).__name__,
        getattr(error, "message", error),
        retry_state.upcoming_sleep,
    )


def retrying_kwargs(
    settings: TransportSettings,
    *,
    billable: bool,
    tenacity_kwargs: Mapping[str, Any] | None,
) -> dict[str, Any]:
    if tenacity_kwargs and "retry" in tenacity_kwargs:
        raise ValueError(
            "tenacity_kwargs may not set 'retry': what is resent follows the billing rules "
            "(set retry_ambiguous on the connection to resend ambiguous failures)"
        )
    retry_ambiguous = settings.retry_ambiguous

    def decide(error: BaseException) -> bool:
        return should_retry(error, billable=billable, retry_ambiguous=retry_ambiguous)

    kwargs: dict[str, Any] = {
        "retry": tenacity.retry_if_exception(decide),
        "stop": tenacity.stop_after_attempt(max(0, settings.max_retries) + 1)
        | tenacity.stop_before_delay(max(0.0, settings.max_retry_wait)),
        "wait": wait_retry_after_or_backoff(),
        "before_sleep": _log_retry,
        "reraise": True,
    }
    kwargs.update(tenacity_kwargs or {})
    return kwargs


class TransportBase:
    """What both transports hold: the settings, the base URL, the connection's rate limiter, the secrets."""

    def __init__(self, settings: TransportSettings) -> None:
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.bucket: TokenBucket | None = bucket_for(settings.conn_id, settings.requests_per_minute)
        self._secrets = settings.secrets
        self._needles = secret_needles(self._secrets)

    def _check(
        self, status: int, headers: Mapping[str, str], content: bytes, method: str, path: str, billable: bool
    ) -> dict[str, Any]:
        """The answer's JSON, or its error raised; a 429 also pauses the connection's limiter."""
        try:
            return raise_for_openrouter_error(
                status,
                headers,
                content,
                method=method,
                path=path,
                conn_id=self.settings.conn_id,
                billable=billable,
                secrets=self._secrets,
            )
        except OpenRouterRateLimitError as error:
            pause_bucket(self.bucket, error)
            raise

    def _error_kwargs(self, request: str | None) -> dict[str, Any]:
        """What every transport failure carries: the connection, the request, the secrets to redact."""
        return {"conn_id": self.settings.conn_id, "request": request, "secrets": self._secrets}

    def _refused_before_sending(
        self, request: str | None, headers: Mapping[str, str] | None, library_error: str
    ) -> OpenRouterError:
        """The HTTP library refused a header before sending (settings that escaped the checks of
        :class:`TransportSettings`, or a caller's own header): never sent, not billed. The library's message
        quotes the header, so only the header's name and the kind of character are kept."""
        kwargs = self._error_kwargs(request)
        problem = self.settings.header_problem()
        if problem is not None:
            return OpenRouterConfigurationError(f"{problem}; nothing was sent", **kwargs)
        for name, value in (headers or {}).items():
            problem = header_value_problem(value)
            if problem is not None:
                return OpenRouterRequestError(
                    f"the request header {name} contains {problem}, which an HTTP header cannot carry; "
                    "nothing was sent",
                    **kwargs,
                )
        return OpenRouterRequestError(
            f"the HTTP library refused the request before sending it ({library_error}); nothing was sent",
            **kwargs,
        )


def pause_bucket(bucket: TokenBucket | None, error: OpenRouterRateLimitError) -> None:
    """A 429 with a reset time holds back every caller of the connection, not only this one."""
    if bucket is not None and error.retry_after:
        bucket.pause_until(time.monotonic() + error.retry_after)
