"""What a budget costs per request on SQLite, and a budgeted fan-out beside an unbudgeted one (prints them).

    uv run python benchmarks/bench_budget.py [--reservations 2000] [--rows 1000] [--concurrency 16]

1. Reservation time: ``ledger.reserve(body)`` (one ``BEGIN IMMEDIATE`` transaction with the conditional
   UPDATE and the reservation's INSERT, in WAL mode, default ``synchronous``) and ``reservation.settle(cost)``
   (one more transaction), one after another on one thread, the catalog already read. Goal: the reservation
   under 2 ms; the median and p95 of both are printed.
2. Fan-out: ``--rows`` chat completions against the emulator on ``--concurrency`` threads through the hook,
   once without a budget and once reserving and settling each row in one shared ledger, alternating for
   ``--rounds`` rounds (the median is reported). Goal: the budgeted run keeps >= 0.9x the throughput. This
   is the hook in a thread pool.
3. The batch operator (concurrent mode, ``--concurrency``) over ``--rows`` rows, with and without
   ``budget=``, alternating for ``--rounds`` rounds: the same ratio through the batch engine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from airflow_provider_openrouter.emulator.testing import running_emulator

GOAL_MS = 2.0
GOAL_RATIO = 0.9
CONN_ID = "openrouter_bench"
MODEL = "openai/gpt-4o-mini"


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def reservation_times(hook: Any, count: int) -> tuple[list[float], list[float]]:
    from airflow_provider_openrouter.budget import OpenRouterBudget

    ledger = OpenRouterBudget("bench-reserve", "1000", period="total").open(hook, run_id=None)
    body = hook.build_chat_request(MODEL, "user", "Classify this ticket: printer on fire.", max_tokens=20)
    ledger.reserve(body).release()  # reads the catalog once, as every ledger does before its first row
    reserve, settle = [], []
    for _ in range(count):
        started = time.perf_counter()
        reservation = ledger.reserve(body)
        middle = time.perf_counter()
        reservation.settle(Decimal("0.000001"))
        reserve.append((middle - started) * 1000)
        settle.append((time.perf_counter() - middle) * 1000)
    ledger.close()
    return reserve, settle


def fan_out(hook: Any, rows: int, concurrency: int, budgeted: bool, round_index: int) -> float:
    """Rows per second of one fan-out."""
    from airflow_provider_openrouter.budget import OpenRouterBudget

    ledger = (
        OpenRouterBudget(f"bench-fanout-{round_index}", "1000", period="total").open(hook, run_id=None)
        if budgeted
        else None
    )
    bodies = [
        hook.build_chat_request(MODEL, "user", f"Row {row}: classify this ticket.", max_tokens=20)
        for row in range(rows)
    ]

    def one(body: dict[str, Any]) -> None:
        if ledger is None:
            hook.send_chat_request(body)
        else:
            ledger.spend(body, hook.send_chat_request)

    if ledger is not None:
        ledger.reserve(bodies[0]).release()  # the catalog, read once before the rows
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, bodies))
    elapsed = time.perf_counter() - started
    if ledger is not None:
        ledger.close()
    return rows / elapsed


class _TaskInstance:
    dag_id, task_id, map_index, try_number = "bench_budget", "batch", -1, 1

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def batch_rate(rows: int, concurrency: int, budgeted: bool, round_index: int) -> float:
    """Rows per second of one batch operator run in concurrent mode."""
    from airflow_provider_openrouter.budget import OpenRouterBudget
    from airflow_provider_openrouter.operators.batch import OpenRouterBatchCompletionOperator

    output = os.path.join(tempfile.mkdtemp(prefix="bench-budget-batch-"), "out.jsonl")
    operator = OpenRouterBatchCompletionOperator(
        task_id="batch",
        openrouter_conn_id=CONN_ID,
        model=MODEL,
        inputs=[f"Row {row}: classify this ticket." for row in range(rows)],
        output_path=output,
        max_tokens=20,
        concurrency=concurrency,
        mode="concurrent",
        progress_interval=3600,
        do_xcom_push=False,
        budget=OpenRouterBudget(f"bench-batch-{round_index}", "1000", period="total") if budgeted else None,
    )
    started = time.perf_counter()
    operator.execute({"ti": _TaskInstance(f"bench_{round_index}_{budgeted}")})  # type: ignore[arg-type]
    return rows / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reservations", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="bench-budget-")
    os.environ.setdefault("AIRFLOW_HOME", home)
    os.environ["OPENROUTER_BUDGET_DB"] = os.path.join(home, "budgets.db")

    from airflow_provider_openrouter.hooks import OpenRouterHook

    with running_emulator("--credits", "1000000") as emulator:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
            {
                "conn_type": "openrouter",
                "host": emulator.base_url,
                "password": emulator.api_key,
                "extra": {"requests_per_minute": 0, "attribution": False},
            }
        )
        hook = OpenRouterHook(CONN_ID)
        reserve, settle = reservation_times(hook, args.reservations)
        reserve_median, reserve_p95 = percentiles(reserve)
        settle_median, settle_p95 = percentiles(settle)
        print(f"reservations on SQLite (WAL), {args.reservations} one after another:")
        print(f"  reserve: median {reserve_median:.3f} ms, p95 {reserve_p95:.3f} ms (goal < {GOAL_MS} ms)")
        print(f"  settle:  median {settle_median:.3f} ms, p95 {settle_p95:.3f} ms")
        print(f"  reserve + settle: median {reserve_median + settle_median:.3f} ms per request")

        plain_rates, budget_rates = [], []
        for round_index in range(args.rounds):
            plain_rates.append(fan_out(hook, args.rows, args.concurrency, False, round_index))
            budget_rates.append(fan_out(hook, args.rows, args.concurrency, True, round_index))
        plain, budgeted = statistics.median(plain_rates), statistics.median(budget_rates)
        print(f"fan-out of {args.rows} rows on {args.concurrency} threads (median of {args.rounds} rounds):")
        print(f"  unbudgeted: {plain:.0f} rows/s; budgeted: {budgeted:.0f} rows/s")
        print(f"  ratio budgeted/unbudgeted: {budgeted / plain:.2f}x (goal >= {GOAL_RATIO}x)")

        plain_rates, budget_rates = [], []
        for round_index in range(args.rounds):
            plain_rates.append(batch_rate(args.rows, args.concurrency, False, round_index))
            budget_rates.append(batch_rate(args.rows, args.concurrency, True, round_index))
        plain, budgeted = statistics.median(plain_rates), statistics.median(budget_rates)
        print(f"batch operator, {args.rows} rows, concurrency {args.concurrency} (median of {args.rounds}):")
        print(f"  unbudgeted: {plain:.0f} rows/s; budgeted: {budgeted:.0f} rows/s")
        print(f"  ratio budgeted/unbudgeted: {budgeted / plain:.2f}x (goal >= {GOAL_RATIO}x)")


if __name__ == "__main__":
    main()
