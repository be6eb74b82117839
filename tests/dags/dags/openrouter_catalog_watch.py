"""The catalog watch around a price change, and a DAG scheduled on its Asset (tests/dags/test_catalog_dag.py).

``before`` snapshots one model, ``change_price`` sets its pricing in the emulator (admin endpoint, URL from
``params.emulator``), ``after`` snapshots it again under the same watch name and emits the Asset with the
diff.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from airflow.sdk import Asset, dag, task

from airflow_provider_openrouter.operators.catalog import OpenRouterModelCatalogOperator

WATCHED = Asset("openrouter://catalog/dag-test")


@dag(schedule=None, catchup=False, params={"emulator": "", "model": "openai/gpt-4o-mini", "pricing": {}})
def openrouter_catalog_watch() -> None:
    def watch(task_id: str) -> OpenRouterModelCatalogOperator:
        return OpenRouterModelCatalogOperator(
            task_id=task_id,
            models=["{{ params.model }}"],
            watch_name="dag-test",
            rise_threshold_percent=10,
            asset=WATCHED,
        )

    @task
    def change_price(params: dict[str, Any] | None = None) -> None:
        assert params is not None
        request = urllib.request.Request(
            f"{params['emulator']}/__emulator/models/{params['model']}",
            data=json.dumps({"pricing": params["pricing"]}).encode(),
            method="PATCH",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=30):
            pass

    watch("before") >> change_price() >> watch("after")


@dag(schedule=[WATCHED], catchup=False)
def openrouter_catalog_consumer() -> None:
    @task
    def react(triggering_asset_events: Any = None) -> None:
        print(triggering_asset_events)

    react()


openrouter_catalog_watch()
openrouter_catalog_consumer()
