"""Issue 7 benchmark: a landing Batch API batch must not stall the triggerer's event loop.

The triggerer runs every deferred task's trigger in one asyncio loop. While ``OpenRouterBatchTrigger`` waits
for a batch of N results (5,000 by default: the Batch API's maximum per batch), another coroutine on the same
loop (a stand-in for every other trigger) asks to wake up every ``--tick-ms`` milliseconds and records how
late each wake-up comes. The goal: no wake-up more than 50 ms late.

Printed, in the same run and on the same loop:

1. idle          the ticker alone: the machine's own noise floor;
2. results on    what a trigger that reads the batch's results on the loop costs: ``GET /batches/{id}`` of the
   the loop      terminal batch through the async transport, whose JSON is parsed on the loop (how the trigger
                 polled before issue 7);
3. the trigger   ``OpenRouterBatchTrigger.run()`` from submission to its event, the batch turning terminal
                 half-way (the worker, not the triggerer, fetches the results): split into its start-up
                 (reading the connection and creating the HTTP client, once per trigger run, before its
                 first poll) and the polls while the batch lands.

Each line: the largest lag, and its ratio to 50 ms (<= 1.00 meets the goal).

    uv run python benchmarks/bench_triggerer_lag.py [--rows 5000] [--tick-ms 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from airflow_provider_openrouter.emulator.testing import running_emulator

MODEL = "openai/gpt-4o-mini"
CONN_ID = "openrouter_lag_bench"
GOAL_MS = 50.0


async def _lags(work: Callable[[], Awaitable[Any]], tick: float) -> tuple[list[tuple[float, float]], Any]:
    """Run ``work`` while a ticker wakes every ``tick`` seconds; return ``(due time, lateness)`` of each
    wake-up (``perf_counter`` seconds) and the result."""
    lags: list[tuple[float, float]] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            due = time.perf_counter() + tick
            await asyncio.sleep(tick)
            lags.append((due, time.perf_counter() - due))

    running = asyncio.create_task(ticker())
    try:
        result = await work()
    finally:
        done.set()
        await running
    return lags, result


async def _max_lag(work: Callable[[], Awaitable[Any]], tick: float) -> tuple[float, Any]:
    lags, result = await _lags(work, tick)
    return max((lag for _, lag in lags), default=0.0), result


_RESULTS: list[str] = []  # printed after the run, below the trigger's own log lines


def _line(label: str, lag: float, extra: str = "") -> None:
    lag_ms = lag * 1000
    _RESULTS.append(
        f"  {label:<44} max lag {lag_ms:7.1f} ms  ratio to {GOAL_MS:g} ms {lag_ms / GOAL_MS:5.2f}  {extra}"
    )


def _submit(rows: int) -> str:
    """One batch of ``rows`` requests (at most the Batch API's limit) through the sync transport."""
    from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook

    hook = OpenRouterHook(CONN_ID)
    requests = [
        {"custom_id": f"r{n}", "body": {"messages": [{"role": "user", "content": f"Tag item {n}."}]}}
        for n in range(rows)
    ]
    answer = hook.transport.post(
        "/batches",
        {"endpoint": "/v1/chat/completions", "model": MODEL, "requests": requests},
        idempotency_key=f"lag-bench-{time.time_ns()}",
    )
    return str(answer["id"])


async def _landed(batch_id: str) -> None:
    """Wait (off the measurement) until the emulator reports the batch terminal."""
    from airflow_provider_openrouter.batch.batch_api import TERMINAL_STATUSES
    from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook

    transport = OpenRouterHook(CONN_ID).transport
    while (await asyncio.to_thread(transport.get, "/batches", {"limit": 100}))["data"][0]["status"] not in (
        TERMINAL_STATUSES
    ):
        await asyncio.sleep(0.2)
    del batch_id


async def _run(rows: int, tick: float, duration: float) -> None:
    from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook
    from airflow_provider_openrouter.triggers.batch import OpenRouterBatchTrigger

    idle, _ = await _max_lag(lambda: asyncio.sleep(3.0), tick)
    _line("1. idle (ticker alone, 3 s)", idle, "(the host's own noise)")

    first = await asyncio.to_thread(_submit, rows)
    await _landed(first)
    transport = await OpenRouterHook(CONN_ID).aget_async_transport()
    try:
        lag, batch = await _max_lag(lambda: transport.get(f"/batches/{first}"), tick)
    finally:
        await transport.aclose()
    _line(
        "2. results parsed on the loop (the old poll)", lag, f"({len(batch.get('results') or []):,} results)"
    )

    second = await asyncio.to_thread(_submit, rows)
    first_poll_done: list[float] = []

    class TimedTrigger(OpenRouterBatchTrigger):
        """Notes when the first status poll is over (the end of the trigger's start-up)."""

        async def _statuses(self, transport: Any, waiting: list[str]) -> dict[str, str]:
            statuses = await super()._statuses(transport, waiting)
            first_poll_done.append(time.perf_counter())
            return statuses

    trigger = TimedTrigger(
        openrouter_conn_id=CONN_ID, batch_ids=[second], poll_interval=0.1, end_time=time.time() + 600
    )

    async def wait() -> Any:
        return [event async for event in trigger.run()]

    started = time.perf_counter()
    lags, events = await _lags(wait, tick)
    reason = events[0].payload["reason"] if len(events) == 1 else f"{len(events)} events"
    polling_from = first_poll_done[0] if first_poll_done else started
    start_up = max((lag for due, lag in lags if due < polling_from), default=0.0)
    landing = max((lag for due, lag in lags if due >= polling_from), default=0.0)
    _line("3a. trigger start-up (connection, client)", start_up, "(once per trigger run)")
    _line(
        "3b. trigger polling while the batch lands",
        landing,
        f"({time.perf_counter() - started:.1f} s, {len(first_poll_done)} polls; the batch of {rows:,} "
        f"turned terminal after {duration:g} s; event {reason})",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5_000, help="requests in the batch (default 5,000)")
    parser.add_argument("--tick-ms", type=float, default=10.0, help="the other coroutine's wake-up period")
    parser.add_argument("--batch-duration-s", type=float, default=2.0, help="emulator: time to 'completed'")
    args = parser.parse_args()
    from airflow_provider_openrouter.ratelimit import clear_buckets

    with running_emulator("--batch-duration-s", str(args.batch_duration_s)) as emulator:
        os.environ.update(emulator.airflow_conn_env(CONN_ID, requests_per_minute=0))
        clear_buckets()
        asyncio.run(_run(args.rows, args.tick_ms / 1000, args.batch_duration_s))
    print(f"bench_triggerer_lag: batch of {args.rows:,} results, wake-ups every {args.tick_ms:g} ms")
    print("\n".join(_RESULTS))


if __name__ == "__main__":
    main()
