"""``openrouter-emulator`` (also ``python -m airflow_provider_openrouter.emulator``): run the emulator.

Process contract: the first line on stdout, flushed at once, is ``listening on http://HOST:PORT/api/v1``
(``--port 0`` picks a free port); SIGTERM and SIGINT stop the server cleanly with exit code 0; logs go to
stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

from airflow_provider_openrouter.emulator.config import SPECS, EmulatorSettings, SettingError

_EPILOG = """\
keys:
  inference key   any bearer token starting sk-or- (or only the --api-key values, when given);
                  used for completions, batches, /key and /generation. /credits answers it with 403.
  management key  any bearer token starting sk-or-mgmt-; used for /credits, /key and /generation.
                  Completion and batch endpoints answer it with 403, as OpenRouter does.
  A missing header gets 401 "No auth credentials found"; an unknown key gets 401 "User not found.".
  /models, /models/count, /model/..., /models/.../endpoints and /providers need no key.
  POST /embeddings (and GET /embeddings/models) serve the catalog's embeddings models.

admin endpoints (no auth; at the server root and under /api/v1):
  GET  /__emulator/stats    requests by "METHOD /route" and status, billed_generations, total_cost (a decimal
                            string), duplicate_billed, billed_identities, billed_twice, rate_limited, faults,
                            credits; ?billed_by=identity adds the billed count per idempotency key or
                            custom_id
  POST /__emulator/reset    clear usage, generations, batches, stats and limits; restore the startup settings
  GET|POST /__emulator/config   read or change settings live: JSON with the flag names in snake_case,
                            e.g. {"latency_ms": 500, "fault_rate": 0.1, "fail_next": {"GET /credits": [503]}}
  PATCH|DELETE /__emulator/models/{author}/{slug}   change (a JSON merge into its GET /models object, e.g.
                            {"pricing": {"prompt": "0.000001"}}) or remove a model while running
  POST /__emulator/models   add a model from a full GET /models object

directives, anywhere in a message text or prompt:
  [[emulator: fault=503, times=2]]   fail the first 2 attempts of this exact body with 503, then answer
  fault = an HTTP status | reset | truncate | html | error_in_200 | empty_choices | mid_stream
  times = N, latency_ms = N, status = N (for html / error_in_200 / mid_stream), retry_after = S
  batch = failed | expired (in a batch request only: how the whole batch ends)
  [[emulator: refuse]]               the model refuses (message.refusal, content null); billed
  [[emulator: invalid-json]]         a json_schema answer its schema rejects (valid JSON, wrong shape); billed
  Error statuses, error_in_200, empty_choices and mid_stream are not billed; reset, truncate and html bill the
  generation first and then lose the answer.

See docs/emulator.md for everything else.
"""


DEFAULT_REQUEST_TIMEOUT_S = 10.0
_MAX_REQUEST_TIMEOUT_S = 3600.0


def _timeout(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= _MAX_REQUEST_TIMEOUT_S:
        raise argparse.ArgumentTypeError(
            f"expected seconds > 0 and <= {_MAX_REQUEST_TIMEOUT_S:g}, got {text!r}"
        )
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openrouter-emulator",
        description="An offline OpenRouter API (as at https://openrouter.ai/api/v1) on 127.0.0.1.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="Address to bind. Default: 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="Port to bind; 0 picks a free one. Default: 0.")
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help="Server log level (stderr). Default: warning.",
    )
    parser.add_argument(
        "--request-timeout-s",
        type=_timeout,
        default=DEFAULT_REQUEST_TIMEOUT_S,
        metavar="S",
        help="Close a connection whose request is not complete S seconds after it connected or sent the "
        f"request's first byte (half-open and stalled clients). Default: {DEFAULT_REQUEST_TIMEOUT_S:g}.",
    )
    for spec in SPECS:
        if not spec.cli:
            continue
        default = spec.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = (
            spec.help
            if "Default" in spec.help or shown in ((), "", None)
            else f"{spec.help} Default: {shown}."
        )
        parser.add_argument(
            "--" + spec.name.replace("_", "-"),
            dest=spec.name,
            metavar=spec.metavar,
            action="append" if spec.repeatable else "store",
            default=None,
            help=help_text,
        )
    return parser


def settings_from_args(args: argparse.Namespace) -> EmulatorSettings:
    values: dict[str, Any] = {
        spec.name: getattr(args, spec.name)
        for spec in SPECS
        if spec.cli and getattr(args, spec.name) is not None
    }
    return EmulatorSettings(**values)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _raise_descriptor_limit() -> None:
    """Every connection holds a descriptor, and the usual soft limit (1,024 on Linux, 256 on macOS) lets a
    thousand idle or half-open clients stop the server from accepting; the hard limit is the real bound."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < wanted:
        # macOS caps it below an unlimited hard limit: then the soft limit stays as it was
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class _CorkedTransport(asyncio.Transport):
    """A transport that gathers what one turn of the event loop writes into one send.

    uvicorn writes an answer's status line and headers, then its body, each with its own send system call;
    gathered, a whole answer costs one. Whatever closes, aborts or hands over the connection sends what is
    held first, so the bytes and their order on the wire stay as uvicorn wrote them.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._held:
            self._loop.call_soon(self._flush)
        self._held.append(bytes(data))

    def _flush(self) -> None:
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held.clear()
        if not self._transport.is_closing():  # the client left meanwhile: nobody to send it to
            self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._flush()
        self._transport.abort()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._flush()
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._held))

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)


def _http_protocol(request_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol, closing a connection whose request is not complete in time, on a corked
    transport (see _CorkedTransport).

    uvicorn times out only idle keep-alive connections, after an answer: a client that connects and sends
    nothing, or half a request, would hold its connection (and a descriptor) forever. One timer per connection
    serves all its requests: a request only notes when its clock started, and the timer, when it fires early
    for a later request, waits out the rest (a timer per request cost more than the rest of the check).
    """
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    base: Any = AutoHTTPProtocol

    class Protocol(base):
        _request_timer: asyncio.TimerHandle | None = None
        _request_since: float | None = None  # when the unanswered request's clock started

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(_CorkedTransport(cast(asyncio.Transport, transport), self.loop))
            self._start_request_clock()

        def data_received(self, data: bytes) -> None:
            # The first byte of a new request on a kept-alive connection starts its clock.
            if self._request_since is None and (self.cycle is None or self.cycle.response_complete):
                self._start_request_clock()
            super().data_received(data)

        def on_response_complete(self) -> None:
            # Answered: the connection is idle now, which uvicorn's keep-alive timeout bounds.
            self._request_since = None
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._request_since = None
            if self._request_timer is not None:
                self._request_timer.cancel()
                self._request_timer = None
            super().connection_lost(exc)

        def _start_request_clock(self) -> None:
            self._request_since = self.loop.time()
            if self._request_timer is None:
                self._request_timer = self.loop.call_later(request_timeout_s, self._request_timed_out)

        def _request_timed_out(self) -> None:
            self._request_timer = None
            if self._request_since is None:
                return  # answered; the next request starts the clock again
            left = self._request_since + request_timeout_s - self.loop.time()
            if left > 0:  # the clock was restarted by a later request after this timer was armed
                self._request_timer = self.loop.call_later(left, self._request_timed_out)
                return
            cycle = self.cycle
            if cycle is not None and not cycle.more_body and not cycle.response_complete:
                return  # the whole request arrived and is being answered, however long that takes
            if not self.transport.is_closing():
                self.transport.close()

    return Protocol


def serve(
    settings: EmulatorSettings,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
    on_listening: Callable[[str], None] | None = None,
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
) -> None:
    """Run the emulator until SIGTERM/SIGINT; ``on_listening`` gets the base URL once it is accepting."""
    import uvicorn

    from airflow_provider_openrouter.emulator.app import Emulator

    _raise_descriptor_limit()
    sock = _bind(host, port)
    base_url = f"http://{_url_host(host)}:{sock.getsockname()[1]}/api/v1"

    early_stop: list[int] = []

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if early_stop:
                self.should_exit = True
            elif self.started and on_listening is not None:
                on_listening(base_url)

    config = uvicorn.Config(
        Emulator(settings),
        lifespan="off",
        access_log=False,
        proxy_headers=False,  # nothing reads the client address: spare every request the middleware
        log_level=log_level,
        loop="auto",  # uvloop and httptools when installed: the hot path needs them
        http=_http_protocol(request_timeout_s),  # httptools when installed, as "auto" would pick
        backlog=4096,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=3,
    )
    # uvicorn re-raises the signal that stopped it once it has shut down; with this handler in place that
    # re-raise is harmless, so the process ends with exit code 0 instead of dying by the signal. Before
    # uvicorn installs its own handlers, the same handler remembers a stop so that startup ends at once.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda signum, _frame: early_stop.append(signum))
    _Server(config).run(sockets=[sock])


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except SettingError as exc:
        parser.error(str(exc))
    try:
        serve(
            settings,
            args.host,
            args.port,
            args.log_level,
            on_listening=lambda url: print(f"listening on {url}", flush=True),
            request_timeout_s=args.request_timeout_s,
        )
    except OSError as exc:
        print(
            f"openrouter-emulator: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
