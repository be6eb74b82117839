"""`./run-example --ui`, the demo that stays up: it reaches successful runs of the chain and cost audit
examples with the UI serving, prints paths that exist (logs, the cost report), stops every process it
started on Ctrl-C, and works a second time in the same home.

The demo runs exactly as a user starts it (the README's command, in its own session like a terminal job);
Ctrl-C is SIGINT to its whole process group, which is what a terminal sends.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path

import psutil
import pytest
import requests

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
READY = "Ready:"


def _read_until_ready(demo: subprocess.Popen[str]) -> list[str]:
    """The demo's output up to its ready line; fails with the whole output if it exits first."""
    assert demo.stdout is not None
    lines: list[str] = []
    for line in demo.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith(READY):
            return lines
    demo.wait()
    pytest.fail(f"the demo exited ({demo.returncode}) before its ready line:\n" + "\n".join(lines))


def _printed(lines: list[str], label: str) -> str:
    """The value printed after `label:` (e.g. 'task logs    : /path')."""
    for line in lines:
        match = re.match(rf"\s*{re.escape(label)}\s*:\s*(.+)$", line)
        if match:
            return match.group(1).strip()
    pytest.fail(f"the demo printed no {label!r} line:\n" + "\n".join(lines))


def _ended(process: psutil.Process) -> bool:
    # The container's init may not reap orphans: a zombie has ended all the same.
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _cmdline(process: psutil.Process) -> list[str]:
    # A task process may end between listing and reading it.
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _run_demo_once(home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENROUTER_API_KEY"}
    demo = subprocess.Popen(
        ["./run-example", "--ui", "--home", str(home)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    children: list[psutil.Process] = []
    try:
        lines = _read_until_ready(demo)
        output = "\n".join(lines)
        assert "example_openrouter_chain succeeded against the bundled emulator" in output, output

        ready = lines[-1]
        ui = re.search(r"(http://127\.0\.0\.1:\d+)", ready)
        login = re.search(r"login: (\w+) / (\S+)\)", ready)
        assert ui and login, ready
        assert "example_openrouter_cost_audit" in output, output
        for label in ("component logs", "task logs", "cost report", "cost records", "database"):
            path = Path(_printed(lines, label))
            assert path.exists(), f"{label}: {path} does not exist"
            assert path.is_relative_to(home), path
        assert any(Path(_printed(lines, "task logs")).rglob("*.log")), "no task log under the printed folder"

        # The UI answers, and the printed login works against it.
        page = requests.get(ui.group(1), timeout=30)
        assert page.status_code == 200 and "<html" in page.text.lower(), page.status_code
        token = requests.post(
            f"{ui.group(1)}/auth/token",
            json={"username": login.group(1), "password": login.group(2)},
            timeout=30,
        )
        assert token.status_code in (200, 201), token.text
        run_url = _printed(lines, "the run")
        run_id = run_url.rsplit("/runs/", 1)[1]
        run = requests.get(
            f"{ui.group(1)}/api/v2/dags/example_openrouter_chain/dagRuns/{run_id}",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            timeout=30,
        )
        assert run.json()["state"] == "success", run.text

        children = [c for c in psutil.Process(demo.pid).children(recursive=True) if not _ended(c)]
        names = " ".join(" ".join(_cmdline(c)) for c in children)
        for component in ("api-server", "scheduler", "dag-processor", "triggerer", "emulator"):
            assert component in names or component.replace("-", "_") in names, (component, names)

        os.killpg(demo.pid, signal.SIGINT)
        rest, _ = demo.communicate(timeout=120)
        assert demo.returncode == 0, rest
        assert "stopped every process the demo started" in rest, rest
        _, alive = psutil.wait_procs(children, timeout=30)
        still_running = [p for p in alive if not _ended(p)]
        assert not still_running, [" ".join(_cmdline(p)) for p in still_running]
    finally:
        if demo.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        for child in children:
            # psutil checks the process's start time first, so a reused pid is never hit.
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def test_demo_serves_a_successful_run_stops_on_ctrl_c_and_runs_again(tmp_path: Path) -> None:
    home = tmp_path / "airflow-demo"
    _run_demo_once(home)
    # The second run finds the first one's database, connection and DAG run in the same home.
    _run_demo_once(home)
