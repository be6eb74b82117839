"""What a skilled user writes by hand: asyncio + httpx (or aiohttp), a semaphore, no checkpoint, no retries.

The yardstick of ``bench_batch.py`` part 6 (the engine must reach 0.8x of the httpx script at zero latency and
0.95x at 200 ms); the aiohttp variant is a second, harder yardstick (aiohttp is in the dev dependencies).
``raw`` is no client at all: ``CONCURRENCY`` keep-alive sockets writing prepared request bytes and reading
answers with httptools, so its rate is what the emulator and the machine allow (the physical limit parts 6
and 7 compare with). Run alone against a running emulator::

    uv run python benchmarks/bench_batch_baseline.py BASE_URL API_KEY N CONCURRENCY [httpx|aiohttp|raw]

prints ``{"seconds": ..., "ok": ...}`` (one JSON line). The model and prompts are the engine's.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

MODEL = "openai/gpt-4o-mini"


def _bodies(n: int) -> list[dict[str, Any]]:
    return [
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": f"Summarise item {row} in one sentence."}],
            "max_tokens": 32,
        }
        for row in range(n)
    ]


async def _fan_out(
    post: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]], n: int, concurrency: int
) -> Any:
    semaphore = asyncio.Semaphore(concurrency)
    ok = 0

    async def one(body: dict[str, Any]) -> None:
        nonlocal ok
        async with semaphore:
            answer = await post(body)
        if answer["choices"]:
            ok += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(body) for body in _bodies(n)))
    return time.perf_counter() - started, ok


async def with_httpx(base_url: str, api_key: str, n: int, concurrency: int) -> tuple[float, int]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=60) as client:

        async def post(body: dict[str, Any]) -> dict[str, Any]:
            answer = await client.post("/chat/completions", json=body)
            answer.raise_for_status()
            return dict(answer.json())

        return await _fan_out(post, n, concurrency)  # type: ignore[no-any-return]


async def with_aiohttp(base_url: str, api_key: str, n: int, concurrency: int) -> tuple[float, int]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        url = base_url.rstrip("/") + "/chat/completions"

        async def post(body: dict[str, Any]) -> dict[str, Any]:
            async with session.post(url, json=body) as answer:
                answer.raise_for_status()
                return dict(await answer.json())

        return await _fan_out(post, n, concurrency)  # type: ignore[no-any-return]


async def with_raw_sockets(base_url: str, api_key: str, n: int, concurrency: int) -> tuple[float, int]:
    from urllib.parse import urlsplit

    import httptools

    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    requests = []
    for body in _bodies(n):
        payload = json.dumps(body).encode()
        head = (
            f"POST {url.path}/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        requests.append(head.encode() + payload)
    pending = iter(requests)
    ok = 0

    class Answer:
        def __init__(self) -> None:
            self.done = False
            self.parser = httptools.HttpResponseParser(self)

        def on_message_complete(self) -> None:
            self.done = True

    async def worker() -> None:
        nonlocal ok
        reader, writer = await asyncio.open_connection(host, port)
        for request in pending:
            writer.write(request)
            answer = Answer()
            while not answer.done:
                answer.parser.feed_data(await reader.read(65536))
            ok += answer.parser.get_status_code() == 200
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    return time.perf_counter() - started, ok


def main() -> None:
    base_url, api_key, n, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    client = sys.argv[5] if len(sys.argv) > 5 else "httpx"
    run = {"httpx": with_httpx, "aiohttp": with_aiohttp, "raw": with_raw_sockets}[client]
    seconds, ok = asyncio.run(run(base_url, api_key, n, concurrency))
    print(json.dumps({"seconds": seconds, "ok": ok}))


if __name__ == "__main__":
    main()
