"""Import cost the provider adds to a DAG file's parse, above ``import airflow.sdk`` (prints figures).

    uv run python benchmarks/bench_import.py [--runs 9] [--baseline DIR]

Each run is a fresh interpreter with a temporary AIRFLOW_HOME. It imports ``airflow.sdk`` (what every DAG file
pays anyway), then times, in the same process, what a DAG file adds by importing from the provider. Variants:

* ``hook``       ``from airflow_provider_openrouter.hooks import OpenRouterHook``
* ``chat``       ``from airflow_provider_openrouter.operators import OpenRouterChatCompletionOperator``
* ``operators``  every operator the package exports (picked up from ``operators.__all__`` when present)
* ``taskflow``   ``from airflow.sdk import task`` then ``task.python``: what any TaskFlow DAG file pays
  (Airflow's own cost, the reference for the next variant; not the provider's)
* ``decorator``  ``from airflow.sdk import task`` then ``task.openrouter``: Airflow finds the provider's
  ``task-decorators`` entry and imports ``decorators/openrouter.py``; its cost is reported above ``taskflow``

Also reported: the whole-process wall time of ``import airflow.sdk`` alone versus with the operators, and
whether ``requests`` was imported (the transport loads it on first call, not at parse time). Goal: the median
added cost is under 50 ms.

``--baseline DIR`` measures another checkout (``git archive <commit> airflow_provider_openrouter | tar -x -C
DIR``) in the same run, interleaved, and prints this tree's cost over the baseline's: on this shared machine
only such same-run ratios compare two versions.

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
elif variant == "taskflow":
    from airflow.sdk import task
    task.python
elif variant == "decorator":
    from airflow.sdk import task
    task.openrouter
t2 = time.perf_counter()
figures = {"sdk_ms": (t1 - t0) * 1e3, "added_ms": (t2 - t1) * 1e3, "requests": "requests" in sys.modules}
print(json.dumps(figures))
"""


def probe(variant: str, env: dict[str, str]) -> tuple[dict[str, float], float] | None:
    """One fresh interpreter's figures and wall time, or None when the variant fails there (a baseline tree
    without ``@task.openrouter``, say)."""
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
        if "PYTHONPATH" not in env:
            raise SystemExit(f"probe {variant!r} failed:\n{result.stderr[-3000:]}")
        return None
    return json.loads(result.stdout.strip().splitlines()[-1]), wall_ms


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=9, help="fresh interpreters per variant")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="another checkout of the provider (`git archive <commit> | tar -x -C DIR`), measured in the "
        "same run, interleaved, and compared as a ratio",
    )
    args = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW__")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="bench-import-pyc-")
    env["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="bench-import-")
    trees = {"this tree": env}
    if args.baseline:
        trees["baseline"] = {**env, "PYTHONPATH": os.path.abspath(args.baseline)}

    variants = ("none", "hook", "chat", "operators", "taskflow", "decorator")
    for tree_env in trees.values():  # writes airflow.cfg and the bytecode cache; kept out of the figures
        for variant in variants:
            probe(variant, tree_env)
    added: dict[str, dict[str, list[float]]] = {tree: {variant: [] for variant in variants} for tree in trees}
    wall: dict[str, dict[str, list[float]]] = {tree: {variant: [] for variant in variants} for tree in trees}
    loads_requests: dict[str, bool] = {}
    for _ in range(args.runs):
        for variant in variants:  # interleaved, so machine noise hits every variant and tree alike
            for tree, tree_env in trees.items():
                measured = probe(variant, tree_env)
                if measured is None:
                    continue
                figures, wall_ms = measured
                added[tree][variant].append(figures["added_ms"])
                wall[tree][variant].append(wall_ms)
                if tree == "this tree":
                    loads_requests[variant] = loads_requests.get(variant, False) or bool(figures["requests"])

    mine = added["this tree"]
    print(f"{args.runs} fresh interpreters per variant; medians")
    for label, variant in (
        ("import airflow.sdk only", "none"),
        ("airflow.sdk + every operator", "operators"),
    ):
        print(f"whole process, {label:<30} : {statistics.median(wall['this tree'][variant]):7.1f} ms")

    def cost(tree: str, variant: str) -> float | None:
        """Median added ms; the decorator's above the ``taskflow`` reference. None if it never ran there."""
        runs = added[tree][variant]
        if not runs:
            return None
        reference = statistics.median(added[tree]["taskflow"]) if variant == "decorator" else 0.0
        return statistics.median(runs) - reference

    for variant in ("hook", "chat", "operators", "decorator"):
        median = cost("this tree", variant)
        assert median is not None  # this tree's probes fail loudly
        verdict = "met" if median < GOAL_MS else "NOT met"
        spread = f"min {min(mine[variant]):.1f}, max {max(mine[variant]):.1f}"
        above = "task.python" if variant == "decorator" else "airflow.sdk"
        line = (
            f"added above {above:<11}, {variant:<10}: {median:6.1f} ms ({spread}; goal < {GOAL_MS:g} ms -> "
            f"{verdict}; requests imported: {'yes' if loads_requests[variant] else 'no'})"
        )
        if args.baseline:
            base = cost("baseline", variant)
            line += f"; baseline {base:.1f} ms, ratio {median / base:.2f}" if base else "; baseline: n/a"
        print(line)


if __name__ == "__main__":
    main()
