"""Fault injection: ``[[emulator: ...]]`` directives, attempt counts per body, the rate limiter, error texts.

A directive sits anywhere in a message text or a legacy prompt, e.g. ``[[emulator: fault=503, times=2]]``.
Keys: ``fault`` (an HTTP status, or one of NAMED_FAULTS), ``times`` (only the first N attempts of this exact
request content fail: see :func:`content_digest`), ``latency_ms``, ``status`` (the status an
``html``/``error_in_200``/``mid_stream`` fault reports), ``retry_after`` (seconds, sent as ``Retry-After``
with an error status) and, in a batch request only, ``batch`` (one of BATCH_OUTCOMES: how the whole batch
ends). The bare flag ``refuse`` makes the model refuse (``message.refusal``), and ``invalid-json`` makes a
``json_schema`` answer break its schema; both are billed answers like any other.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_openrouter.emulator.config import MAX_LATENCY_MS

NAMED_FAULTS = ("reset", "truncate", "html", "error_in_200", "empty_choices", "mid_stream")
# The generation ran and was billed before the answer was lost: a client cannot tell whether to resend.
BILLED_FAULTS = frozenset({"reset", "truncate", "html"})
BATCH_OUTCOMES = ("failed", "expired")
DIRECTIVE_KEYS = ("fault", "times", "latency_ms", "status", "retry_after", "batch")
DIRECTIVE_FLAGS = ("refuse", "invalid-json")
DIRECTIVE_MARK = "[[emulator:"
MAX_RETRY_AFTER_S = 86_400.0
_DIRECTIVE = re.compile(r"\[\[emulator:(.*?)\]\]", re.S)
# Attribution (the Airflow task, run and try that sent a request) says who asked, not what was asked: a row
# sent again on a later try carries another try number but is the same request, billed twice if billed again.
ATTRIBUTION_FIELDS = ("metadata", "session_id", "trace")
_ATTRIBUTION_MARK = re.compile(b'"(?:' + "|".join(ATTRIBUTION_FIELDS).encode() + b')"')


_sorted_json = json.JSONEncoder(sort_keys=True, default=str).encode  # json.dumps builds one per call


def content_digest(body: bytes | Mapping[str, Any], parsed: Mapping[str, Any] | None = None) -> bytes:
    """What a request asks for, as 16 bytes: its body without the attribution fields. ``parsed``: the bytes
    ``body`` already parsed, if they were.

    The billed-twice check and ``times=N`` attempt counts key on it, so a request resent by a later Airflow
    try (whose ``metadata``/``trace`` name another try number) counts as the same request.
    """
    if isinstance(body, bytes):
        if _ATTRIBUTION_MARK.search(body) is None:
            return hashlib.blake2b(body, digest_size=16).digest()
        if parsed is None:
            parsed = json.loads(body)
    else:
        parsed = body
    content = {key: value for key, value in parsed.items() if key not in ATTRIBUTION_FIELDS}
    return hashlib.blake2b(_sorted_json(content).encode(), digest_size=16).digest()


ERROR_TEXT: dict[int, tuple[str, str]] = {
    400: ("Bad Request", "invalid_request"),
    401: ("User not found.", "authentication"),
    402: ("Insufficient credits. Add more using https://openrouter.ai/settings/credits", "payment_required"),
    403: ("Forbidden", "permission_denied"),
    404: ("Not Found", "not_found"),
    408: ("Request timed out", "timeout"),
    409: ("Conflict", "precondition_failed"),
    410: ("Gone", "not_found"),
    413: ("Payload too large", "payload_too_large"),
    422: ("Unprocessable entity", "unprocessable"),
    429: ("Rate limit exceeded", "rate_limit_exceeded"),
    500: ("Internal Server Error", "server"),
    502: ("Provider returned error", "provider_unavailable"),
    503: ("Service temporarily unavailable: no provider could serve the request", "provider_unavailable"),
    504: ("Gateway timeout: the provider did not answer in time", "timeout"),
    524: ("Provider request timed out at the edge network", "timeout"),
    529: ("Provider is overloaded", "provider_overloaded"),
}


def error_text(status: int) -> tuple[str, str]:
    """(message, error_type) for an injected error status."""
    return ERROR_TEXT.get(status, (f"Error {status}", "server" if status >= 500 else "invalid_request"))


class DirectiveError(ValueError):
    """A malformed directive; the message quotes it and lists what is accepted."""


@dataclass(slots=True)
class Directives:
    fault: str | None = None
    times: int | None = None
    latency_ms: float | None = None
    status: int | None = None
    retry_after: float | None = None
    batch: str | None = None
    refuse: bool = False
    invalid_json: bool = False

    @property
    def fault_status(self) -> int | None:
        """The HTTP status of a status fault (``fault=503``), else None."""
        return int(self.fault) if self.fault is not None and self.fault.isdigit() else None


def _status_value(key: str, value: str, source: str) -> int:
    if not value.isdigit() or not 400 <= int(value) <= 599:
        raise DirectiveError(f"emulator directive {source!r}: {key} must be an HTTP error status 400-599")
    return int(value)


def _number_value(key: str, value: str, source: str, high: float) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number <= high:
        raise DirectiveError(
            f"emulator directive {source!r}: {key} must be a number from 0 to {high:g}, got {value!r}"
        )
    return number


def parse_directives(texts: Iterable[str]) -> Directives | None:
    """The merged directives found in ``texts``, or None when there are none (the common, fast case)."""
    found: Directives | None = None
    for text in texts:
        if DIRECTIVE_MARK not in text:
            continue
        for match in _DIRECTIVE.finditer(text):
            source = match.group(0)
            found = found or Directives()
            for item in match.group(1).split(","):
                item = item.strip()
                if not item:
                    continue
                if item in DIRECTIVE_FLAGS:
                    setattr(found, item.replace("-", "_"), True)
                    continue
                key, sep, value = (part.strip() for part in item.partition("="))
                if not sep or key not in DIRECTIVE_KEYS:
                    raise DirectiveError(
                        f"emulator directive {source!r}: {item!r} is not key=value with a known key nor a "
                        f"flag; known keys: {', '.join(DIRECTIVE_KEYS)}; flags: {', '.join(DIRECTIVE_FLAGS)}"
                    )
                _apply(found, key, value, source)
    return found


def _apply(found: Directives, key: str, value: str, source: str) -> None:
    if key == "fault":
        if value.isdigit():
            _status_value(key, value, source)
        elif value not in NAMED_FAULTS:
            raise DirectiveError(
                f"emulator directive {source!r}: fault must be an HTTP status or one of "
                f"{', '.join(NAMED_FAULTS)}"
            )
        found.fault = value
    elif key == "times":
        if not value.isdigit() or int(value) < 1:
            raise DirectiveError(f"emulator directive {source!r}: times must be a whole number >= 1")
        found.times = int(value)
    elif key == "status":
        found.status = _status_value(key, value, source)
    elif key == "latency_ms":
        found.latency_ms = _number_value(key, value, source, MAX_LATENCY_MS)
    elif key == "batch":
        if value not in BATCH_OUTCOMES:
            raise DirectiveError(
                f"emulator directive {source!r}: batch must be one of {', '.join(BATCH_OUTCOMES)}"
            )
        found.batch = value
    else:
        found.retry_after = _number_value(key, value, source, MAX_RETRY_AFTER_S)


class AttemptCounter:
    """Counts attempts per request-body hash, so ``times=N`` fails exactly the first N sends of a body."""

    def __init__(self) -> None:
        self._attempts: dict[bytes, int] = {}

    def next_attempt_fails(self, body_hash: bytes, times: int | None) -> bool:
        attempt = self._attempts.get(body_hash, 0) + 1
        self._attempts[body_hash] = attempt
        return times is None or attempt <= times

    def clear(self) -> None:
        self._attempts.clear()


class TokenBucket:
    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, per_minute: float, capacity: float, now: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = now

    def take(self, now: float) -> float:
        """Take one token. Returns 0.0 when admitted, else the seconds until a token is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass(frozen=True, slots=True)
class RateLimited:
    limit: float
    wait_s: float
    message: str

    def headers(self, now_epoch: float) -> list[tuple[bytes, bytes]]:
        limit = int(self.limit) if float(self.limit).is_integer() else self.limit
        return [
            (b"retry-after", str(max(1, math.ceil(self.wait_s))).encode()),
            (b"x-ratelimit-limit", str(limit).encode()),
            (b"x-ratelimit-remaining", b"0"),
            (b"x-ratelimit-reset", str(math.ceil((now_epoch + self.wait_s) * 1000)).encode()),
        ]


def daily_limit_headers(limit: int, now_epoch: float) -> list[tuple[bytes, bytes]]:
    """The headers of a daily limit's 429: it resets at the next UTC midnight (epoch milliseconds). No
    Retry-After: captured answers carry none, and no client should sleep until midnight."""
    next_midnight = (math.floor(now_epoch / 86400) + 1) * 86400
    return [
        (b"x-ratelimit-limit", str(limit).encode()),
        (b"x-ratelimit-remaining", b"0"),
        (b"x-ratelimit-reset", str(next_midnight * 1000).encode()),
    ]


class RateLimiter:
    """Token buckets per (key, scope). A change of rate or size starts a fresh bucket."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str, float, float], TokenBucket] = {}

    def check(self, key: str, scope: str, per_minute: float, burst: int, now: float) -> RateLimited | None:
        if per_minute <= 0:
            return None
        capacity = float(burst) if burst > 0 else max(1.0, per_minute)
        slot = (key, scope, per_minute, capacity)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = TokenBucket(per_minute, capacity, now)
        wait = bucket.take(now)
        if wait == 0.0:
            return None
        what = "free-models-per-min" if scope == "free" else "requests-per-min"
        return RateLimited(per_minute, wait, f"Rate limit exceeded: {what}")

    def clear(self) -> None:
        self._buckets.clear()
