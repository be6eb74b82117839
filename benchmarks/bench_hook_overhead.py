"""Per-call overhead of OpenRouterHook.chat_completion against a plain requests.Session loop (prints figures).

    uv run python benchmarks/bench_hook_overhead.py [--calls 300] [--rounds 5]

Every loop posts the same chat body to the same emulator (latency 0) one request at a time and decodes the
JSON answer. The hook also validates the request, runs it through tenacity and the error mapping, and builds
the typed ChatCompletion; the client rate limiter is switched off (``requests_per_minute: 0``) because it is
a deliberate wait, not overhead. Rounds alternate between the loops so that machine noise hits all alike; the
median of the rounds is reported. Goal: the hook keeps at least 0.9 of the plain loop's throughput.

Two baselines: the plain ``requests.Session()`` a user would write (it re-reads proxy settings from the
environment on every request), and the same session with ``trust_env = False``, which does no such work. The
hook reads the environment once when its session is built, so the second ratio isolates the hook's own cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import requests

from airflow_provider_openrouter.emulator.testing import running_emulator

GOAL_RATIO = 0.9
CONN_ID = "openrouter_bench"


def rate(loop: Callable[[int], None], calls: int) -> tuple[float, float]:
    """(calls per second of wall time, client CPU microseconds per call). The emulator runs in another
    process, so the CPU figure is the client's own work and is far less disturbed by a busy machine."""
    started, cpu_started = time.perf_counter(), time.process_time()
    loop(calls)
    return calls / (time.perf_counter() - started), (time.process_time() - cpu_started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=300, help="chat completions per round and loop")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; the median is reported")
    args = parser.parse_args()
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-hook-"))

    with running_emulator("--latency-ms", "0") as emulator:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = emulator.conn_uri(requests_per_minute=0)
        from airflow_provider_openrouter.hooks import OpenRouterHook

        hook = OpenRouterHook(openrouter_conn_id=CONN_ID)
        model = hook.list_models(limit=1).data[0].id
        content = "Say something short about scheduling."
        body = hook.build_chat_request(model, "user", content)

        url = emulator.base_url + "/chat/completions"

        def plain_loop(session: requests.Session) -> Callable[[int], None]:
            session.headers.update({"Authorization": f"Bearer {emulator.api_key}"})

            def loop(calls: int) -> None:
                for _ in range(calls):
                    response = session.post(url, json=body, timeout=(10, 120))
                    response.raise_for_status()
                    response.json()

            return loop

        plain = plain_loop(requests.Session())
        tuned_session = requests.Session()
        tuned_session.trust_env = False
        tuned = plain_loop(tuned_session)

        def through_hook(calls: int) -> None:
            for _ in range(calls):
                hook.chat_completion(model, "user", content)

        loops = {"plain": plain, "tuned": tuned, "hook": through_hook}
        rates: dict[str, list[float]] = {name: [] for name in loops}
        cpu: dict[str, list[float]] = {name: [] for name in loops}
        for loop in loops.values():
            loop(20)  # warm every path: connections, pydantic schemas
        for _ in range(args.rounds):
            for name, loop in loops.items():
                calls_per_s, cpu_us = rate(loop, args.calls)
                rates[name].append(calls_per_s)
                cpu[name].append(cpu_us)
        stats = emulator.stats()

    median = {name: statistics.median(values) for name, values in rates.items()}
    cpu_median = {name: statistics.median(values) for name, values in cpu.items()}
    ratio = median["hook"] / median["plain"]
    print(f"model {model}, {args.rounds} rounds x {args.calls} sequential chat completions per loop")
    print(f"plain requests.Session()          : {median['plain']:7.1f} calls/s ({_fmt(rates['plain'])})")
    print(f"plain Session, trust_env=False    : {median['tuned']:7.1f} calls/s ({_fmt(rates['tuned'])})")
    print(f"OpenRouterHook.chat_completion    : {median['hook']:7.1f} calls/s ({_fmt(rates['hook'])})")
    plain_cpu, tuned_cpu, hook_cpu = cpu_median["plain"], cpu_median["tuned"], cpu_median["hook"]
    print(
        f"client CPU per call (median)      : plain {plain_cpu:.0f} us, tuned {tuned_cpu:.0f} us, "
        f"hook {hook_cpu:.0f} us (the hook's own work: {hook_cpu - tuned_cpu:.0f} us)"
    )
    print(f"ratio hook / tuned loop           : {median['hook'] / median['tuned']:7.3f}")
    verdict = "met" if ratio >= GOAL_RATIO else "NOT met"
    print(f"ratio hook / plain loop           : {ratio:7.3f} (goal >= {GOAL_RATIO}) -> {verdict}")
    print(json.dumps({"emulator_requests": stats["requests_total"], "billed": stats["billed_generations"]}))


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{value:.0f}" for value in values)


if __name__ == "__main__":
    main()
