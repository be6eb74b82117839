"""The OpenRouter error hierarchy: one class per outcome a user handles differently.

Invariants:

* ``str(err)`` is one line: what happened, where (method, path, connection, generation id) and what to do.
* No API key ever appears in an error: every message and metadata string passes through :func:`scrub`.
* ``retryable`` says whether an Airflow task retry could help; ``billed`` says whether the request was
  charged (``False``: never sent, or OpenRouter answered with its JSON error envelope, which zero-completion
  insurance makes free; ``None``: the answer was lost or was a 524, so it may have been).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from airflow.sdk.exceptions import AirflowException

try:
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # older Airflow: its task runner catches the core class
    from airflow.exceptions import AirflowFailException  # type: ignore[no-redef]

__all__ = [
    "MIN_SECRET_CHARS",
    "OpenRouterAuthenticationError",
    "OpenRouterConfigurationError",
    "OpenRouterConnectionError",
    "OpenRouterEndpointGoneError",
    "OpenRouterError",
    "OpenRouterInsufficientCreditsError",
    "OpenRouterModerationError",
    "OpenRouterNotFoundError",
    "OpenRouterOutcomeUnknownError",
    "OpenRouterPayloadTooLargeError",
    "OpenRouterPermissionError",
    "OpenRouterPossiblyBilledError",
    "OpenRouterRateLimitError",
    "OpenRouterRequestError",
    "OpenRouterResponseError",
    "OpenRouterTimeoutError",
    "OpenRouterUpstreamError",
    "error_from_event",
    "scrub",
]

# OpenRouter keys look like sk-or-v1-<hex>; a bearer header may leak any token, so both are redacted.
_KEY_PATTERN = re.compile(r"sk-or-[A-Za-z0-9_\-.]{4,}|(?i:bearer)\s+[A-Za-z0-9_\-.=]{8,}")
# In a successful answer "Bearer <word>" is ordinary text (a model explaining HTTP auth), so only keys go.
_OPENROUTER_KEY_PATTERN = re.compile(r"sk-or-[A-Za-z0-9_\-.]{4,}")
_REDACTED = "***"
# As Airflow's masker ([logging] min_length_masked_secret): redacting a 2-letter "key" would shred every text.
MIN_SECRET_CHARS = 5
_MAX_MESSAGE_CHARS = 300
_UNSET = object()


def scrub(value: Any, secrets: Iterable[str] = (), *, bearer: bool = True) -> Any:
    """Return ``value`` with API keys redacted from every string inside it (dicts and lists walked).

    ``secrets`` (the connection's key) go wherever they appear, and so does any ``sk-or-`` token; ``bearer``
    also redacts ``Bearer <token>``, which an error message may echo from a request header.
    """
    secrets = tuple(secret for secret in secrets if len(secret) >= MIN_SECRET_CHARS)
    return _scrub(value, secrets, _KEY_PATTERN if bearer else _OPENROUTER_KEY_PATTERN)


def _scrub(value: Any, secrets: tuple[str, ...], pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        text = value
        for secret in secrets:
            text = text.replace(secret, _REDACTED)
        return pattern.sub(_REDACTED, text)
    if isinstance(value, Mapping):
        return {_scrub(key, secrets, pattern): _scrub(item, secrets, pattern) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item, secrets, pattern) for item in value]
    return value


def _one_line(text: str, limit: int = _MAX_MESSAGE_CHARS) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _rebuild(cls: type[OpenRouterError], state: dict[str, Any]) -> OpenRouterError:
    err = cls.__new__(cls)
    Exception.__init__(err, state.get("message", ""))
    err.__dict__.update(state)
    return err


class OpenRouterError(AirflowException):
    """Base class: an OpenRouter call failed (or was refused before anything was sent).

    :param message: what OpenRouter (or the client) said; scrubbed and collapsed to one line.
    :param status: the HTTP status, or the code carried by an error inside a 200 body; ``None`` when no
        answer came back or the request was refused client-side.
    :param code: OpenRouter's ``error.code`` (usually equal to the status) or a metadata ``error_type``.
    :param metadata: ``error.metadata`` from the envelope, scrubbed.
    :param generation_id: the generation this error belongs to, when known.
    :param conn_id: the Airflow connection id used.
    :param request: ``"METHOD /path"`` of the call.
    :param hint: overrides the class's advice on what to do.
    :param billed: overrides the class default of :attr:`billed`.
    :param in_body: OpenRouter reported this error inside a 200 body (``error`` object, no choices,
        ``finish_reason: "error"``) rather than with an HTTP status.
    """

    retryable: ClassVar[bool] = False
    default_billed: ClassVar[bool | None] = False
    title: ClassVar[str] = "OpenRouter request failed"

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        code: int | str | None = None,
        metadata: Mapping[str, Any] | None = None,
        generation_id: str | None = None,
        conn_id: str | None = None,
        request: str | None = None,
        hint: str | None = None,
        billed: bool | object | None = _UNSET,
        in_body: bool = False,
        secrets: Iterable[str] = (),
    ) -> None:
        secrets = tuple(secrets)
        self.message: str = _one_line(scrub(message or "", secrets))
        self.status = status
        self.code = scrub(code, secrets)
        self.metadata: dict[str, Any] = dict(scrub(dict(metadata or {}), secrets))
        self.generation_id = scrub(generation_id, secrets) if generation_id else generation_id
        self.conn_id = conn_id
        self.request = request
        self.in_body = in_body
        self._hint = _one_line(scrub(hint, secrets)) if hint else None
        self.billed: bool | None = self.default_billed
        if billed is not _UNSET:
            self.billed = None if billed is None else bool(billed)
        super().__init__(self.message)

    @property
    def hint(self) -> str:
        """What a person should do about this error."""
        return self._hint or self.default_hint()

    @property
    def status_code(self) -> int | None:  # type: ignore[override]  # Airflow's is a constant 500
        """The HTTP status (as :attr:`status`), not the 500 that ``AirflowException`` gives every error."""
        return self.status

    def to_event(self) -> dict[str, Any]:
        """A JSON-safe dict that carries this error through a trigger event; :func:`error_from_event` rebuilds
        it. Every text in it was scrubbed when the error was built."""
        return {
            "error_class": type(self).__name__,
            "message": self.message,
            "status": self.status,
            "code": self.code,
            "metadata": self.metadata,
            "generation_id": self.generation_id,
            "conn_id": self.conn_id,
            "request": self.request,
            "billed": self.billed,
            "in_body": self.in_body,
            "retry_after": getattr(self, "retry_after", None),
            "hint": self._hint,
        }

    def default_hint(self) -> str:
        return "See OpenRouter's error message above."

    @property
    def where(self) -> str:
        parts = []
        if self.request:
            parts.append(self.request)
        if self.conn_id:
            parts.append(f"on connection '{self.conn_id}'")
        where = " ".join(parts)
        if self.generation_id:
            where = (
                f"{where}, generation {self.generation_id}" if where else f"generation {self.generation_id}"
            )
        return where

    @property
    def heading(self) -> str:
        """The first words of ``str(err)``: the class's ``title``."""
        return self.title

    def __str__(self) -> str:
        head = self.heading
        if self.status is not None:
            head = f"{head} (HTTP {self.status})"
        line = f"{head}: {self.message}" if self.message else head
        if self.where:
            line = f"{line} [{self.where}]"
        return f"{line}. {self.hint}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), dict(self.__dict__)))

    def _conn_phrase(self) -> str:
        return f"connection '{self.conn_id}'" if self.conn_id else "the connection"

    def _path(self) -> str:
        return (self.request or "").partition(" ")[2]


class OpenRouterRequestError(OpenRouterError):
    """400/422, or a request refused client-side before anything was sent (``status is None``).

    OpenRouter's refusal reads "OpenRouter rejected the request (HTTP 400): ..."; our own reads "Invalid
    OpenRouter request: ...", since OpenRouter never saw it. A subclass with a title of its own keeps it.
    """

    title = "OpenRouter rejected the request"
    local_title: ClassVar[str] = "Invalid OpenRouter request"

    @property
    def heading(self) -> str:
        if self.status is None and self.title == OpenRouterRequestError.title:
            return self.local_title
        return self.title

    def default_hint(self) -> str:
        text = self.message.lower()
        if "model" in text and ("not a valid model" in text or "model id" in text or "no model" in text):
            return (
                "Use an exact model id from the catalog (OpenRouterListModelsOperator or "
                "OpenRouterHook.list_models())."
            )
        if self.status is None:
            return "Fix the arguments; nothing was sent."
        return "Fix the request; resending it unchanged fails the same way."


class OpenRouterConfigurationError(OpenRouterRequestError):
    """The Airflow connection is unusable (no API key, a malformed base URL or extra)."""

    title = "OpenRouter connection is misconfigured"

    def default_hint(self) -> str:
        return f"Edit {self._conn_phrase()} (Admin > Connections or AIRFLOW_CONN_<ID>)."


class OpenRouterAuthenticationError(OpenRouterError):
    """401: the API key is missing, unknown, disabled or expired."""

    title = "OpenRouter did not accept the API key"

    def default_hint(self) -> str:
        return f"Check the API key (password field) of {self._conn_phrase()}."


class OpenRouterInsufficientCreditsError(OpenRouterError):
    """402: not enough credits for this request (OpenRouter reserves ``max_tokens`` x price up front)."""

    title = "OpenRouter account has insufficient credits"

    def default_hint(self) -> str:
        return (
            "Add credits at https://openrouter.ai/settings/credits, or lower max_tokens (OpenRouter reserves "
            "max_tokens x price before running; without max_tokens it assumes the model's maximum)."
        )


class OpenRouterPermissionError(OpenRouterError):
    """403 without moderation details: management key needed, guardrail, budget or region."""

    title = "OpenRouter refused permission"

    def default_hint(self) -> str:
        if self._path().startswith("/credits"):
            return (
                f"GET /credits needs a management key: put one in {self._conn_phrase()}, "
                "or read spend with get_key() (GET /key), which an inference key may call."
            )
        return f"The API key of {self._conn_phrase()} may not do this (guardrail, budget or key permissions)."


class OpenRouterModerationError(OpenRouterPermissionError):
    """403 with moderation metadata: the input was flagged."""

    title = "OpenRouter moderation flagged the input"

    @property
    def reasons(self) -> list[str]:
        return [str(reason) for reason in self.metadata.get("reasons") or []]

    @property
    def flagged_input(self) -> str | None:
        flagged = self.metadata.get("flagged_input")
        return str(flagged) if flagged is not None else None

    def default_hint(self) -> str:
        reasons = ", ".join(self.reasons) or "not given"
        flagged = f"; flagged input: {self.flagged_input!r}" if self.flagged_input else ""
        return f"Reasons: {reasons}{flagged}. Change the input or use a model without moderation."


class OpenRouterNotFoundError(OpenRouterError):
    """404: unknown model, endpoint or generation."""

    title = "OpenRouter found nothing"

    def default_hint(self) -> str:
        path = self._path()
        if path.startswith("/generation"):
            return (
                "Check the id; stats appear a moment after the completion, so a fresh id may need another "
                "try (OpenRouterGetGenerationOperator waits with wait_for_stats)."
            )
        if path.startswith("/models/") or path.startswith("/model/"):
            return "Check author/slug against the catalog (OpenRouterListModelsOperator)."
        return "Check the id or model against the catalog (OpenRouterListModelsOperator)."


class OpenRouterEndpointGoneError(OpenRouterNotFoundError):
    """404/410 from the legacy ``POST /completions``: the text endpoint left OpenRouter's current API."""

    title = "OpenRouter's legacy text-completions endpoint is gone"

    def default_hint(self) -> str:
        return (
            "Use OpenRouterChatCompletionOperator (OpenRouterHook.chat_completion) and send the prompt as a "
            "user message."
        )


class OpenRouterTimeoutError(OpenRouterError):
    """408: OpenRouter timed the request out."""

    retryable = True
    title = "OpenRouter timed out the request"

    def default_hint(self) -> str:
        return (
            "Nothing was billed and the transport already resent it; retry later, or raise the max_retries / "
            f"max_retry_wait extras of {self._conn_phrase()}."
        )


class OpenRouterPayloadTooLargeError(OpenRouterError):
    """413: the request body is too large."""

    title = "OpenRouter request is too large"

    def default_hint(self) -> str:
        return "Shorten the messages or split the input."


class OpenRouterRateLimitError(OpenRouterError):
    """429, from OpenRouter or an upstream provider. ``retry_after`` is in seconds when known."""

    retryable = True
    title = "OpenRouter rate limit hit"

    def __init__(self, message: str = "", *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)

    def default_hint(self) -> str:
        when = f"retry after {self.retry_after:.1f} s" if self.retry_after is not None else "retry later"
        # The transport stops retrying once the next wait would pass max_retry_wait, so a long reset needs a
        # larger budget, not a smaller one.
        return (
            f"Retries were exhausted; {when}, lower the requests_per_minute extra of {self._conn_phrase()}, "
            "or raise its max_retries / max_retry_wait extras to wait the limit out."
        )


class OpenRouterUpstreamError(OpenRouterError):
    """5xx (500, 502, 503, 504, 524, 529), or an error reported inside a 200 body (``in_body``).

    Answered with OpenRouter's error envelope it was not billed; a 524 (Cloudflare's edge timeout, the model
    may still be generating) to a billable request carries ``billed=None``.
    """

    retryable = True
    title = "OpenRouter's upstream provider failed"

    def default_hint(self) -> str:
        if self.billed is None:
            return (
                "The model may still have finished and been billed, so it was not resent; check OpenRouter's "
                "activity page before running it again (or set the retry_ambiguous extra of "
                f"{self._conn_phrase()} to accept the risk)."
            )
        return (
            "Retry later, or give fallback models (models=[...]) or provider routing preferences "
            "(provider={...})."
        )


class OpenRouterConnectionError(OpenRouterError):
    """The request was never sent (connection refused, connect timeout, DNS, TLS): safe to resend."""

    retryable = True
    title = "Could not reach OpenRouter"

    def default_hint(self) -> str:
        return f"Check the Base URL of {self._conn_phrase()} and the network; nothing was sent or billed."


class OpenRouterOutcomeUnknownError(OpenRouterError):
    """Sent, but no complete answer came back (read timeout, reset, truncated body, proxy page).

    The generation may have run and been billed, so the transport does not resend it.
    """

    default_billed = None
    title = "OpenRouter's answer was lost"

    def default_hint(self) -> str:
        return (
            "The request may have been processed and billed, so it was not resent; check OpenRouter's "
            "activity page before running it again (or set the retry_ambiguous extra of "
            f"{self._conn_phrase()} to accept the risk)."
        )


class OpenRouterResponseError(OpenRouterError):
    """A 2xx body that cannot be read as the expected result."""

    default_billed = None
    title = "OpenRouter's answer could not be read"

    def default_hint(self) -> str:
        return "The request may have been billed; report the body shape if this persists."


class OpenRouterPossiblyBilledError(OpenRouterError, AirflowFailException):
    """A billable task's request failed after it may have been charged, so Airflow must not retry the task.

    The chat and completion operators raise it in place of the error that happened (kept as ``__cause__``;
    its status, code, generation id and ``billed`` are copied here) when the task has ``retries``: an Airflow
    retry sends a new billable request, which may pay twice for the same answer. Being an
    ``AirflowFailException``, it fails the task for good. The connection extra ``retry_ambiguous`` lets
    Airflow retry instead.
    """

    default_billed = None
    title = "Not retried, the request may have been billed"
    _NOT_RETRIED: ClassVar[str] = (
        "Airflow does not retry it (a retry pays again); the connection extra retry_ambiguous=true allows it."
    )

    @classmethod
    def from_error(cls, err: OpenRouterError) -> OpenRouterPossiblyBilledError:
        what = f"{err.heading}: {err.message}" if err.message else err.heading
        final = cls(
            what,
            status=err.status,
            code=err.code,
            metadata=err.metadata,
            generation_id=err.generation_id,
            conn_id=err.conn_id,
            request=err.request,
            billed=err.billed,
            in_body=err.in_body,
            hint=f"{err.hint} {cls._NOT_RETRIED}",
        )
        final.__cause__ = err
        return final

    def default_hint(self) -> str:
        return self._NOT_RETRIED


def error_from_event(payload: Mapping[str, Any]) -> OpenRouterError:
    """Rebuild the error a trigger sent with :meth:`OpenRouterError.to_event`: same class (an unknown name
    gives :class:`OpenRouterError`), same ``str()``, ``billed``, ``retry_after`` and ``retryable``."""
    named = globals().get(str(payload.get("error_class")))
    cls = named if isinstance(named, type) and issubclass(named, OpenRouterError) else OpenRouterError
    kwargs: dict[str, Any] = {
        "status": payload.get("status"),
        "code": payload.get("code"),
        "metadata": payload.get("metadata") if isinstance(payload.get("metadata"), Mapping) else None,
        "generation_id": payload.get("generation_id"),
        "conn_id": payload.get("conn_id"),
        "request": payload.get("request"),
        "hint": payload.get("hint"),
        "in_body": bool(payload.get("in_body")),
    }
    if "billed" in payload:
        kwargs["billed"] = payload["billed"]
    if issubclass(cls, OpenRouterRateLimitError):
        kwargs["retry_after"] = payload.get("retry_after")
    return cls(str(payload.get("message") or ""), **kwargs)
