"""The batch engine's wire: ``AsyncOpenRouterTransport.post_once`` against servers scripted byte by byte.

Every batch row's money goes through ``post_once``, so these tests pin what it sends, how it reads each
framing of an answer, when it keeps or drops a connection, and the money rule of every way an exchange can
fail: ``billed=False`` only when the request provably never left (or OpenRouter answered with its error
envelope), ``billed=None`` once it may have run. They use only the public interface (``post_once``,
``aclose``, the error classes), so they hold for whatever HTTP client sits under it. The servers run on
127.0.0.1 in the test's own event loop; the emulator serves the end-to-end cases.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import http
import ipaddress
import json
import socket
import ssl
import struct
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from airflow_provider_openrouter import __version__
from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.exceptions import (
    OpenRouterConnectionError,
    OpenRouterError,
    OpenRouterOutcomeUnknownError,
    OpenRouterRateLimitError,
    OpenRouterRequestError,
    OpenRouterUpstreamError,
)
from airflow_provider_openrouter.transport import AsyncOpenRouterTransport, TransportSettings

T = TypeVar("T")
Script = Callable[["Peer"], Awaitable[None]]

SECRET = "5ec7e7feedc0ffee0ddba11cafe15dead0beefbadd1e"
KEY = f"sk-or-v1-{SECRET}"
PATH = "/chat/completions"
CHAT_OK: dict[str, Any] = {
    "id": "gen-wire",
    "object": "chat.completion",
    "model": "openai/gpt-4o-mini",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}
BODY = json.dumps({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
GUARD_S = 20.0
"""How long a test waits for something that should happen at once before failing instead of hanging."""

# --- scripted servers --------------------------------------------------------------------------------------


@dataclass
class Request:
    """One request as it arrived: the request line, the headers in order (repeats kept), the body."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def one(self, name: str) -> str:
        values = self.values(name)
        assert len(values) == 1, f"header {name} sent {len(values)} times: {self.headers}"
        return values[0]


@dataclass
class Peer:
    """One connection the server accepted, and what came over it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    requests: list[Request] = field(default_factory=list)
    received: bytearray = field(default_factory=bytearray)
    closed_by_client: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def port(self) -> int:
        return int(self.writer.get_extra_info("peername")[1])

    async def read_request(self) -> Request | None:
        """The next request, or None once the client closed (or reset) the connection between requests."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            partial = getattr(error, "partial", b"")
            self.received += partial
            assert not partial, f"the client sent part of a request head and stopped: {partial[:200]!r}"
            self.closed_by_client.set()
            return None
        self.received += head
        lines = head[:-4].decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
        pairs = [line.partition(":") for line in lines[1:]]
        request = Request(method, target, version, [(name, value.strip()) for name, _, value in pairs])
        assert not request.values("transfer-encoding"), "a request body must be framed by Content-Length"
        request.body = await self.reader.readexactly(int(request.one("content-length")))
        self.received += request.body
        self.requests.append(request)
        return request

    async def send(self, data: bytes, *, piece: int = 0) -> None:
        """Write ``data`` at once, or ``piece`` bytes per write with the client's turn to read in between."""
        size = piece or len(data) or 1
        for start in range(0, len(data), size):
            self.writer.write(data[start : start + size])
            await self.writer.drain()
            if piece:
                # The client shares this event loop: two turns let it read this piece before the next one.
                await asyncio.sleep(0)
                await asyncio.sleep(0)

    async def until_closed_by_client(self) -> None:
        """Read (and keep) whatever else comes until the client closes the connection."""
        while data := await self.reader.read(65536):
            self.received += data
        self.closed_by_client.set()

    def reset(self) -> None:
        """Drop the connection with a TCP reset instead of an orderly close."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


class Server:
    """A server on 127.0.0.1 that runs ``script`` for each connection and records what arrived.

    A failed assertion inside a script drops that connection and fails the test when the server stops.
    """

    def __init__(self, script: Script, *, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.peers: list[Peer] = []
        self.errors: list[BaseException] = []
        self.port = 0
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/api/v1"

    @property
    def requests(self) -> list[Request]:
        return [request for peer in self.peers for request in peer.requests]

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.tls)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for peer in self.peers:
            peer.writer.transport.abort()
        if self.errors:
            raise AssertionError(f"the scripted server failed: {self.errors[0]!r}") from self.errors[0]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer)
        async with self._arrived:
            self.peers.append(peer)
            self._arrived.notify_all()
        try:
            await self.script(peer)
        except Exception as error:
            self.errors.append(error)
        finally:
            writer.close()

    async def settle(self) -> None:
        """Return once every connection made before this call was accepted: the kernel hands connections over
        in order, so one of our own arriving marks the point. (Plain-text servers only.)"""
        _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        mine = int(writer.get_extra_info("sockname")[1])
        async with self._arrived:
            await within(self._arrived.wait_for(lambda: any(p.port == mine for p in self.peers)), "accept")
        self.peers = [peer for peer in self.peers if peer.port != mine]
        writer.close()


def serving(*answers: bytes) -> Script:
    """A keep-alive server answering the requests of all its connections with ``answers``, in order."""
    queue = list(answers)

    async def script(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(queue.pop(0))

    return script


def answer(
    status: int = 200,
    body: bytes | dict[str, Any] = CHAT_OK,
    headers: Sequence[tuple[str, str]] = (),
    *,
    content_type: str = "application/json",
) -> bytes:
    """An HTTP/1.1 answer framed by Content-Length."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    lines = [
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(payload)}",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def chunked(payload: bytes, *, headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """An answer in chunks of several sizes (hex in both cases), one with an extension, and a trailer."""
    lines = [
        "HTTP/1.1 200 OK",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
        *(f"{name}: {value}" for name, value in headers),
    ]
    out = bytearray(("\r\n".join(lines) + "\r\n\r\n").encode())
    sizes = iter([1, 26, 3, 255, 7])
    start = 0
    while start < len(payload):
        chunk = payload[start : start + next(sizes, 4096)]
        size = f"{len(chunk):x}" if start % 2 else f"{len(chunk):X}"
        extension = ';note="a;b"' if start == 1 else ""
        out += f"{size}{extension}\r\n".encode() + chunk + b"\r\n"
        start += len(chunk)
    out += b"0;last=yes\r\nX-Checksum: 12ab\r\nX-Rows: 1\r\n\r\n"
    return bytes(out)


# --- the transport and its failures ------------------------------------------------------------------------


def settings_for(base_url: str, **overrides: Any) -> TransportSettings:
    options: dict[str, Any] = {
        "requests_per_minute": None,
        "timeout": 5.0,
        "connect_timeout": 5.0,
        "app_url": "https://apps.example/wire-tests",
        "app_title": "Wire Tests",
        **overrides,
    }
    return TransportSettings("wire_conn", base_url, KEY, **options)


def transport_for(
    server: Server, max_connections: int | None = None, **overrides: Any
) -> AsyncOpenRouterTransport:
    return AsyncOpenRouterTransport(
        settings_for(server.base_url, **overrides), max_connections=max_connections
    )


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    async def guarded() -> T:
        return await within(main(), "the test")

    return asyncio.run(guarded())


async def within(awaitable: Awaitable[T], what: str, seconds: float = GUARD_S) -> T:
    """Await something that should happen at once; fail (instead of hanging) if it never does."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise AssertionError(f"{what} did not finish within {seconds:g} s") from None


async def failure(
    transport: AsyncOpenRouterTransport, *, key: str = "row-1", lane: int = 0
) -> OpenRouterError:
    try:
        result = await transport.post_once(PATH, BODY, idempotency_key=key, lane=lane)
    except OpenRouterError as error:
        return error
    raise AssertionError(f"post_once returned {result!r} instead of raising")


def assert_hides_the_key(error: BaseException) -> None:
    """Neither the key nor a 16-character piece of its secret part shows in anything the error can print:
    str, repr, message, the trigger event, and every cause and context it holds (also one a traceback
    would not print: code that walks the chain reads it)."""
    texts = [
        str(error),
        repr(error),
        "".join(traceback.format_exception(error)),
    ]
    if isinstance(error, OpenRouterError):
        texts += [error.message, json.dumps(error.to_event())]
    link: BaseException | None = error
    while link is not None:
        texts += [str(link), repr(link)]
        link = link.__cause__ or link.__context__
    pieces = [SECRET[start : start + 16] for start in range(len(SECRET) - 15)]
    for text in texts:
        assert not any(piece in text for piece in pieces), f"the API key leaks: {text}"


@pytest.mark.parametrize("client", ["async httpx post", "sync requests post"])
def test_the_libraries_own_errors_are_not_kept_where_they_quote_the_key(client: str) -> None:
    """An answer that is not HTTP and quotes the request: the library's error quotes it too, so it must not
    stay attached to ours (as a cause or a suppressed context)."""
    from airflow_provider_openrouter.transport import OpenRouterTransport

    async def main() -> OpenRouterError:
        script = echoing(lambda auth: b"SSH-2.0-OpenSSH_9.6 " + auth + b"\r\n\r\n")
        async with Server(script) as server:
            settings = settings_for(server.base_url, max_retries=0)
            try:
                if client.startswith("async"):
                    async with AsyncOpenRouterTransport(settings) as transport:
                        await transport.post(PATH, {"model": "m"}, idempotency_key="row-1")
                else:
                    with OpenRouterTransport(settings) as sync:
                        await asyncio.to_thread(sync.post, PATH, {"model": "m"}, idempotency_key="row-1")
            except OpenRouterError as error:
                return error
        raise AssertionError("the request did not fail")

    error = run(main)
    assert isinstance(error, OpenRouterOutcomeUnknownError)
    assert_hides_the_key(error)


# --- framing of the answer ---------------------------------------------------------------------------------

BIG_ANSWER = {**CHAT_OK, "choices": [{**CHAT_OK["choices"][0], "message": {"content": "é" * 600_000}}]}


@pytest.mark.parametrize(
    "raw, expected",
    [
        (answer(), CHAT_OK),
        (answer(body=BIG_ANSWER), BIG_ANSWER),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nCONTENT-TYPE: application/json\r\nX-Empty:\r\n\r\n%s"
            % (len(json.dumps(CHAT_OK)), json.dumps(CHAT_OK).encode()),
            CHAT_OK,
        ),
    ],
    ids=["small", "large", "header-names-in-any-case"],
)
def test_an_answer_framed_by_content_length_is_returned_as_its_json(raw: bytes, expected: Any) -> None:
    async def main() -> dict[str, Any]:
        async with Server(serving(raw)) as server, transport_for(server) as transport:
            return await transport.post_once(PATH, BODY, idempotency_key="row-1")

    assert run(main) == expected


def test_a_chunked_answer_with_an_extension_and_a_trailer_leaves_the_connection_ready_for_the_next() -> None:
    first = {**CHAT_OK, "id": "gen-chunked"}

    async def main() -> tuple[list[dict[str, Any]], int]:
        raw = chunked(json.dumps(first).encode())
        async with Server(serving(raw, answer())) as server, transport_for(server) as transport:
            answers = [await transport.post_once(PATH, BODY, idempotency_key=f"row-{n}") for n in range(2)]
            return answers, len(server.peers)

    assert run(main) == ([first, CHAT_OK], 1)


@pytest.mark.parametrize(
    "raw, piece",
    [(answer(), 1), (chunked(json.dumps(CHAT_OK).encode()), 3)],
    ids=["content-length-one-byte-at-a-time", "chunked-three-bytes-at-a-time"],
)
def test_an_answer_arriving_in_many_small_writes_is_read_whole(raw: bytes, piece: int) -> None:
    async def script(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(raw, piece=piece)

    async def main() -> list[dict[str, Any]]:
        async with Server(script) as server, transport_for(server) as transport:
            return [await transport.post_once(PATH, BODY, idempotency_key=f"row-{n}") for n in range(2)]

    assert run(main) == [CHAT_OK, CHAT_OK]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_gzip_answer_is_returned_decoded(framing: str) -> None:
    packed = gzip.compress(json.dumps(CHAT_OK).encode())
    encoding = [("Content-Encoding", "gzip")]
    raw = (
        answer(body=packed, headers=encoding)
        if framing == "content-length"
        else chunked(packed, headers=encoding)
    )

    async def main() -> dict[str, Any]:
        async with Server(serving(raw)) as server, transport_for(server) as transport:
            return await transport.post_once(PATH, BODY, idempotency_key="row-1")

    assert run(main) == CHAT_OK


def test_an_interim_100_continue_before_the_answer_is_skipped() -> None:
    async def main() -> dict[str, Any]:
        raw = b"HTTP/1.1 100 Continue\r\n\r\n" + answer()
        async with Server(serving(raw)) as server, transport_for(server) as transport:
            return await transport.post_once(PATH, BODY, idempotency_key="row-1")

    assert run(main) == CHAT_OK


def test_an_answer_ended_by_closing_the_connection_is_read_and_the_next_request_reconnects() -> None:
    """No Content-Length and no chunks: the body ends where the server closes (RFC 9112, section 6.3)."""
    first = {**CHAT_OK, "id": "gen-until-close"}

    async def script(peer: Peer) -> None:
        if await peer.read_request() is not None:
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
            await peer.send(head + json.dumps(first).encode())

    async def main() -> tuple[list[dict[str, Any]], int]:
        async with Server(script) as server, transport_for(server) as transport:
            answers = [await transport.post_once(PATH, BODY, idempotency_key=f"row-{n}") for n in range(2)]
            return answers, len(server.peers)

    assert run(main) == ([first, first], 2)


# --- what is sent ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["/api/v1", "/api/v1/"])
@pytest.mark.parametrize(
    "body",
    [
        BODY,
        json.dumps(
            {"messages": [{"role": "user", "content": "Grüße ✓ \r\n" * 40_000}]}, ensure_ascii=False
        ).encode(),
    ],
    ids=["small", "large-utf8"],
)
def test_the_request_carries_the_connections_headers_and_the_body_byte_for_byte(
    suffix: str, body: bytes
) -> None:
    async def main() -> tuple[Request, int]:
        async with Server(serving(answer())) as server:
            settings = settings_for(f"http://127.0.0.1:{server.port}{suffix}")
            async with AsyncOpenRouterTransport(settings) as transport:
                await transport.post_once(PATH, body, idempotency_key="row-7:a1b2")
            return server.requests[0], server.port

    request, port = run(main)
    assert (request.method, request.target, request.version) == (
        "POST",
        "/api/v1/chat/completions",
        "HTTP/1.1",
    )
    assert request.one("Host") == f"127.0.0.1:{port}"
    assert request.one("Authorization") == f"Bearer {KEY}"
    assert request.one("User-Agent") == f"airflow-provider-openrouter/{__version__}"
    assert request.one("Content-Type") == "application/json"
    assert request.one("X-Idempotency-Key") == "row-7:a1b2"
    assert request.one("HTTP-Referer") == "https://apps.example/wire-tests"
    assert request.one("X-OpenRouter-Title") == "Wire Tests"
    assert request.one("X-Title") == "Wire Tests"
    assert request.one("Content-Length") == str(len(body))
    assert request.values("Expect") == []  # a 100-continue wait would stall every row
    assert request.body == body


# --- keep-alive --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lane", [0, 5])
def test_sequential_requests_on_one_lane_share_one_connection(lane: int) -> None:
    async def main() -> list[int]:
        async with Server(serving(answer(), answer(), answer())) as server:
            async with transport_for(server, max_connections=8) as transport:
                for n in range(3):
                    await transport.post_once(PATH, BODY, idempotency_key=f"row-{n}", lane=lane)
            return [len(peer.requests) for peer in server.peers]

    assert run(main) == [3]


@pytest.mark.parametrize(
    "server_closes", [True, False], ids=["server-closes-at-once", "server-keeps-it-open"]
)
def test_an_answer_with_connection_close_sends_the_next_request_on_a_new_connection(
    server_closes: bool,
) -> None:
    """Whether or not the server has closed its side yet, ``Connection: close`` means no further request."""

    async def script(peer: Peer) -> None:
        if await peer.read_request() is None:
            return
        if len(server.peers) > 1:  # the second connection: an ordinary keep-alive one
            await peer.send(answer())
            await peer.until_closed_by_client()
            return
        await peer.send(answer(headers=[("Connection", "close")]))
        if not server_closes:
            extra = await peer.read_request()
            assert extra is None, "a request came on a connection the server said it would close"

    server = Server(script)

    async def main() -> list[int]:
        async with server, transport_for(server) as transport:
            for n in range(2):
                await transport.post_once(PATH, BODY, idempotency_key=f"row-{n}")
            return [len(peer.requests) for peer in server.peers]

    assert run(main) == [1, 1]


def test_an_idle_connection_the_server_already_closed_is_not_used_again() -> None:
    """A keep-alive connection the server closed while it sat idle (its idle timeout) would lose the next
    request with a reset: it must go on a new connection and succeed, not end as an unknown outcome."""

    async def script(peer: Peer) -> None:
        if await peer.read_request() is not None:
            await peer.send(answer())  # keep-alive: no Connection: close, then the server closes anyway
            if len(server.peers) > 1:
                await peer.until_closed_by_client()

    server = Server(script)

    async def main() -> list[int]:
        async with server, transport_for(server) as transport:
            await transport.post_once(PATH, BODY, idempotency_key="row-0")
            first = server.peers[0]
            await within(first.writer.wait_closed(), "the server's close")
            await transport.post_once(PATH, BODY, idempotency_key="row-1")
            return [len(peer.requests) for peer in server.peers]

    assert run(main) == [1, 1]


class Barrier:
    """A server script that answers no request until ``callers`` requests are in: callers queued behind each
    other (on a shared connection) would hang the round instead of passing it."""

    def __init__(self, callers: int) -> None:
        self.callers = callers
        self.new_round()

    def new_round(self) -> None:
        self.arrived = 0
        self.all_in = asyncio.Event()

    async def script(self, peer: Peer) -> None:
        while await peer.read_request() is not None:
            self.arrived += 1
            if self.arrived == self.callers:
                self.all_in.set()
            await self.all_in.wait()
            await peer.send(answer())


async def one_row_per_lane(transport: AsyncOpenRouterTransport, lanes: int, round_: int = 0) -> None:
    sends = [
        transport.post_once(PATH, BODY, idempotency_key=f"row-{round_}-{lane}", lane=lane)
        for lane in range(lanes)
    ]
    assert await asyncio.gather(*sends) == [CHAT_OK] * lanes


@pytest.mark.parametrize("callers", [4, 20])
def test_callers_on_lanes_0_to_n_minus_1_use_n_connections_and_never_wait_for_each_other(
    callers: int,
) -> None:
    """Two rounds: every caller has a connection of its own, and keeps it for its next row."""
    barrier = Barrier(callers)

    async def main() -> list[int]:
        counts = []
        async with (
            Server(barrier.script) as server,
            transport_for(server, max_connections=callers) as transport,
        ):
            for round_ in range(2):
                barrier.new_round()
                await one_row_per_lane(transport, callers, round_)
                await server.settle()
                counts.append(len(server.peers))
        return counts

    assert run(main) == [callers, callers]


def lookups_answered_by(addresses: Callable[[int], list[str]] | None, asked: list[str]) -> None:
    """Record each host lookup of the running loop in ``asked``; answer it with ``addresses(port)`` (IPv4)
    instead of the system's resolver when given. (Name resolution cannot be staged on 127.0.0.1 otherwise.)"""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        if addresses is None:
            return await real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in addresses(port)]

    loop.getaddrinfo = getaddrinfo  # type: ignore[method-assign]


def test_many_lanes_look_the_host_up_once() -> None:
    """A thousand lanes starting together must not ask DNS a thousand times."""
    barrier = Barrier(16)
    asked: list[str] = []

    async def main() -> None:
        lookups_answered_by(lambda port: ["127.0.0.1"], asked)
        async with Server(barrier.script) as server:
            base_url = server.base_url.replace("127.0.0.1", "openrouter.test")
            async with AsyncOpenRouterTransport(settings_for(base_url), max_connections=16) as transport:
                await one_row_per_lane(transport, 16)
            assert {request.one("Host") for request in server.requests} == {f"openrouter.test:{server.port}"}

    run(main)
    assert asked == ["openrouter.test"]


def test_an_address_that_refuses_the_connection_gives_way_to_the_next() -> None:
    asked: list[str] = []

    async def main() -> tuple[dict[str, Any], int]:
        # Nothing listens on 127.0.0.2 (the server is bound to 127.0.0.1): that connection is refused.
        lookups_answered_by(lambda port: ["127.0.0.2", "127.0.0.1"], asked)
        async with Server(serving(answer())) as server:
            base_url = server.base_url.replace("127.0.0.1", "openrouter.test")
            async with AsyncOpenRouterTransport(settings_for(base_url)) as transport:
                result = await transport.post_once(PATH, BODY, idempotency_key="row-1", lane=0)
            return result, len(server.requests)

    assert run(main) == (CHAT_OK, 1)


@pytest.mark.parametrize("bypassed", [False, True], ids=["through the proxy", "NO_PROXY names the host"])
def test_a_proxy_the_environment_names_carries_the_rows_unless_no_proxy_names_the_host(
    bypassed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lean client speaks to no proxy: with one named for the base URL, rows go through httpx to it."""
    asked: list[str] = []

    async def main() -> tuple[dict[str, Any], Request]:
        async with Server(serving(answer())) as server:
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
            if bypassed:  # then the host is looked up and the lean client connects to it
                monkeypatch.setenv("NO_PROXY", "openrouter.test")
                lookups_answered_by(lambda port: ["127.0.0.1"], asked)
            base_url = server.base_url.replace("127.0.0.1", "openrouter.test")
            async with AsyncOpenRouterTransport(settings_for(base_url)) as transport:
                result = await transport.post_once(PATH, BODY, idempotency_key="row-1")
            return result, server.requests[0]

    result, request = run(main)
    assert result == CHAT_OK
    if bypassed:
        assert (request.target, asked) == ("/api/v1/chat/completions", ["openrouter.test"])
    else:  # the absolute form a proxy is sent
        assert request.target.startswith("http://openrouter.test:") and request.target.endswith(PATH)
    assert request.one("X-Idempotency-Key") == "row-1"
    assert request.body == BODY


def test_aclose_closes_every_connection_and_may_be_called_twice() -> None:
    barrier = Barrier(4)

    async def main() -> int:
        async with Server(barrier.script) as server:
            transport = transport_for(server, max_connections=4)
            await one_row_per_lane(transport, 4)
            await transport.aclose()
            for peer in server.peers:
                await within(
                    peer.closed_by_client.wait(), f"the close of the connection from port {peer.port}"
                )
            await transport.aclose()
            return len(server.peers)

    assert run(main) == 4


# --- the money rule of each failure ------------------------------------------------------------------------


async def closes_after_reading(peer: Peer) -> None:
    await peer.read_request()


async def resets_after_reading(peer: Peer) -> None:
    await peer.read_request()
    peer.reset()


async def half_a_body(peer: Peer) -> None:
    await peer.read_request()
    raw = answer()
    await peer.send(raw[: raw.index(b"\r\n\r\n") + 4 + len(json.dumps(CHAT_OK)) // 2])


async def shorter_than_promised(peer: Peer) -> None:
    """A whole JSON document, but fewer bytes than Content-Length promised: the answer was cut off."""
    await peer.read_request()
    payload = json.dumps(CHAT_OK).encode()
    raw = answer(body=payload + b" " * 100)
    await peer.send(raw[: len(raw) - 100])


async def headers_then_silence(peer: Peer) -> None:
    await peer.read_request()
    raw = answer()
    await peer.send(raw[: raw.index(b"\r\n\r\n") + 4])
    await peer.until_closed_by_client()  # the client gives up after its timeout


async def silence(peer: Peer) -> None:
    await peer.read_request()
    await peer.until_closed_by_client()


def replies(raw: bytes) -> Script:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(raw)
        await peer.until_closed_by_client()

    return script


def echoing(make: Callable[[bytes], bytes]) -> Script:
    """Answer ``make(the request's Authorization header)``: a proxy page or garbage that quotes the request
    must not carry the key into an error message."""

    async def script(peer: Peer) -> None:
        request = await peer.read_request()
        assert request is not None
        await peer.send(make(request.one("Authorization").encode()))
        await peer.until_closed_by_client()

    return script


@pytest.mark.parametrize(
    "script, error_class, billed",
    [
        pytest.param(closes_after_reading, OpenRouterOutcomeUnknownError, None, id="read-then-close"),
        pytest.param(resets_after_reading, OpenRouterOutcomeUnknownError, None, id="read-then-reset"),
        pytest.param(half_a_body, OpenRouterOutcomeUnknownError, None, id="half-a-body-then-close"),
        pytest.param(
            shorter_than_promised,
            OpenRouterOutcomeUnknownError,
            None,
            id="whole-json-short-of-content-length",
        ),
        pytest.param(headers_then_silence, OpenRouterOutcomeUnknownError, None, id="headers-then-silence"),
        pytest.param(silence, OpenRouterOutcomeUnknownError, None, id="read-then-silence"),
        pytest.param(
            echoing(lambda auth: b"SSH-2.0-OpenSSH_9.6 " + auth + b"\r\n\r\n"),
            OpenRouterOutcomeUnknownError,
            None,
            id="garbage",
        ),
        pytest.param(
            echoing(
                lambda auth: answer(502, b"<html><h1>502 Bad Gateway</h1>" + auth, content_type="text/html")
            ),
            OpenRouterOutcomeUnknownError,
            None,
            id="html-502-page",
        ),
        pytest.param(
            echoing(lambda auth: answer(200, b"upstream said: " + auth, content_type="text/plain")),
            OpenRouterOutcomeUnknownError,
            None,
            id="non-json-200",
        ),
        pytest.param(
            replies(answer(502, {"error": {"code": 502, "message": "Provider returned error"}})),
            OpenRouterUpstreamError,
            False,
            id="502-envelope",
        ),
    ],
)
def test_each_failure_after_connecting_maps_to_its_money_rule_and_hides_the_key(
    script: Script, error_class: type[OpenRouterError], billed: bool | None
) -> None:
    async def main() -> tuple[OpenRouterError, int]:
        async with Server(script) as server, transport_for(server, timeout=0.3) as transport:
            error = await failure(transport)
            return error, len(server.requests)

    error, sent = run(main)
    assert type(error) is error_class, repr(error)
    assert error.billed is billed
    assert error.retryable is (billed is False)
    assert sent == 1
    assert_hides_the_key(error)


def test_a_429_envelope_is_not_billed_and_carries_retry_after() -> None:
    envelope = {"error": {"code": 429, "message": "Rate limit exceeded"}}

    async def main() -> OpenRouterError:
        server = Server(replies(answer(429, envelope, [("Retry-After", "7")])))
        async with server, transport_for(server) as transport:
            return await failure(transport)

    error = run(main)
    assert isinstance(error, OpenRouterRateLimitError)
    assert (error.billed, error.retryable, error.retry_after) == (False, True, 7.0)
    assert_hides_the_key(error)


def test_connection_refused_is_never_sent_and_hides_the_key() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: a connect is refused

        async def main() -> OpenRouterError:
            settings = settings_for(f"http://127.0.0.1:{port}/api/v1")
            async with AsyncOpenRouterTransport(settings) as transport:
                return await failure(transport)

        error = run(main)
    assert isinstance(error, OpenRouterConnectionError)
    assert (error.billed, error.retryable) == (False, True)
    assert_hides_the_key(error)


def test_a_connection_lost_on_a_reused_connection_is_not_resent() -> None:
    """The second request goes on the kept connection and the server drops it unanswered: the client may not
    try it again on a fresh connection (the server read it; it may have run)."""

    async def script(peer: Peer) -> None:
        if await peer.read_request() is not None:
            await peer.send(answer())
        await peer.read_request()  # read, then closed unanswered

    async def main() -> tuple[OpenRouterError, int]:
        async with Server(script) as server, transport_for(server) as transport:
            await transport.post_once(PATH, BODY, idempotency_key="row-0")
            error = await failure(transport, key="row-1")
            await server.settle()
            return error, len(server.requests)

    error, sent = run(main)
    assert isinstance(error, OpenRouterOutcomeUnknownError)
    assert error.billed is None
    assert sent == 2
    assert_hides_the_key(error)


# --- refused before sending --------------------------------------------------------------------------------


async def records(peer: Peer) -> None:
    await peer.until_closed_by_client()


async def received_after_refusal(
    server: Server, transport: AsyncOpenRouterTransport, **kwargs: Any
) -> tuple[OpenRouterError, int]:
    error = await failure(transport, **kwargs)
    await transport.aclose()
    await server.settle()
    for peer in server.peers:
        await within(peer.closed_by_client.wait(), "the close of a connection the refused request opened")
    return error, sum(len(peer.received) for peer in server.peers)


@pytest.mark.parametrize("breaks", ["\r\n", "\n", "\r"], ids=["crlf", "lf", "cr"])
def test_a_line_break_in_the_idempotency_key_is_refused_before_anything_is_sent(breaks: str) -> None:
    async def main() -> tuple[OpenRouterError, int]:
        async with Server(records) as server:
            transport = transport_for(server, timeout=0.5)  # should it be sent, fail soon
            return await received_after_refusal(server, transport, key=f"row-1{breaks}X-Injected: yes")

    error, received = run(main)
    assert received == 0
    assert isinstance(error, OpenRouterRequestError)
    assert error.billed is False
    assert "X-Idempotency-Key" in str(error)
    assert_hides_the_key(error)


def test_a_line_break_in_a_connection_header_is_refused_before_anything_is_sent() -> None:
    """Settings check their fields when built; one changed afterwards (as a frozen dataclass can be) must
    still never reach the wire as an injected header."""

    async def main() -> tuple[OpenRouterError, int]:
        async with Server(records) as server:
            settings = settings_for(server.base_url, timeout=0.5)  # should it be sent, fail soon
            object.__setattr__(settings, "app_title", "Wire\r\nX-Injected: yes")
            try:
                transport = AsyncOpenRouterTransport(settings)
            except OpenRouterError as error:
                return error, 0
            return await received_after_refusal(server, transport)

    error, received = run(main)
    assert received == 0
    assert error.billed is False
    assert "app_title" in str(error)
    assert_hides_the_key(error)


# --- HTTPS -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Authority:
    """A certificate authority made for this test run, and a certificate it signed for 127.0.0.1."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_authority(folder: Path) -> Authority:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"wire tests CA {folder.name}")])

    def signed_by_the_ca(subject: x509.Name, key: ec.EllipticCurvePrivateKey, *extensions: Any) -> Any:
        builder = (
            x509.CertificateBuilder(subject_name=subject, issuer_name=ca_name, public_key=key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(ca_key, hashes.SHA256())

    signs_certificates = x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    ca = signed_by_the_ca(
        ca_name,
        ca_key,
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (signs_certificates, True),
        (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False),
    )
    leaf = signed_by_the_ca(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]),
        leaf_key,
        (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False),
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False),
    )
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "cert.pem").write_bytes(leaf.public_bytes(pem))
    (folder / "key.pem").write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Authority(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return make_authority(tmp_path_factory.mktemp("trusted"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    """An authority no test trusts, so no trust store built earlier in the process can accept it."""
    return make_authority(tmp_path_factory.mktemp("stranger"))


CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CA bundle or proxy from the machine: each test names the ones it means."""
    for name in (*CA_VARIABLES, *PROXY_VARIABLES):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


# Both what httpx reads and what the synchronous transport (requests) reads.
TRUST_VARIABLES = ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"]


async def tls_exchange(authority: Authority, rows: int = 1) -> tuple[list[dict[str, Any]], Server]:
    server = Server(serving(*[answer()] * rows), tls=authority.server_context())
    async with server, AsyncOpenRouterTransport(settings_for(server.base_url)) as transport:
        answers = [await transport.post_once(PATH, BODY, idempotency_key=f"row-{n}") for n in range(rows)]
    return answers, server


@pytest.mark.parametrize("variable", TRUST_VARIABLES)
def test_https_to_a_server_signed_by_the_ca_the_environment_names(
    authority: Authority, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, str(authority.ca_file))
    answers, server = run(lambda: tls_exchange(authority, rows=2))
    assert answers == [CHAT_OK, CHAT_OK]
    assert len(server.peers) == 1  # kept alive over TLS too
    assert server.requests[0].one("Host") == f"127.0.0.1:{server.port}"
    assert server.requests[0].one("Authorization") == f"Bearer {KEY}"


@pytest.mark.parametrize("variable", TRUST_VARIABLES)
def test_the_ca_is_read_from_the_environment_when_a_transport_is_made(
    authority: Authority, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transport made before the variable was set refuses the server; one made after it trusts it (the
    environment is not read once per process)."""

    async def refused() -> OpenRouterError:
        server = Server(records, tls=authority.server_context())
        async with server, AsyncOpenRouterTransport(settings_for(server.base_url, timeout=0.5)) as transport:
            return await failure(transport)  # should the handshake pass, no answer comes: fail soon

    assert isinstance(run(refused), OpenRouterConnectionError)
    monkeypatch.setenv(variable, str(authority.ca_file))
    answers, _ = run(lambda: tls_exchange(authority))
    assert answers == [CHAT_OK]


async def refused_by(stranger: Authority) -> tuple[OpenRouterError, int]:
    server = Server(records, tls=stranger.server_context())
    async with server, AsyncOpenRouterTransport(settings_for(server.base_url)) as transport:
        error = await failure(transport)
    # The server runs a script only after a handshake that succeeded: none means no request left.
    return error, len(server.peers)


def test_a_certificate_no_one_trusts_is_never_sent(stranger: Authority) -> None:
    error, connections = run(lambda: refused_by(stranger))
    assert isinstance(error, OpenRouterConnectionError)
    assert (error.billed, error.retryable) == (False, True)
    assert connections == 0
    assert_hides_the_key(error)


def test_a_refused_certificate_says_how_to_trust_its_authority(stranger: Authority) -> None:
    error, _ = run(lambda: refused_by(stranger))
    text = str(error)
    assert "certificate" in text.lower()
    assert "SSL_CERT_FILE" in text or "REQUESTS_CA_BUNDLE" in text, text


# --- end to end through the emulator -----------------------------------------------------------------------


def emulator_transport(
    emulator: RunningEmulator, max_connections: int | None = None
) -> AsyncOpenRouterTransport:
    settings = TransportSettings(
        "wire_emulator", emulator.base_url, emulator.api_key, requests_per_minute=None
    )
    return AsyncOpenRouterTransport(settings, max_connections=max_connections)


def chat_body(content: str) -> bytes:
    return json.dumps(
        {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": content}]}
    ).encode()


def test_rows_through_the_emulator_on_eight_lanes_are_each_billed_once_with_their_own_answer(
    openrouter_emulator_clean: RunningEmulator,
) -> None:
    """Row n's prompt is 8·n characters longer than row 0's, so its answer's prompt_tokens grow with n: an
    answer handed to the wrong caller breaks the order."""
    emulator, callers, per_caller = openrouter_emulator_clean, 8, 10

    async def main() -> dict[int, dict[str, Any]]:
        answers: dict[int, dict[str, Any]] = {}
        async with emulator_transport(emulator, max_connections=callers) as transport:

            async def caller(lane: int) -> None:
                for n in range(lane, callers * per_caller, callers):
                    body = chat_body("x" * (8 * n + 8))
                    answers[n] = await transport.post_once(PATH, body, idempotency_key=f"row-{n}", lane=lane)

            await asyncio.gather(*(caller(lane) for lane in range(callers)))
        return answers

    answers = run(main)
    tokens = [answers[n]["usage"]["prompt_tokens"] for n in range(callers * per_caller)]
    assert tokens == sorted(set(tokens))
    stats = emulator.stats(billed_by_identity=True)
    assert set(stats["billed_by_identity"].values()) == {1}
    assert len(stats["billed_by_identity"]) == callers * per_caller
    assert stats["duplicate_billed"] == 0


@pytest.mark.parametrize(
    "directive, error_class, billed",
    [
        ("fault=reset", OpenRouterOutcomeUnknownError, None),
        ("fault=truncate", OpenRouterOutcomeUnknownError, None),
        ("fault=html", OpenRouterOutcomeUnknownError, None),
        ("fault=502", OpenRouterUpstreamError, False),
        ("fault=429, retry_after=3", OpenRouterRateLimitError, False),
    ],
    ids=["reset", "truncate", "html", "502", "429"],
)
def test_emulator_faults_keep_their_money_rule_and_are_sent_once(
    openrouter_emulator_clean: RunningEmulator,
    directive: str,
    error_class: type[OpenRouterError],
    billed: bool | None,
) -> None:
    emulator = openrouter_emulator_clean

    async def main() -> OpenRouterError:
        async with emulator_transport(emulator) as transport:
            try:
                await transport.post_once(
                    PATH, chat_body(f"[[emulator: {directive}]] hi"), idempotency_key="r"
                )
            except OpenRouterError as error:
                return error
        raise AssertionError("post_once returned an answer")

    error = run(main)
    assert type(error) is error_class, repr(error)
    assert error.billed is billed
    if error_class is OpenRouterRateLimitError:
        assert getattr(error, "retry_after", None) == 3.0
    assert sum(emulator.stats()["requests"]["POST /chat/completions"].values()) == 1
