"""Issue 4, benchmark 2: N chat completions by dynamic task mapping vs one batch task, in one real Airflow.

Both ways run in the same deployment (benchmarks/airflow_stack.py: api-server, scheduler, dag-processor and
triggerer on SQLite, LocalExecutor) against the emulator with a fixed latency per completion:

  (a) mapped   OpenRouterChatCompletionOperator.partial(...).expand(content=<N prompts>): one task per prompt,
               each a scheduler round-trip and a worker process, as users do it today;
  (b) batch    OpenRouterBatchCompletionOperator(mode="concurrent", concurrency=C) over the same prompts;
  (c) engine   the batch engine called directly, outside Airflow (what (b) costs without the scheduler);
  limit        ceil(N / C) x latency, the physical floor of (b) and (c).

Times are from the trigger (REST POST) to the run's success as seen by polling the REST API, after one small
warm-up run of each DAG (first parse, first worker start). Both DAGs start with the same prompts task. The
connection's client-side rate limit is off (requests_per_minute=0) and the emulator's too.

Mapped tasks are measured at N up to 200 by default (a mapped task costs about 2 CPU-seconds, so N=1000 takes
~15 minutes on 2 cores; ``--mapped-n 1000`` measures it all). Above that the mapped time for N is extrapolated
linearly from the measured per-task cost, and the output says so. The extrapolation flatters mapping: the
per-task cost grows with N (one 2-core run: 661 ms per task at N=200, 885 ms at N=1000 measured in full).
This is a script, not a test:
  uv run python benchmarks/bench_mapped_vs_batch.py [--quick] [--n 1000] [--mapped-n 1000]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent


def _load_sibling(name: str) -> Any:
    """Import benchmarks/<name>.py (the folder is not a package) once."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _HERE / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


airflow_stack = _load_sibling("airflow_stack")

MODEL = "openai/gpt-4o-mini"
MAX_TOKENS = 16
DEFAULT_MAPPED_N = 200

# One file, two DAGs that differ only in how the prompts are sent; `n` and `output_path` come from the conf.
BENCH_DAGS = f'''
from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task

from airflow_provider_openrouter.operators import (
    OpenRouterBatchCompletionOperator,
    OpenRouterChatCompletionOperator,
)


@task
def prompts(dag_run: Any = None) -> list[str]:
    count = int(dag_run.conf["n"])
    return [f"Classify support ticket #{{i}} as billing, bug or question." for i in range(count)]


@dag(schedule=None, catchup=False, max_active_runs=1)
def bench_mapped() -> None:
    OpenRouterChatCompletionOperator.partial(
        task_id="chat", model="{MODEL}", max_tokens={MAX_TOKENS}
    ).expand(content=prompts())


@dag(schedule=None, catchup=False, max_active_runs=1)
def bench_batch() -> None:
    OpenRouterBatchCompletionOperator(
        task_id="batch",
        model="{MODEL}",
        mode="concurrent",
        concurrency="{{{{ dag_run.conf['concurrency'] }}}}",
        inputs=prompts(),
        output_path="{{{{ dag_run.conf['output_path'] }}}}",
        max_tokens={MAX_TOKENS},
        progress_interval=5.0,
    )


bench_mapped()
bench_batch()
'''


def _timed_run(stack: Any, dag_id: str, conf: dict[str, Any], timeout: float) -> tuple[float, float]:
    """Trigger a run; return (wall seconds trigger → success seen, Airflow's own start → end seconds)."""
    client = stack.client
    started = time.monotonic()
    run_id = client.trigger(dag_id, conf)
    run = airflow_stack.wait_until(
        lambda: (r := client.dag_run(dag_id, run_id))["state"] in ("success", "failed") and r,
        timeout=timeout,
        interval=0.1,
        what=f"{dag_id} to finish",
    )
    wall = time.monotonic() - started
    if run["state"] != "success":
        raise SystemExit(f"{dag_id} failed:\n{stack.failure_report(dag_id, run_id)}")
    from datetime import datetime

    own = (
        datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])
    ).total_seconds()
    return wall, own


def _billed(emulator: Any) -> tuple[int, int]:
    stats = emulator.stats()
    return int(stats["billed_generations"]), int(stats["duplicate_billed"])


def _check_billed(emulator: Any, expected: int, what: str) -> None:
    billed, duplicates = _billed(emulator)
    if billed != expected or duplicates:
        raise SystemExit(
            f"{what}: the emulator billed {billed} generations ({duplicates} twice), not {expected}"
        )


def _engine_seconds(n: int, concurrency: int, latency_ms: float, work_dir: Path) -> float:
    """(c) The batch engine outside Airflow, as bench_batch.py's fan-out runs it (own emulator, warm-up)."""
    bench_batch = _load_sibling("bench_batch")
    prompts = [f"Classify support ticket #{i} as billing, bug or question." for i in range(n)]
    with bench_batch.emulator_connection("--latency-ms", str(latency_ms)) as emulator:
        bench_batch.run_engine(
            prompts[:concurrency], work_dir / "engine-warm.jsonl", concurrency, run_key="warm-up"
        )
        emulator.reset()
        run = bench_batch.run_engine(prompts, work_dir / "engine.jsonl", concurrency)
        seconds, manifest = run.seconds, run.manifest
        _check_billed(emulator, n, "engine")
    if manifest.counts.succeeded != n:
        raise SystemExit(f"engine run did not complete: {manifest.counts}")
    return float(seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=100 (default N=1000)")
    parser.add_argument("--n", type=int, help="completions per way (default 1000, 100 with --quick)")
    parser.add_argument(
        "--mapped-n",
        type=int,
        help="measure mapped tasks at this N and extrapolate linearly to N (default: N up to 200; a mapped "
        "task costs about 2 CPU-seconds, so N=1000 takes ~15 minutes on 2 cores)",
    )
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--parallelism", type=int, default=32, help="[core] parallelism (Airflow default 32)")
    parser.add_argument(
        "--max-active-tasks",
        type=int,
        default=16,
        help="[core] max_active_tasks_per_dag (Airflow default 16)",
    )
    args = parser.parse_args(argv)
    n = args.n or (100 if args.quick else 1000)
    mapped_n = min(args.mapped_n or DEFAULT_MAPPED_N, n)

    from airflow_provider_openrouter.emulator.testing import running_emulator

    latency_s = args.latency_ms / 1000
    limit = math.ceil(n / args.concurrency) * latency_s
    print(
        f"N={n} completions, emulator latency {args.latency_ms:.0f} ms, batch concurrency {args.concurrency}"
    )
    print(
        f"Airflow: LocalExecutor, parallelism {args.parallelism}, max_active_tasks_per_dag "
        f"{args.max_active_tasks}, SQLite, {os.cpu_count()} CPUs"
    )

    with (
        running_emulator("--latency-ms", str(args.latency_ms)) as emulator,
        tempfile.TemporaryDirectory(prefix="bench-mapped-vs-batch-") as tmp,
    ):
        work = Path(tmp)
        dag_file = work / "bench_mapped_vs_batch_dags.py"
        dag_file.write_text(BENCH_DAGS)
        settings = airflow_stack.StackSettings(
            parallelism=args.parallelism,
            max_active_tasks_per_dag=args.max_active_tasks,
            extra_env={"AIRFLOW__CORE__MAX_MAP_LENGTH": str(max(1024, mapped_n))},
        )
        env = emulator.airflow_conn_env(requests_per_minute=0)
        started = time.monotonic()
        with airflow_stack.AirflowStack(dag_files=[dag_file], env=env, settings=settings) as stack:
            print(f"stack up in {time.monotonic() - started:.1f}s")
            for dag_id in ("bench_mapped", "bench_batch"):
                stack.client.wait_for_dag(dag_id)
                stack.client.unpause(dag_id)
            warm_conf = {"n": 2, "concurrency": args.concurrency, "output_path": str(work / "warm.jsonl")}
            for dag_id in ("bench_mapped", "bench_batch"):
                _timed_run(stack, dag_id, warm_conf, timeout=300)

            emulator.reset()
            mapped_wall, mapped_own = _timed_run(stack, "bench_mapped", {"n": mapped_n}, timeout=3600)
            _check_billed(emulator, mapped_n, "mapped")
            print(
                f"(a) mapped, measured at N={mapped_n}: {mapped_wall:.1f}s "
                f"(Airflow run start→end {mapped_own:.1f}s), {mapped_wall / mapped_n * 1000:.0f} ms per task"
            )

            emulator.reset()
            batch_conf = {"n": n, "concurrency": args.concurrency, "output_path": str(work / "batch.jsonl")}
            batch_wall, batch_own = _timed_run(stack, "bench_batch", batch_conf, timeout=600)
            _check_billed(emulator, n, "batch")
            print(
                f"(b) batch task, concurrent mode: {batch_wall:.1f}s (Airflow run start→end {batch_own:.1f}s)"
            )

        # After the stack is down, so that Airflow's idle loops do not share the CPU with the engine.
        engine = _engine_seconds(n, args.concurrency, args.latency_ms, work)
        print(f"(c) batch engine outside Airflow: {engine:.2f}s")
        print(f"    physical limit ceil(N/C) x latency: {limit:.2f}s")

    mapped_for_n = mapped_wall * n / mapped_n
    if mapped_n < n:
        print(
            f"(a) mapped at N={n}: {mapped_for_n:.1f}s EXTRAPOLATED linearly from N={mapped_n} "
            f"({mapped_wall / mapped_n * 1000:.0f} ms per task; not measured at N={n})"
        )
    print()
    note = "  [mapped extrapolated]" if mapped_n < n else ""
    print(f"mapped / batch      = {mapped_for_n / batch_wall:.1f}x  (goal >= 20x){note}")
    print(f"batch / engine      = {batch_wall / engine:.2f}x  (Airflow's overhead on one batch task)")
    print(f"engine / limit      = {engine / limit:.2f}x")
    print(f"batch / limit       = {batch_wall / limit:.2f}x")


if __name__ == "__main__":
    main()
