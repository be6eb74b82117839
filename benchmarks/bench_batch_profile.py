"""Where the batch task's own time goes, before its first request and after its last answer (issue 12).

A concurrent batch task (the operator's execute(), in a fresh process, Airflow's plugins loaded first as the
task runner loads them) runs twice. The first, cold run is timed around the engine's sends: task start to
first send, first send to last answer, last answer to task end, in CPU and wall seconds. The second runs
under cProfile with a CPU-time clock (robust to a loaded machine, though cProfile inflates every call): the
cumulative CPU seconds of each phase of execute(), then the top functions.

    uv run python benchmarks/bench_batch_profile.py [--rows 1000] [--concurrency 64] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_batch import CONN_ID, LOG_QUIET, MODEL, _prompts, _TaskInstance, emulator_connection

# (label, file suffix, function name): the operator's phases, in the order they run.
PHASES = (
    ("parameters", "operators/batch.py", "_check_parameters"),
    ("input scan (rows, bodies, identity)", "operators/batch.py", "_job"),
    ("mode choice", "operators/batch.py", "_choose_mode"),
    ("model catalog check", "operators/batch.py", "_check_models"),
    ("checkpoint open", "batch/engine.py", "open"),
    ("engine hook (rate share)", "operators/batch.py", "engine_hook"),
    ("engine and output (run_job)", "batch/concurrent.py", "run_job"),
    ("output, commit marker, manifest", "batch/engine.py", "finish"),
    ("close", "operators/batch.py", "_close"),
)


class Marks:
    """CPU and wall clock at the task's start, its first send, its last answer and its end."""

    def __init__(self) -> None:
        self.clocks: dict[str, tuple[float, float]] = {}

    def mark(self, name: str, *, first: bool = False) -> None:
        if not (first and name in self.clocks):
            self.clocks[name] = (time.process_time(), time.perf_counter())

    def span(self, start: str, end: str) -> str:
        (cpu0, wall0), (cpu1, wall1) = self.clocks[start], self.clocks[end]
        return f"{cpu1 - cpu0:.3f} CPU s, {wall1 - wall0:.3f} wall s"


def instrumented(marks: Marks) -> None:
    """Marks the first send and the last answer, around the engine's one send per row."""
    from airflow_provider_openrouter.batch.concurrent import RowSender

    send = RowSender.__call__

    async def marked(self: RowSender, row: Any) -> dict[str, Any]:
        marks.mark("first send", first=True)
        answer = await send(self, row)
        marks.mark("last answer")
        return answer

    RowSender.__call__ = marked  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    from airflow.sdk.listener import get_listener_manager

    from airflow_provider_openrouter.operators.batch import OpenRouterBatchCompletionOperator

    get_listener_manager()  # the task runner loads Airflow's plugins before execute() (on_starting)

    def operator(tmp: str, name: str) -> OpenRouterBatchCompletionOperator:
        return OpenRouterBatchCompletionOperator(
            task_id=name,
            model=MODEL,
            mode="concurrent",
            inputs=_prompts(args.rows),
            output_path=str(Path(tmp) / f"{name}.jsonl"),
            concurrency=args.concurrency,
            max_tokens=32,
            openrouter_conn_id=CONN_ID,
            progress_interval=LOG_QUIET,
        )

    marks = Marks()
    instrumented(marks)
    with emulator_connection("--latency-ms", "0"), tempfile.TemporaryDirectory() as tmp:
        marks.mark("start")
        plain = operator(tmp, "plain").execute({"ti": _TaskInstance()})  # type: ignore[arg-type]
        marks.mark("end")
        print(f"bench_batch_profile: {args.rows:,} rows, concurrency {args.concurrency}, zero latency")
        print(f"  cold run, plain ({plain.counts.succeeded:,} ok, {plain.requests_sent:,} requests):")
        print(f"    {'task start to first send':<44} {marks.span('start', 'first send')}")
        print(f"    {'first send to last answer (engine)':<44} {marks.span('first send', 'last answer')}")
        print(f"    {'last answer to task end':<44} {marks.span('last answer', 'end')}")
        task = operator(tmp, "profiled")
        profile = cProfile.Profile(time.process_time)
        started = time.perf_counter()
        profile.enable()
        manifest = task.execute({"ti": _TaskInstance()})  # type: ignore[arg-type]
        profile.disable()
        wall = time.perf_counter() - started
    print("  the second run (imports warm) under cProfile, CPU seconds (cProfile inflates each call):")
    stats = pstats.Stats(profile)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(
        f"  {'whole execute(), CPU s':<46} {total:.3f}   "
        f"(wall {wall:.2f} s, {manifest.counts.succeeded:,} ok, {manifest.requests_sent:,} requests)"
    )
    engine = 0.0
    for label, suffix, name in PHASES:
        cumulative = sum(
            row[3]
            for (filename, _line, function), row in stats.stats.items()  # type: ignore[attr-defined]
            if function == name and filename.endswith(os.path.join("airflow_provider_openrouter", suffix))
        )
        if name == "run_job":
            engine = cumulative
        print(f"  {label:<46} {cumulative:.3f}")
    print(f"  {'outside run_job (before the engine)':<46} {total - engine:.3f}")
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_stats(args.top)
    print(out.getvalue())
    for _label, suffix, name in PHASES[:5]:
        out = io.StringIO()
        stats.stream = out  # type: ignore[attr-defined]
        stats.print_callees(f"{suffix.split('/')[-1].split('.')[0]}.py.*\\({name}\\)")
        print(out.getvalue())


if __name__ == "__main__":
    main()
