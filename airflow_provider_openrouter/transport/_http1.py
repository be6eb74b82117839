"""A lean HTTP/1.1 client for the batch engine's rows: one keep-alive connection per lane, one request each.

Why not httpx here: against the emulator on this project's 2-core machines a hand-written asyncio + httpx
script sends 150-240 requests/s, while each row of a batch needs only what this module does: write one
prepared request, read one answer framed by ``Content-Length`` or chunks. Its cost per request is a few tens
of microseconds, so the engine's pace is set by the rate limit and the server, not by the client.

What it does not do, on purpose: proxies (the async transport sends through ``httpx`` when the environment
names a proxy for the base URL), HTTP/2, redirects, cookies, streaming. TLS is the standard library's, with
the certificate authorities ``httpx`` would use (``certifi``, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``) unless
``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` name a bundle, as for the synchronous client.

The two failures it raises carry the money rule (the transport maps them): :class:`RequestNotSent` when no
byte of the request was handed to the socket (connect refused or timed out, TLS refused), so the request
provably did not run; :class:`AnswerLost` once it was, when no whole answer came back (connection closed,
silence past the timeout, an answer that is not HTTP), so it may have run and been billed.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import ssl
import zlib
from urllib.parse import urlsplit

from airflow_provider_openrouter.transport._settings import requests_ca_bundle

__all__ = ["AnswerLost", "Http1Lane", "Origin", "RequestNotSent", "tls_context"]

RESOLVE_TTL = 60.0
"""Seconds a resolved address list of the base URL's host is used before it is looked up again."""
MAX_HEAD_BYTES = 64 * 1024
"""An answer whose status line and headers do not end within this many bytes is not one OpenRouter sends."""


class RequestNotSent(Exception):
    """No byte of the request reached the socket: it did not run and was not billed."""


class AnswerLost(Exception):
    """The request was sent and no whole answer came back: it may have run and been billed."""


class _Malformed(Exception):
    """The bytes that came back are not an HTTP/1.1 answer."""


def tls_context() -> ssl.SSLContext:
    """The verifying TLS context for the environment's CA settings, one per process and setting: building
    one reads the CA bundle, tens of milliseconds."""
    return _tls_context(
        requests_ca_bundle(),
        os.environ.get("SSL_CERT_FILE"),
        os.environ.get("SSL_CERT_DIR"),
    )


@functools.cache
def _tls_context(ca_bundle: str | None, cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    # ``cert_file`` and ``cert_dir`` are part of the key only: httpx reads them from the environment itself.
    if ca_bundle:
        context = ssl.create_default_context(cafile=ca_bundle)
    else:
        import httpx

        context = httpx.create_ssl_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


class _AnswerReader(asyncio.Protocol):
    """Reads one answer at a time from a keep-alive connection; :meth:`expect` arms it for the next one."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._loop = loop
        self._timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, dict[str, str], bytes]] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_data = 0.0
        self._status = 0
        self._headers: dict[str, str] | None = None
        self._body_start = 0
        self._length = -1  # -1: the body ends when the connection closes
        self._chunked = False
        self._chunks: list[bytes] = []
        self._cursor = 0
        self._in_trailer = False

    # -- asyncio.Protocol ------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (uvloop's is not a subclass)

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.reusable = False  # bytes nobody asked for: this connection is out of step, do not reuse it
            return
        self._buffer += data
        self._last_data = self._loop.time()
        try:
            complete = self._parse()
        except _Malformed as error:
            self._fail(AnswerLost(f"the answer is not HTTP/1.1 ({error})"))
            return
        if complete:
            self._complete()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._headers is not None and not self._chunked and self._length < 0:
            self._complete()  # an answer framed by the end of the connection
            return
        reason = f"{type(exc).__name__}: {exc}" if exc is not None else "closed by the server"
        what = "before the answer began" if not self._buffer else "in the middle of the answer"
        self._fail(AnswerLost(f"connection lost after sending, {what} ({reason})"))

    # -- one exchange ----------------------------------------------------------------------------------------

    def expect(self) -> asyncio.Future[tuple[int, dict[str, str], bytes]]:
        """Arm for the next answer: a future of ``(status, headers, body)``, or of :class:`AnswerLost`."""
        self._waiter = waiter = self._loop.create_future()
        self._buffer.clear()
        self._headers = None
        self._length = -1
        self._chunked = self._in_trailer = False
        self._chunks = []
        self._last_data = self._loop.time()
        self._timer = self._loop.call_at(self._last_data + self._timeout, self._check_idle)
        return waiter

    def _check_idle(self) -> None:
        """Silence for ``timeout`` seconds (since the request, or since the answer's last bytes) ends it."""
        deadline = self._last_data + self._timeout
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._check_idle)
            return
        self._timer = None
        self._fail(AnswerLost(f"no answer within {self._timeout:g} s"))

    def _complete(self) -> None:
        assert self._waiter is not None and self._headers is not None
        if self._chunked:
            body = b"".join(self._chunks)
            leftover = len(self._buffer) > self._cursor
        elif self._length >= 0:
            end = self._body_start + self._length
            body = bytes(self._buffer[self._body_start : end])
            leftover = len(self._buffer) > end
        else:
            body = bytes(self._buffer[self._body_start :])
            leftover = False
        if leftover:
            self.reusable = False
        try:
            body = _decoded(body, self._headers.get("content-encoding", ""))
        except _Malformed as error:
            self._fail(AnswerLost(f"the answer's body cannot be decoded ({error})"))
            return
        self._stop_timer()
        self._waiter.set_result((self._status, self._headers, body))

    def _fail(self, error: AnswerLost) -> None:
        self._stop_timer()
        self.reusable = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)
        if self.transport is not None:
            self.transport.abort()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- parsing ---------------------------------------------------------------------------------------------

    def _parse(self) -> bool:
        """Whether the buffer holds a whole answer (parsing what it can); raises :class:`_Malformed`."""
        if self._headers is None and not self._parse_head():
            return False
        if self._chunked:
            return self._parse_chunks()
        return self._length >= 0 and len(self._buffer) - self._body_start >= self._length

    def _parse_head(self) -> bool:
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD_BYTES or (len(buffer) >= 5 and not buffer.startswith(b"HTTP/")):
                raise _Malformed("no status line")
            return False
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise _Malformed(f"status line {lines[0][:40]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise _Malformed(f"header line {line[:40]!r}")
            name = name.lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if 100 <= status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            del buffer[: end + 4]
            return self._parse_head()
        self._status, self._headers = status, headers
        self._body_start = self._cursor = end + 4
        connection = headers.get("connection", "").lower()
        if "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection):
            self.reusable = False
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked = True
        elif "content-length" in headers:
            length = headers["content-length"]
            if not length.isdigit():
                raise _Malformed(f"Content-Length {length[:20]!r}")
            self._length = int(length)
        elif status in (204, 304):
            self._length = 0
        else:
            self.reusable = False  # the body ends with the connection
        return True

    def _parse_chunks(self) -> bool:
        buffer = self._buffer
        while True:
            line_end = buffer.find(b"\r\n", self._cursor)
            if line_end < 0:
                return False
            if self._in_trailer:  # trailer lines, ended by an empty line
                empty = line_end == self._cursor
                self._cursor = line_end + 2
                if empty:
                    return True
                continue
            size_text = bytes(buffer[self._cursor : line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _Malformed(f"chunk size {size_text[:20]!r}") from None
            if size == 0:
                self._in_trailer = True
                self._cursor = line_end + 2
                continue
            data_end = line_end + 2 + size
            if len(buffer) < data_end + 2:
                return False
            if buffer[data_end : data_end + 2] != b"\r\n":
                raise _Malformed("a chunk longer than its size")
            self._chunks.append(bytes(buffer[line_end + 2 : data_end]))
            self._cursor = data_end + 2


def _decoded(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if not encoding or encoding == "identity":
        return body
    try:
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate, as some servers send it
    except zlib.error as error:
        raise _Malformed(f"{encoding}: {error}") from None
    raise _Malformed(f"unsupported Content-Encoding {encoding[:20]!r}")


class Origin:
    """The base URL's scheme, host and port, with the host resolved once for every lane that connects to it
    (a thousand lanes would otherwise ask DNS a thousand times at the start of a run), again after
    :data:`RESOLVE_TTL` seconds or after no address took a connection."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or ""
        self.tls = tls_context() if parts.scheme == "https" else None
        self.port = parts.port or (443 if self.tls else 80)
        self._addresses: list[str] = []
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def addresses(self) -> list[str]:
        loop = asyncio.get_running_loop()
        if not (self._addresses and loop.time() < self._expires):
            async with self._lock:  # one lookup for every lane waiting on it
                if not (self._addresses and loop.time() < self._expires):
                    found = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
                    self._addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
                    self._expires = loop.time() + RESOLVE_TTL
        return self._addresses

    def forget(self) -> None:
        self._expires = 0.0


class Http1Lane:
    """One keep-alive connection to ``origin``, used by one caller at a time.

    :meth:`post` writes a request made of a prepared head and the body, and returns ``(status, headers,
    body)`` with header names in lower case. It connects (again) when the connection is closed or out of
    step, to the origin's addresses in turn starting from the ``number``-th (so lanes spread over them); it
    never sends a request twice.
    """

    def __init__(self, origin: Origin, number: int, *, timeout: float, connect_timeout: float) -> None:
        self._origin = origin
        self._number = number
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._reader: _AnswerReader | None = None
        self._lock = asyncio.Lock()

    async def post(self, head: bytes, body: bytes) -> tuple[int, dict[str, str], bytes]:
        async with self._lock:
            reader = self._reader
            if reader is None or reader.closed or not reader.reusable:
                if reader is not None and reader.transport is not None:
                    reader.transport.close()
                reader = self._reader = await self._connect()
            answer = reader.expect()
            assert reader.transport is not None
            reader.transport.write(head + body)
            try:
                return await answer
            except asyncio.CancelledError:
                # An answer may still arrive on this connection: it must never be read as another's.
                reader.reusable = False
                raise

    async def _connect(self) -> _AnswerReader:
        loop = asyncio.get_running_loop()
        origin = self._origin
        where = f"{origin.host}:{origin.port}"
        try:
            async with asyncio.timeout(self._connect_timeout):
                addresses = await origin.addresses()
                last_error: OSError | None = None
                for step in range(len(addresses)):
                    address = addresses[(self._number + step) % len(addresses)]
                    try:
                        _, reader = await loop.create_connection(
                            lambda: _AnswerReader(loop, self._timeout),
                            address,
                            origin.port,
                            ssl=origin.tls,
                            server_hostname=origin.host if origin.tls else None,
                        )
                    except ssl.SSLCertVerificationError:
                        raise
                    except OSError as error:  # this address refused: the next one may not
                        last_error = error
                        continue
                    return reader
                origin.forget()
                raise last_error or OSError(f"{origin.host} resolved to no address")
        except ssl.SSLCertVerificationError as error:
            raise RequestNotSent(
                f"the TLS certificate of {where} was refused ({error.verify_message}); if a proxy or a "
                "private CA signs it, name its bundle in REQUESTS_CA_BUNDLE or SSL_CERT_FILE"
            ) from None
        except TimeoutError:
            raise RequestNotSent(f"no connection to {where} within {self._connect_timeout:g} s") from None
        except (OSError, ssl.SSLError) as error:
            raise RequestNotSent(f"cannot connect to {where} ({type(error).__name__}: {error})") from None

    def close(self) -> None:
        if self._reader is not None and self._reader.transport is not None:
            self._reader.transport.close()
        self._reader = None
