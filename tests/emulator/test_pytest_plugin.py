"""The pytest fixtures the package registers for its users."""

from __future__ import annotations

import json
import os

import httpx

from airflow_provider_openrouter.emulator.testing import RunningEmulator


def test_openrouter_airflow_conn_points_the_default_connection_at_a_clean_emulator(
    openrouter_airflow_conn: RunningEmulator,
) -> None:
    connection = json.loads(os.environ["AIRFLOW_CONN_OPENROUTER_DEFAULT"])
    assert connection["conn_type"] == "openrouter"
    assert connection["host"] == openrouter_airflow_conn.base_url
    response = httpx.get(
        connection["host"] + "/key",
        headers={"Authorization": f"Bearer {connection['password']}"},
        trust_env=False,
    )
    assert response.status_code == 200
    assert openrouter_airflow_conn.stats()["requests"] == {"GET /key": {"200": 1}}


def test_the_session_emulator_is_shared_and_clean_resets_it(
    openrouter_emulator: RunningEmulator, openrouter_emulator_clean: RunningEmulator
) -> None:
    assert openrouter_emulator is openrouter_emulator_clean
    assert openrouter_emulator.stats()["requests_total"] == 0
