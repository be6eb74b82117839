"""The model catalog: list the models that take tools, then the provider endpoints of one model.

Both calls are free GETs. The full catalog is large: filter it server-side (as here), or write it to object
storage with ``output_path`` and keep only a manifest in XCom.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from airflow_provider_openrouter.models import ModelEndpoints, ModelList
from airflow_provider_openrouter.operators import (
    OpenRouterListModelEndpointsOperator,
    OpenRouterListModelsOperator,
)


@dag(schedule=None, catchup=False, tags=["openrouter", "example"], params={"model": "openai/gpt-4o-mini"})
def example_openrouter_models() -> None:
    catalog = OpenRouterListModelsOperator(
        task_id="list_models",
        supported_parameters=["tools"],
        output_modalities=["text"],
    )
    endpoints = OpenRouterListModelEndpointsOperator(task_id="list_endpoints", model="{{ params.model }}")

    @task
    def summarise(models: ModelList, model_endpoints: ModelEndpoints) -> None:
        assert models.data, "no model takes tools"
        for model in models.data:
            assert model.supports("tools"), f"{model.id} was listed but does not take tools"
        print(f"{len(models.data)} models take tools, e.g. {', '.join(models.ids[:5])}")
        for endpoint in model_endpoints.endpoints:
            prompt_price = endpoint.pricing.prompt if endpoint.pricing else None
            print(
                f"{model_endpoints.id} via {endpoint.provider_name}: context {endpoint.context_length}, "
                f"{prompt_price} USD per prompt token"
            )
        cheapest = model_endpoints.cheapest_endpoint()
        assert cheapest is not None, f"{model_endpoints.id} has no priced endpoint"
        print(f"cheapest endpoint: {cheapest.provider_name}")

    summarise(catalog.output, endpoints.output)


example_openrouter_models()
