"""Run the main example DAG (example_dags/example_openrouter_chain.py) on a throwaway Airflow home.

Without OPENROUTER_API_KEY it starts the bundled emulator on 127.0.0.1 and runs against it; with the variable
it runs against OpenRouter (a fraction of a cent: the cheapest fitting model, max_tokens=120). The key is
handed to Airflow through the environment only and is never printed.

Steps: temp AIRFLOW_HOME (SQLite) → ``airflow db migrate`` → ``airflow dags test example_openrouter_chain`` →
a short summary read from the run's XCom. Exit code 0 only when the DAG run succeeded.

``--ui`` is the demo that stays up: the emulator (unless OPENROUTER_API_KEY is set), then Airflow's
api-server, scheduler, dag-processor and triggerer (benchmarks/airflow_stack.py) on SQLite under a
project-local AIRFLOW_HOME (``.airflow-demo/``, kept between runs); it stores the connections, triggers the
same DAG and then the cost audit example, waits for their success and prints the UI address, the login and
where the logs, the cost report and the cost records are.
Ctrl-C stops every process it started; running it again reuses the home.

Usage: ``./run-example`` (or ``uv run python scripts/run_example.py [--keep-home]``); ``./run-example --ui``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
DAG_ID = "example_openrouter_chain"
OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
STEP_TIMEOUT_S = 600
DEMO_HOME = REPO / ".airflow-demo"
DEMO_CONN_ID = "openrouter_default"
COST_DAG_ID = "example_openrouter_cost_audit"
COSTS_CONN_ID = "openrouter_costs"
# tests/e2e/test_demo.py waits for this line; it is printed once the UI serves a successful run.
READY = "Ready:"


def airflow_env(home: Path) -> dict[str, str]:
    # A developer's own Airflow settings and connections must not leak into the example run.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "example_dags"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(home / "logs"),
    )
    return env


def connection(base_url: str, api_key: str) -> str:
    return json.dumps(
        {
            "conn_type": "openrouter",
            "host": base_url,
            "password": api_key,
            "extra": {"app_title": "airflow-provider-openrouter example"},
        }
    )


@contextlib.contextmanager
def openrouter_endpoint() -> Iterator[tuple[str, str, str]]:
    """Yield (description, base URL, API key): OpenRouter when a key is set, else a fresh emulator."""
    api_key = os.environ.get("OPENROUTER_API_KEY", "").strip()
    if api_key:
        yield "OpenRouter", OPENROUTER_BASE_URL, api_key
        return
    from airflow_provider_openrouter.emulator.testing import running_emulator

    with running_emulator() as emulator:
        yield f"the bundled emulator at {emulator.base_url}", emulator.base_url, emulator.api_key


@contextlib.contextmanager
def openrouter_target() -> Iterator[tuple[str, dict[str, str]]]:
    """Yield (description, connection env vars) for `airflow dags test`."""
    with openrouter_endpoint() as (target, base_url, api_key):
        yield target, {"AIRFLOW_CONN_OPENROUTER_DEFAULT": connection(base_url, api_key)}


def airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=env,
        # Not the clone's root: `python -m` puts the working directory first on sys.path, and an installed
        # wheel (scripts/test-wheel-install) must not be shadowed by the source tree.
        cwd=env["AIRFLOW_HOME"],
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        check=False,
    )


def print_summary(target: str, result: dict[str, Any]) -> None:
    print(f"{DAG_ID} succeeded against {target}")
    print(f"  model picked : {result['model']}")
    print(f"  tokens       : {result['prompt_tokens']} prompt + {result['completion_tokens']} completion")
    print(f"  cost         : {result['cost_usd']} USD (generation {result['generation_id']})")
    print(f"  answer       : {result['text']}")


def summary(home: Path) -> dict[str, Any] | None:
    """The ``report`` task's return value, read back from the run's metadata database."""
    with contextlib.closing(sqlite3.connect(home / "airflow.db")) as db:
        row = db.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = 'report' AND key = 'return_value'",
            (DAG_ID,),
        ).fetchone()
    if row is None:
        return None
    value = json.loads(row[0]) if isinstance(row[0], str | bytes) else row[0]
    return value if isinstance(value, dict) else None


def load_stack_harness() -> ModuleType:
    """benchmarks/airflow_stack.py, the harness the end-to-end tests use (a script folder, not a package)."""
    spec = importlib.util.spec_from_file_location("airflow_stack", REPO / "benchmarks" / "airflow_stack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["airflow_stack"] = module
    spec.loader.exec_module(module)
    return module


def _stop(signum: int, frame: FrameType | None) -> None:
    # Ctrl-C reaches both `uv run` and this process, and uv passes it on: a second KeyboardInterrupt would cut
    # the cleanup short and leave Airflow running, so the first signal is the only one. `kill` (SIGTERM)
    # cleans up the same way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def fernet_key(home: Path) -> str:
    """The home's own Fernet key: the connection stored by one demo run must decrypt in the next."""
    path = home / "fernet.key"
    if not path.exists():
        from cryptography.fernet import Fernet

        path.write_bytes(Fernet.generate_key())
        path.chmod(0o600)
    return path.read_text().strip()


def store_connection(client: Any, conn_id: str, conn_type: str, **fields: Any) -> None:
    """Create the connection anew: a run before this one may have stored it with another emulator port."""
    client.request("DELETE", f"/connections/{conn_id}", expect=(204, 404))
    client.create_connection(conn_id, conn_type, **fields)


def run_in_stack(stack: Any, dag_id: str, conf: dict[str, Any] | None = None) -> str | None:
    """Trigger `dag_id` and wait; its run id on success, else None after printing why."""
    # With a logical date, as the UI's Trigger form sends it: templates such as {{ ds }} need one.
    now = datetime.now(UTC).isoformat()
    run_id, run = stack.run_dag(dag_id, conf, timeout=STEP_TIMEOUT_S, logical_date=now)
    if run["state"] == "success":
        return str(run_id)
    print(stack.failure_report(dag_id, run_id), file=sys.stderr)
    print(f"{dag_id} run {run_id} ended {run['state']}; see above", file=sys.stderr)
    return None


def serve_ui(home: Path) -> int:
    """The demo: a whole Airflow deployment with the examples' successful runs, up until Ctrl-C."""
    harness = load_stack_harness()
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    home.mkdir(parents=True, exist_ok=True)
    outputs = home / "outputs"
    try:
        with openrouter_endpoint() as (target, base_url, api_key):
            stack = harness.AirflowStack(
                dag_files=[REPO / "example_dags" / f"{dag_id}.py" for dag_id in (DAG_ID, COST_DAG_ID)],
                home=home,
                keep_home=True,
                env={
                    "AIRFLOW__CORE__FERNET_KEY": fernet_key(home),
                    # Only the runs the demo triggers: the cost audit's @daily schedule would add one more.
                    "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                },
            )
            print(f"AIRFLOW_HOME={home}; starting Airflow (api-server, scheduler, dag-processor, triggerer)")
            print(f"  component logs: {stack.logs_folder}", flush=True)
            with stack:
                store_connection(
                    stack.client,
                    DEMO_CONN_ID,
                    "openrouter",
                    host=base_url,
                    # Airflow 3.3's Test button sends a stored port of None as 0 and is then refused as
                    # "differs from the stored connection"; a stored port keeps the button working.
                    port=urlsplit(base_url).port or 443,
                    password=api_key,
                    extra={"app_title": "airflow-provider-openrouter demo"},
                )
                costs_db = home / "openrouter-costs.db"
                store_connection(stack.client, COSTS_CONN_ID, "sqlite", host=str(costs_db))
                print(f"connections {DEMO_CONN_ID}, {COSTS_CONN_ID} stored; running {DAG_ID}", flush=True)
                run_id = run_in_stack(stack, DAG_ID)
                if run_id is None:
                    return 1
                print_summary(target, stack.client.xcom_value(DAG_ID, run_id, "report"))
                print(f"running {COST_DAG_ID} (three chats, their cost audit and report)", flush=True)
                if run_in_stack(stack, COST_DAG_ID, {"root": outputs.as_uri()}) is None:
                    return 1
                report = max(outputs.rglob("cost-report.html"), key=lambda path: path.stat().st_mtime)
                print(f"  the run      : {stack.base_url}/dags/{DAG_ID}/runs/{run_id}")
                print(f"  task logs    : {stack.logs_folder / f'dag_id={DAG_ID}' / f'run_id={run_id}'}")
                print(f"  cost report  : {report}")
                print(f"  cost records : {costs_db}")
                print(f"  database     : {home / 'airflow.db'}")
                print(
                    f"{READY} the Airflow UI is at {stack.base_url} "
                    f"(login: admin / {stack.password}); press Ctrl-C to stop",
                    flush=True,
                )
                while True:
                    stack.check_alive()
                    time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopped every process the demo started", flush=True)
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary AIRFLOW_HOME for a look")
    parser.add_argument("--ui", action="store_true", help="the demo: Airflow with its UI, kept up")
    parser.add_argument(
        "--home", type=Path, default=DEMO_HOME, help=f"AIRFLOW_HOME of --ui (default {DEMO_HOME})"
    )
    args = parser.parse_args()
    if args.ui:
        return serve_ui(args.home.resolve())

    home = Path(tempfile.mkdtemp(prefix="openrouter-example-"))
    try:
        with openrouter_target() as (target, conn_env):
            env = {**airflow_env(home), **conn_env}
            print(f"AIRFLOW_HOME={home}; running {DAG_ID} against {target}", flush=True)
            migrated = airflow(env, "db", "migrate")
            if migrated.returncode != 0:
                print(migrated.stdout[-3000:], migrated.stderr[-3000:], sep="\n", file=sys.stderr)
                print("airflow db migrate failed", file=sys.stderr)
                return 1
            run = airflow(env, "dags", "test", DAG_ID)
        if run.returncode != 0:
            print(run.stdout[-6000:], run.stderr[-6000:], sep="\n", file=sys.stderr)
            print(f"{DAG_ID} failed (exit {run.returncode}); the task logs are above", file=sys.stderr)
            return 1
        result = summary(home)
        if result is None:
            print(f"{DAG_ID} passed but its report task left no summary", file=sys.stderr)
            return 1
        print_summary(target, result)
        return 0
    finally:
        if args.keep_home:
            print(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
