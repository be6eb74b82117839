"""The process contract that tests, benchmarks and the demo rely on."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx
import pytest

from airflow_provider_openrouter.emulator.config import SPECS
from airflow_provider_openrouter.emulator.testing import running_emulator, stop_process

MODULE = [sys.executable, "-m", "airflow_provider_openrouter.emulator"]


def test_help_documents_every_flag_the_keys_and_the_stats_endpoint() -> None:
    result = subprocess.run([*MODULE, "--help"], capture_output=True, text=True, timeout=60, check=True)
    for spec in SPECS:
        if spec.cli:
            assert "--" + spec.name.replace("_", "-") in result.stdout
    for flag in ("--host", "--port", "--log-level"):
        assert flag in result.stdout
    assert "sk-or-mgmt-" in result.stdout
    assert "/__emulator/stats" in result.stdout
    assert "[[emulator:" in result.stdout


def test_console_script_is_the_same_entry_point() -> None:
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "openrouter-emulator"]
    assert script.value == "airflow_provider_openrouter.emulator.__main__:main"


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_port_zero_prints_the_listening_line_first_and_a_signal_stops_with_exit_code_0(
    stop_signal: int,
) -> None:
    process = subprocess.Popen(
        [*MODULE, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
        base_url = line.split()[-1]
        assert base_url.endswith("/api/v1")
        port = int(base_url.split(":")[2].split("/")[0])
        assert port > 0
        assert httpx.get(base_url + "/providers", trust_env=False).status_code == 200
        process.send_signal(stop_signal)
        assert process.wait(timeout=20) == 0
    finally:
        stop_process(process)  # type: ignore[arg-type]


def test_a_bad_flag_value_exits_2_with_a_one_line_reason() -> None:
    result = subprocess.run([*MODULE, "--fault-rate", "1.5"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "fault_rate: expected a number from 0 to 1" in result.stderr


def test_api_key_flag_restricts_inference_keys_and_running_emulator_reports_it() -> None:
    with running_emulator("--api-key", "sk-or-only-this-one", "--credits", "7") as emulator:
        assert emulator.api_key == "sk-or-only-this-one"
        body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(base_url=emulator.base_url, trust_env=False) as client:
            ok = client.post(
                "/chat/completions", json=body, headers={"Authorization": f"Bearer {emulator.api_key}"}
            )
            other = client.post(
                "/chat/completions", json=body, headers={"Authorization": "Bearer sk-or-other"}
            )
        assert ok.status_code == 200
        assert other.status_code == 401
        assert other.json()["error"] == {"code": 401, "message": "User not found."}
        assert emulator.configure()["credits"] == "7"
        conn = json.loads(emulator.conn_uri(default_model="openai/gpt-4o"))
        assert conn == {
            "conn_type": "openrouter",
            "host": emulator.base_url,
            "password": "sk-or-only-this-one",
            "extra": {"default_model": "openai/gpt-4o"},
        }
        assert emulator.airflow_conn_env("my_conn") == {"AIRFLOW_CONN_MY_CONN": emulator.conn_uri()}
    assert emulator.process.returncode == 0


def test_running_emulator_reports_a_start_failure_with_stderr() -> None:
    from airflow_provider_openrouter.emulator.testing import EmulatorStartError

    with (
        pytest.raises(EmulatorStartError, match=r"(?s)exited with code 2.*credits: expected an amount"),
        running_emulator("--credits", "x"),
    ):
        pass
