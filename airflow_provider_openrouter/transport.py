"""The one owner of the wire: headers, timeouts, rate limiting, retries and error mapping.

Nothing else in the provider builds headers, sleeps for a retry or turns an HTTP status into an exception.

Billing safety (docs/design.md, "Money and retries") is decided here from what came back. OpenRouter's
zero-completion insurance charges nothing for a request that produced no completion or ended with
``finish_reason: "error"`` (addendum, section 1), so:

* a request that never left (connection refused, connect timeout, DNS, TLS, a header the HTTP library
  refused) is resent;
* an answer in OpenRouter's JSON error envelope, with an error status or inside a 200 (an ``error`` object,
  empty ``choices``, ``finish_reason: "error"``, an error event mid-stream) was not billed (``billed=False``)
  and is resent as its status allows: 408, 429 and 5xx yes (after ``Retry-After`` / ``X-RateLimit-Reset``
  when given), other 4xx never;
* a lost answer (read timeout after send, reset, truncated or non-JSON body, proxy HTML page, a stream cut
  off without an error event) and any 524 (Cloudflare's edge timeout: the origin may still be generating,
  whatever body the edge sent) may have been billed (``billed=None``): resent for a billable POST only when
  the connection sets ``retry_ambiguous``; otherwise they raise at once.

Idempotent requests (GET, DELETE, non-billable POST) are resent on 408, 429, 5xx and any transport failure.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import ssl
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
import tenacity
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NewConnectionError

from airflow_provider_openrouter import __version__
from airflow_provider_openrouter.exceptions import (
    MIN_SECRET_CHARS,
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
    OpenRouterRateLimitError,
    OpenRouterRequestError,
    OpenRouterResponseError,
    OpenRouterTimeoutError,
    OpenRouterUpstreamError,
    may_resend,
    scrub,
)
from airflow_provider_openrouter.ratelimit import TokenBucket, bucket_for

if TYPE_CHECKING:
    import httpx

__all__ = [
    "USER_AGENT",
    "AsyncOpenRouterTransport",
    "OpenRouterTransport",
    "TransportSettings",
    "error_for_status",
    "raise_for_openrouter_error",
    "should_retry",
]

log = logging.getLogger(__name__)

USER_AGENT = f"airflow-provider-openrouter/{__version__}"
POOL_MAXSIZE = 128
"""Connections kept per host: enough for the batch engine's worker threads to share one session."""

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


@dataclass(frozen=True)
class TransportSettings:
    """Everything the wire needs, read once from an Airflow connection. ``api_key`` never shows in repr."""

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    app_url: str | None = None
    app_title: str | None = None
    timeout: float = 120.0
    connect_timeout: float = 10.0
    max_retries: int = 5
    max_retry_wait: float = 300.0
    requests_per_minute: float | None = 100.0
    retry_ambiguous: bool = False
    default_model: str | None = None

    def __post_init__(self) -> None:
        """Refuse what the HTTP library would refuse (or turn into something else) before anything is sent.

        The messages name the connection and the field, never the key or any part of it.
        """
        problem = self.header_problem()
        if problem is not None:
            raise OpenRouterConfigurationError(problem, conn_id=self.conn_id, secrets=self.secrets)
        if "@" in urlsplit(self.base_url).netloc:
            # requests would send the user:password part as Basic auth in place of the bearer key.
            raise OpenRouterConfigurationError(
                f"the Base URL of connection '{self.conn_id}' carries a user name or password before '@' "
                "(not shown); remove it from the host field and put the API key in the password field",
                conn_id=self.conn_id,
                secrets=self.secrets,
            )

    def header_problem(self) -> str | None:
        """Why a field sent as a header (API key, app_url, app_title) cannot be sent, or None."""
        fields = [
            ("the API key (password field)", self.api_key, True),
            ("the extra app_url", self.app_url, False),
            ("the extra app_title", self.app_title, False),
        ]
        for label, value, is_key in fields:
            problem = _header_problem(value or "", key=is_key)
            if problem is not None:
                advice = "; paste the key again as one line" if is_key else ""
                return (
                    f"{label} of connection '{self.conn_id}' contains {problem}, which an HTTP header cannot "
                    f"carry{advice}"
                )
        return None

    def headers(self) -> dict[str, str]:
        """Headers sent on every request: auth, attribution and identification."""
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        if self.app_url:
            headers["HTTP-Referer"] = self.app_url
        if self.app_title:
            # X-OpenRouter-Title is current; X-Title is what older deployments read.
            headers["X-OpenRouter-Title"] = self.app_title
            headers["X-Title"] = self.app_title
        return headers

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.api_key,) if self.api_key else ()


def _header_problem(value: str, *, key: bool = False) -> str | None:
    """What keeps ``value`` out of an HTTP header, or None. An API key (``key``) must be printable ASCII
    without spaces; other values may carry spaces and Latin-1 letters (what requests can encode). The answer
    names the kind of character and its position, never the character or its neighbours."""
    for position, char in enumerate(value, 1):
        code = ord(char)
        if char in "\r\n":
            what = "a line break"
        elif code < 32 or code == 127 or 128 <= code < 160:
            what = "a control character"
        elif char.isspace() and (key or position == 1):
            what = "whitespace"
        elif code > (126 if key else 255):
            what = "a non-ASCII character" if key else "a character outside Latin-1"
        else:
            continue
        return f"{what} (character {position} of {len(value)})"
    return None


def _excerpt(text: str, limit: int, secrets: tuple[str, ...]) -> str:
    """The first ``limit`` characters of ``text``, keys redacted first (a key cut in two is not found)."""
    margin = max((len(secret) for secret in secrets), default=0) + 64
    return str(scrub(text[: limit + margin], secrets))[:limit]


# A key could hide in a JSON string behind an escape (\u0073k-or-..., \/), so such bodies are walked too.
_MAY_HIDE_A_KEY = (b"sk-or-", b"\\u", b"\\/")


def _secret_needles(secrets: tuple[str, ...]) -> tuple[bytes, ...]:
    """Byte patterns that betray a key in a raw answer: as written, and as JSON writes it (\" and \\)."""
    return _MAY_HIDE_A_KEY + tuple(
        {
            form.encode()
            for secret in secrets
            if len(secret) >= MIN_SECRET_CHARS
            for form in (secret, json.dumps(secret)[1:-1])
        }
    )


def _scrub_answer(
    payload: dict[str, Any], raw: bytes, needles: tuple[bytes, ...], secrets: tuple[str, ...]
) -> Any:
    """``payload`` with the connection's key and any ``sk-or-`` token redacted from every string (ids too),
    so a server echoing the key cannot put it into XCom. A body without any of ``needles`` is not walked."""
    if any(needle in raw for needle in needles):
        return scrub(payload, secrets, bearer=False)
    return payload


# --- error mapping (shared by the sync and async transports) ---------------------------------------------


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


def _error_in_stream_event(
    event: Mapping[str, Any],
) -> tuple[int, int | str | None, str, dict[str, Any] | None] | None:
    """An error event in a stream (top-level ``error`` or a choice ending with ``finish_reason: "error"``)."""
    if _envelope(event) is None and not any(
        isinstance(choice, Mapping) and choice.get("finish_reason") == "error"
        for choice in event.get("choices") or ()
    ):
        return None
    return _error_in_completion(event)


def _sse_payloads(lines: Iterable[bytes]) -> Iterator[str]:
    """The ``data`` of each server-sent event; comment lines (``: OPENROUTER PROCESSING``) are skipped."""
    data: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8", "replace")
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:
            yield "\n".join(data)
            data = []
    if data:
        yield "\n".join(data)


def _short_body(content: bytes, content_type: str, secrets: tuple[str, ...]) -> str:
    kind = content_type.split(";")[0].strip() or "no content type"
    if not content:
        return f"empty body ({kind})"
    if "html" in kind:
        return f"an HTML page instead of OpenRouter's JSON ({len(content)} bytes)"
    snippet = _excerpt(content[:4096].decode("utf-8", "replace"), 120, secrets)
    return f"a non-JSON body ({kind}): {snippet!r}"


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
                    f"HTTP {status} with {_short_body(content, content_type, secrets)}",
                    status=status,
                    generation_id=generation_id,
                    conn_id=conn_id,
                    request=request,
                    secrets=secrets,
                )
            raise OpenRouterResponseError(
                f"HTTP {status} with {_short_body(content, content_type, secrets)}",
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
        payload = _scrub_answer(payload, content, _secret_needles(secrets), secrets)
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
        message = f"HTTP {status} with {_short_body(content, content_type, secrets)}"
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


# --- retry policy ------------------------------------------------------------------------------------------


def should_retry(error: BaseException, *, billable: bool, retry_ambiguous: bool) -> bool:
    """The retry decision table of docs/design.md: may this failed request be sent again?"""
    if not isinstance(error, _TRANSIENT):
        return False
    return not billable or may_resend(error, retry_ambiguous=retry_ambiguous)


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


def _retrying_kwargs(
    settings: TransportSettings,
    *,
    billable: bool,
    retry_wait: tenacity.wait.wait_base | None,
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
        "wait": retry_wait or wait_retry_after_or_backoff(),
        "before_sleep": _log_retry,
        "reraise": True,
    }
    kwargs.update(tenacity_kwargs or {})
    return kwargs


# --- sync transport ---------------------------------------------------------------------------------------


def _was_never_sent(error: requests.ConnectionError) -> bool:
    """True when requests failed before any byte of the request reached the server.

    A TLS error counts only when it is a certificate rejection: requests raises the same ``SSLError`` when the
    record layer breaks while the answer is read, after the request went out.
    """
    if isinstance(error, requests.ConnectTimeout):
        return True
    if isinstance(error, requests.exceptions.SSLError):
        return _has_cause(error, ssl.SSLCertVerificationError)
    reason = error.args[0] if error.args else None
    return isinstance(reason, MaxRetryError) and isinstance(reason.reason, NewConnectionError)


def _has_cause(error: BaseException, wanted: type[BaseException]) -> bool:
    """Whether ``wanted`` is anywhere in the chain requests and urllib3 wrap around a socket error."""
    pending: list[Any] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, wanted):
            return True
        pending.extend(current.args)
        pending.extend((getattr(current, "reason", None), current.__cause__, current.__context__))
    return False


class _TransportBase:
    """What both transports hold: the settings, the base URL, the connection's rate limiter, the secrets."""

    def __init__(self, settings: TransportSettings) -> None:
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.bucket: TokenBucket | None = bucket_for(settings.conn_id, settings.requests_per_minute)
        self._secrets = settings.secrets
        self._needles = _secret_needles(self._secrets)

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
            _pause_bucket(self.bucket, error)
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
            problem = _header_problem(value)
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


class OpenRouterTransport(_TransportBase):
    """Synchronous OpenRouter client: one pooled ``requests.Session`` shared by every thread using it.

    :param settings: connection settings.
    :param retry_wait: a tenacity wait replacing the default (Retry-After, else backoff with jitter).
    :param tenacity_kwargs: further ``tenacity.Retrying`` arguments (``stop``, ``wait``, ``before_sleep``,
        ...), as apache-airflow-providers-http's ``tenacity_kwargs``; ``retry`` follows the billing rules.
    :param pool_maxsize: connections kept per host: the number of threads that share this transport (a
        smaller pool makes the extra threads open and drop a connection per request; a larger one holds idle
        sockets). Default :data:`POOL_MAXSIZE`.
    """

    def __init__(
        self,
        settings: TransportSettings,
        *,
        retry_wait: tenacity.wait.wait_base | None = None,
        tenacity_kwargs: Mapping[str, Any] | None = None,
        pool_maxsize: int | None = None,
    ) -> None:
        if pool_maxsize is not None and (isinstance(pool_maxsize, bool) or pool_maxsize < 1):
            raise ValueError(f"pool_maxsize must be a positive number of connections, got {pool_maxsize!r}")
        super().__init__(settings)
        self._timeout = (settings.connect_timeout, settings.timeout)
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize or POOL_MAXSIZE, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers.update(settings.headers())
        # Read proxy and CA settings from the environment once, here, instead of on every request (requests
        # re-scans os.environ twice per call otherwise); this also keeps a ~/.netrc entry from replacing the
        # bearer header.
        session.trust_env = False
        session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if ca_bundle:
            session.verify = ca_bundle
        self._session = session
        self._retry_billable = tenacity.Retrying(
            **_retrying_kwargs(
                settings, billable=True, retry_wait=retry_wait, tenacity_kwargs=tenacity_kwargs
            )
        )
        self._retry_idempotent = tenacity.Retrying(
            **_retrying_kwargs(
                settings, billable=False, retry_wait=retry_wait, tenacity_kwargs=tenacity_kwargs
            )
        )

    def __repr__(self) -> str:
        return f"OpenRouterTransport(conn_id={self.settings.conn_id!r}, base_url={self.base_url!r})"

    def __enter__(self) -> OpenRouterTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """GET ``path`` (relative to the base URL); retried as an idempotent request."""
        return self._retry_idempotent(self._attempt, "GET", path, params, None, None, False)

    def delete(self, path: str) -> dict[str, Any]:
        """DELETE ``path``; retried as an idempotent request."""
        return self._retry_idempotent(self._attempt, "DELETE", path, None, None, None, False)

    def post(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        billable: bool = True,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """POST a JSON body. A billable POST carries ``X-Idempotency-Key`` (one per call, kept across its
        retries; generated when not given) and is resent only where it provably did not run."""
        if not billable:
            return self._retry_idempotent(self._attempt, "POST", path, None, body, None, False)
        headers = {"X-Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        return self._retry_billable(self._attempt, "POST", path, None, body, headers, True)

    def stream(
        self, path: str, body: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """POST a billable request with ``"stream": true`` and yield its server-sent events as dicts.

        Opening the stream follows the billable retry rules (an error before the first event is an ordinary
        HTTP answer). Once events flow nothing is resent: an error event raises the class of the code it
        carries (``in_body``), and a stream cut off before ``[DONE]`` raises
        :class:`OpenRouterOutcomeUnknownError`. A server that ignores ``stream`` and answers one JSON object
        yields that object once.
        """
        headers = {"X-Idempotency-Key": idempotency_key or uuid.uuid4().hex, "Accept": "text/event-stream"}
        response = self._retry_billable(self._open_stream, "POST", path, {**body, "stream": True}, headers)
        if isinstance(response, dict):
            yield response
            return
        with response:
            yield from self._events(response, path)

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
        headers: dict[str, str] | None,
        *,
        stream: bool = False,
    ) -> requests.Response:
        """One HTTP exchange, transport failures mapped to never-sent / outcome-unknown."""
        if self.bucket is not None:
            self.bucket.acquire()
        try:
            return self._session.request(
                method,
                self.base_url + path,
                params=params,
                json=body,
                headers=headers,
                timeout=self._timeout,
                stream=stream,
            )
        except (requests.exceptions.InvalidHeader, UnicodeEncodeError) as error:
            refused = type(error).__name__
        except requests.RequestException as error:
            raise self._transport_error(error, f"{method} {path}") from None
        # Raised outside the handler: the library's error quotes the header (the key) and must not be chained.
        raise self._refused_before_sending(f"{method} {path}", headers, refused)

    def _transport_error(
        self, error: requests.RequestException, request: str, *, sent: bool = False
    ) -> OpenRouterError:
        """Never sent (safe to resend) or outcome unknown; ``sent`` when the answer had begun to arrive."""
        common = self._error_kwargs(request)
        if not sent and isinstance(error, requests.ConnectionError) and _was_never_sent(error):
            return OpenRouterConnectionError(
                f"{type(error).__name__} to {self.base_url}: {_reason(error)}", **common
            )
        if isinstance(error, requests.ConnectionError):
            return OpenRouterOutcomeUnknownError(
                f"connection lost after sending ({_reason(error)})", **common
            )
        if isinstance(error, requests.Timeout):  # a read timeout: connect timeouts are ConnectionErrors
            message = f"no answer within {self.settings.timeout:g} s ({type(error).__name__})"
            return OpenRouterOutcomeUnknownError(message, **common)
        # A truncated chunked body, undecodable content.
        return OpenRouterOutcomeUnknownError(
            f"incomplete answer ({type(error).__name__}: {_reason(error)})", **common
        )

    def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
        headers: dict[str, str] | None,
        billable: bool,
    ) -> dict[str, Any]:
        response = self._send(method, path, params, body, headers)
        return self._check(response.status_code, response.headers, response.content, method, path, billable)

    def _open_stream(
        self, method: str, path: str, body: Mapping[str, Any], headers: dict[str, str]
    ) -> requests.Response | dict[str, Any]:
        response = self._send(method, path, None, body, headers, stream=True)
        if response.status_code == 200 and "text/event-stream" in response.headers.get("content-type", ""):
            return response
        try:
            content = response.content
        except requests.RequestException as error:  # the answer had begun: the request arrived
            raise self._transport_error(error, f"{method} {path}", sent=True) from None
        finally:
            response.close()
        return self._check(response.status_code, response.headers, content, method, path, True)

    def _events(self, response: requests.Response, path: str) -> Iterator[dict[str, Any]]:
        request = f"POST {path}"
        generation_id = response.headers.get("x-generation-id")
        finished = saw_choice = False
        try:
            for payload in _sse_payloads(response.iter_lines()):
                if payload == "[DONE]":
                    if not saw_choice:
                        raise error_for_status(
                            502,
                            "the stream ended without any choice (no usable completion)",
                            method="POST",
                            path=path,
                            conn_id=self.settings.conn_id,
                            code="empty_choices",
                            generation_id=generation_id,
                            in_body=True,
                            billable=True,
                            secrets=self._secrets,
                        )
                    return
                event = self._event(payload, request, generation_id)
                if isinstance(event.get("id"), str):
                    generation_id = event["id"]
                choices = [choice for choice in event.get("choices") or () if isinstance(choice, Mapping)]
                saw_choice = saw_choice or bool(choices)
                finished = finished or any(choice.get("finish_reason") for choice in choices)
                yield event
        except requests.RequestException as error:
            lost = self._transport_error(error, request, sent=True)
            lost.generation_id = scrub(generation_id, self._secrets)
            raise lost from None
        if not finished:
            raise OpenRouterOutcomeUnknownError(
                "the stream ended before the completion finished",
                generation_id=generation_id,
                **self._error_kwargs(request),
            )

    def _event(self, payload: str, request: str, generation_id: str | None) -> dict[str, Any]:
        try:
            event = json.loads(payload)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            raise OpenRouterOutcomeUnknownError(
                f"unreadable stream event {_excerpt(payload, 80, self._secrets)!r}",
                generation_id=generation_id,
                **self._error_kwargs(request),
            )
        event = _scrub_answer(event, payload.encode(), self._needles, self._secrets)
        hidden = _error_in_stream_event(event)
        if hidden is not None:
            status, code, message, metadata = hidden
            event_id = event.get("id")
            raise error_for_status(
                status,
                message,
                method="POST",
                path=request.partition(" ")[2],
                conn_id=self.settings.conn_id,
                code=code,
                metadata=metadata,
                generation_id=event_id if isinstance(event_id, str) else generation_id,
                in_body=True,
                billable=True,
                secrets=self._secrets,
            )
        return event


def _pause_bucket(bucket: TokenBucket | None, error: OpenRouterRateLimitError) -> None:
    """A 429 with a reset time holds back every caller of the connection, not only this one."""
    if bucket is not None and error.retry_after:
        bucket.pause_until(time.monotonic() + error.retry_after)


def _reason(error: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error (e.g. "Connection reset by peer"), one short line."""
    inner: Any = error.args[0] if error.args else error
    inner = getattr(inner, "reason", inner)  # MaxRetryError wraps the cause
    nested = [arg for arg in getattr(inner, "args", ()) if isinstance(arg, BaseException)]
    if nested:  # ProtocolError("Connection aborted.", ConnectionResetError(...))
        inner = nested[-1]
    if isinstance(inner, OSError) and inner.strerror:
        return inner.strerror
    # Not cut here: the error's constructor redacts keys first, then cuts the whole message.
    return " ".join(str(inner).split())


# --- async transport --------------------------------------------------------------------------------------


class AsyncOpenRouterTransport(_TransportBase):
    """The asynchronous twin for triggers: ``httpx.AsyncClient``, same settings, headers, limiter, retry
    rules and error mapping as :class:`OpenRouterTransport`. Close it with :meth:`aclose`."""

    def __init__(
        self,
        settings: TransportSettings,
        *,
        retry_wait: tenacity.wait.wait_base | None = None,
        tenacity_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        import httpx

        super().__init__(settings)
        headers = _latin1_headers(settings.headers())
        if headers is None:
            raise self._refused_before_sending(None, None, "UnicodeEncodeError")
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            limits=httpx.Limits(max_connections=POOL_MAXSIZE, max_keepalive_connections=POOL_MAXSIZE),
        )
        self._kwargs = {
            billable: _retrying_kwargs(
                settings, billable=billable, retry_wait=retry_wait, tenacity_kwargs=tenacity_kwargs
            )
            for billable in (True, False)
        }

    async def __aenter__(self) -> AsyncOpenRouterTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return await self._send("GET", path, params, None, None, False)

    async def delete(self, path: str) -> dict[str, Any]:
        return await self._send("DELETE", path, None, None, None, False)

    async def post(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        billable: bool = True,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {"X-Idempotency-Key": idempotency_key or uuid.uuid4().hex} if billable else None
        return await self._send("POST", path, None, body, headers, billable)

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
        headers: dict[str, str] | None,
        billable: bool,
    ) -> dict[str, Any]:
        retrying = tenacity.AsyncRetrying(**self._kwargs[billable])
        result: dict[str, Any] = await retrying(self._attempt, method, path, params, body, headers, billable)
        return result

    async def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
        headers: dict[str, str] | None,
        billable: bool,
    ) -> dict[str, Any]:
        import httpx

        if self.bucket is not None:
            await self.bucket.acquire_async()
        try:
            response: httpx.Response = await self._client.request(
                method,
                self.base_url + path,
                params=_httpx_params(params),
                json=body,
                headers=headers,
            )
        except (httpx.LocalProtocolError, UnicodeEncodeError) as error:
            refused = type(error).__name__
        except httpx.TransportError as error:
            raise self._transport_error(error, f"{method} {path}") from None
        else:
            return self._check(
                response.status_code, response.headers, response.content, method, path, billable
            )
        # Raised outside the handler: the library's error quotes the header (the key) and must not be chained.
        raise self._refused_before_sending(f"{method} {path}", headers, refused)

    def _transport_error(self, error: httpx.TransportError, request: str) -> OpenRouterError:
        """httpx failures, mapped like the sync transport's: never sent, or sent with the outcome unknown."""
        import httpx

        common = self._error_kwargs(request)
        never_sent = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
        if isinstance(error, never_sent):
            return OpenRouterConnectionError(f"{type(error).__name__} to {self.base_url}: {error}", **common)
        if isinstance(error, httpx.TimeoutException):
            message = f"no answer within {self.settings.timeout:g} s ({type(error).__name__})"
            return OpenRouterOutcomeUnknownError(message, **common)
        return OpenRouterOutcomeUnknownError(
            f"connection lost after sending ({type(error).__name__}: {error})", **common
        )


def _latin1_headers(headers: Mapping[str, str]) -> dict[bytes, bytes] | None:
    """The headers as bytes, or None when one cannot be encoded (the codec's error holds the whole value, so
    it is dropped here). As bytes because httpx encodes str headers as ASCII, requests as Latin-1."""
    try:
        return {name.encode(): value.encode("latin-1") for name, value in headers.items()}
    except UnicodeEncodeError:
        return None


def _httpx_params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return {key: value for key, value in params.items() if value is not None} if params else None
