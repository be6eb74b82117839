"""Daily catalog sync that flags price rises, and a DAG scheduled on "the price of my model changed".

``example_openrouter_catalog_sync`` (daily):

1. ``sync`` snapshots the OpenAI and Anthropic models of ``GET /models`` into the table
   ``openrouter_model_catalog`` (the embedded SQLite file ``$AIRFLOW_HOME/openrouter_catalog.db``; pass
   ``sql_conn_id`` for a shared database) and compares them with yesterday's snapshot. Its XCom is a
   ``CatalogDiff``: models added and removed, every price that rose or fell (old, new, ratio), context
   changes; rises above 5 % are ``flagged``. When anything changed, it emits the Asset
   ``openrouter://catalog/daily`` with the diff in the event's ``extra``.
2. ``report`` reads the typed diff and prints the flagged rises (an alert would go there).

``example_openrouter_price_watch`` runs whenever that Asset gets an event, and reads the diff from the
event's ``extra`` (plain JSON: prices as decimal strings).

Connection: ``openrouter_default``. See docs/catalog.md.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, dag, task

from airflow_provider_openrouter.catalog.diff import CatalogDiff
from airflow_provider_openrouter.models import plain_decimal
from airflow_provider_openrouter.operators.catalog import OpenRouterModelCatalogOperator

PRICES = Asset("openrouter://catalog/daily")


@dag(schedule="@daily", catchup=False, tags=["openrouter", "example", "catalog"])
def example_openrouter_catalog_sync() -> None:
    sync = OpenRouterModelCatalogOperator(
        task_id="sync",
        models=["openai/*", "anthropic/*"],
        rise_threshold_percent=5,
        asset=PRICES,
        emit_when="changed",
    )

    @task
    def report(diff: CatalogDiff) -> int:
        """Reads the typed diff: where an alert on flagged rises would go."""
        for rise in diff.rises(flagged_only=True):
            percent = "new" if rise.change_percent is None else f"+{plain_decimal(rise.change_percent)} %"
            print(f"price rise: {rise.id} {rise.field} {rise.old} -> {rise.new} ({percent})")
        for model in diff.removed:
            print(f"removed from the catalog: {model.id}")
        return diff.flagged_rises

    report(sync.output)


@dag(schedule=[PRICES], catchup=False, tags=["openrouter", "example", "catalog"])
def example_openrouter_price_watch() -> None:
    @task
    def react(triggering_asset_events: Any = None) -> list[str]:
        """The diff arrives as the event's extra (JSON): list what rose above the threshold."""
        flagged = []
        for events in (triggering_asset_events or {}).values():
            for event in events:
                for change in event.extra.get("price_changes", []):
                    if change["flagged"]:
                        old, new = change["old"], change["new"]
                        flagged.append(f"{change['id']} {change['field']}: {old} -> {new}")
        print("\n".join(flagged) or "no flagged rise")
        return flagged

    react()


example_openrouter_catalog_sync()
example_openrouter_price_watch()
