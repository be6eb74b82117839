"""pytest fixtures to test DAGs and code against the emulator (registered by the ``pytest11`` entry point).

* ``openrouter_emulator`` (session): one emulator process for the whole run, a
  :class:`~airflow_provider_openrouter.emulator.testing.RunningEmulator`.
* ``openrouter_emulator_clean`` (function): the same emulator, reset before the test.
* ``openrouter_airflow_conn`` (function): the clean emulator, with ``AIRFLOW_CONN_OPENROUTER_DEFAULT`` set to
  a connection that points at it.

The emulator runs with its defaults, which follow OpenRouter: generation stats, for one, answer 404 until
0.5 s after the completion. Extra emulator flags come from the ini option ``openrouter_emulator_args``. This
module imports nothing heavy: it is loaded in every pytest run of a project that installs the provider.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_openrouter.emulator.testing import RunningEmulator


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "openrouter_emulator_args",
        type="args",
        default=[],
        help="Extra openrouter-emulator flags for the openrouter_emulator fixture, e.g. --credits 5",
    )


@pytest.fixture(scope="session")
def openrouter_emulator(pytestconfig: pytest.Config) -> Iterator[RunningEmulator]:
    from airflow_provider_openrouter.emulator.testing import running_emulator

    with running_emulator(*pytestconfig.getini("openrouter_emulator_args")) as emulator:
        yield emulator


@pytest.fixture
def openrouter_emulator_clean(openrouter_emulator: RunningEmulator) -> RunningEmulator:
    openrouter_emulator.reset()
    return openrouter_emulator


@pytest.fixture
def openrouter_airflow_conn(
    openrouter_emulator_clean: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> RunningEmulator:
    for name, value in openrouter_emulator_clean.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    return openrouter_emulator_clean
