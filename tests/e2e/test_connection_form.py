"""The api-server discovers the provider and serves the OpenRouter connection form the UI renders.

The form is built from ``GET /ui/connections/hook_meta``; this test checks what that endpoint serves, and
tests/browser/test_airflow_ui.py checks what a user then sees in Chromium.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def test_openrouter_connection_form_metadata(airflow_stack: Any) -> None:
    hooks = airflow_stack.client.request("GET", "/connections/hook_meta", prefix="/ui")
    forms = {h["connection_type"]: h for h in hooks}
    assert "openrouter" in forms, sorted(forms)
    form = forms["openrouter"]
    assert form["hook_name"] == "OpenRouter"

    fields = form["standard_fields"]
    assert (fields["password"]["hidden"], fields["password"]["title"]) == (False, "API Key")
    assert (fields["host"]["hidden"], fields["host"]["title"]) == (False, "Base URL")
    assert fields["host"]["placeholder"] == "https://openrouter.ai/api/v1"
    for hidden in ("login", "port", "url_schema"):
        assert fields[hidden]["hidden"] is True, hidden

    # The extras documented in the README's connection table are form fields, with their defaults.
    extras = form["extra_fields"]
    for name in ("app_url", "app_title", "default_model", "timeout", "max_retries", "requests_per_minute"):
        assert name in extras, sorted(extras)
    assert extras["requests_per_minute"]["value"] == 100
    assert extras["retry_ambiguous"]["value"] is False
