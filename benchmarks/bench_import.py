"""Import cost the provider adds to a DAG file's parse, above ``import airflow.sdk`` (prints figures).

    uv run python benchmarks/bench_import.py [--runs 9]

Each run is a fresh interpreter with a temporary AIRFLOW_HOME. It imports ``airflow.sdk`` (what every DAG file
pays anyway), then times, in the same process, what a DAG file adds by importing from the provider. Variants:

* ``hook``       ``from airflow_provider_openrouter.hooks import OpenRouterHook``
* ``chat``       ``from airflow_provider_openrouter.operators import OpenRouterChatCompletionOperator``
* ``operators``  every operator the package exports (picked up from ``operators.__all__`` when present)

Also reported: the whole-process wall time of ``import airflow.sdk`` alone versus with the operators, and
whether ``requests`` was imported (the transport loads it on first call, not at parse time). Goal: the median
added cost is under 50 ms.

Bytecode is cached (in a temporary ``PYTHONPYCACHEPREFIX``, after one warm-up run per variant), as it is for
an installed package on a worker or DAG processor; a run without cached bytecode measures the compiler.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

GOAL_MS = 50.0

_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
variant = sys.argv[1]
if variant == "hook":
    from airflow_provider_openrouter.hooks import OpenRouterHook
elif variant == "chat":
    from airflow_provider_openrouter.operators import OpenRouterChatCompletionOperator
elif variant == "operators":
    import airflow_provider_openrouter.operators as operators
    for name in getattr(operators, "__all__", ()):
        getattr(operators, name)
t2 = time.perf_counter()
figures = {"sdk_ms": (t1 - t0) * 1e3, "added_ms": (t2 - t1) * 1e3, "requests": "requests" in sys.modules}
print(json.dumps(figures))
"""


def probe(variant: str, env: dict[str, str]) -> tuple[dict[str, float], float]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, variant],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    wall_ms = (time.perf_counter() - started) * 1e3
    if result.returncode != 0:
        raise SystemExit(f"probe {variant!r} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1]), wall_ms


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=9, help="fresh interpreters per variant")
    args = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW__")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="bench-import-pyc-")
    env["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="bench-import-")

    variants = ("none", "hook", "chat", "operators")
    for variant in variants:  # writes airflow.cfg and the bytecode cache; kept out of the figures
        probe(variant, env)
    added: dict[str, list[float]] = {variant: [] for variant in variants}
    wall: dict[str, list[float]] = {variant: [] for variant in variants}
    loads_requests: dict[str, bool] = {}
    for _ in range(args.runs):
        for variant in variants:  # interleaved, so machine noise hits every variant alike
            figures, wall_ms = probe(variant, env)
            added[variant].append(figures["added_ms"])
            wall[variant].append(wall_ms)
            loads_requests[variant] = loads_requests.get(variant, False) or bool(figures["requests"])

    print(f"{args.runs} fresh interpreters per variant; medians")
    print(f"whole process, import airflow.sdk only        : {statistics.median(wall['none']):7.1f} ms")
    print(f"whole process, airflow.sdk + every operator   : {statistics.median(wall['operators']):7.1f} ms")
    for variant in ("hook", "chat", "operators"):
        median = statistics.median(added[variant])
        verdict = "met" if median < GOAL_MS else "NOT met"
        spread = f"min {min(added[variant]):.1f}, max {max(added[variant]):.1f}"
        requests_loaded = "yes" if loads_requests[variant] else "no"
        print(
            f"added above airflow.sdk, {variant:<10}: {median:6.1f} ms ({spread}; goal < {GOAL_MS:g} ms -> "
            f"{verdict}; requests imported: {requests_loaded})"
        )


if __name__ == "__main__":
    main()
