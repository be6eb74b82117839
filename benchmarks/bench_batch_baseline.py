"""What a skilled user writes by hand: asyncio + httpx, a semaphore, no checkpoint, no retries.

The yardstick of ``bench_batch.py`` part 6 (the engine must reach 0.8x of it at zero latency and 0.95x at
200 ms). Run alone against a running emulator::

    uv run python benchmarks/bench_batch_baseline.py BASE_URL API_KEY N CONCURRENCY

prints ``{"seconds": ..., "ok": ...}`` (one JSON line). The model and prompts are the engine's.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx

MODEL = "openai/gpt-4o-mini"


async def run(base_url: str, api_key: str, n: int, concurrency: int) -> tuple[float, int]:
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {api_key}"}
    ok = 0
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=60) as client:

        async def one(prompt: str) -> None:
            nonlocal ok
            body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": 32}
            async with semaphore:
                answer = await client.post("/chat/completions", json=body)
            answer.raise_for_status()
            if answer.json()["choices"]:
                ok += 1

        started = time.perf_counter()
        await asyncio.gather(*(one(f"Summarise item {n} in one sentence.") for n in range(n)))
        return time.perf_counter() - started, ok


def main() -> None:
    base_url, api_key, n, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    seconds, ok = asyncio.run(run(base_url, api_key, n, concurrency))
    print(json.dumps({"seconds": seconds, "ok": ok}))


if __name__ == "__main__":
    main()
