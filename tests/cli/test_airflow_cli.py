"""Acceptance through the airflow CLI: provider discovery and the connection test against the emulator."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

from dag_harness import API_KEY, EXAMPLE_DAGS, airflow_base_env, openrouter_connection, run_airflow

import airflow_provider_openrouter

# `airflow connections test` exits 1 on a failed test from Airflow 3.3 on; 3.1 and 3.2 print
# "Connection failed!" and exit 0.
AIRFLOW_MINOR = tuple(int(part) for part in version("apache-airflow-core").split(".")[:2])
CLI_EXITS_NON_ZERO_ON_A_FAILED_TEST = AIRFLOW_MINOR >= (3, 3)


def cli_env(home: Path, **connections: str) -> dict[str, str]:
    env = airflow_base_env(home, EXAMPLE_DAGS)
    env["AIRFLOW__CORE__TEST_CONNECTION"] = "Enabled"
    env.update({f"AIRFLOW_CONN_{conn_id.upper()}": uri for conn_id, uri in connections.items()})
    return env


def test_providers_list_shows_the_provider_and_its_version(tmp_path: Path) -> None:
    done = run_airflow(cli_env(tmp_path), "providers", "list", "--output", "plain")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split() for line in done.stdout.splitlines() if "airflow-provider-openrouter" in line]
    assert rows, done.stdout[-3000:]
    assert airflow_provider_openrouter.__version__ in rows[0]


def test_providers_hooks_shows_the_openrouter_connection_type(tmp_path: Path) -> None:
    done = run_airflow(cli_env(tmp_path), "providers", "hooks", "--output", "plain")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split() for line in done.stdout.splitlines() if line.split()[:1] == ["openrouter"]]
    assert rows, done.stdout[-3000:]
    assert "airflow_provider_openrouter.hooks.openrouter.OpenRouterHook" in rows[0]


def test_connection_test_passes_against_the_emulator(tmp_path: Path, emulator: Any) -> None:
    env = cli_env(tmp_path, openrouter_default=openrouter_connection(emulator.base_url, API_KEY))
    done = run_airflow(env, "connections", "test", "openrouter_default")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Connection success!" in done.stdout


def test_connection_test_with_a_rejected_key_fails_naming_the_connection_not_the_key(
    tmp_path: Path, emulator: Any
) -> None:
    wrong_key = "sk-or-v1-clitestwrongkeywrongkeywrongkeywrongkeywrongkeywrong0004"
    env = cli_env(tmp_path, openrouter_default=openrouter_connection(emulator.base_url, wrong_key))
    done = run_airflow(env, "connections", "test", "openrouter_default")
    output = done.stdout + done.stderr
    if CLI_EXITS_NON_ZERO_ON_A_FAILED_TEST:
        assert done.returncode != 0
    assert "Connection failed!" in output
    assert "openrouter_default" in output.split("Connection failed!", 1)[1]
    assert wrong_key not in output
