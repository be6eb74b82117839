"""The asynchronous client for triggers and the batch engine: the sync client's settings, headers, limiter,
retry rules and error mapping on an event loop. ``httpx`` is imported when its client is first used.

The batch engine sends its rows with :meth:`AsyncOpenRouterTransport.post_once`: one exchange over a lean
HTTP/1.1 connection of its own (:mod:`._http1`), no tenacity and no limiter underneath, because the engine
owns pacing and resends for its rows (one queue, one attempt cap); the answer is mapped by the same rules as
every other request."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import tenacity

from airflow_provider_openrouter.exceptions import (
    OpenRouterConnectionError,
    OpenRouterError,
    OpenRouterOutcomeUnknownError,
)
from airflow_provider_openrouter.transport._base import TransportBase, retrying_kwargs
from airflow_provider_openrouter.transport._http1 import AnswerLost, Http1Lane, Origin, RequestNotSent
from airflow_provider_openrouter.transport._settings import POOL_MAXSIZE, TransportSettings

if TYPE_CHECKING:
    import httpx

__all__ = ["AsyncOpenRouterTransport"]

_HEADER_TOKEN = re.compile(rb"[!-~]+")
"""What an idempotency key may hold: visible ASCII, no space, no line break."""


class AsyncOpenRouterTransport(TransportBase):
    """The asynchronous twin for triggers and the batch engine: same settings, headers, limiter, retry rules
    and error mapping as :class:`OpenRouterTransport`. Close it with :meth:`aclose`.

    :meth:`get` and :meth:`post` go through ``httpx.AsyncClient``; the batch engine's :meth:`post_once` goes
    through one lean keep-alive HTTP/1.1 connection per caller (:mod:`._http1`), or through ``httpx`` when the
    environment names a proxy for the base URL.

    :param max_connections: connections kept open to OpenRouter (default :data:`POOL_MAXSIZE`); the batch
        engine asks for one per request it keeps in flight.
    """

    def __init__(
        self,
        settings: TransportSettings,
        *,
        tenacity_kwargs: Mapping[str, Any] | None = None,
        max_connections: int | None = None,
    ) -> None:
        super().__init__(settings)
        self._pool = max_connections or POOL_MAXSIZE
        headers = _latin1_headers(settings.headers())
        if headers is None:
            raise self._refused_before_sending(None, None, "UnicodeEncodeError")
        self._headers = headers
        self._httpx: httpx.AsyncClient | None = None
        self._lanes: dict[int, Http1Lane] = {}
        self._origin: Origin | None = None  # built with the first lane: it may load a TLS context
        self._heads: dict[str, bytes] = {}
        self._proxied = _proxy_named_for(self.base_url)
        self._kwargs = {
            billable: retrying_kwargs(settings, billable=billable, tenacity_kwargs=tenacity_kwargs)
            for billable in (True, False)
        }

    @property
    def _client(self) -> httpx.AsyncClient:
        """The ``httpx`` client of :meth:`get` and :meth:`post`, built on first use (it loads TLS roots)."""
        if self._httpx is None:
            import httpx

            settings = self.settings
            self._httpx = httpx.AsyncClient(
                headers=self._headers,
                timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
                limits=httpx.Limits(max_connections=self._pool, max_keepalive_connections=self._pool),
            )
        return self._httpx

    async def __aenter__(self) -> AsyncOpenRouterTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for lane in self._lanes.values():
            lane.close()
        self._lanes.clear()
        if self._httpx is not None:
            await self._httpx.aclose()
            self._httpx = None

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return await self._send("GET", path, params, None, None, False)

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

    async def post_once(
        self, path: str, content: bytes, *, idempotency_key: str, lane: int = 0
    ) -> dict[str, Any]:
        """POST an encoded JSON body once: no retry, no rate limiter (the caller paces and resends).

        Billable, with ``X-Idempotency-Key``; what comes back is mapped as for :meth:`post`, so the raised
        error's ``billed`` and ``retryable`` say whether the caller may send it again. ``lane``: the caller's
        number; callers numbered 0..N-1 on a transport made for N connections each have their own keep-alive
        connection and never wait for each other.
        """
        if self._proxied:
            headers = {"X-Idempotency-Key": idempotency_key, "Content-Type": "application/json"}
            return await self._exchange("POST", path, None, headers, True, content=content)
        request = f"POST {path}"
        key = idempotency_key.encode("latin-1", "replace")
        if not (idempotency_key.isascii() and _HEADER_TOKEN.fullmatch(key)):
            refused = "an idempotency key outside visible ASCII"
            raise self._refused_before_sending(request, {"X-Idempotency-Key": idempotency_key}, refused)
        number = lane % self._pool
        wire = self._lanes.get(number)
        if wire is None:
            if self._origin is None:
                self._origin = Origin(self.base_url)
            settings = self.settings
            wire = self._lanes[number] = Http1Lane(
                self._origin, number, timeout=settings.timeout, connect_timeout=settings.connect_timeout
            )
        head = b"%sX-Idempotency-Key: %s\r\nContent-Length: %d\r\n\r\n" % (
            self._head(path),
            key,
            len(content),
        )
        try:
            status, headers, body = await wire.post(head, content)
        except RequestNotSent as error:
            raise OpenRouterConnectionError(str(error), **self._error_kwargs(request)) from None
        except AnswerLost as error:
            raise OpenRouterOutcomeUnknownError(str(error), **self._error_kwargs(request)) from None
        return self._check(status, headers, body, "POST", path, True)

    def _head(self, path: str) -> bytes:
        """The request line and the connection's headers for a JSON POST to ``path``, built once per path."""
        head = self._heads.get(path)
        if head is None:
            parts = urlsplit(self.base_url + path)
            host = parts.hostname or ""
            default_port = 443 if parts.scheme == "https" else 80
            authority = host if parts.port in (None, default_port) else f"{host}:{parts.port}"
            lines = [f"POST {parts.path} HTTP/1.1".encode(), b"Host: " + authority.encode("idna")]
            if any(b"\r" in value or b"\n" in value for value in self._headers.values()):
                # Settings changed after they were checked: a line break would add a header of its own.
                raise self._refused_before_sending(f"POST {path}", None, "a line break in a header")
            lines += [name + b": " + value for name, value in self._headers.items()]
            lines += [b"Content-Type: application/json", b"Accept-Encoding: gzip, deflate"]
            head = self._heads[path] = b"\r\n".join(lines) + b"\r\n"
        return head

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
        if self.bucket is not None:
            await self.bucket.acquire_async()
        return await self._exchange(method, path, params, headers, billable, json=body)

    async def _exchange(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        headers: dict[str, str] | None,
        billable: bool,
        **payload: Any,
    ) -> dict[str, Any]:
        """One HTTP exchange (``payload``: httpx's ``json=`` or ``content=``), its answer mapped."""
        import httpx

        try:
            response: httpx.Response = await self._client.request(
                method, self.base_url + path, params=_httpx_params(params), headers=headers, **payload
            )
        except (httpx.LocalProtocolError, UnicodeEncodeError) as error:
            failure = self._refused_before_sending(f"{method} {path}", headers, type(error).__name__)
        except httpx.TransportError as error:
            failure = self._transport_error(error, f"{method} {path}")
        else:
            return self._check(
                response.status_code, response.headers, response.content, method, path, billable
            )
        # Raised outside the handler: the library's error may quote the key (a header, or an answer that
        # echoes the request) and must not stay attached, not even as a suppressed context.
        raise failure

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


def _proxy_named_for(url: str) -> bool:
    """Whether the environment names a proxy for ``url`` (``HTTP(S)_PROXY``, ``ALL_PROXY``, minus
    ``NO_PROXY``), read as httpx reads it (the standard library's ``getproxies``)."""
    import urllib.request

    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


def _latin1_headers(headers: Mapping[str, str]) -> dict[bytes, bytes] | None:
    """The headers as bytes, or None when one cannot be encoded (the codec's error holds the whole value, so
    it is dropped here). As bytes because httpx encodes str headers as ASCII, requests as Latin-1."""
    try:
        return {name.encode(): value.encode("latin-1") for name, value in headers.items()}
    except UnicodeEncodeError:
        return None


def _httpx_params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return {key: value for key, value in params.items() if value is not None} if params else None
