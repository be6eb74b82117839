"""The synchronous client (``requests``): one pooled session shared by every thread of a task."""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import requests
import tenacity
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NewConnectionError

from airflow_provider_openrouter.exceptions import (
    OpenRouterConnectionError,
    OpenRouterError,
    OpenRouterOutcomeUnknownError,
    scrub,
)
from airflow_provider_openrouter.transport._base import TransportBase, retrying_kwargs
from airflow_provider_openrouter.transport._redact import excerpt, scrub_answer
from airflow_provider_openrouter.transport._settings import (
    POOL_MAXSIZE,
    TransportSettings,
    requests_ca_bundle,
)
from airflow_provider_openrouter.transport.billing_rules import error_for_status, error_in_stream_event

__all__ = ["OpenRouterTransport"]


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


class OpenRouterTransport(TransportBase):
    """Synchronous OpenRouter client: one pooled ``requests.Session`` shared by every thread using it.

    :param settings: connection settings.
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
        ca_bundle = requests_ca_bundle()
        if ca_bundle:
            session.verify = ca_bundle
        self._session = session
        self._retry_billable = tenacity.Retrying(
            **retrying_kwargs(settings, billable=True, tenacity_kwargs=tenacity_kwargs)
        )
        self._retry_idempotent = tenacity.Retrying(
            **retrying_kwargs(settings, billable=False, tenacity_kwargs=tenacity_kwargs)
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
            failure = self._refused_before_sending(f"{method} {path}", headers, type(error).__name__)
        except requests.RequestException as error:
            failure = self._transport_error(error, f"{method} {path}")
        # Raised outside the handler: the library's error may quote the key (a header, or an answer that
        # echoes the request) and must not stay attached, not even as a suppressed context.
        raise failure

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
            lost = self._transport_error(error, f"{method} {path}", sent=True)
        else:
            return self._check(response.status_code, response.headers, content, method, path, True)
        finally:
            response.close()
        raise lost  # outside the handler, as in _send

    def _events(self, response: requests.Response, path: str) -> Iterator[dict[str, Any]]:
        request = f"POST {path}"
        generation_id = response.headers.get("x-generation-id")
        finished = saw_choice = False
        lost: OpenRouterError | None = None
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
        if lost is not None:
            raise lost  # outside the handler, as in _send
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
                f"unreadable stream event {excerpt(payload, 80, self._secrets)!r}",
                generation_id=generation_id,
                **self._error_kwargs(request),
            )
        event = scrub_answer(event, payload.encode(), self._needles, self._secrets)
        hidden = error_in_stream_event(event)
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
