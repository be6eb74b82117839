"""Raw ASGI plumbing for the emulator: requests, JSON responses, the error envelope, and dropped connections.

The emulator speaks ASGI directly instead of through a framework's request and response objects: the hot path
(a non-streaming chat completion) must stay well above 2,000 requests per second on one core, and faults such
as a connection reset need the transport, which no framework exposes.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

API_PREFIX = "/api/v1"
USER_ID = "user_emulator"
# Not escaping non-ASCII halves the encoding time; a lone surrogate from a client's JSON goes out escaped.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
JSON_TYPE = (b"content-type", b"application/json")
TOO_DEEP = (
    "request body: nested too deeply to follow (more levels of arrays and objects than this server's "
    "recursion limit, or a JSON Schema whose $ref leads back to itself with no end); send a flatter body"
)


def dumps(payload: Any) -> bytes:
    return _encode(payload).encode("utf-8", "backslashreplace")


def error_body(status: int, message: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """OpenRouter's error envelope; ``code`` always equals the HTTP status it explains."""
    error: dict[str, Any] = {"code": status, "message": message}
    if metadata is not None:
        error["metadata"] = metadata
    return {"error": error, "user_id": USER_ID}


class HTTPError(Exception):
    """Answer the current request with ``status`` and the error envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        metadata: dict[str, Any] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.metadata = metadata
        self.headers = headers or []


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else [JSON_TYPE]

    @classmethod
    def json(
        cls, payload: Any, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None
    ) -> Response:
        return cls(status, dumps(payload), [JSON_TYPE, *(headers or ())])

    @classmethod
    def error(cls, exc: HTTPError) -> Response:
        return cls.json(error_body(exc.status, exc.message, exc.metadata), exc.status, exc.headers)


# What openrouter.ai answers for a path it does not serve, /api/v1/... included: a web page, not the envelope.
_NOT_FOUND_PAGE = (
    b'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>404: This page could not be found.'
    b"</title></head><body><div><h1>404</h1><h2>This page could not be found.</h2></div></body></html>"
)


def not_found() -> Response:
    return Response(404, _NOT_FOUND_PAGE, [(b"content-type", b"text/html; charset=utf-8")])


_HTML_PAGE = (
    "<html>\r\n<head><title>{status} Bad Gateway</title></head>\r\n<body>\r\n<center><h1>{status} Bad Gateway"
    "</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)


def html_page(status: int) -> Response:
    """A proxy's HTML error page where the JSON answer should be."""
    return Response(
        status, _HTML_PAGE.format(status=status).encode(), [(b"content-type", b"text/html; charset=UTF-8")]
    )


async def deliver(
    request: Request, body: bytes, headers: list[tuple[bytes, bytes]], fault: str | None, html_status: int
) -> Response | None:
    """The JSON answer of a billed generation, or its loss on the way as ``fault`` says: the connection
    reset before it (``reset``), cut halfway through the body (``truncate``), or a proxy's page instead
    (``html``)."""
    if fault == "reset":
        await request.drop_connection(reset=True)
        return None
    if fault == "truncate":
        request.status = "200"
        await request.send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [JSON_TYPE, (b"content-length", str(len(body)).encode()), *headers],
            }
        )
        await request.stream(body[: len(body) // 2])
        await request.drop_connection(reset=False)
        return None
    if fault == "html":
        return html_page(html_status)
    return Response(200, body, [JSON_TYPE, *headers])


class Request:
    """One HTTP request: the parts handlers use. ``status`` records what was answered, for the stats.

    Every answer carries Content-Length, so no HTTP/1.0 client gets a chunked body it cannot read. A stream to
    an HTTP/1.0 client is held and sent whole at its end, with its length, for the same reason.
    """

    __slots__ = ("body", "headers", "held", "method", "parsed", "path", "query", "route", "send", "status")

    def __init__(self, scope: Scope, send: Send, path: str, body: bytes) -> None:
        self.method: str = scope["method"]
        self.path = path
        self.query: bytes = scope.get("query_string", b"")
        self.headers: dict[str, str] = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        self.body = body
        self.parsed: dict[str, Any] | None = (
            None  # the body as json_body parsed it (handlers do not change it)
        )
        self.send = send
        self.route = ""
        self.status = ""
        # (headers, parts) of a stream held for an HTTP/1.0 client; an empty list marks such a client
        self.held: list[Any] | None = [] if scope.get("http_version") == "1.0" else None

    def json_body(self) -> dict[str, Any]:
        """The body as a JSON object, or 400 with the parse error's position."""
        raw = self.body
        try:
            # json.loads(bytes) first works out the encoding (UTF-16 and -32 are allowed), which costs more
            # than parsing a small body: one that starts with "{" and no NUL is UTF-8, decoded as json.loads
            # would decode it.
            body = json.loads(
                raw.decode("utf-8", "surrogatepass") if raw[:1] == b"{" and raw[1:2] != b"\x00" else raw
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPError(400, f"request body is not valid JSON ({exc}); send a JSON object") from None
        except RecursionError:
            raise HTTPError(400, TOO_DEEP) from None
        if not isinstance(body, dict):
            raise HTTPError(400, f"request body must be a JSON object, got {type(body).__name__}")
        self.parsed = body
        return body

    async def respond(self, response: Response) -> None:
        self.status = str(response.status)
        await self._send_whole(response.status, response.headers, response.body)

    async def _send_whole(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        length = (b"content-length", str(len(body)).encode())
        await self.send({"type": "http.response.start", "status": status, "headers": [*headers, length]})
        await self.send({"type": "http.response.body", "body": body})

    async def start_stream(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = "200"
        if self.held is not None:
            self.held = [headers, []]
            return
        await self.send({"type": "http.response.start", "status": 200, "headers": headers})

    async def stream(self, data: bytes, more: bool = True) -> None:
        if self.held:
            self.held[1].append(data)
            if not more:
                await self._send_whole(200, self.held[0], b"".join(self.held[1]))
            return
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

    async def drop_connection(self, *, reset: bool) -> None:
        """Close the connection without finishing the answer: a TCP reset, or a plain close mid-body.

        uvicorn's send callable is a bound method of its request cycle, which holds the transport; that is the
        only way to reach the socket from ASGI. Elsewhere, raising makes the server close the connection too.
        """
        transport = getattr(getattr(self.send, "__self__", None), "transport", None)
        self.status = self.status or "reset"
        if (
            self.held and not reset
        ):  # a held stream cut off: what was made so far, short of its promised length
            part = b"".join(self.held[1])
            length = (b"content-length", str(len(part) * 2 + 1).encode())
            await self.send(
                {"type": "http.response.start", "status": 200, "headers": [*self.held[0], length]}
            )
            await self.send({"type": "http.response.body", "body": part, "more_body": True})
        if transport is None:
            raise ConnectionAbortedError("emulator fault: connection dropped")
        if reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()
        # Let the server notice the lost connection before the handler returns, so it does not log the
        # unfinished answer as an application error.
        for _ in range(3):
            await asyncio.sleep(0)


class Disconnected(Exception):
    """The client left before its request body was complete: there is nobody to answer."""


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it exceeds ``limit`` bytes; Disconnected if the client left."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
