"""Bad watch settings fail with one clear line, before any request (pure units, no emulator)."""

from __future__ import annotations

import pytest

from airflow_provider_openrouter.catalog.snapshot import CatalogError, Watch
from airflow_provider_openrouter.exceptions import OpenRouterRequestError
from airflow_provider_openrouter.operators.catalog import OpenRouterModelCatalogOperator, change_alias


def test_ids_and_prefixes_select_models() -> None:
    watch = Watch(["openai/gpt-4o", "anthropic/claude-*", "google/"])

    chosen = [
        model
        for model in (
            "openai/gpt-4o",
            "openai/gpt-4o-mini",
            "anthropic/claude-3.5-haiku",
            "google/gemma",
            "x/y",
        )
        if watch.matches(model)
    ]

    assert chosen == ["openai/gpt-4o", "anthropic/claude-3.5-haiku", "google/gemma"]
    assert Watch(None).matches("any/model")
    assert watch.missing(["openai/gpt-4o-mini"]) == ["openai/gpt-4o"]


@pytest.mark.parametrize("pattern", ["", "*", "open*ai/gpt", 7])
def test_unusable_pattern_is_named(pattern: object) -> None:
    with pytest.raises(CatalogError, match="models: "):
        Watch([pattern])  # type: ignore[list-item]


@pytest.mark.parametrize("value", ["-5", "ten", "nan", True])
def test_threshold_must_be_a_percentage(value: object) -> None:
    operator = OpenRouterModelCatalogOperator(task_id="watch", rise_threshold_percent=value)  # type: ignore[arg-type]

    with pytest.raises(OpenRouterRequestError, match="rise_threshold_percent"):
        operator._threshold()


def test_threshold_accepts_a_percent_sign() -> None:
    operator = OpenRouterModelCatalogOperator(task_id="watch", rise_threshold_percent="12.5%")

    assert str(operator._threshold()) == "12.5"


def test_one_store_only() -> None:
    with pytest.raises(OpenRouterRequestError, match="output_path"):
        OpenRouterModelCatalogOperator(task_id="watch", sql_conn_id="db", output_path="/tmp/c.jsonl")


def test_asset_is_emitted_through_its_alias_and_user_outlets_are_kept() -> None:
    from airflow.sdk import Asset

    mine = Asset("s3://bucket/catalog")
    operator = OpenRouterModelCatalogOperator(
        task_id="watch", asset="openrouter://catalog/openai", outlets=[mine]
    )
    silent = OpenRouterModelCatalogOperator(task_id="silent", asset=None)

    assert operator.outlets == [mine, change_alias(Asset("openrouter://catalog/openai"))]
    assert silent.outlets == []


def test_example_consumer_is_scheduled_on_the_asset_the_sync_emits() -> None:
    import runpy
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "example_dags" / "example_openrouter_catalog_sync.py"
    names = runpy.run_path(str(example))
    sync = names["example_openrouter_catalog_sync"]().task_dict["sync"]
    consumer = names["example_openrouter_price_watch"]()

    assert list(consumer.timetable.asset_condition.objects) == [sync.asset]
    assert sync.outlets == [change_alias(sync.asset)]


def test_own_asset_in_outlets_is_refused() -> None:
    from airflow.sdk import Asset

    with pytest.raises(OpenRouterRequestError, match="outlets"):
        OpenRouterModelCatalogOperator(
            task_id="watch", asset="openrouter://catalog", outlets=[Asset("openrouter://catalog")]
        )
