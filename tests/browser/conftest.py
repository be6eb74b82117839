"""Browser checks of the Airflow UI: headless Chromium from Debian's packages, driven by Playwright.

Playwright (not Selenium): its locators wait for the React UI by themselves (no sleeps, no explicit waits),
find elements the way a user does (by role and label), and it drives any Chromium build through
``executable_path``; only its Python package is installed, never its own browser download.

Chromium is /usr/bin/chromium (`.ci/run` installs Debian's `chromium` when it is missing). Without it the
tests skip on a developer's machine and FAIL in CI (CI=true): a CI image without a browser cannot pass.

One Airflow deployment (benchmarks/airflow_stack.py) serves the module's tests, with the chain example and its
connection from the environment. Screenshots go to test-artifacts/browser/ (gitignored), one per checked view.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chromium_launch import CHROMIUM, LAUNCH_ARGS, require_chromium

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
# A distinctive key, so that a leak onto a page is unmistakable.
API_KEY = "sk-or-v1-b40a5e40b40a5e40b40a5e40b40a5e40b40a5e40b40a5e40b40a5e40b40a5e4"
CHAIN_DAG = "example_openrouter_chain"


def _harness() -> Any:
    if "airflow_stack" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "airflow_stack", REPO / "benchmarks" / "airflow_stack.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["airflow_stack"] = module
        spec.loader.exec_module(module)
    return sys.modules["airflow_stack"]


# Module scope, not session: Playwright's sync API keeps an asyncio loop running in the main thread while
# it is open, and later tests that call asyncio.run() (triggers) or start Playwright again would fail.
@pytest.fixture(scope="module")
def browser_emulator() -> Iterator[Any]:
    from airflow_provider_openrouter.emulator.testing import running_emulator

    with running_emulator("--api-key", API_KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def ui_stack(browser_emulator: Any) -> Iterator[Any]:
    env = browser_emulator.airflow_conn_env("openrouter_default", requests_per_minute=0)
    stack = _harness().AirflowStack(dag_files=[REPO / "example_dags" / f"{CHAIN_DAG}.py"], env=env)
    with stack:
        yield stack


@pytest.fixture(scope="module")
def chain_run(ui_stack: Any) -> str:
    """The run id of a finished, successful run of the chain example."""
    run_id, run = ui_stack.run_dag(CHAIN_DAG)
    assert run["state"] == "success", ui_stack.failure_report(CHAIN_DAG, run_id)
    return str(run_id)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any, ui_stack: Any) -> Iterator[Any]:
    """A fresh browser context, logged in to the Airflow UI through its login form (simple auth manager)."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000}, base_url=ui_stack.base_url)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto("/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ui_stack.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{ui_stack.base_url}/")
    yield page
    context.close()


@pytest.fixture
def screenshot(page: Any) -> Any:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(name: str, **kwargs: Any) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), **kwargs)
        return path

    return take
