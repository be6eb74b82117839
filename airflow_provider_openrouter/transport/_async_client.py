"""The asynchronous client (``httpx``) for triggers and the batch engine: the sync client's settings, headers,
limiter, retry rules and error mapping on an event loop. ``httpx`` is imported when a client is built.

The batch engine sends its rows with :meth:`AsyncOpenRouterTransport.post_once`: one exchange, no tenacity and
no limiter underneath, because the engine owns pacing and resends for its rows (one queue, one attempt cap);
the answer is mapped by the same rules as every other request."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import tenacity

from airflow_provider_openrouter.exceptions import (
    OpenRouterConnectionError,
    OpenRouterError,
    OpenRouterOutcomeUnknownError,
)
from airflow_provider_openrouter.transport._base import TransportBase, retrying_kwargs
from airflow_provider_openrouter.transport._settings import POOL_MAXSIZE, TransportSettings

if TYPE_CHECKING:
    import httpx

__all__ = ["AsyncOpenRouterTransport"]

LANE_CONNECTIONS = 16
"""Connections per ``httpx`` pool. httpcore scans every connection of a pool for every queued request, so one
pool of hundreds of connections costs more CPU per request than the request itself; several small pools
("lanes"), each used by its own callers, keep that scan short."""


class AsyncOpenRouterTransport(TransportBase):
    """The asynchronous twin for triggers and the batch engine: ``httpx.AsyncClient``, same settings, headers,
    limiter, retry rules and error mapping as :class:`OpenRouterTransport`. Close it with :meth:`aclose`.

    :param max_connections: connections kept open to OpenRouter (default :data:`POOL_MAXSIZE`); the batch
        engine asks for one per request it keeps in flight. More than :data:`LANE_CONNECTIONS` are spread
        over several pools (lanes, see :meth:`post_once`).
    """

    def __init__(
        self,
        settings: TransportSettings,
        *,
        tenacity_kwargs: Mapping[str, Any] | None = None,
        max_connections: int | None = None,
    ) -> None:
        import httpx

        super().__init__(settings)
        pool = max_connections or POOL_MAXSIZE
        headers = _latin1_headers(settings.headers())
        if headers is None:
            raise self._refused_before_sending(None, None, "UnicodeEncodeError")
        lanes = -(-pool // LANE_CONNECTIONS) if max_connections else 1
        per_lane = -(-pool // lanes)
        self._lanes = [
            httpx.AsyncClient(
                headers=headers,
                timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
                limits=httpx.Limits(max_connections=per_lane, max_keepalive_connections=per_lane),
            )
            for _ in range(lanes)
        ]
        self._client = self._lanes[0]
        self._kwargs = {
            billable: retrying_kwargs(settings, billable=billable, tenacity_kwargs=tenacity_kwargs)
            for billable in (True, False)
        }

    async def __aenter__(self) -> AsyncOpenRouterTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for client in self._lanes:
            await client.aclose()

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
        number; pool ``lane % lanes`` sends it, so N callers numbered 0..N-1 on a client made for N
        connections never queue behind each other.
        """
        headers = {"X-Idempotency-Key": idempotency_key, "Content-Type": "application/json"}
        client = self._lanes[lane % len(self._lanes)]
        return await self._exchange("POST", path, None, headers, True, content=content, client=client)

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
        client: httpx.AsyncClient | None = None,
        **payload: Any,
    ) -> dict[str, Any]:
        """One HTTP exchange (``payload``: httpx's ``json=`` or ``content=``), its answer mapped."""
        import httpx

        try:
            response: httpx.Response = await (client or self._client).request(
                method, self.base_url + path, params=_httpx_params(params), headers=headers, **payload
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
