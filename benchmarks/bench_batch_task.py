"""The batch task as a whole, in real ``dag.test()`` runs, and the per-row cost of its own calls (issue 12).

1. whole task   10,000 inline rows at zero latency, concurrency 256 (goal >= 2,500 rows/s, i.e. <= 4.0 s);
2. fan-out      N=1,000 at 200 ms latency, concurrency 64 (goal: the task within 1.15x of ceil(N/C) x L).

Each is one ``dag.test()`` of a DAG built here around ``OpenRouterBatchCompletionOperator`` (a fresh Airflow
home on SQLite, migrated first), against the emulator in its own process. The task's time is read from the
task instance's ``start_date`` and ``end_date`` as Airflow recorded them; the script also marks the first
request and the last answer (around the transport's ``post_once``) and the operator's phases, and prints
them on one timeline from the task's start, so the time before the first request and after the last answer
can be told apart from the engine's. A warm-up run of each DAG comes first (the first ``dag.test()`` of a
process pays for importing Airflow's scheduler side, which a real worker has done before the task starts).

3. per row      microseconds per row of each call the engine makes into the batch task's files (request body,
                idempotency key, records, checkpoint writes, tally), of the input scan and of the output
                write, measured with ``timeit`` outside any run.

    uv run python benchmarks/bench_batch_task.py [--quick] [--only 1,2,3]
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_batch import CONN_ID, LOG_QUIET, MODEL, _line, _prompts, _TaskInstance, emulator_connection

WHOLE_ROWS, WHOLE_CONCURRENCY, WHOLE_GOAL_ROWS_PER_S = 10_000, 256, 2_500
FAN_ROWS, FAN_CONCURRENCY, FAN_LATENCY_S, FAN_GOAL_RATIO = 1_000, 64, 0.2, 1.15


# -- an Airflow home ------------------------------------------------------------------------------------


@contextmanager
def airflow_home() -> Iterator[Path]:
    """A fresh AIRFLOW_HOME on SQLite, migrated, set in this process before Airflow is imported."""
    with tempfile.TemporaryDirectory(prefix="bench-batch-task-") as tmp:
        home = Path(tmp)
        for key in [key for key in os.environ if key.startswith("AIRFLOW__")]:
            del os.environ[key]
        os.environ.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
            AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(home / "logs"),
        )
        migrated = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, check=False
        )
        if migrated.returncode:
            raise SystemExit(
                f"airflow db migrate failed:\n{migrated.stdout[-2000:]}{migrated.stderr[-2000:]}"
            )
        yield home


# -- marks on one timeline ------------------------------------------------------------------------------


class Timeline:
    """Wall-clock times (``time.time()``) of the first request, the last answer and the operator's phases."""

    def __init__(self) -> None:
        self.first_request: float | None = None
        self.last_answer: float | None = None
        self.phases: list[tuple[str, float, float, float, float]] = []  # label, began, ended, CPU, GC s
        self.gc_seconds = 0.0
        self._gc_started = 0.0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_seconds += time.perf_counter() - self._gc_started

    def reset(self) -> None:
        self.first_request = self.last_answer = None
        self.phases.clear()

    def install(self) -> None:
        """Wrap the transport's one billable POST and the operator's phases (the classes, so every run)."""
        from airflow_provider_openrouter.batch.engine import BatchJob
        from airflow_provider_openrouter.operators.batch import OpenRouterBatchCompletionOperator as Op
        from airflow_provider_openrouter.transport import AsyncOpenRouterTransport

        post_once = AsyncOpenRouterTransport.post_once

        async def marked(self_: Any, *args: Any, **kwargs: Any) -> Any:
            if self.first_request is None:
                self.first_request = time.time()
            try:
                return await post_once(self_, *args, **kwargs)
            finally:
                self.last_answer = time.time()

        AsyncOpenRouterTransport.post_once = marked  # type: ignore[method-assign]
        gc.callbacks.append(self._on_gc)
        for owner, name, label in (
            (Op, "execute", "execute()"),
            (Op, "_check_parameters", "parameter checks"),
            (Op, "_job", "input scan (rows, bodies, identity)"),
            (Op, "_choose_mode", "mode choice"),
            (Op, "_check_models", "model catalog check"),
            (BatchJob, "open", "checkpoint open"),
            (BatchJob, "finish", "output, commit marker, manifest"),
            (Op, "_close", "close"),
        ):
            setattr(owner, name, self._timed(getattr(owner, name), label))

    def _timed(self, function: Callable[..., Any], label: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started, cpu, collecting = time.time(), time.process_time(), self.gc_seconds
            try:
                return function(*args, **kwargs)
            finally:
                cpu = time.process_time() - cpu
                self.phases.append((label, started, time.time(), cpu, self.gc_seconds - collecting))

        return timed


# -- 1 and 2: whole task in dag.test() ------------------------------------------------------------------


DAG_FILE = """
from pathlib import Path

from airflow.sdk import DAG

from airflow_provider_openrouter.operators.batch import OpenRouterBatchCompletionOperator

OUT = Path({out!r})
for dag_id, rows, concurrency in {cases!r}:
    with DAG(dag_id, schedule=None) as dag:
        OpenRouterBatchCompletionOperator(
            task_id="batch",
            model={model!r},
            mode="concurrent",
            inputs=[f"Summarise item {{n}} in one sentence." for n in range(rows)],
            output_path=str(OUT / f"{{dag_id}}.jsonl"),
            concurrency=concurrency,
            max_tokens=32,
            openrouter_conn_id={conn_id!r},
            progress_interval={quiet!r},
        )
    globals()[dag_id] = dag
"""


def load_dags(home: Path, cases: list[tuple[str, int, int]]) -> dict[str, Any]:
    """Write the DAG file into the DAGs folder (``dag.test()`` parses that folder) and import it here."""
    import importlib.util

    folder = home / "dags"
    folder.mkdir(exist_ok=True)
    path = folder / "bench_batch_task_dags.py"
    path.write_text(
        DAG_FILE.format(out=str(home / "out"), cases=cases, model=MODEL, conn_id=CONN_ID, quiet=LOG_QUIET),
        encoding="utf-8",
    )
    spec = importlib.util.spec_from_file_location("bench_batch_task_dags", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {dag_id: getattr(module, dag_id) for dag_id, _rows, _concurrency in cases}


def run_dag(dag: Any, timeline: Timeline) -> dict[str, Any]:
    """One ``dag.test()``; returns the batch task instance's state, start and end as Airflow recorded them."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    timeline.reset()
    run = dag.test()
    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run.run_id)
            .one()
        )
        return {"state": str(ti.state), "start": ti.start_date, "end": ti.end_date}


def _report_cold(ti: dict[str, Any], timeline: Timeline) -> None:
    """The warm-up run's time from the TI's start to execute(): in the process's first task, Airflow loads
    its plugins there (the listeners' hook), which the measured run then finds loaded."""
    began = next(phase[1] for phase in timeline.phases if phase[0] == "execute()")
    _line("warm-up run: TI start to execute()", f"{began - ti['start'].timestamp():.3f} s")


def _report_run(ti: dict[str, Any], timeline: Timeline, rows: int) -> float:
    start: datetime = ti["start"]
    end: datetime = ti["end"]
    seconds = (end - start).total_seconds()
    zero = start.timestamp()
    _line("task instance state", ti["state"])
    _line("TI start_date to end_date", f"{seconds:.2f} s, {rows / seconds:,.0f} rows/s")
    if timeline.first_request is not None and timeline.last_answer is not None:
        _line("  TI start to first request", f"{timeline.first_request - zero:.3f} s")
        _line("  first request to last answer", f"{timeline.last_answer - timeline.first_request:.3f} s")
        _line("  last answer to TI end", f"{end.timestamp() - timeline.last_answer:.3f} s")
    print("  timeline from the TI's start (wall seconds: begin .. end = length; CPU seconds; of them in GC):")
    for label, began, ended, cpu, collecting in timeline.phases:
        print(
            f"    {label:<36} {began - zero:7.3f} .. {ended - zero:7.3f} = {ended - began:.3f}  "
            f"CPU {cpu:.3f}  GC {collecting:.3f}"
        )
    return seconds


def whole_task(rows: int, dags: dict[str, Any], timeline: Timeline) -> None:
    print(f"\n1. Whole task: {rows:,} inline rows, zero latency, concurrency {WHOLE_CONCURRENCY}, dag.test()")
    with emulator_connection("--latency-ms", "0"):
        _report_cold(run_dag(dags["bench_task_warm_up"], timeline), timeline)
        ti = run_dag(dags["bench_task_whole"], timeline)
    seconds = _report_run(ti, timeline, rows)
    goal = rows / WHOLE_GOAL_ROWS_PER_S
    _line(f"ratio to the goal of {goal:.1f} s ({WHOLE_GOAL_ROWS_PER_S:,} rows/s)", f"{seconds / goal:.2f}")
    if timeline.first_request is not None and timeline.last_answer is not None:
        outside = seconds - (timeline.last_answer - timeline.first_request)
        _line(
            "the task outside the engine's sends", f"{outside:.2f} s ({1e6 * outside / rows:.0f} us per row)"
        )


def fan_out(rows: int, dags: dict[str, Any], timeline: Timeline) -> None:
    print(
        f"\n2. Fan-out: N={rows:,}, latency {FAN_LATENCY_S * 1000:.0f} ms, concurrency {FAN_CONCURRENCY}, "
        "dag.test()"
    )
    with emulator_connection("--latency-ms", str(FAN_LATENCY_S * 1000)):
        _report_cold(run_dag(dags["bench_fan_warm_up"], timeline), timeline)
        ti = run_dag(dags["bench_fan_out"], timeline)
    seconds = _report_run(ti, timeline, rows)
    limit = math.ceil(rows / FAN_CONCURRENCY) * FAN_LATENCY_S
    _line("ceil(N/C) x L", f"{limit:.2f} s")
    _line(f"ratio of the task to it (goal <= {FAN_GOAL_RATIO})", f"{seconds / limit:.3f}")


# -- 3: per-row costs ------------------------------------------------------------------------------------


def _per_row(label: str, call: Callable[[], Any], rows: int) -> None:
    """Best of three CPU timings of ``call`` (which handles ``rows`` rows), in microseconds per row (CPU
    time: other processes on a loaded 2-core machine do not count), with the garbage collector on as in a
    task."""
    timer = timeit.Timer(call, setup=gc.enable, timer=time.process_time)
    best = min(timer.repeat(number=1, repeat=3))
    print(f"    {label:<52} {1e6 * best / rows:8.2f} us/row")


def per_row_costs(quick: bool) -> None:
    import logging

    from airflow.sdk import ObjectStoragePath

    from airflow_provider_openrouter.batch.checkpoint import Checkpoint
    from airflow_provider_openrouter.batch.engine import BatchJob, BatchSpec
    from airflow_provider_openrouter.batch.inputs import InlineInputSource
    from airflow_provider_openrouter.batch.manifest import Tally
    from airflow_provider_openrouter.batch.outputs import answer_record, failure_record, sending_record
    from airflow_provider_openrouter.operators.batch import OpenRouterBatchCompletionOperator

    rows_n = 2_000 if quick else 10_000
    print(f"\n3. Per-row CPU cost of the batch task's own calls ({rows_n:,} rows, best of 3)")
    with emulator_connection("--latency-ms", "0"), tempfile.TemporaryDirectory() as tmp:
        operator = OpenRouterBatchCompletionOperator(
            task_id="per_row",
            model=MODEL,
            mode="concurrent",
            inputs=_prompts(rows_n),
            output_path=str(Path(tmp) / "out.jsonl"),
            max_tokens=32,
            openrouter_conn_id=CONN_ID,
        )
        hook = operator.hook
        spec = BatchSpec(
            source=InlineInputSource(_prompts(rows_n)),
            output_path=ObjectStoragePath(str(Path(tmp) / "out.jsonl")),
            model=MODEL,
            build_body=operator._body_builder(hook, MODEL),
            run_key="bench/per_row/run/-1",
            attribute=hook.attribution_for(None, context={"ti": _TaskInstance()}, rows=True).apply,
        )
        job = BatchJob(spec, logging.getLogger("bench"))
        _per_row("input scan (BatchJob.scan: row, body, digest)", job.scan, rows_n)
        rows = list(job.rows())
        answer = {
            "id": "gen-123",
            "object": "chat.completion",
            "created": 1,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "An answer."},
                }
            ],
            "usage": {  # as the emulator answers
                "prompt_tokens": 16,
                "completion_tokens": 32,
                "total_tokens": 48,
                "cost": 0.0000216,
                "is_byok": False,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
                "cost_details": {
                    "upstream_inference_prompt_cost": 0.0000024,
                    "upstream_inference_completions_cost": 0.0000192,
                },
            },
        }
        _per_row("BatchJob.request_body(row)", lambda: [job.request_body(row) for row in rows], rows_n)
        _per_row("BatchJob.idempotency_key(row)", lambda: [job.idempotency_key(row) for row in rows], rows_n)
        _per_row(
            "sending_record(index, custom_id)",
            lambda: [sending_record(row.index, row.custom_id) for row in rows],
            rows_n,
        )
        records = [answer_record(row, answer, 1) for row in rows]
        _per_row(
            "answer_record(row, answer, 1)", lambda: [answer_record(row, answer, 1) for row in rows], rows_n
        )
        error = {"type": "X", "status": 500, "message": "m", "retryable": True, "billed": False}
        _per_row(
            "failure_record(...)",
            lambda: [failure_record(row.index, row.custom_id, "failed", error, 1) for row in rows],
            rows_n,
        )
        sending = [sending_record(row.index, row.custom_id) for row in rows]

        def journal(name: str, write: Callable[[Checkpoint], None]) -> Callable[[], None]:
            def run() -> None:
                path = Path(tmp) / f"{name}.checkpoint.jsonl"
                path.unlink(missing_ok=True)
                checkpoint = Checkpoint(path, identity="bench", total=rows_n)
                checkpoint.open()
                write(checkpoint)
                checkpoint.close()

            return run

        def each(records: list[dict[str, Any]]) -> Callable[[Checkpoint], None]:
            return lambda checkpoint: [checkpoint.record(record, mirror_now=False) for record in records]

        _per_row("Checkpoint.record(sending record)", journal("s", each(sending)), rows_n)
        _per_row("Checkpoint.record(answer record)", journal("a", each(records)), rows_n)
        _per_row(
            "Checkpoint.record_many(sending records, 256 a call)",
            journal("m", lambda c: [c.record_many(sending[i : i + 256]) for i in range(0, rows_n, 256)]),
            rows_n,
        )

        def tally() -> None:
            counts = Tally()
            for record in records:
                counts.add(record)

        _per_row("Tally.add(answer record)", tally, rows_n)
        job.open()
        # As the engine leaves the journal with 256 rows in flight: each row's sending record, and its
        # outcome some rows later, so the output reads the journal out of order.
        shuffle = random.Random(12)
        in_flight: list[int] = []
        for row in rows:
            job.opened.record(sending_record(row.index, row.custom_id), mirror_now=False)
            in_flight.append(row.index)
            if len(in_flight) == WHOLE_CONCURRENCY or row.index == rows_n - 1:
                shuffle.shuffle(in_flight)
                for index in in_flight:
                    job.opened.record(records[index], mirror_now=False)
                in_flight.clear()
        _per_row(
            "output (BatchJob.finish: read back, write, commit marker)",
            lambda: job.finish(mode="concurrent", mode_reason="bench", requests_sent=rows_n),
            rows_n,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small N, for a smoke run")
    parser.add_argument("--only", default="1,2,3", help="comma-separated parts to run, e.g. 1,3")
    args = parser.parse_args()
    parts = {int(part) for part in args.only.split(",")}
    print(f"bench_batch_task ({'quick' if args.quick else 'full'} run)")
    whole_rows = 2_000 if args.quick else WHOLE_ROWS
    fan_rows = 200 if args.quick else FAN_ROWS
    with airflow_home() as home:
        dags = load_dags(
            home,
            [
                ("bench_task_warm_up", WHOLE_CONCURRENCY, WHOLE_CONCURRENCY),
                ("bench_task_whole", whole_rows, WHOLE_CONCURRENCY),
                ("bench_fan_warm_up", FAN_CONCURRENCY, FAN_CONCURRENCY),
                ("bench_fan_out", fan_rows, FAN_CONCURRENCY),
            ],
        )
        timeline = Timeline()
        timeline.install()
        if 1 in parts:
            whole_task(whole_rows, dags, timeline)
        if 2 in parts:
            fan_out(fan_rows, dags, timeline)
        if 3 in parts:
            per_row_costs(args.quick)


if __name__ == "__main__":
    main()
