"""A ready retry policy for Airflow's exception-aware retries (AIP-105, Airflow 3.3+).

Airflow's own ``retries`` re-run a failed task blindly. For OpenRouter that is wrong both ways: a 402 (no
credits) or a 401 (bad key) fails the same way on every attempt, and a retried chat task sends a new billable
request. Pass the policy to any OpenRouter task::

    from airflow_provider_openrouter.retry_policy import openrouter_retry_policy

    OpenRouterChatCompletionOperator(..., retries=3, retry_policy=openrouter_retry_policy())

What it decides (first matching rule wins; the task's ``retries`` still caps the count):

=====================================================  ======  ==============================================
Exception                                              Action  Why
=====================================================  ======  ==============================================
``OpenRouterOutcomeUnknownError`` (read timeout, ...)  FAIL    the request may have run and been billed
                                                               (RETRY after ``upstream_delay`` with
                                                               ``retry_ambiguous=True``)
``OpenRouterResponseError`` (2xx we cannot use)        FAIL    the answer was billed; a retry pays again
``OpenRouterRequestError`` (400, 422, bad parameter)   FAIL    the same request fails the same way
``OpenRouterAuthenticationError`` (401)                FAIL    fix the connection's key
``OpenRouterInsufficientCreditsError`` (402)           FAIL    add credits first
``OpenRouterPermissionError`` (403, moderation)        FAIL    a retry cannot change the verdict
``OpenRouterNotFoundError`` (404, 410)                 FAIL    unknown model / generation / endpoint
``OpenRouterPayloadTooLargeError`` (413)               FAIL    shrink the request
``OpenRouterRateLimitError`` (429)                     RETRY   after ``rate_limit_delay``, or the server's
                                                               ``Retry-After`` when that is longer
``OpenRouterUpstreamError`` (5xx, error in a 200)      RETRY   after ``upstream_delay``
``OpenRouterTimeoutError`` (408)                       RETRY   after ``upstream_delay``
``OpenRouterConnectionError`` (never sent)             RETRY   after ``upstream_delay``
anything else                                          task's  Airflow's standard retry logic
                                                       default
=====================================================  ======  ==============================================

A RETRY rule follows the billing contract the transport follows
(:func:`~airflow_provider_openrouter.transport.billing_rules.may_resend`): an error OpenRouter answered with
its JSON envelope, with an error status or inside a 200, cost nothing (zero-completion insurance) and is
retried when its status allows (408, 429, 5xx). A RETRY becomes FAIL when the exception says a retry cannot
help (``retryable`` is false) or that its request may already have been billed (``billed is None``: a 524 or a
lost answer to a chat or text completion), unless the policy was built with ``retry_ambiguous=True``. The
transport has already retried what was safe to retry inside the attempt, so a task-level retry is the slow,
second line of defence.

On Airflow older than 3.3 (no ``ExceptionRetryPolicy``) :data:`OPENROUTER_RETRY_POLICY` is ``None`` and
:func:`openrouter_retry_policy` returns ``None``; such a core also has no ``retry_policy`` operator argument,
so leave it out there. Plain ``retries`` are safe on every version: the chat and completion operators raise a
failure that may have been billed as ``OpenRouterPossiblyBilledError``, which Airflow never retries.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from airflow_provider_openrouter.exceptions import (
    OpenRouterAuthenticationError,
    OpenRouterConnectionError,
    OpenRouterError,
    OpenRouterInsufficientCreditsError,
    OpenRouterNotFoundError,
    OpenRouterOutcomeUnknownError,
    OpenRouterPayloadTooLargeError,
    OpenRouterPermissionError,
    OpenRouterRateLimitError,
    OpenRouterRequestError,
    OpenRouterResponseError,
    OpenRouterTimeoutError,
    OpenRouterUpstreamError,
)
from airflow_provider_openrouter.transport.billing_rules import may_resend

if TYPE_CHECKING:
    from airflow.sdk import Context

try:
    from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryDecision, RetryRule
except ImportError:  # Airflow < 3.3: no exception-aware retries
    ExceptionRetryPolicy = None  # type: ignore[assignment,misc]

DEFAULT_RATE_LIMIT_DELAY = timedelta(seconds=60)
DEFAULT_UPSTREAM_DELAY = timedelta(seconds=120)

if ExceptionRetryPolicy is not None:

    class OpenRouterRetryPolicy(ExceptionRetryPolicy):
        """``ExceptionRetryPolicy`` with two OpenRouter refinements.

        * a 429's ``retry_after`` (seconds, from the server) lengthens the delay when it is longer than the
          rule's;
        * a RETRY rule becomes FAIL unless
          :func:`~airflow_provider_openrouter.transport.billing_rules.may_resend` allows it: not when
          ``retryable`` is false, nor when the request may have been billed (``billed is None``) and
          ``retry_ambiguous`` is false.
        """

        def __init__(
            self,
            rules: list[RetryRule],
            default: RetryAction = RetryAction.DEFAULT,
            *,
            retry_ambiguous: bool = False,
        ) -> None:
            super().__init__(rules, default)
            self.retry_ambiguous = retry_ambiguous

        def evaluate(
            self,
            exception: BaseException,
            try_number: int,
            max_tries: int,
            context: Context | None = None,
        ) -> RetryDecision:
            decision = super().evaluate(exception, try_number, max_tries, context)
            if decision.action is not RetryAction.RETRY or not isinstance(exception, OpenRouterError):
                return decision
            if not may_resend(exception, retry_ambiguous=self.retry_ambiguous):
                if exception.billed is None:
                    return RetryDecision.fail(
                        reason=f"{type(exception).__name__} may have been billed (HTTP {exception.status} to "
                        f"{exception.request}); a retry could pay twice"
                    )
                return RetryDecision.fail(
                    reason=f"{type(exception).__name__} is not retryable (a retry could bill again or "
                    "cannot succeed)"
                )
            retry_after = getattr(exception, "retry_after", None)
            if retry_after is not None:
                server_delay = timedelta(seconds=float(retry_after))
                if decision.retry_delay is None or server_delay > decision.retry_delay:
                    return RetryDecision.retry(
                        delay=server_delay, reason=f"{decision.reason}; server asked for {server_delay}"
                    )
            return decision

    def openrouter_retry_policy(
        rate_limit_delay: timedelta = DEFAULT_RATE_LIMIT_DELAY,
        upstream_delay: timedelta = DEFAULT_UPSTREAM_DELAY,
        *,
        retry_ambiguous: bool = False,
    ) -> OpenRouterRetryPolicy | None:
        """Build the policy described in this module's docstring (``None`` on Airflow < 3.3).

        :param retry_ambiguous: also retry a task whose request may have been billed (a lost answer or a 524),
            as the connection extra of the same name does for the transport: a retry may pay twice.
        """

        def fail(exception: type[OpenRouterError], reason: str) -> RetryRule:
            return RetryRule(exception=exception, action=RetryAction.FAIL, reason=reason)

        def retry(exception: type[OpenRouterError], delay: timedelta, reason: str) -> RetryRule:
            return RetryRule(exception=exception, action=RetryAction.RETRY, retry_delay=delay, reason=reason)

        lost = (
            retry(
                OpenRouterOutcomeUnknownError, upstream_delay, "outcome unknown; retry_ambiguous accepts it"
            )
            if retry_ambiguous
            else fail(OpenRouterOutcomeUnknownError, "outcome unknown: the request may have been billed")
        )
        return OpenRouterRetryPolicy(
            rules=[
                lost,
                fail(OpenRouterResponseError, "the answer was billed but unusable; a retry pays again"),
                fail(OpenRouterRequestError, "the request is invalid; fix it (400/422)"),
                fail(OpenRouterAuthenticationError, "the API key was rejected; fix the connection (401)"),
                fail(OpenRouterInsufficientCreditsError, "insufficient credits; add credits (402)"),
                fail(OpenRouterPermissionError, "forbidden or moderated; a retry cannot help (403)"),
                fail(OpenRouterNotFoundError, "not found; check the model or id (404)"),
                fail(OpenRouterPayloadTooLargeError, "request too large; shrink it (413)"),
                retry(OpenRouterRateLimitError, rate_limit_delay, "rate limited (429)"),
                retry(OpenRouterUpstreamError, upstream_delay, "upstream error (5xx)"),
                retry(OpenRouterTimeoutError, upstream_delay, "request timeout (408)"),
                retry(OpenRouterConnectionError, upstream_delay, "connection failed before sending"),
            ],
            retry_ambiguous=retry_ambiguous,
        )

    OPENROUTER_RETRY_POLICY: OpenRouterRetryPolicy | None = openrouter_retry_policy()

else:

    def openrouter_retry_policy(  # type: ignore[misc]
        rate_limit_delay: timedelta = DEFAULT_RATE_LIMIT_DELAY,
        upstream_delay: timedelta = DEFAULT_UPSTREAM_DELAY,
        *,
        retry_ambiguous: bool = False,
    ) -> None:
        """Airflow < 3.3 has no ``ExceptionRetryPolicy``: there is no policy to build."""
        return None

    OPENROUTER_RETRY_POLICY = None
