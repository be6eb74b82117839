"""Run the main example DAG (example_dags/example_openrouter_chain.py) on a throwaway Airflow home.

Without OPENROUTER_API_KEY it starts the bundled emulator on 127.0.0.1 and runs against it; with the variable
it runs against OpenRouter (a fraction of a cent: the cheapest fitting model, max_tokens=120). The key is
handed to Airflow through the environment only and is never printed.

Steps: temp AIRFLOW_HOME (SQLite) → ``airflow db migrate`` → ``airflow dags test example_openrouter_chain`` →
a short summary read from the run's XCom. Exit code 0 only when the DAG run succeeded.

Usage: ``./run-example`` (or ``uv run python scripts/run_example.py [--keep-home]``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DAG_ID = "example_openrouter_chain"
OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
STEP_TIMEOUT_S = 600


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
def openrouter_target() -> Iterator[tuple[str, dict[str, str]]]:
    """Yield (description, connection env vars): OpenRouter when a key is set, else a fresh emulator."""
    api_key = os.environ.get("OPENROUTER_API_KEY", "").strip()
    if api_key:
        yield "OpenRouter", {"AIRFLOW_CONN_OPENROUTER_DEFAULT": connection(OPENROUTER_BASE_URL, api_key)}
        return
    from airflow_provider_openrouter.emulator.testing import running_emulator

    with running_emulator() as emulator:
        yield (
            f"the bundled emulator at {emulator.base_url}",
            {"AIRFLOW_CONN_OPENROUTER_DEFAULT": connection(emulator.base_url, emulator.api_key)},
        )


def airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        check=False,
    )


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary AIRFLOW_HOME for a look")
    args = parser.parse_args()

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
        print(f"{DAG_ID} succeeded against {target}")
        print(f"  model picked : {result['model']}")
        print(f"  tokens       : {result['prompt_tokens']} prompt + {result['completion_tokens']} completion")
        print(f"  cost         : {result['cost_usd']} USD (generation {result['generation_id']})")
        print(f"  answer       : {result['text']}")
        return 0
    finally:
        if args.keep_home:
            print(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
