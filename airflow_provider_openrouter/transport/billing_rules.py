"""The money rules: what an answer means, whether it was billed, and whether the request may go again.

Pure functions, no I/O. Both clients, the batch engine and the Airflow retry policy decide with these, so the
billing contract lives in this one file. OpenRouter's zero-completion insurance charges nothing for a request
that produced no completion or ended with ``finish_reason: "error"`` (addendum, section 1), so an answer in
OpenRouter's JSON error envelope was free, and a lost answer may not have been.

=================================================  =====================================  ====================
What came back                                     Exception raised (``billed``)          Billable POST resent
=================================================  =====================================  ====================
nothing: refused, connect timeout, DNS, TLS        ``OpenRouterConnectionError`` (False)  yes
certificate, a header the HTTP library refused
envelope with 400, 422 or another 4xx              ``OpenRouterRequestError`` (False)     no
envelope with 401 / 402                            ``...AuthenticationError`` /           no
                                                   ``...InsufficientCreditsError``
envelope with 403 (moderation metadata)            ``...PermissionError``                 no
                                                   (``...ModerationError``)
envelope with 404 / 410 (legacy ``/completions``)  ``...NotFoundError``                   no
                                                   (``...EndpointGoneError``)
envelope with 413                                  ``...PayloadTooLargeError``            no
envelope with 408                                  ``OpenRouterTimeoutError`` (False)     yes
envelope with 429 (``Retry-After``,                ``OpenRouterRateLimitError`` (False)   yes, after the wait
``X-RateLimit-Reset``, also in metadata)
envelope with any other 5xx                        ``OpenRouterUpstreamError`` (False)    yes
an error inside a 200 completion (``error``,       the class of its code, ``in_body``     as its code
no ``choices``, ``finish_reason: "error"``, an     (False)
error event in a stream)
524 with an envelope (the edge timed out; the      ``OpenRouterUpstreamError`` (None)     only with
origin may still generate and bill)                                                       ``retry_ambiguous``
lost: read timeout after sending, reset, a         ``OpenRouterOutcomeUnknownError``      only with
truncated or non-JSON 2xx, a page that is not      (None)                                 ``retry_ambiguous``
the envelope with 408 or 5xx, a stream cut off
a 2xx JSON that is not an object                   ``OpenRouterResponseError`` (None)     no
=================================================  =====================================  ====================

Idempotent requests (GET, DELETE, non-billable POST) are resent on every transient failure: the first, 408,
429, 5xx and lost rows (:func:`should_retry`). Each client's retry loop, the batch engine and
:mod:`~airflow_provider_openrouter.retry_policy` ask :func:`may_resend` about a billable one.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any

from airflow_provider_openrouter.exceptions import (
    OpenRouterAuthenticationError,
    OpenRouterConnectionError,
    OpenRouterEndpointGoneError,
    OpenRouterError,
    OpenRouterInsufficientCreditsError,
    OpenRouterModerationError,
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
from airflow_provider_openrouter.transport._redact import scrub_answer, secret_needles, short_body

__all__ = [
    "error_for_status",
    "error_in_stream_event",
    "may_resend",
    "raise_for_openrouter_error",
    "should_retry",
]

# Cloudflare's edge timeout: the edge gave up waiting, the origin may still generate and bill, so even an
# envelope around it does not prove the request was free.
_LOST_STATUSES = frozenset({524})
# Failures after which the same request might succeed (the billing rules then decide for billable POSTs).
_TRANSIENT = (
    OpenRouterConnectionError,
    OpenRouterRateLimitError,
    OpenRouterUpstreamError,
    OpenRouterTimeoutError,
    OpenRouterOutcomeUnknownError,
)
_COMPLETION_PATHS = frozenset({"/chat/completions", "/completions"})
_LEGACY_COMPLETIONS_PATH = "/completions"


def _retry_after_seconds(
    headers: Mapping[str, str], metadata: Mapping[str, Any] | None = None
) -> float | None:
    """Seconds to wait as the server asked: ``retry-after-ms``, ``Retry-After`` (seconds or HTTP-date), or
    ``X-RateLimit-Reset`` (epoch milliseconds), also when copied into ``error.metadata.headers``."""
    sources: list[Mapping[str, Any]] = [headers]
    nested = (metadata or {}).get("headers")
    if isinstance(nested, Mapping):
        sources.append({str(key).lower(): value for key, value in nested.items()})
    for source in sources:
        value = source.get("retry-after-ms")
        if value is not None:
            try:
                return max(0.0, float(value) / 1000.0)
            except (TypeError, ValueError):
                pass
        value = source.get("retry-after")
        if value is not None:
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                try:
                    when = email.utils.parsedate_to_datetime(str(value))
                except (TypeError, ValueError):
                    when = None
                if when is not None:
                    return max(0.0, when.timestamp() - time.time())
        value = source.get("x-ratelimit-reset")
        if value is not None:
            try:
                reset = float(value)
            except (TypeError, ValueError):
                continue
            # Epoch milliseconds per OpenRouter's docs; tolerate seconds from other gateways.
            reset_seconds = reset / 1000.0 if reset > 1e11 else reset
            return max(0.0, reset_seconds - time.time())
    return None


def error_for_status(
    status: int | None,
    message: str,
    *,
    method: str,
    path: str,
    conn_id: str | None,
    code: int | str | None = None,
    metadata: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    generation_id: str | None = None,
    in_body: bool = False,
    billable: bool = False,
    secrets: tuple[str, ...] = (),
) -> OpenRouterError:
    """Build the exception for an OpenRouter error answer (HTTP status or the code of an error in a 200).

    OpenRouter answered with its error envelope, so nothing was billed (zero-completion insurance) and
    ``billed`` stays ``False``; only a 524 answering a billable request carries ``billed=None``, since the
    edge timed out while the origin may still be generating.
    """
    error = _error_class_for_status(
        status,
        message,
        method=method,
        path=path,
        conn_id=conn_id,
        code=code,
        metadata=metadata,
        headers=headers,
        generation_id=generation_id,
        in_body=in_body,
        secrets=secrets,
    )
    if billable and status in _LOST_STATUSES:
        error.billed = None
    return error


def _error_class_for_status(
    status: int | None,
    message: str,
    *,
    method: str,
    path: str,
    conn_id: str | None,
    code: int | str | None,
    metadata: Mapping[str, Any] | None,
    headers: Mapping[str, str] | None,
    generation_id: str | None,
    in_body: bool,
    secrets: tuple[str, ...],
) -> OpenRouterError:
    common: dict[str, Any] = {
        "status": status,
        "code": code if code is not None else status,
        "metadata": metadata,
        "generation_id": generation_id,
        "conn_id": conn_id,
        "request": f"{method} {path}",
        "in_body": in_body,
        "secrets": secrets,
    }
    if status in (400, 422):
        return OpenRouterRequestError(message, **common)
    if status == 401:
        return OpenRouterAuthenticationError(message, **common)
    if status == 402:
        return OpenRouterInsufficientCreditsError(message, **common)
    if status == 403:
        if metadata and ("reasons" in metadata or "flagged_input" in metadata):
            return OpenRouterModerationError(message, **common)
        return OpenRouterPermissionError(message, **common)
    if status in (404, 410):
        if path == _LEGACY_COMPLETIONS_PATH:
            return OpenRouterEndpointGoneError(message, **common)
        return OpenRouterNotFoundError(message, **common)
    if status == 408:
        return OpenRouterTimeoutError(message, **common)
    if status == 413:
        return OpenRouterPayloadTooLargeError(message, **common)
    if status == 429:
        return OpenRouterRateLimitError(
            message, retry_after=_retry_after_seconds(headers or {}, metadata), **common
        )
    if status is not None and 400 <= status < 500:
        return OpenRouterRequestError(message, **common)
    return OpenRouterUpstreamError(message, **common)


def _envelope(payload: Any) -> tuple[int | str | None, str, dict[str, Any] | None] | None:
    """``(code, message, metadata)`` of an ``{"error": {...}}`` payload, or None."""
    if not isinstance(payload, Mapping):
        return None
    error = payload.get("error")
    if error is None:  # the answer of every successful request: nothing more to look at
        return None
    if isinstance(error, Mapping):
        metadata = error.get("metadata")
        code = error.get("code", error.get("http_status"))
        return (
            code,
            str(error.get("message") or ""),
            dict(metadata) if isinstance(metadata, Mapping) else None,
        )
    if isinstance(error, str) and error:
        return None, error, None
    return None


def _status_from_code(code: int | str | None, default: int) -> int:
    if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
        return code
    if isinstance(code, str) and code.isdigit() and 100 <= int(code) <= 599:
        return int(code)
    return default


def _error_in_completion(
    payload: Mapping[str, Any],
) -> tuple[int, int | str | None, str, dict[str, Any] | None] | None:
    """An error hidden in a 200 completion body: ``(status, code, message, metadata)`` or None."""
    envelope = _envelope(payload)
    choices = payload.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, Mapping) and choice.get("finish_reason") == "error":
                found = _envelope(choice) or envelope
                code, message, metadata = found or (
                    None,
                    "the model stopped with finish_reason 'error'",
                    None,
                )
                return _status_from_code(code, 502), code, message or "finish_reason 'error'", metadata
    if envelope is not None:
        code, message, metadata = envelope
        return _status_from_code(code, 502), code, message or "error in a 200 body", metadata
    if not choices:
        return 502, "empty_choices", "OpenRouter answered 200 with no choices (no usable completion)", None
    return None


def error_in_stream_event(
    event: Mapping[str, Any],
) -> tuple[int, int | str | None, str, dict[str, Any] | None] | None:
    """An error event in a stream (top-level ``error`` or a choice ending with ``finish_reason: "error"``)."""
    if _envelope(event) is None and not any(
        isinstance(choice, Mapping) and choice.get("finish_reason") == "error"
        for choice in event.get("choices") or ()
    ):
        return None
    return _error_in_completion(event)


def raise_for_openrouter_error(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    method: str,
    path: str,
    conn_id: str | None,
    billable: bool,
    secrets: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Return the parsed JSON object of a successful answer, or raise the mapped :class:`OpenRouterError`.

    This is the one mapping from what came back to an exception, shared by both transports.
    """
    content_type = headers.get("content-type") or ""
    generation_id = headers.get("x-generation-id")
    request = f"{method} {path}"
    try:
        payload = json.loads(content) if content else None
    except ValueError:
        payload = None
        parsed = False
    else:
        parsed = payload is not None

    if 200 <= status < 300:
        if not parsed:
            if billable or "html" not in content_type:
                # Cut off or replaced in transit after the server answered: the work may be done and billed.
                raise OpenRouterOutcomeUnknownError(
                    f"HTTP {status} with {short_body(content, content_type, secrets)}",
                    status=status,
                    generation_id=generation_id,
                    conn_id=conn_id,
                    request=request,
                    secrets=secrets,
                )
            raise OpenRouterResponseError(
                f"HTTP {status} with {short_body(content, content_type, secrets)}",
                status=status,
                conn_id=conn_id,
                request=request,
                billed=False,
                hint=f"Check the Base URL of connection '{conn_id}': it should end in /api/v1.",
                secrets=secrets,
            )
        if not isinstance(payload, dict):
            raise OpenRouterResponseError(
                f"HTTP {status} with a JSON {type(payload).__name__} where an object was expected",
                status=status,
                generation_id=generation_id,
                conn_id=conn_id,
                request=request,
                secrets=secrets,
            )
        payload = scrub_answer(payload, content, secret_needles(secrets), secrets)
        if path in _COMPLETION_PATHS:
            hidden = _error_in_completion(payload)
            if hidden is not None:
                hidden_status, code, message, metadata = hidden
                body_id = payload.get("id")
                raise error_for_status(
                    hidden_status,
                    message,
                    method=method,
                    path=path,
                    conn_id=conn_id,
                    code=code,
                    metadata=metadata,
                    headers=headers,
                    generation_id=body_id if isinstance(body_id, str) else generation_id,
                    in_body=True,
                    billable=billable,
                    secrets=secrets,
                )
        return payload

    envelope = _envelope(payload) if parsed else None
    if envelope is None:
        message = f"HTTP {status} with {short_body(content, content_type, secrets)}"
        if billable and (status >= 500 or status == 408):
            # A proxy's page, not OpenRouter's verdict: the request may have reached OpenRouter and run.
            raise OpenRouterOutcomeUnknownError(
                message,
                status=status,
                generation_id=generation_id,
                conn_id=conn_id,
                request=request,
                secrets=secrets,
            )
        raise error_for_status(
            status,
            message,
            method=method,
            path=path,
            conn_id=conn_id,
            headers=headers,
            generation_id=generation_id,
            billable=billable,
            secrets=secrets,
        )
    code, message, metadata = envelope
    raise error_for_status(
        status,
        message or f"HTTP {status}",
        method=method,
        path=path,
        conn_id=conn_id,
        code=code,
        metadata=metadata,
        headers=headers,
        generation_id=generation_id,
        billable=billable,
        secrets=secrets,
    )


def should_retry(error: BaseException, *, billable: bool, retry_ambiguous: bool) -> bool:
    """The retry decision table of docs/design.md: may this failed request be sent again?"""
    if not isinstance(error, _TRANSIENT):
        return False
    return not billable or may_resend(error, retry_ambiguous=retry_ambiguous)


def may_resend(error: BaseException, *, retry_ambiguous: bool = False) -> bool:
    """OpenRouter's billing contract in one place: may the billable request that failed with ``error`` be
    sent again (by the transport, the batch engine or an Airflow retry)?

    * never sent (:class:`OpenRouterConnectionError`): yes;
    * answered with OpenRouter's error envelope (``billed is False``): zero-completion insurance charged
      nothing, so as its status allows: 408, 429 and 5xx yes, other statuses no;
    * lost (``billed is None``: read timeout, reset, truncated or non-JSON body, proxy page, 524, a stream cut
      off): only when the connection's ``retry_ambiguous`` accepts paying twice.
    """
    if not isinstance(error, OpenRouterError):
        return False
    if isinstance(error, OpenRouterConnectionError):
        return True
    if error.billed is None:
        return retry_ambiguous and (error.retryable or isinstance(error, OpenRouterOutcomeUnknownError))
    status = error.status
    return (
        error.billed is False
        and error.retryable
        and status is not None
        and (status in (408, 429) or 500 <= status < 600)
    )
