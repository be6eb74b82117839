"""Issue 4 benchmarks: the batch engine against its physical limits and the ways users work today.

Prints figures and ratios measured in this one run (a script, not a test). Every part starts its own emulator
on 127.0.0.1 with the settings it needs:

1. fan-out      N chat completions, emulator latency L, concurrency C: the engine's time (first request to
                last answer) / (ceil(N/C) x L), goal <= 1.05;
2. user ways    the same work as an OpenAIHook loop and a plain requests loop (sequential, as users write
                them; measured on a prefix and extrapolated to N, which the output says): speed-up ratios.
                Mapped OpenRouterChatCompletionOperator tasks under a real executor are measured by
                benchmarks/bench_mapped_vs_batch.py (see :func:`mapped_tasks`);
3. rate limit   emulator limit R requests/minute (small burst), client limit R: wall / (N/R), goal <= 1.02,
                and no 429 reaching the output (the emulator's count of 429s is printed too);
4. memory       a JSONL file of 10,000 and of 100,000 rows at zero latency, one worker process per size: peak
                RSS (goal <= 250 MB, and flat) and throughput;
5. Batch API    10,000 requests through the operator: submit, deferral (TaskDeferred right after submitting,
                so no worker slot is held during the wait), the trigger's wait, landing;
6. by hand      the engine (with its checkpoint) against bench_batch_baseline.py (asyncio + httpx, a
                semaphore, no checkpoint) at zero latency and at 200 ms: ratio of throughputs, goal >= 0.8
                and >= 0.95; beside it aiohttp by hand, and raw sockets with no client (the emulator's limit);
7. 1,024 flying N rows at 500 ms latency, concurrency 1,024: rate / the rate of ceil(N/C) x L, goal >= 0.9,
                and against raw sockets doing the same;
8. 429s         every request answered 429 for 30 s, then the limit lifts, on 200 rows: the run slows, then
                completes; no row is sent more than its attempt cap;
The whole task in a real ``dag.test()`` (task start to task end): benchmarks/bench_batch_task.py.

    uv run python benchmarks/bench_batch.py [--quick] [--only 1,3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_openrouter.emulator.testing import RunningEmulator, running_emulator

MODEL = "openai/gpt-4o-mini"
CONN_ID = "openrouter_bench"
HERE = Path(__file__).resolve().parent
LOG_QUIET = 3600.0  # progress lines every hour: none during a benchmark


def _line(label: str, value: str) -> None:
    print(f"  {label:<46} {value}")


@contextmanager
def emulator_connection(*cli_args: str, requests_per_minute: float = 0) -> Iterator[RunningEmulator]:
    """An emulator, and ``CONN_ID`` pointing at it with the given client-side rate limit."""
    from airflow_provider_openrouter.ratelimit import clear_buckets

    with running_emulator(*cli_args) as emulator:
        os.environ.update(emulator.airflow_conn_env(CONN_ID, requests_per_minute=requests_per_minute))
        clear_buckets()
        yield emulator


def _prompts(count: int) -> list[str]:
    return [f"Summarise item {n} in one sentence." for n in range(count)]


@dataclass
class EngineRun:
    """One batch through the operator: ``seconds`` from the start of ``execute()`` to its end,
    ``engine_seconds`` from the first request sent to the last answer (the engine's own loop)."""

    seconds: float
    engine_seconds: float
    engine_cpu_seconds: float
    manifest: Any
    runner: Any

    def cpu_per_request(self) -> str:
        """This process's CPU time in the engine's loop per request (a figure contention barely distorts)."""
        return f"{1e6 * self.engine_cpu_seconds / max(self.runner.requests_sent, 1):.0f} us"


class _SendClock:
    """The first send and the last answer of the current run, around the engine's one send per row."""

    first = last = first_cpu = last_cpu = 0.0

    @classmethod
    def install(cls) -> None:
        from airflow_provider_openrouter.batch.concurrent import RowSender

        send = RowSender.__call__
        if getattr(send, "clocked", False):
            return

        async def clocked(self: RowSender, row: Any) -> dict[str, Any]:
            if not cls.first:
                cls.first, cls.first_cpu = time.perf_counter(), time.process_time()
            try:
                return await send(self, row)
            finally:
                cls.last, cls.last_cpu = time.perf_counter(), time.process_time()

        clocked.clocked = True  # type: ignore[attr-defined]
        RowSender.__call__ = clocked  # type: ignore[method-assign]


def run_engine(
    rows: list[Any] | Path, output: Path, concurrency: int, *, run_key: str = "bench"
) -> EngineRun:
    """One concurrent batch as the operator runs it (its ``execute()``: input scan, catalog check,
    checkpoint, the engine, output, manifest), outside a DAG run. ``rows``: prompts, or a JSONL file."""
    from airflow_provider_openrouter.operators.batch import OpenRouterBatchCompletionOperator

    _SendClock.install()
    source: dict[str, Any] = {"input_path": str(rows)} if isinstance(rows, Path) else {"inputs": rows}
    task = OpenRouterBatchCompletionOperator(
        task_id=run_key,
        model=MODEL,
        mode="concurrent",
        output_path=str(output),
        concurrency=concurrency,
        max_tokens=32,
        openrouter_conn_id=CONN_ID,
        progress_interval=LOG_QUIET,
        max_failed_fraction=1.0,
        **source,
    )
    clock = _SendClock
    clock.first = clock.last = clock.first_cpu = clock.last_cpu = 0.0
    started = time.perf_counter()
    manifest = task.execute({"ti": _TaskInstance()})  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    return EngineRun(
        seconds, clock.last - clock.first, clock.last_cpu - clock.first_cpu, manifest, task._runner
    )


# -- 1. fan-out -------------------------------------------------------------------------------------------


def fan_out(quick: bool) -> float:
    n, concurrency, latency_s = (200 if quick else 1000), 64, 0.2
    print(f"\n1. Fan-out: N={n}, latency {latency_s * 1000:.0f} ms, concurrency {concurrency}")
    with emulator_connection("--latency-ms", str(latency_s * 1000)), tempfile.TemporaryDirectory() as tmp:
        # A warm-up batch pays the one-time costs first (imports, reading the connection, opening the pool).
        run_engine(_prompts(concurrency), Path(tmp) / "warm-up.jsonl", concurrency, run_key="warm-up")
        run = run_engine(_prompts(n), Path(tmp) / "out.jsonl", concurrency)
    limit = math.ceil(n / concurrency) * latency_s
    _line("physical limit ceil(N/C) x L", f"{limit:.2f} s")
    _line(
        "engine: first request to last answer",
        f"{run.engine_seconds:.2f} s ({run.manifest.counts.succeeded}/{n} ok)",
    )
    _line("engine / the limit (goal <= 1.05)", f"{run.engine_seconds / limit:.3f}")
    _line("engine CPU per request (this process)", run.cpu_per_request())
    _line("the operator's whole execute()", f"{run.seconds:.2f} s, {run.seconds / limit:.3f}x the limit")
    return run.seconds


# -- 2. the ways users do it today ------------------------------------------------------------------------


def mapped_tasks(n: int) -> None:
    """Hook for the third baseline: one mapped OpenRouterChatCompletionOperator task per prompt, under a real
    executor. It needs the whole Airflow stack, so benchmarks/bench_mapped_vs_batch.py measures it."""
    _line(
        "mapped chat tasks (real executor)",
        f"see benchmarks/bench_mapped_vs_batch.py --n {n} (needs the scheduler stack)",
    )


def _per_call(loop: Callable[[str], None], prompts: list[str]) -> float:
    started = time.perf_counter()
    for prompt in prompts:
        loop(prompt)
    return (time.perf_counter() - started) / len(prompts)


def user_ways(quick: bool, batch_seconds: float | None) -> None:
    import requests
    from airflow.providers.openai.hooks.openai import OpenAIHook

    n, concurrency, latency_s = (200 if quick else 1000), 64, 0.2
    sample = 15 if quick else 50
    print(f"\n2. The same N={n} completions as users write them today (latency {latency_s * 1000:.0f} ms)")
    with emulator_connection("--latency-ms", str(latency_s * 1000)) as emulator:
        if batch_seconds is None:
            with tempfile.TemporaryDirectory() as tmp:
                batch_seconds = run_engine(_prompts(n), Path(tmp) / "out.jsonl", concurrency).seconds
        os.environ["AIRFLOW_CONN_OPENAI_BENCH"] = json.dumps(
            {"conn_type": "openai", "host": emulator.base_url, "password": emulator.api_key}
        )
        openai_hook = OpenAIHook(conn_id="openai_bench")

        def openai_loop(prompt: str) -> None:
            openai_hook.create_chat_completion(messages=[{"role": "user", "content": prompt}], model=MODEL)

        session = requests.Session()
        headers = {"Authorization": f"Bearer {emulator.api_key}"}

        def requests_loop(prompt: str) -> None:
            body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": 32}
            answer = session.post(
                f"{emulator.base_url}/chat/completions", json=body, headers=headers, timeout=60
            )
            answer.raise_for_status()
            answer.json()

        prompts = _prompts(sample)
        ways = {"OpenAIHook loop": openai_loop, "plain requests loop": requests_loop}
        _line("batch engine (concurrency 64)", f"{batch_seconds:.2f} s")
        for name, loop in ways.items():
            estimate = _per_call(loop, prompts) * n
            speedup = estimate / batch_seconds
            _line(f"{name} (measured on {sample}, x N)", f"{estimate:.1f} s; batch is {speedup:.0f}x faster")
        mapped_tasks(n)


# -- 3. rate limited ----------------------------------------------------------------------------------------


def rate_limited(quick: bool) -> None:
    n, rpm, burst, concurrency = (60 if quick else 300), 600.0, 10, 16
    print(
        f"\n3. Rate-limited: N={n}, emulator limit {rpm:.0f}/min (burst {burst}), client limit {rpm:.0f}/min"
    )
    emulator_flags = ("--rate-limit-rpm", str(rpm), "--rate-limit-burst", str(burst))
    with emulator_connection(*emulator_flags, requests_per_minute=rpm) as emulator:
        with tempfile.TemporaryDirectory() as tmp:
            run = run_engine(_prompts(n), Path(tmp) / "out.jsonl", concurrency)
            seconds, manifest, runner = run.seconds, run.manifest, run.runner
            lines = [json.loads(line) for line in (Path(tmp) / "out.jsonl").read_text().splitlines()]
        stats = emulator.stats()
    floor = n / (rpm / 60.0)
    reaching = sum(1 for line in lines if (line.get("error") or {}).get("status") == 429)
    _line("N / R", f"{floor:.2f} s")
    _line(
        "engine: first request to last answer",
        f"{run.engine_seconds:.2f} s ({manifest.counts.succeeded}/{n} ok)",
    )
    _line("ratio to N / R (goal <= 1.02)", f"{run.engine_seconds / floor:.3f}")
    _line("the operator's whole execute()", f"{seconds:.2f} s, {seconds / floor:.3f}x N / R")
    _line("429s answered by the emulator", str(stats["rate_limited"]))
    _line("429s met by the engine (each paused the run)", str(runner.rate_limited))
    _line("429s reaching the output (goal 0)", str(reaching))


# -- 4. memory ------------------------------------------------------------------------------------------


def memory(quick: bool) -> None:
    sizes = (2_000, 10_000) if quick else (10_000, 100_000)
    described = " and ".join(f"{size:,}" for size in sizes)
    print(f"\n4. Memory: JSONL inputs of {described} rows, zero latency, one worker process each")
    results = []
    with emulator_connection() as emulator, tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            workdir = Path(tmp) / str(size)
            workdir.mkdir()
            with (workdir / "in.jsonl").open("w") as handle:
                for n in range(size):
                    handle.write(
                        json.dumps({"custom_id": f"item-{n}", "prompt": f"Classify item {n}."}) + "\n"
                    )
            process = subprocess.run(
                [sys.executable, str(HERE / "bench_batch_rss.py"), str(workdir)],
                env={**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
                capture_output=True,
                text=True,
                check=False,
            )
            if process.returncode != 0:
                raise SystemExit(f"the memory worker failed:\n{process.stderr[-3000:]}")
            result = json.loads(process.stdout.strip().splitlines()[-1])
            results.append(result)
            _line(
                f"{size:,} rows",
                f"peak RSS {result['peak_rss_mb']:.0f} MB, {result['seconds']:.1f} s, "
                f"{size / result['seconds']:.0f} rows/s, {result['succeeded']:,} succeeded",
            )
        del emulator
    small, large = (result["peak_rss_mb"] for result in results)
    _line("peak RSS goal", "<= 250 MB")
    _line(f"growth {sizes[0]:,} -> {sizes[1]:,} rows", f"{large - small:+.1f} MB ({large / small:.3f}x)")


# -- 5. Batch API ---------------------------------------------------------------------------------------


class _TaskInstance:
    """What the operator reads from ``context["ti"]`` outside a DAG run."""

    dag_id, task_id, run_id, map_index, try_number = "bench", "batch", "bench_run", -1, 1

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def batch_api(quick: bool) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_provider_openrouter.operators.batch import OpenRouterBatchCompletionOperator

    n = 1_000 if quick else 10_000
    print(f"\n5. Batch API: {n:,} requests through the operator (emulator batch duration 2 s)")
    with emulator_connection("--batch-duration-s", "2") as emulator, tempfile.TemporaryDirectory() as tmp:
        operator = OpenRouterBatchCompletionOperator(
            task_id="batch",
            model=MODEL,
            mode="batch_api",
            inputs=[{"custom_id": f"r{i}", "prompt": f"Tag item {i}."} for i in range(n)],
            output_path=str(Path(tmp) / "out.jsonl"),
            openrouter_conn_id=CONN_ID,
            poll_interval=0.5,
        )
        ti = _TaskInstance()
        started = time.perf_counter()
        try:
            operator.execute({"ti": ti})  # type: ignore[arg-type]
        except TaskDeferred as deferred:
            submitted = time.perf_counter()
            trigger, method = deferred.trigger, deferred.method_name
        else:
            raise SystemExit("the operator did not defer")
        _line(
            "submit, then TaskDeferred (worker released)",
            f"{submitted - started:.2f} s, {len(ti.xcom['batch_ids'])} batch(es)",
        )

        async def wait() -> Any:
            events = [event async for event in trigger.run()]
            assert len(events) == 1, events
            return events[0]

        event = asyncio.run(wait())
        waited = time.perf_counter()
        _line(
            "wait in the trigger (no worker slot held)",
            f"{waited - submitted:.2f} s, event {event.payload['reason']}",
        )
        manifest = getattr(operator, method)({"ti": ti}, event.payload)
        landed = time.perf_counter()
        _line("landing (GET results, checkpoint, output)", f"{landed - waited:.2f} s")
        _line("rows succeeded", f"{manifest.counts.succeeded:,} of {n:,}; cost {manifest.cost} USD")
        stats = emulator.stats()
        _line("POST /batches sent", str(sum(stats["requests"].get("POST /batches", {}).values())))


# -- 6. against a hand-written asyncio + httpx script ------------------------------------------------------


def _baseline(emulator: RunningEmulator, n: int, concurrency: int, client: str = "httpx") -> float:
    process = subprocess.run(
        [
            sys.executable,
            str(HERE / "bench_batch_baseline.py"),
            emulator.base_url,
            emulator.api_key,
            str(n),
            str(concurrency),
            client,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if process.returncode != 0:
        raise SystemExit(f"the baseline script failed:\n{process.stderr[-3000:]}")
    result = json.loads(process.stdout.strip().splitlines()[-1])
    if result["ok"] != n:
        raise SystemExit(f"the baseline script finished {result['ok']} of {n} rows")
    return float(result["seconds"])


def by_hand(quick: bool) -> None:
    import importlib.util

    with_aiohttp = importlib.util.find_spec("aiohttp") is not None
    print("\n6. The engine with its checkpoint against asyncio + httpx by hand (semaphore, no checkpoint)")
    cases = ((1_000 if quick else 10_000, 256, 0.0), (200 if quick else 1_000, 64, 0.2))
    for n, concurrency, latency_s in cases:
        with (
            emulator_connection("--latency-ms", str(latency_s * 1000)) as emulator,
            tempfile.TemporaryDirectory() as tmp,
        ):
            run_engine(_prompts(concurrency), Path(tmp) / "warm-up.jsonl", concurrency, run_key="warm-up")
            run = run_engine(_prompts(n), Path(tmp) / "out.jsonl", concurrency)
            baseline = _baseline(emulator, n, concurrency)
            aiohttp_baseline = _baseline(emulator, n, concurrency, "aiohttp") if with_aiohttp else None
            raw = _baseline(emulator, n, concurrency, "raw")
        engine = run.seconds
        goal = 0.8 if latency_s == 0 else 0.95
        _line(f"N={n:,}, C={concurrency}, latency {latency_s * 1000:.0f} ms", "")
        _line(
            "  engine: first request to last answer",
            f"{run.engine_seconds:.2f} s, {n / run.engine_seconds:.0f} rows/s "
            f"({run.manifest.counts.succeeded:,} ok)",
        )
        _line("  engine CPU per request (this process)", run.cpu_per_request())
        _line("  the operator's whole execute()", f"{engine:.2f} s, {n / engine:.0f} rows/s")
        _line("  asyncio + httpx by hand", f"{baseline:.2f} s, {n / baseline:.0f} rows/s")
        _line(f"  whole execute() / by hand throughput (goal >= {goal})", f"{baseline / engine:.3f}")
        if aiohttp_baseline is not None:
            _line(
                "  asyncio + aiohttp by hand", f"{aiohttp_baseline:.2f} s, {n / aiohttp_baseline:.0f} rows/s"
            )
            _line("  whole execute() / aiohttp by hand", f"{aiohttp_baseline / engine:.3f}")
        _line("  raw sockets, no client (the emulator's limit)", f"{raw:.2f} s, {n / raw:.0f} rows/s")
        _line("  engine / raw sockets throughput", f"{raw / run.engine_seconds:.3f}")


# -- 7. 1,024 in flight -------------------------------------------------------------------------------------


def in_flight(quick: bool) -> None:
    concurrency, latency_s = (256, 0.5) if quick else (1_024, 0.5)
    n = concurrency * 4
    print(f"\n7. In flight: N={n:,}, latency {latency_s * 1000:.0f} ms, concurrency {concurrency:,}")
    with (
        emulator_connection("--latency-ms", str(latency_s * 1000)) as emulator,
        tempfile.TemporaryDirectory() as tmp,
    ):
        run_engine(_prompts(64), Path(tmp) / "warm-up.jsonl", 64, run_key="warm-up")
        run = run_engine(_prompts(n), Path(tmp) / "out.jsonl", concurrency)
        raw = _baseline(emulator, n, concurrency, "raw")
    limit = math.ceil(n / concurrency) * latency_s
    counts = run.manifest.counts
    _line("physical limit ceil(N/C) x L", f"{limit:.2f} s")
    _line(
        "engine: first request to last answer", f"{run.engine_seconds:.2f} s ({counts.succeeded:,}/{n:,} ok)"
    )
    _line("engine CPU per request (this process)", run.cpu_per_request())
    _line("rows that did not succeed (goal 0)", f"{n - counts.succeeded:,}")
    _line("rate / the limit's rate (goal >= 0.9)", f"{limit / run.engine_seconds:.3f}")
    _line(
        "raw sockets, no client (the emulator's limit)", f"{raw:.2f} s, {limit / raw:.3f} of the limit's rate"
    )
    _line("engine / raw sockets throughput", f"{raw / run.engine_seconds:.3f}")


# -- 8. persistent 429s ------------------------------------------------------------------------------------


def persistent_429s(quick: bool) -> None:
    import threading

    n, concurrency, window_s = 200, 16, (10.0 if quick else 30.0)
    print(f"\n8. Persistent 429s: every request rate limited for {window_s:.0f} s, then lifted; N={n}")
    with emulator_connection() as emulator, tempfile.TemporaryDirectory() as tmp:
        # Imports and first connections first, so the 429 window starts when the measured task starts.
        run_engine(_prompts(concurrency), Path(tmp) / "warm-up.jsonl", concurrency, run_key="warm-up")
        emulator.configure(fault_rate=1.0, fault_statuses=[429])
        lift = threading.Timer(window_s, lambda: emulator.configure(fault_rate=0.0))
        lift.start()
        try:
            run = run_engine(_prompts(n), Path(tmp) / "out.jsonl", concurrency)
            seconds, manifest, runner = run.seconds, run.manifest, run.runner
        finally:
            lift.cancel()
        lines = [json.loads(line) for line in (Path(tmp) / "out.jsonl").read_text().splitlines()]
        stats = emulator.stats()
    from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook

    cap = 1 + OpenRouterHook(CONN_ID).settings.max_retries + 3
    _line("wall time (the limit lasted)", f"{seconds:.1f} s ({window_s:.0f} s)")
    _line("rows succeeded", f"{manifest.counts.succeeded}/{n}")
    _line(
        "429s answered (each paused the whole run)",
        f"{stats['faults'].get('429', 0)} ({runner.rate_limited} seen)",
    )
    _line("most sends of one row / attempt cap", f"{max(line['attempts'] for line in lines)} / {cap}")
    _line("requests sent / rows", f"{manifest.requests_sent} / {n}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small N, for a smoke run in CI")
    parser.add_argument("--only", default="1,2,3,4,5,6,7,8", help="comma-separated parts to run, e.g. 1,3")
    args = parser.parse_args()
    parts = {int(part) for part in args.only.split(",")}
    print(f"bench_batch ({'quick' if args.quick else 'full'} run)")
    fan_out_seconds = fan_out(args.quick) if 1 in parts else None
    if 2 in parts:
        user_ways(args.quick, fan_out_seconds)
    if 3 in parts:
        rate_limited(args.quick)
    if 4 in parts:
        memory(args.quick)
    if 5 in parts:
        batch_api(args.quick)
    if 6 in parts:
        by_hand(args.quick)
    if 7 in parts:
        in_flight(args.quick)
    if 8 in parts:
        persistent_429s(args.quick)


if __name__ == "__main__":
    main()
