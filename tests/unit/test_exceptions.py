"""The error hierarchy: one-line messages that say what, where and what to do; keys never shown."""

from __future__ import annotations

import json
import pickle

import pytest
from airflow.sdk.exceptions import AirflowException

from airflow_provider_openrouter import exceptions as exceptions_module
from airflow_provider_openrouter.exceptions import (
    OpenRouterAuthenticationError,
    OpenRouterConfigurationError,
    OpenRouterConnectionError,
    OpenRouterEndpointGoneError,
    OpenRouterError,
    OpenRouterInsufficientCreditsError,
    OpenRouterModerationError,
    OpenRouterNotFoundError,
    OpenRouterOutcomeUnknownError,
    OpenRouterPayloadTooLargeError,
    OpenRouterPermissionError,
    OpenRouterPossiblyBilledError,
    OpenRouterRateLimitError,
    OpenRouterRequestError,
    OpenRouterResponseError,
    OpenRouterTimeoutError,
    OpenRouterUpstreamError,
    error_from_event,
    scrub,
)
from airflow_provider_openrouter.get_provider_info import get_provider_info
from airflow_provider_openrouter.operators import (
    OpenRouterChatCompletionOperator,
    OpenRouterGetGenerationOperator,
)

KEY = "sk-or-v1-0123456789abcdef0123456789abcdef"


def test_every_error_is_an_airflow_exception() -> None:
    assert issubclass(OpenRouterError, AirflowException)
    assert issubclass(OpenRouterModerationError, OpenRouterPermissionError)
    assert issubclass(OpenRouterEndpointGoneError, OpenRouterNotFoundError)


def test_str_is_one_line_with_what_where_and_what_to_do() -> None:
    err = OpenRouterAuthenticationError(
        "User not found.\n  (key disabled)",
        status=401,
        code=401,
        conn_id="openrouter_prod",
        request="POST /chat/completions",
    )
    text = str(err)
    assert "\n" not in text
    assert text.startswith("OpenRouter did not accept the API key (HTTP 401): User not found. (key disabled)")
    assert "[POST /chat/completions on connection 'openrouter_prod']" in text
    assert text.endswith("Check the API key (password field) of connection 'openrouter_prod'.")


def test_api_key_is_scrubbed_from_message_metadata_and_hint() -> None:
    err = OpenRouterRequestError(
        f"bad header Authorization: Bearer {KEY}",
        metadata={"headers": {"authorization": f"Bearer {KEY}"}, "raw": [f"echo {KEY}"]},
        hint=f"do not use {KEY}",
        status=400,
    )
    assert KEY not in str(err)
    assert KEY not in repr(err.metadata)
    assert KEY not in err.hint
    assert "***" in err.message


def test_scrub_removes_a_given_secret_that_does_not_look_like_a_key() -> None:
    assert scrub({"a": ["token emu-secret-123 here"]}, secrets=["emu-secret-123"]) == {
        "a": ["token *** here"]
    }
    assert scrub(42) == 42


def test_long_messages_are_cut() -> None:
    err = OpenRouterUpstreamError("x" * 5000, status=502)
    assert len(err.message) <= 300


def test_moderation_hint_lists_reasons_and_flagged_input() -> None:
    err = OpenRouterModerationError(
        "Input flagged",
        status=403,
        metadata={"reasons": ["violence", "harassment"], "flagged_input": "the bad...part"},
    )
    assert err.reasons == ["violence", "harassment"]
    assert "Reasons: violence, harassment; flagged input: 'the bad...part'" in str(err)


def test_credits_permission_hint_names_the_management_key() -> None:
    err = OpenRouterPermissionError("Forbidden", status=403, conn_id="c", request="GET /credits")
    assert "management key" in str(err)
    assert "connection 'c'" in str(err)


@pytest.mark.parametrize(
    "err, phrase",
    [
        (OpenRouterInsufficientCreditsError("need credits", status=402), "lower max_tokens"),
        (OpenRouterRequestError("acme/nope is not a valid model ID", status=400), "list_models()"),
        (OpenRouterRequestError("messages must not be empty"), "nothing was sent"),
        (OpenRouterNotFoundError("nope", status=404, request="GET /generation"), "wait_for_stats"),
        (OpenRouterEndpointGoneError("gone", status=404), "OpenRouterChatCompletionOperator"),
        (OpenRouterRateLimitError("slow down", status=429, retry_after=2.5), "retry after 2.5 s"),
        (OpenRouterConnectionError("refused", conn_id="c"), "Base URL of connection 'c'"),
        (OpenRouterOutcomeUnknownError("read timeout"), "may have been processed and billed"),
    ],
)
def test_hints_say_what_to_do(err: OpenRouterError, phrase: str) -> None:
    assert phrase in str(err)


def test_hints_name_parameters_that_exist() -> None:
    # A hint that names a knob must name a real one: the connection extras of the provider metadata and the
    # operator parameters, read from their definitions.
    extras = set(get_provider_info()["connection-types"][0]["conn-fields"])
    named_extras = {
        "retry_ambiguous": [
            OpenRouterOutcomeUnknownError("read timeout", conn_id="c"),
            OpenRouterUpstreamError("edge timeout", status=524, billed=None, conn_id="c"),
        ],
        "requests_per_minute": [OpenRouterRateLimitError("slow down", status=429, conn_id="c")],
        "max_retries": [
            OpenRouterRateLimitError("slow down", status=429, conn_id="c"),
            OpenRouterTimeoutError("slow", status=408, conn_id="c"),
        ],
        "max_retry_wait": [
            OpenRouterRateLimitError("slow down", status=429, conn_id="c"),
            OpenRouterTimeoutError("slow", status=408, conn_id="c"),
        ],
    }
    for extra, errors in named_extras.items():
        assert extra in extras
        for err in errors:
            assert extra in err.hint
            assert "connection 'c'" in err.hint

    chat = OpenRouterChatCompletionOperator(
        task_id="t", content="x", models=["a/b"], provider={"order": ["c"]}
    )
    assert chat.models == ["a/b"] and chat.provider == {"order": ["c"]}
    upstream_hint = OpenRouterUpstreamError("down", status=503).hint
    assert "models=[" in upstream_hint and "provider={" in upstream_hint

    generation = OpenRouterGetGenerationOperator(task_id="g", generation_id="gen-1", wait_for_stats=5)
    assert generation.wait_for_stats == 5
    not_found = OpenRouterNotFoundError("nope", status=404, request="GET /generation").hint
    assert "wait_for_stats" in not_found and "wait_seconds" not in not_found


def test_rate_limit_hint_asks_for_a_larger_retry_budget_not_a_smaller_one() -> None:
    # The transport stops once the next wait would pass max_retry_wait: only a larger value waits a reset out.
    hint = OpenRouterRateLimitError("slow down", status=429, retry_after=90.0, conn_id="c").hint
    assert "raise its max_retries / max_retry_wait" in hint
    assert "lower the requests_per_minute extra" in hint


def test_a_request_refused_before_sending_reads_as_invalid_input_and_a_server_refusal_as_rejected() -> None:
    local = OpenRouterRequestError(
        "temperature must be a number, got 'warm'", request="POST /chat/completions"
    )
    assert str(local) == (
        "Invalid OpenRouter request: temperature must be a number, got 'warm' [POST /chat/completions]. "
        "Fix the arguments; nothing was sent."
    )
    served = OpenRouterRequestError("Bad input", status=400, request="POST /chat/completions")
    assert str(served).startswith("OpenRouter rejected the request (HTTP 400): Bad input")
    # A subclass with its own title keeps it, sent or not.
    config = OpenRouterConfigurationError("no API key", conn_id="c")
    assert str(config).startswith("OpenRouter connection is misconfigured: no API key")
    assert str(pickle.loads(pickle.dumps(local))) == str(local)


def test_an_envelope_timeout_says_nothing_was_billed_and_a_lost_524_says_it_may_have_been() -> None:
    # The transport resends an envelope 408 by itself (it was not billed): no retry_ambiguous advice.
    timeout = OpenRouterTimeoutError("slow", status=408, in_body=True, conn_id="c").hint
    assert "Nothing was billed" in timeout and "retry_ambiguous" not in timeout
    assert (
        "may still have finished and been billed"
        in OpenRouterUpstreamError("x", status=524, billed=None).hint
    )
    assert "billed" not in OpenRouterUpstreamError("x", status=503).hint


def test_generation_id_appears_in_where() -> None:
    err = OpenRouterUpstreamError("Provider returned error", status=502, generation_id="gen-9", in_body=True)
    assert "[generation gen-9]" in str(err)
    assert err.in_body


def test_retryable_and_billed_defaults() -> None:
    assert OpenRouterRateLimitError.retryable and OpenRouterUpstreamError.retryable
    assert not OpenRouterAuthenticationError.retryable
    assert not OpenRouterOutcomeUnknownError.retryable
    assert OpenRouterOutcomeUnknownError("x").billed is None
    assert OpenRouterUpstreamError("x").billed is False
    assert OpenRouterUpstreamError("x", billed=None).billed is None
    assert OpenRouterUpstreamError("x", billed=True).billed is True


def test_errors_survive_pickling_with_their_attributes() -> None:
    err = OpenRouterRateLimitError("slow", status=429, retry_after=3.0, conn_id="c", request="GET /key")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is OpenRouterRateLimitError
    assert copy.retry_after == 3.0
    assert str(copy) == str(err)


def _one_of_each() -> list[OpenRouterError]:
    common = {"conn_id": "c", "request": "POST /chat/completions", "generation_id": "gen-1"}
    return [
        OpenRouterError("plain", **common),
        OpenRouterRequestError("bad input", status=400, code=400, **common),
        OpenRouterRequestError("temperature must be a number", request="POST /chat/completions"),
        OpenRouterConfigurationError("no API key", conn_id="c"),
        OpenRouterAuthenticationError("User not found.", status=401, **common),
        OpenRouterInsufficientCreditsError("need credits", status=402, **common),
        OpenRouterPermissionError("Forbidden", status=403, conn_id="c", request="GET /credits"),
        OpenRouterModerationError(
            "flagged", status=403, metadata={"reasons": ["violence"], "flagged_input": "x"}, **common
        ),
        OpenRouterNotFoundError("nope", status=404, conn_id="c", request="GET /generation"),
        OpenRouterEndpointGoneError("gone", status=404, conn_id="c", request="POST /completions"),
        OpenRouterTimeoutError("slow", status=408, in_body=True, **common),
        OpenRouterPayloadTooLargeError("big", status=413, **common),
        OpenRouterRateLimitError("slow down", status=429, retry_after=2.5, in_body=True, **common),
        OpenRouterRateLimitError("slow down", status=429, **common),
        OpenRouterUpstreamError(
            "down", status=503, code="upstream", metadata={"provider_name": "p"}, **common
        ),
        OpenRouterUpstreamError("edge timeout", status=524, billed=None, **common),
        OpenRouterConnectionError("refused", conn_id="c", request="GET /models"),
        OpenRouterOutcomeUnknownError("read timeout", **common),
        OpenRouterResponseError("not JSON", status=200, billed=False, hint="Check the Base URL.", **common),
        OpenRouterPossiblyBilledError.from_error(OpenRouterOutcomeUnknownError("read timeout", **common)),
    ]


def test_every_error_class_has_a_case_in_the_round_trip() -> None:
    module_classes = {
        obj
        for obj in vars(exceptions_module).values()
        if isinstance(obj, type) and issubclass(obj, OpenRouterError)
    }
    assert module_classes == {type(err) for err in _one_of_each()}


@pytest.mark.parametrize("err", _one_of_each(), ids=lambda err: f"{type(err).__name__}-{err.status}")
def test_a_trigger_event_rebuilds_the_same_error(err: OpenRouterError) -> None:
    event = err.to_event()
    # What a trigger event carries must survive JSON (the triggerer serialises it).
    copy = error_from_event(json.loads(json.dumps(event)))
    assert type(copy) is type(err)
    assert str(copy) == str(err)
    assert (copy.billed, copy.retryable, copy.status, copy.code, copy.in_body) == (
        err.billed,
        err.retryable,
        err.status,
        err.code,
        err.in_body,
    )
    assert getattr(copy, "retry_after", None) == getattr(err, "retry_after", None)
    assert copy.metadata == err.metadata and copy.generation_id == err.generation_id
    assert str(pickle.loads(pickle.dumps(copy))) == str(err)


def test_an_event_keeps_rate_limit_wait_and_billed_none_and_false() -> None:
    limited = error_from_event(OpenRouterRateLimitError("slow", status=429, retry_after=7.0).to_event())
    assert isinstance(limited, OpenRouterRateLimitError) and limited.retry_after == 7.0
    assert error_from_event(OpenRouterUpstreamError("x", status=502).to_event()).billed is False
    assert error_from_event(OpenRouterUpstreamError("x", status=524, billed=None).to_event()).billed is None
    event = OpenRouterUpstreamError("x", status=502).to_event()
    assert event["retry_after"] is None and event["hint"] is None  # the class's own advice is not frozen


def test_an_event_with_an_unknown_class_gives_a_plain_openrouter_error() -> None:
    event = {**OpenRouterAuthenticationError("no", status=401).to_event(), "error_class": "SomethingElse"}
    err = error_from_event(event)
    assert type(err) is OpenRouterError and err.status == 401 and "no" in str(err)
    assert type(error_from_event({"error_class": "scrub", "message": "m"})) is OpenRouterError


def test_an_event_carries_no_key() -> None:
    err = OpenRouterUpstreamError(
        f"echo {KEY}", status=502, metadata={"raw": f"Bearer {KEY}"}, generation_id=f"gen-{KEY}"
    )
    assert KEY not in json.dumps(err.to_event())


def test_status_code_is_the_http_status_not_airflows_500() -> None:
    assert OpenRouterAuthenticationError("no", status=401).status_code == 401
    assert OpenRouterRateLimitError("slow", status=429).status_code == 429
    assert OpenRouterConnectionError("refused").status_code is None  # nothing answered
    assert pickle.loads(pickle.dumps(OpenRouterAuthenticationError("no", status=401))).status_code == 401


def test_a_secret_too_short_to_be_a_key_is_not_redacted_everywhere() -> None:
    # As Airflow's log masker: a two-letter "key" would otherwise turn every "ok" in a message into "***".
    assert scrub("ok, looks ok", secrets=["ok"]) == "ok, looks ok"
    assert scrub("token abcde here", secrets=["abcde"]) == "token *** here"
