"""On Airflow < 3.3 (no ExceptionRetryPolicy) the retry policy module imports cleanly and offers no policy."""

from __future__ import annotations

from datetime import timedelta

import airflow.sdk
import pytest

from airflow_provider_openrouter.retry_policy import OPENROUTER_RETRY_POLICY, openrouter_retry_policy

pytestmark = pytest.mark.skipif(
    hasattr(airflow.sdk, "ExceptionRetryPolicy"), reason="this Airflow has ExceptionRetryPolicy"
)


def test_without_exception_retry_policies_there_is_no_policy_and_no_import_error() -> None:
    assert OPENROUTER_RETRY_POLICY is None
    assert openrouter_retry_policy(rate_limit_delay=timedelta(seconds=1)) is None
