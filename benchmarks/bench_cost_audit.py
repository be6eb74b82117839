"""Issue 9 benchmarks: the cost audit against its physical limits.

1. GET /generation   N generation ids (made by the emulator's Batch API, stats published at once) audited
                     with the connection's client rate limit R requests/minute: wall / (N / R), goal <= 1.1.
                     The rows go to a SQLite file through an Airflow ``sqlite`` connection, as in production.
2. batch outputs     a batch output JSONL of N rows audited from its own usage (``source="usage"``): no
                     request at all (the emulator is not even running), rows into SQLite and a JSONL file:
                     wall time, goal < 2 s for 10,000 rows.

    uv run python benchmarks/bench_cost_audit.py [--n 10000] [--rate 30000] [--only 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from airflow_provider_openrouter.emulator.testing import running_emulator

MODEL = "openai/gpt-4o-mini"
CONN_ID = "openrouter_bench"
SQL_CONN_ID = "cost_bench_sqlite"
BATCH_LIMIT = 5000  # requests per POST /batches, as OpenRouter allows
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _line(label: str, value: str) -> None:
    print(f"  {label:<52} {value}")


def _call(base_url: str, key: str, method: str, path: str, payload: Any = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        base_url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with _opener.open(request, timeout=120) as response:
        return json.loads(response.read())


def _make_generations(base_url: str, key: str, count: int) -> list[str]:
    """``count`` billed generations through the emulator's Batch API; their ids."""
    ids: list[str] = []
    for start in range(0, count, BATCH_LIMIT):
        size = min(BATCH_LIMIT, count - start)
        requests = [
            {
                "custom_id": f"row-{start + index}",
                "body": {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": f"q{start + index}"}],
                    "max_tokens": 5,
                },
            }
            for index in range(size)
        ]
        batch = _call(
            base_url,
            key,
            "POST",
            "/batches",
            {"requests": requests, "model": MODEL, "endpoint": "/v1/chat/completions"},
        )
        while batch["status"] not in ("completed", "failed", "expired", "cancelled"):
            time.sleep(0.2)  # setup, not measured: the emulator finishes a batch in well under a second
            batch = _call(base_url, key, "GET", f"/batches/{batch['id']}")
        ids.extend(result["response"]["body"]["id"] for result in batch["results"] if result["response"])
    return ids


def _sqlite_connection(path: Path) -> None:
    os.environ[f"AIRFLOW_CONN_{SQL_CONN_ID.upper()}"] = json.dumps({"conn_type": "sqlite", "host": str(path)})


def generation_endpoint(count: int, rate: float) -> None:
    from airflow_provider_openrouter.cost.audit import run_audit
    from airflow_provider_openrouter.cost.collect import collect
    from airflow_provider_openrouter.cost.store import CostStore
    from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook
    from airflow_provider_openrouter.ratelimit import clear_buckets

    print(f"1. GET /generation: {count} ids at a client limit of {rate:g} requests/minute")
    with running_emulator("--generation-delay-s", "0", "--batch-duration-s", "0.2") as emulator:
        ids = _make_generations(emulator.base_url, emulator.api_key, count)
        os.environ.update(emulator.airflow_conn_env(CONN_ID, requests_per_minute=rate))
        clear_buckets()
        with tempfile.TemporaryDirectory() as folder:
            _sqlite_connection(Path(folder) / "costs.db")
            store = CostStore.open(SQL_CONN_ID)
            workers = 16
            with OpenRouterHook(CONN_ID, max_connections=workers) as hook:
                assert hook.settings.base_url  # read the connection before the clock starts
                started, cpu_started = time.perf_counter(), time.process_time()
                result = run_audit(
                    collect(ids),
                    source="generation",
                    fetch=hook.get_generation,
                    store=store,
                    wait_for_stats=60,
                    max_workers=workers,
                )
                wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        stats = emulator.stats()
    bound = count / (rate / 60)
    billed = stats["total_cost"]
    _line("ids made (emulator Batch API)", f"{len(ids)}")
    _line("recorded / unresolved", f"{result.summary.recorded} / {len(result.summary.unresolved)}")
    _line("GET /generation requests", f"{result.summary.requests_sent}")
    _line("table total = emulator billed total", f"{result.summary.total_cost} = {billed}")
    _line("wall time", f"{wall:.2f} s")
    _line("N / R (the rate limit's bound)", f"{bound:.2f} s")
    _line("ratio (goal <= 1.1)", f"{wall / bound:.3f}")
    _line("client CPU per id (request, parse, SQL)", f"{cpu / count * 1e3:.2f} ms")


def batch_outputs(count: int) -> None:
    print(f"2. batch outputs: {count} rows from their own usage, no request")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        # A 10-row audit first: it loads what a worker already has loaded (Airflow's connection, object
        # storage and SQL hook modules); the clock then measures the audit itself.
        _audit_batch_output(root / "warm-up", 10)
        wall, cpu, result = _audit_batch_output(root / "measured", count)
    _line("recorded / unresolved", f"{result.summary.recorded} / {len(result.summary.unresolved)}")
    _line("requests sent", f"{result.summary.requests_sent}")
    _line("wall time, file -> SQLite + JSONL (goal < 2 s)", f"{wall:.2f} s ({count / wall:,.0f} rows/s)")
    _line("CPU time of the audit (contention does not add)", f"{cpu:.2f} s")


def _audit_batch_output(folder: Path, count: int) -> tuple[float, float, Any]:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_openrouter.batch.outputs import dumps_record, success_record
    from airflow_provider_openrouter.cost.audit import run_audit
    from airflow_provider_openrouter.cost.collect import collect
    from airflow_provider_openrouter.cost.store import CostStore
    from airflow_provider_openrouter.models import ChatCompletion

    folder.mkdir()
    output = folder / "classified.jsonl"
    with output.open("wb") as handle:
        for index in range(count):
            answer = ChatCompletion.model_validate(
                {
                    "id": f"gen-{index:08d}",
                    "model": MODEL,
                    "created": 1764763200,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "billing"}}],
                    "usage": {
                        "prompt_tokens": 40,
                        "completion_tokens": 2,
                        "total_tokens": 42,
                        "cost": 0.0000072 + index * 1e-10,
                    },
                }
            )
            handle.write(dumps_record(success_record(index, f"ticket-{index}", answer, 1)))
    _sqlite_connection(folder / "costs.db")
    started, cpu_started = time.perf_counter(), time.process_time()
    store = CostStore.open(SQL_CONN_ID)
    result = run_audit(
        collect(ObjectStoragePath(str(output))),
        source="usage",
        fetch=None,
        store=store,
        output_path=ObjectStoragePath(str(folder / "audit.jsonl")),
    )
    return time.perf_counter() - started, time.process_time() - cpu_started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=12_000.0, help="client requests/minute for part 1")
    parser.add_argument("--only", default="1,2")
    args = parser.parse_args()
    parts = {part.strip() for part in args.only.split(",")}
    if "1" in parts:
        generation_endpoint(args.n, args.rate)
    if "2" in parts:
        batch_outputs(args.n)


if __name__ == "__main__":
    main()
