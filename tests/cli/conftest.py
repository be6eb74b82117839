"""Fixtures of the airflow CLI acceptance tests; they reuse the DAG tests' harness (tests/dags)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# tests/ is not a package (pytest's default "prepend" import mode), so the sibling harness is put on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dags"))

from dag_harness import API_KEY


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    from airflow_provider_openrouter.emulator.testing import running_emulator

    with running_emulator("--api-key", API_KEY) as running:
        yield running
