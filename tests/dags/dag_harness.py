"""Harness for the DAG tests: real Airflow on SQLite against the emulator on 127.0.0.1.

Every DAG runs with ``airflow dags test`` in a subprocess: the acceptance command itself, and a process whose
Airflow configuration (AIRFLOW_HOME, DAGs folder, connections) is set before Airflow is imported, whatever the
test process imported before. ``airflow db migrate`` runs once per session into a template database; each
test gets a copy, so runs never see each other's rows. Results are read back from that SQLite file.

The configuration is Airflow's default except for what a run needs: in particular
``[core] allowed_deserialization_classes`` is left at its default, so a downstream task that reads a typed
result proves that the provider's classes deserialize without any configuration.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO / "example_dags"
TEST_DAGS = Path(__file__).resolve().parent / "dags"

# Distinctive keys, so a leak of either into a log, XCom or the metadata database is unmistakable.
API_KEY = "sk-or-v1-dagtest0c0ffee0c0ffee0c0ffee0c0ffee0c0ffee0c0ffee00000001"
MANAGEMENT_KEY = "sk-or-mgmt-dagtest5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed0002"

# The emulator writes generation stats this long after the answer, as OpenRouter does, so the examples that
# look a generation up exercise the operator's wait on 404.
GENERATION_DELAY_S = 3.0  # longer than a task start on a busy 2-core machine
AIRFLOW_TIMEOUT_S = 240
PYCACHE = Path(tempfile.gettempdir()) / "airflow-provider-openrouter-test-pycache"

EXAMPLE_DAG_IDS = (
    "example_openrouter_chat",
    "example_openrouter_completion",
    "example_openrouter_credits",
    "example_openrouter_generation",
    "example_openrouter_models",
    "example_openrouter_chain",
    "example_openrouter_structured_tickets",
    "example_openrouter_taskflow",
)
CHAIN_QUESTION = "Give one practical tip for keeping LLM costs predictable in a data pipeline."
EXAMPLE_CONF: dict[str, dict[str, Any]] = {"example_openrouter_chain": {"question": CHAIN_QUESTION}}
EMULATOR_CREDITS = "250.5"  # USD, what GET /credits must report


def airflow_base_env(home: Path, dags_folder: Path) -> dict[str, str]:
    """A clean environment for an Airflow subprocess: the caller's AIRFLOW_* settings never leak in.

    Bytecode is cached under the system temp directory: with PYTHONDONTWRITEBYTECODE set, every Airflow
    process would otherwise compile ~2000 modules from source (~6 s of CPU per run). The venv is not written.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(home / "logs"),
    )
    return env


def run_airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=AIRFLOW_TIMEOUT_S,
        check=False,
    )


def decode_xcom(raw: Any) -> Any:
    """An XCom row's value as stored by Airflow (JSON of the serde form, possibly JSON-encoded twice)."""
    value = json.loads(raw) if isinstance(raw, str | bytes) else raw
    while isinstance(value, str) and value[:1] in ("{", "[", '"'):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            break
    return value


@dataclass
class DagRun:
    """One ``airflow dags test`` run and its metadata database."""

    dag_id: str
    home: Path
    process: subprocess.CompletedProcess[str]
    db_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.db_path = self.home / "airflow.db"

    @property
    def output(self) -> str:
        return self.process.stdout + self.process.stderr

    @property
    def succeeded(self) -> bool:
        return self.process.returncode == 0

    def explain(self) -> str:
        return f"airflow dags test {self.dag_id} exited {self.process.returncode}:\n{self.output[-8000:]}"

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.db_path)) as db:
            return db.execute(sql, params).fetchall()

    def task_states(self) -> dict[str, str]:
        rows = self.query("SELECT task_id, state FROM task_instance WHERE dag_id = ?", self.dag_id)
        return {task_id: state for task_id, state in rows}

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        rows = self.query(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = ?", self.dag_id, task_id, key
        )
        assert len(rows) == 1, f"expected one XCom {task_id}/{key}, found {len(rows)}"
        return decode_xcom(rows[0][0])

    def xcom_keys(self, task_id: str) -> set[str]:
        rows = self.query("SELECT key FROM xcom WHERE dag_id = ? AND task_id = ?", self.dag_id, task_id)
        return {key for (key,) in rows}

    def log_files_text(self) -> str:
        logs = self.home / "logs"
        if not logs.exists():
            return ""
        return "\n".join(
            path.read_text(errors="replace") for path in sorted(logs.rglob("*")) if path.is_file()
        )

    def all_text_in_database(self) -> str:
        """Every text and blob value of every table, for leak checks."""
        chunks: list[str] = []
        with contextlib.closing(sqlite3.connect(self.db_path)) as db:
            tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                for row in db.execute(f'SELECT * FROM "{table}"'):
                    for value in row:
                        if isinstance(value, bytes):
                            chunks.append(value.decode("utf-8", errors="replace"))
                        elif isinstance(value, str):
                            chunks.append(value)
        return "\n".join(chunks)


@dataclass
class AirflowSandbox:
    """A fresh AIRFLOW_HOME (copy of the migrated template database) wired to the emulator."""

    home: Path
    connections: dict[str, str]

    def env(self, dags_folder: Path) -> dict[str, str]:
        env = airflow_base_env(self.home, dags_folder)
        env.update({f"AIRFLOW_CONN_{conn_id.upper()}": uri for conn_id, uri in self.connections.items()})
        return env

    def dags_test(
        self, dag_id: str, *, dags_folder: Path = EXAMPLE_DAGS, conf: dict[str, Any] | None = None
    ) -> DagRun:
        args = ["dags", "test", dag_id]
        if conf is not None:
            args += ["--conf", json.dumps(conf)]
        return DagRun(dag_id, self.home, run_airflow(self.env(dags_folder), *args))


def openrouter_connection(base_url: str, api_key: str) -> str:
    return json.dumps({"conn_type": "openrouter", "host": base_url, "password": api_key})
