"""common-ai and pydantic-ai are optional (the ``common-ai`` extra): without them the provider imports, the
decorator and structured outputs work, and the interop says what to install.

One fresh interpreter in which both packages cannot be imported, whether or not this environment has them
(the lowest-Airflow step has neither).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_PROBE = textwrap.dedent(
    """
    import importlib.abc, json, sys

    # Airflow's provider discovery reads an installed common-ai's metadata module; everything else of it goes.
    ALLOWED = ("airflow.providers.common.ai", "airflow.providers.common.ai.get_provider_info")

    def blocked(name):
        return name not in ALLOWED and name.startswith(("pydantic_ai", "airflow.providers.common.ai"))

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if blocked(name):
                raise ImportError(f"No module named {name!r} (blocked)")
            return None

    sys.meta_path.insert(0, Block())
    import airflow_provider_openrouter as provider
    for name in provider.__all__:
        getattr(provider, name)
    from airflow_provider_openrouter.hooks import OpenRouterHook
    from airflow_provider_openrouter.structured import response_format_for
    from airflow_provider_openrouter.decorators.openrouter import openrouter_task

    hook = OpenRouterHook.__new__(OpenRouterHook)
    try:
        hook.get_pydantic_ai_model("openai/gpt-4o-mini")
    except ImportError as err:
        message = str(err)
    loaded = sorted(name for name in sys.modules if blocked(name))
    print(json.dumps({"message": message, "loaded": loaded}))
    """
)


def test_the_provider_imports_without_common_ai_and_the_interop_names_the_extra() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert "pip install 'airflow-provider-openrouter[common-ai]'" in out["message"]
    assert "\n" not in out["message"]
