"""Emulator throughput and concurrency (prints figures and ratios; not a test).

    uv run python benchmarks/bench_emulator.py [--seconds 5] [--connections 64] [--in-flight 1000]
        [--half-open 1000]   (quick run: --seconds 2 --rounds 1 --batch-size 1000)
    uv run python benchmarks/bench_emulator.py --baseline DIR [--rounds 3]
        (DIR holds another version of the package, e.g. ``git archive <commit> airflow_provider_openrouter |
        tar -x -C DIR``: measures 1. and 3. on both, in alternation, and prints this tree's ratio to it)

1. Non-streaming chat completions per second at zero latency, against the goal of 2,000/s.
2. 1,000 requests in flight at once with 500 ms of injected latency: every one must succeed, and the elapsed
   time shows they were served concurrently (the physical floor is one latency period per round).
3. Streamed chat completions per second.
4. A 5,000-request Batch API submission (OpenRouter's maximum): create latency, time to completed.
5. The median latency of a normal request alone, then while 1,000 half-open connections are held (connected,
   nothing or half a request sent): the ratio shows whether they slow the emulator down.

The load comes from a lean asyncio HTTP/1.1 client (pre-built requests, keep-alive, httptools to parse) in
this process, so the client costs less CPU than the server it measures; the emulator runs in its own process,
as in the tests. On a 2-core machine the two share the CPU, so the figure is a floor for the emulator alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httptools
import psutil

from airflow_provider_openrouter.emulator.testing import RunningEmulator, running_emulator

GOAL_PER_SECOND = 2000
KEY = "sk-or-bench"


def build_request(host: str, path: str, body: dict | None = None, method: str = "POST") -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


@dataclass
class Tally:
    ok: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


class _Response:
    """httptools callbacks: we only need the status and the end of each message."""

    def __init__(self) -> None:
        self.done = False
        self.status = 0
        self.parser = httptools.HttpResponseParser(self)

    def on_message_complete(self) -> None:
        self.done = True


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    response = _Response()
    while not response.done:
        chunk = await reader.read(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        response.parser.feed_data(chunk)
    return response.parser.get_status_code()


def _count(tally: Tally, status: int) -> None:
    tally.statuses[status] = tally.statuses.get(status, 0) + 1
    if status == 200:
        tally.ok += 1
    else:
        tally.errors += 1


async def _worker(port: int, request: bytes, stop_at: float, tally: Tally) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            try:
                status = await _one(reader, writer, request)
            except (ConnectionError, OSError):
                tally.errors += 1
                return
            _count(tally, status)
    finally:
        writer.close()


async def _throughput(
    port: int, request: bytes, connections: int, seconds: float, server: psutil.Process | None = None
) -> tuple[float, Tally, float]:
    """(requests/s, tally, emulator CPU seconds) of a timed run after half a second of warm-up."""
    warm = Tally()
    await asyncio.gather(
        *(_worker(port, request, time.perf_counter() + 0.5, warm) for _ in range(connections))
    )
    cpu_before = sum(server.cpu_times()[:2]) if server else 0.0
    tally = Tally()
    start = time.perf_counter()
    stop_at = start + seconds
    await asyncio.gather(*(_worker(port, request, stop_at, tally) for _ in range(connections)))
    rate = tally.ok / (time.perf_counter() - start)
    return rate, tally, (sum(server.cpu_times()[:2]) - cpu_before) if server else 0.0


async def _in_flight(port: int, request: bytes, count: int, rounds: int) -> tuple[float, list[float], Tally]:
    """Open ``count`` connections, then send one request on each at once, ``rounds`` times."""
    start = time.perf_counter()
    connections = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(count)))
    connect_s = time.perf_counter() - start
    tally = Tally()
    round_s = []
    for _ in range(rounds):
        start = time.perf_counter()
        results = await asyncio.gather(
            *(_one(reader, writer, request) for reader, writer in connections), return_exceptions=True
        )
        round_s.append(time.perf_counter() - start)
        for result in results:
            if isinstance(result, BaseException):
                tally.errors += 1
            else:
                _count(tally, result)
    for _, writer in connections:
        writer.close()
    return connect_s, round_s, tally


async def _median_latency_ms(port: int, request: bytes, count: int) -> float:
    """Median of ``count`` sequential requests on one keep-alive connection, in milliseconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    samples = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            assert await _one(reader, writer, request) == 200
            samples.append(time.perf_counter() - start)
    finally:
        writer.close()
    return statistics.median(samples) * 1000


async def _half_open(port: int, request: bytes, held: int, count: int) -> tuple[float, float]:
    """(median ms alone, median ms while ``held`` connections sit half-open: nothing or half a request)."""
    alone = await _median_latency_ms(port, request, count)
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(held)]
    for index, (_, writer) in enumerate(connections):
        if index % 2:
            writer.write(request[: len(request) // 2])
    try:
        during = await _median_latency_ms(port, request, count)
    finally:
        for _, writer in connections:
            writer.close()
    return alone, during


def _chat_body(stream: bool = False) -> dict:
    return {
        "model": "openai/gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Summarise."},
        ],
        "max_tokens": 200,
        "stream": stream,
    }


def _batch(emulator: RunningEmulator, size: int) -> tuple[float, float]:
    import httpx

    requests = [
        {"custom_id": f"row-{i}", "body": {"messages": [{"role": "user", "content": f"Row {i}: summarise."}]}}
        for i in range(size)
    ]
    with httpx.Client(
        base_url=emulator.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=300, trust_env=False
    ) as client:
        start = time.perf_counter()
        created = client.post(
            "/batches",
            json={"endpoint": "/v1/chat/completions", "model": "openai/gpt-4o-mini", "requests": requests},
        )
        create_s = time.perf_counter() - start
        assert created.status_code == 202, created.text
        while client.get(f"/batches/{created.json()['id']}").json()["status"] != "completed":
            time.sleep(0.05)
        return create_s, time.perf_counter() - start


# CPU per chat completion through the ASGI app in one process, no HTTP: the figure least moved by other load.
_IN_PROCESS = """
import asyncio, json, sys, time
from airflow_provider_openrouter.emulator.app import create_app
app = create_app(generation_delay_s=0)
body = json.dumps(json.loads(sys.argv[2])).encode()
scope = {"type": "http", "method": "POST", "path": "/api/v1/chat/completions", "query_string": b"",
         "http_version": "1.1", "headers": [(b"authorization", b"Bearer sk-or-bench")]}
async def one():
    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}
    sent = []
    async def send(message):
        sent.append(message)
    await app(scope, receive, send)
    assert sent[0]["status"] == 200, sent
async def main(count):
    for _ in range(300):
        await one()
    blocks = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(count // 5):
            await one()
        blocks.append((time.process_time() - start) / (count // 5) * 1e6)
    print(min(blocks))  # the block least slowed by other processes on a shared machine
asyncio.run(main(int(sys.argv[1])))
"""


def _in_process_us(directory: str | None, count: int = 2000) -> float:
    command = [sys.executable, "-c", _IN_PROCESS, str(count), json.dumps(_chat_body())]
    done = subprocess.run(command, cwd=directory, capture_output=True, text=True, check=True)
    return float(done.stdout)


@contextlib.contextmanager
def _emulator_from(directory: str | None) -> Iterator[RunningEmulator]:
    """An emulator whose package comes from ``directory`` (None: this tree). ``python -m`` puts its working
    directory first on sys.path, so the process imports the package found there."""
    here = os.getcwd()
    if directory is not None:
        os.chdir(directory)
    try:
        with running_emulator("--batch-duration-s", "0") as emulator:
            os.chdir(here)
            yield emulator
    finally:
        os.chdir(here)


def _compare(baseline: str, args: argparse.Namespace) -> None:
    """Chat completions/s, emulator CPU per request, streams/s and CPU per request in process (no HTTP) of
    ``baseline`` and of this tree, measured in alternation (so both see the same machine load), with this
    tree's ratio to the baseline."""
    figures: dict[str, dict[str, list[float]]] = {
        name: {"rate": [], "cpu_us": [], "streams": [], "in_process_us": []}
        for name in ("baseline", "this tree")
    }
    for round_number in range(args.rounds):
        order = [("baseline", baseline), ("this tree", None)]
        for name, directory in order if round_number % 2 == 0 else order[::-1]:  # neither always goes first
            figures[name]["in_process_us"].append(_in_process_us(directory))
            with _emulator_from(directory) as emulator:
                port = int(emulator.base_url.split(":")[2].split("/")[0])
                host = f"127.0.0.1:{port}"
                chat = build_request(host, "/api/v1/chat/completions", _chat_body())
                server = psutil.Process(emulator.process.pid)
                rate, tally, cpu_s = asyncio.run(
                    _throughput(port, chat, args.connections, args.seconds, server)
                )
                stream = build_request(host, "/api/v1/chat/completions", _chat_body(stream=True))
                streams, _, _ = asyncio.run(_throughput(port, stream, args.connections, args.seconds / 2))
            figures[name]["rate"].append(rate)
            figures[name]["cpu_us"].append(cpu_s / sum(tally.statuses.values()) * 1e6)
            figures[name]["streams"].append(streams)
    print(
        f"\nbaseline {baseline} against this tree, {args.rounds} rounds, first one then the other (medians):"
    )
    for label, key, better in (
        ("chat completions/s", "rate", "higher"),
        ("emulator CPU us per chat completion", "cpu_us", "lower"),
        ("streamed completions/s", "streams", "higher"),
        ("CPU us per chat completion in process, no HTTP", "in_process_us", "lower"),
    ):
        base = statistics.median(figures["baseline"][key])
        this = statistics.median(figures["this tree"][key])
        print(
            f"    {label}: baseline {base:,.1f}, this tree {this:,.1f}, "
            f"ratio {this / base:.2f} ({better} is better)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--in-flight", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=500.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--half-open", type=int, default=1000)
    parser.add_argument("--baseline", help="another version's package directory to compare with (see above)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # this process holds the in-flight and half-open connections
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    if args.baseline:
        _compare(args.baseline, args)
        return 0
    with running_emulator("--batch-duration-s", "0") as emulator:
        port = int(emulator.base_url.split(":")[2].split("/")[0])
        host = f"127.0.0.1:{port}"
        chat = build_request(host, "/api/v1/chat/completions", _chat_body())

        server = psutil.Process(emulator.process.pid)
        rate, tally, cpu_s = asyncio.run(_throughput(port, chat, args.connections, args.seconds, server))
        served = sum(tally.statuses.values())
        print(
            f"\n[1] non-streaming chat completions, zero latency, {args.connections} keep-alive connections"
        )
        print(
            f"    {rate:,.0f} requests/s over {args.seconds:.0f} s; errors {tally.errors}; "
            f"statuses {tally.statuses}"
        )
        print(f"    ratio to the {GOAL_PER_SECOND:,}/s goal: {rate / GOAL_PER_SECOND:.2f}")
        per_cpu_second = served / cpu_s
        print(
            f"    emulator CPU: {cpu_s / served * 1e6:.0f} us per request = {per_cpu_second:,.0f} requests "
            f"per CPU-second, what one free core sustains (ratio to the goal "
            f"{per_cpu_second / GOAL_PER_SECOND:.2f})"
        )

        emulator.reset()
        emulator.configure(latency_ms=args.latency_ms)
        connect_s, round_s, tally = asyncio.run(_in_flight(port, chat, args.in_flight, args.rounds))
        floor = args.latency_ms / 1000
        print(
            f"\n[2] {args.in_flight} requests in flight at once, {args.latency_ms:.0f} ms latency, "
            f"{args.rounds} rounds on {args.in_flight} connections (opened in {connect_s:.2f} s)"
        )
        print(
            f"    {tally.ok} ok, {tally.errors} errors; most in flight at once in the emulator: "
            f"{emulator.stats()['in_flight_max']}"
        )
        print(
            "    round times "
            + ", ".join(f"{s:.2f} s" for s in round_s)
            + f" against a floor of {floor:.2f} s (best ratio floor/round {floor / min(round_s):.2f}; "
            "1.00 = all served in one latency period)"
        )
        emulator.reset()

        stream = build_request(host, "/api/v1/chat/completions", _chat_body(stream=True))
        rate, tally, _ = asyncio.run(_throughput(port, stream, args.connections, args.seconds / 2))
        print(f"\n[3] streamed chat completions: {rate:,.0f} streams/s; errors {tally.errors}")

        create_s, total_s = _batch(emulator, args.batch_size)
        print(
            f"\n[4] Batch API, {args.batch_size:,} requests: create answered in {create_s * 1000:.0f} ms, "
            f"completed with inline results after {total_s:.2f} s "
            f"({args.batch_size / total_s:,.0f} requests/s)"
        )
        emulator.reset()
        alone, during = asyncio.run(_half_open(port, chat, args.half_open, 200))
        print(
            f"\n[5] median latency of a chat completion: {alone:.2f} ms alone, {during:.2f} ms while "
            f"{args.half_open:,} half-open connections are held "
            f"(ratio {during / alone:.2f}; 1.00 = unaffected)"
        )
        stats = emulator.stats()
        print(
            f"\nemulator stats: {stats['requests_total']:,} requests, {stats['billed_generations']:,} billed "
            f"generations, total cost {stats['total_cost']} USD"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
