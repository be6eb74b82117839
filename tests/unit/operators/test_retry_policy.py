"""The shipped retry policy: which OpenRouter failures an Airflow retry may repeat, and after how long."""

from __future__ import annotations

import json
from datetime import timedelta

import airflow.sdk
import pytest

from airflow_provider_openrouter import exceptions as exc
from airflow_provider_openrouter.retry_policy import (
    OPENROUTER_RETRY_POLICY,
    openrouter_retry_policy,
)

if not hasattr(airflow.sdk, "ExceptionRetryPolicy"):  # test_retry_policy_fallback.py covers older cores
    pytest.skip("Airflow < 3.3 has no ExceptionRetryPolicy", allow_module_level=True)

from airflow.sdk import RetryAction

FAILS_AT_ONCE = [
    exc.OpenRouterRequestError("bad role", status=400),
    exc.OpenRouterRequestError("unprocessable", status=422),
    exc.OpenRouterConfigurationError("no key"),
    exc.OpenRouterAuthenticationError("no such key", status=401),
    exc.OpenRouterInsufficientCreditsError("no credits", status=402),
    exc.OpenRouterPermissionError("guardrail", status=403),
    exc.OpenRouterModerationError("flagged", status=403, metadata={"reasons": ["violence"]}),
    exc.OpenRouterNotFoundError("no such model", status=404),
    exc.OpenRouterEndpointGoneError("gone", status=410),
    exc.OpenRouterPayloadTooLargeError("too big", status=413),
    exc.OpenRouterOutcomeUnknownError("read timeout"),
    exc.OpenRouterResponseError("not JSON"),
]


@pytest.mark.parametrize("error", FAILS_AT_ONCE, ids=lambda e: f"{type(e).__name__}-{e.status}")
def test_failures_a_retry_cannot_fix_fail_at_once(error: exc.OpenRouterError) -> None:
    decision = OPENROUTER_RETRY_POLICY.evaluate(error, try_number=1, max_tries=5)
    assert decision.action is RetryAction.FAIL
    assert decision.reason


def test_rate_limit_retries_after_the_configured_delay() -> None:
    policy = openrouter_retry_policy(rate_limit_delay=timedelta(seconds=42))
    error = exc.OpenRouterRateLimitError("slow down", status=429)
    decision = policy.evaluate(error, try_number=1, max_tries=3)
    assert decision.action is RetryAction.RETRY
    assert decision.retry_delay == timedelta(seconds=42)


def test_rate_limit_waits_for_the_server_when_it_asks_for_longer() -> None:
    policy = openrouter_retry_policy(rate_limit_delay=timedelta(seconds=10))
    error = exc.OpenRouterRateLimitError("slow down", status=429, retry_after=95.5)
    decision = policy.evaluate(error, try_number=1, max_tries=3)
    assert decision.action is RetryAction.RETRY
    assert decision.retry_delay == timedelta(seconds=95.5)


def test_rate_limit_keeps_the_longer_configured_delay_over_a_short_retry_after() -> None:
    policy = openrouter_retry_policy(rate_limit_delay=timedelta(seconds=60))
    error = exc.OpenRouterRateLimitError("slow down", status=429, retry_after=2)
    assert policy.evaluate(error, try_number=1, max_tries=3).retry_delay == timedelta(seconds=60)


@pytest.mark.parametrize(
    "error",
    [
        exc.OpenRouterUpstreamError("bad gateway", status=502),
        exc.OpenRouterUpstreamError("error in body", status=503, in_body=True),
        exc.OpenRouterTimeoutError("timeout", status=408),
        exc.OpenRouterConnectionError("refused"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transient_failures_retry_after_the_upstream_delay(error: exc.OpenRouterError) -> None:
    policy = openrouter_retry_policy(upstream_delay=timedelta(minutes=3))
    decision = policy.evaluate(error, try_number=1, max_tries=3)
    assert decision.action is RetryAction.RETRY
    assert decision.retry_delay == timedelta(minutes=3)


def test_a_retry_rule_is_overruled_when_the_error_says_retrying_cannot_help() -> None:
    class NeverRetryUpstream(exc.OpenRouterUpstreamError):
        retryable = False

    decision = OPENROUTER_RETRY_POLICY.evaluate(NeverRetryUpstream("billed", status=500), 1, 3)
    assert decision.action is RetryAction.FAIL


def test_other_exceptions_fall_through_to_airflows_standard_retries() -> None:
    decision = OPENROUTER_RETRY_POLICY.evaluate(KeyError("boom"), try_number=1, max_tries=3)
    assert decision.action is RetryAction.DEFAULT


def test_policy_serializes_to_json_for_the_dag_processor() -> None:
    serialized = OPENROUTER_RETRY_POLICY.serialize()
    json.dumps(serialized)
    paths = {rule["exception"] for rule in serialized["rules"]}
    assert "airflow_provider_openrouter.exceptions.OpenRouterInsufficientCreditsError" in paths


@pytest.mark.parametrize("status", [500, 524])
def test_an_upstream_error_that_may_have_been_billed_fails_instead_of_paying_twice(status: int) -> None:
    error = exc.OpenRouterUpstreamError("provider timed out", status=status, billed=None)
    decision = OPENROUTER_RETRY_POLICY.evaluate(error, try_number=1, max_tries=5)
    assert decision.action is RetryAction.FAIL
    assert "may have been billed" in (decision.reason or "")


def test_the_same_upstream_error_on_a_get_is_retried() -> None:
    error = exc.OpenRouterUpstreamError("internal error", status=500, billed=False)
    assert OPENROUTER_RETRY_POLICY.evaluate(error, try_number=1, max_tries=5).action is RetryAction.RETRY


def _answered(status: int, content: bytes) -> exc.OpenRouterError:
    """The error the transport raises for this answer to a billable chat completion."""
    from airflow_provider_openrouter.transport import raise_for_openrouter_error

    with pytest.raises(exc.OpenRouterError) as caught:
        raise_for_openrouter_error(
            status,
            {"content-type": "application/json"},
            content,
            method="POST",
            path="/chat/completions",
            conn_id="c",
            billable=True,
        )
    return caught.value


def _envelope(code: int) -> bytes:
    return json.dumps({"error": {"code": code, "message": "Provider returned error"}}).encode()


@pytest.mark.parametrize(
    "status, content",
    [
        (500, _envelope(500)),
        (504, _envelope(504)),
        (408, _envelope(408)),
        (200, _envelope(429)),  # an upstream 429 inside a 200
        (200, _envelope(503)),
        (200, b'{"id": "gen-1", "choices": []}'),
    ],
    ids=["500", "504", "408", "429-in-200", "503-in-200", "empty-choices"],
)
def test_an_envelope_error_to_a_completion_cost_nothing_and_is_retried(status: int, content: bytes) -> None:
    error = _answered(status, content)
    assert error.billed is False
    assert OPENROUTER_RETRY_POLICY.evaluate(error, try_number=1, max_tries=3).action is RetryAction.RETRY


@pytest.mark.parametrize(
    "status, content",
    [(524, _envelope(524)), (200, _envelope(524)), (502, b"<html>bad gateway</html>"), (200, b'{"id": "ge')],
    ids=["524", "524-in-200", "html-502", "truncated"],
)
def test_a_lost_answer_to_a_completion_is_retried_only_with_retry_ambiguous(
    status: int, content: bytes
) -> None:
    error = _answered(status, content)
    assert error.billed is None
    assert OPENROUTER_RETRY_POLICY.evaluate(error, try_number=1, max_tries=3).action is RetryAction.FAIL
    accepting = openrouter_retry_policy(retry_ambiguous=True)
    assert accepting.evaluate(error, try_number=1, max_tries=3).action is RetryAction.RETRY


@pytest.mark.parametrize("code", [400, 401, 402, 403])
def test_a_4xx_inside_a_200_is_never_retried(code: int) -> None:
    error = _answered(200, _envelope(code))
    for policy in (OPENROUTER_RETRY_POLICY, openrouter_retry_policy(retry_ambiguous=True)):
        assert policy.evaluate(error, try_number=1, max_tries=3).action is RetryAction.FAIL


def test_retry_ambiguous_does_not_retry_an_answer_that_arrived_and_was_billed() -> None:
    error = exc.OpenRouterResponseError("not the expected shape", status=200)
    policy = openrouter_retry_policy(retry_ambiguous=True)
    assert policy.evaluate(error, try_number=1, max_tries=3).action is RetryAction.FAIL
