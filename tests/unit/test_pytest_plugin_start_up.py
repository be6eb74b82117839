"""The pytest plugin is loaded by every pytest run of a project that installs the provider: loading it must
import nothing beyond pytest itself (the emulator, Airflow and the HTTP stack load only when a fixture
runs)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_loading_the_plugin_imports_only_its_own_package() -> None:
    probe = (
        "import json, sys; import pytest; before = set(sys.modules); "
        "import airflow_provider_openrouter.emulator.pytest_plugin; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    )
    assert loaded == [
        "airflow_provider_openrouter",
        "airflow_provider_openrouter.emulator",
        "airflow_provider_openrouter.emulator.pytest_plugin",
    ]
