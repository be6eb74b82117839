"""A real Airflow 3 deployment in a temporary AIRFLOW_HOME, driven through its REST API.

`AirflowStack` starts `airflow api-server`, `scheduler`, `dag-processor` and `triggerer` as separate
processes on SQLite with the LocalExecutor, exactly as a small production install would run them, and
`AirflowClient` talks to the api-server the way an operator or a CI job does: a JWT from the simple auth
manager, then REST API v2 calls.

Used by tests/e2e (through the `airflow_stack` fixture) and by benchmarks/bench_mapped_vs_batch.py. It
depends on nothing but Airflow and requests, so it works before any provider code exists.

Invariants:
- Nothing listens beyond 127.0.0.1: the api-server binds to loopback, the execution API URL is loopback.
- Every process runs in its own process group, so `stop()` reaches the LocalExecutor workers and their task
  subprocesses too; `stop()` always runs (context manager), sends SIGTERM, then SIGKILL after a deadline.
- Waits poll a condition against a wall-clock deadline; nothing sleeps for a fixed time as synchronisation.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests

ADMIN_USER = "admin"
TERMINAL_RUN_STATES = frozenset({"success", "failed"})

T = TypeVar("T")


class StackError(RuntimeError):
    """The Airflow stack did not reach the state a caller waited for; the message names the log to read."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the api-server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.25,
    what: str,
) -> T:
    """Poll `condition` until it returns something other than None/False; raise StackError at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = condition()
        except (requests.RequestException, StackError) as exc:
            last_error = exc
            result = None
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


@dataclass
class StackSettings:
    """How the stack is tuned. Defaults favour a 2-core CI box: fast pick-up, little idle CPU."""

    parallelism: int = 16
    max_active_tasks_per_dag: int = 16
    scheduler_idle_sleep_time: float = 0.5
    dag_refresh_interval: int = 2
    min_file_process_interval: int = 600
    triggerer_capacity: int = 100
    extra_env: Mapping[str, str] = field(default_factory=dict)


class AirflowClient:
    """REST API v2 client authenticated as the stack's admin (simple auth manager JWT, renewed on 401)."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._username = username
        self._password = password
        self._session = requests.Session()
        self._token: str | None = None

    def _login(self) -> str:
        response = self._session.post(
            f"{self.base_url}/auth/token",
            json={"username": self._username, "password": self._password},
            timeout=30,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def request(
        self,
        method: str,
        path: str,
        *,
        expect: Sequence[int] = (200,),
        prefix: str = "/api/v2",
        **kwargs: Any,
    ) -> Any:
        """Call `{prefix}{path}`; return the JSON body (or text); raise StackError on an unexpected status."""
        kwargs.setdefault("timeout", 30)
        for attempt in range(2):
            if self._token is None:
                self._token = self._login()
            headers = {"Authorization": f"Bearer {self._token}", **kwargs.pop("headers", {})}
            response = self._session.request(
                method, f"{self.base_url}{prefix}{path}", headers=headers, **kwargs
            )
            if response.status_code == 401 and attempt == 0:
                self._token = None
                continue
            break
        if response.status_code not in expect:
            raise StackError(
                f"{method} {prefix}{path} answered {response.status_code}: {response.text[:500]}"
            )
        if not response.content:  # 204 No Content (a DELETE) still says application/json
            return None
        if "json" in response.headers.get("content-type", ""):
            return response.json()
        return response.text

    # -- DAGs and runs -------------------------------------------------------------------------------

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/importErrors")["import_errors"])

    def wait_for_dag(self, dag_id: str, *, timeout: float = 120) -> dict[str, Any]:
        """Wait until the dag-processor has parsed `dag_id`; fail at once if its file has an import error."""

        def parsed() -> dict[str, Any] | None:
            response = self.request("GET", f"/dags/{dag_id}", expect=(200, 404))
            if isinstance(response, dict) and response.get("dag_id") == dag_id:
                return response
            errors = [e for e in self.import_errors() if dag_id in e.get("filename", "")]
            if errors:
                raise AssertionError(f"DAG {dag_id} failed to import: {errors[0].get('stack_trace')}")
            return None

        return wait_until(parsed, timeout=timeout, interval=0.5, what=f"DAG {dag_id} to be parsed")

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(
        self, dag_id: str, conf: Mapping[str, Any] | None = None, logical_date: str | None = None
    ) -> str:
        """Create a manual run now; returns its run id. Without `logical_date` the run has none (no `ds`)."""
        body = {"logical_date": logical_date, "conf": dict(conf or {})}
        run = self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)
        return str(run["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}"))

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float = 240) -> dict[str, Any]:
        """Poll the run until it is success or failed; returns the run."""

        def terminal() -> dict[str, Any] | None:
            run = self.dag_run(dag_id, run_id)
            return run if run["state"] in TERMINAL_RUN_STATES else None

        return wait_until(terminal, timeout=timeout, interval=0.5, what=f"run {dag_id}/{run_id} to finish")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """All task instances of a run, mapped ones included (one row per map index)."""
        rows: list[dict[str, Any]] = []
        while True:
            page = self.request(
                "GET",
                f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                params={"limit": 100, "offset": len(rows)},
            )
            rows.extend(page["task_instances"])
            if not page["task_instances"] or len(rows) >= page["total_entries"]:
                return rows

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        suffix = f"/{map_index}" if map_index >= 0 else ""
        return dict(self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}{suffix}"))

    # -- XCom, logs, connections ---------------------------------------------------------------------

    def xcom_entries(self, dag_id: str, run_id: str, task_id: str = "~") -> list[dict[str, Any]]:
        """XCom rows (key, task_id, map_index; no values) of one task, or of every task with '~'."""
        page = self.request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries",
            params={"limit": 1000},
        )
        return list(page["xcom_entries"])

    def xcom_value(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
    ) -> Any:
        """The stored (serialised) value of one XCom, exactly as the metadata database holds it."""
        entry = self.request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"map_index": map_index},
        )
        return entry["value"]

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> str:
        """The task's log as the UI shows it, one event per line."""
        body = self.request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"map_index": map_index, "full_content": True},
            headers={"Accept": "application/json"},
        )
        content = body.get("content", [])
        return "\n".join(json.dumps(line) if not isinstance(line, str) else line for line in content)

    def connection(self, conn_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/connections/{conn_id}"))

    def create_connection(
        self,
        conn_id: str,
        conn_type: str,
        *,
        host: str | None = None,
        password: str | None = None,
        extra: Mapping[str, Any] | None = None,
        port: int | None = None,
    ) -> None:
        """Store a connection in the metadata database, as the UI's connection form does."""
        body = {
            "connection_id": conn_id,
            "conn_type": conn_type,
            "host": host,
            "port": port,
            "password": password,
            "extra": json.dumps(dict(extra)) if extra is not None else None,
        }
        self.request("POST", "/connections", json=body, expect=(201,))


class AirflowStack:
    """api-server + scheduler + dag-processor + triggerer on SQLite with the LocalExecutor.

    Use as a context manager: `with AirflowStack(dag_files=[...], env={...}) as stack: stack.client...`.
    `dag_files` are copied into a fresh DAG folder; `env` adds variables such as AIRFLOW_CONN_* to every
    process. The temporary home (logs included) is removed on exit unless `keep_home=True`.
    """

    def __init__(
        self,
        *,
        dag_files: Sequence[Path] = (),
        env: Mapping[str, str] | None = None,
        settings: StackSettings | None = None,
        home: Path | None = None,
        keep_home: bool = False,
        startup_timeout: float = 180,
    ) -> None:
        self.settings = settings or StackSettings()
        self._own_home = home is None
        self.home = Path(home or tempfile.mkdtemp(prefix="airflow-e2e-")).resolve()
        self.keep_home = keep_home
        self.dags_folder = self.home / "dags"
        self.logs_folder = self.home / "logs"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(16)
        self.startup_timeout = startup_timeout
        self._dag_files = [Path(p) for p in dag_files]
        self._user_env = dict(env or {})
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._log_handles: list[Any] = []
        self.env = self._build_env()
        self.client = AirflowClient(self.base_url, ADMIN_USER, self.password)

    # -- configuration -------------------------------------------------------------------------------

    def _build_env(self) -> dict[str, str]:
        s = self.settings
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))
        }
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                # Every process must sign and verify the same task and UI tokens.
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs_folder),
                "AIRFLOW__CORE__PARALLELISM": str(s.parallelism),
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(s.max_active_tasks_per_dag),
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": str(s.scheduler_idle_sleep_time),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(s.dag_refresh_interval),
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(s.min_file_process_interval),
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__TRIGGERER__CAPACITY": str(s.triggerer_capacity),
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                # The UI's Test button on a connection (tests/browser, ./run-example --ui); off by default.
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "PYTHONUNBUFFERED": "1",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
            }
        )
        env.update(s.extra_env)
        env.update(self._user_env)
        return env

    @property
    def airflow_cmd(self) -> list[str]:
        return [sys.executable, "-m", "airflow"]

    # -- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> AirflowStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        self.logs_folder.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({ADMIN_USER: self.password}))
        for dag_file in self._dag_files:
            self.add_dag_file(dag_file)
        migrate = subprocess.run(
            [*self.airflow_cmd, "db", "migrate"],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            timeout=self.startup_timeout,
        )
        (self.logs_folder / "db-migrate.log").write_bytes(migrate.stdout + migrate.stderr)
        if migrate.returncode != 0:
            raise StackError(f"airflow db migrate failed; see {self.logs_folder / 'db-migrate.log'}")
        self._spawn("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.port)])
        # Task and trigger logs are files the api-server reads directly; the log-serving sidecars would
        # only bind extra ports on every interface.
        self._spawn("scheduler", ["scheduler", "--skip-serve-logs"])
        self._spawn("dag-processor", ["dag-processor"])
        self._spawn("triggerer", ["triggerer", "--skip-serve-logs"])
        wait_until(self._healthy, timeout=self.startup_timeout, interval=0.5, what="all components healthy")

    def add_dag_file(self, source: Path, name: str | None = None) -> Path:
        """Copy a DAG file into the stack's DAG folder (picked up within dag_refresh_interval)."""
        target = self.dags_folder / (name or source.name)
        shutil.copyfile(source, target)
        return target

    def _spawn(self, name: str, args: list[str]) -> None:
        log_path = self.logs_folder / f"{name}.log"
        handle = log_path.open("wb")
        self._log_handles.append(handle)
        self._processes[name] = subprocess.Popen(
            [*self.airflow_cmd, *args],
            env=self.env,
            cwd=self.home,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _healthy(self) -> bool:
        self.check_alive()
        response = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        if response.status_code != 200:
            return False
        health = response.json()
        return all(
            (health.get(part) or {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    def check_alive(self) -> None:
        """Raise StackError naming the log file if any component exited."""
        for name, process in self._processes.items():
            if process.poll() is not None:
                raise StackError(
                    f"airflow {name} exited with code {process.returncode}; "
                    f"see {self.logs_folder / (name + '.log')}:\n{self.tail_log(name)}"
                )

    def tail_log(self, name: str, lines: int = 40) -> str:
        path = self.logs_folder / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM every process group, SIGKILL what is left at the deadline; then remove the home."""
        for process in self._processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self._processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in self._processes.values():
            # Workers and task subprocesses may outlive their parent: kill the whole group regardless.
            _signal_group(process, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        self._processes.clear()
        for handle in self._log_handles:
            handle.close()
        self._log_handles.clear()
        if self._own_home and not self.keep_home:
            shutil.rmtree(self.home, ignore_errors=True)

    # -- conveniences over the client ----------------------------------------------------------------

    def run_dag(
        self,
        dag_id: str,
        conf: Mapping[str, Any] | None = None,
        *,
        timeout: float = 240,
        logical_date: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Wait for the DAG to be parsed, unpause it, trigger it and wait for a terminal state."""
        self.client.wait_for_dag(dag_id)
        self.client.unpause(dag_id)
        run_id = self.client.trigger(dag_id, conf, logical_date)
        return run_id, self.client.wait_for_run(dag_id, run_id, timeout=timeout)

    def airflow(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run an `airflow` CLI command with the stack's configuration (e.g. `config get-value ...`)."""
        return subprocess.run(
            [*self.airflow_cmd, *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def log_files(self) -> Iterator[Path]:
        """Every file under the stack's log folder: task logs, triggerer, scheduler and component logs."""
        return (path for path in self.logs_folder.rglob("*") if path.is_file())

    def failure_report(self, dag_id: str, run_id: str) -> str:
        """Task states and logs of failed task instances, for an assertion message."""
        parts = []
        for ti in self.client.task_instances(dag_id, run_id):
            parts.append(f"{ti['task_id']}[{ti['map_index']}]: {ti['state']}")
            if ti["state"] not in ("success", "skipped"):
                with contextlib.suppress(StackError):
                    log = self.client.task_log(
                        dag_id, run_id, ti["task_id"], max(ti["try_number"], 1), ti["map_index"]
                    )
                    parts.append(log[-3000:])
        return "\n".join(parts)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
