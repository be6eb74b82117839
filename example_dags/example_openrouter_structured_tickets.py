"""Support tickets -> typed records (``output_type``) -> a SQLite table.

Each ticket is one mapped chat completion whose answer must validate into ``TicketRecord``; the load task
receives ``TicketRecord`` instances (not dicts) and writes them, with each answer's cost and generation id,
to ``tickets.sqlite`` in ``$AIRFLOW_HOME`` (param ``sqlite_path`` to change it). Connection:
``openrouter_default``.

The class is defined at module scope, as XCom needs: a downstream task re-imports it by name.
"""

from __future__ import annotations

import os
import sqlite3
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from airflow.sdk import dag, task
from pydantic import BaseModel, Field

from airflow_provider_openrouter.operators import OpenRouterChatCompletionOperator

TICKETS = [
    "Order 1182 arrived with a cracked screen. I want a replacement before Friday.",
    "How do I export my invoices as CSV? The button in settings does nothing.",
    "Your app charged my card twice for the March subscription. Please refund one.",
]


class Category(StrEnum):
    billing = "billing"
    shipping = "shipping"
    product = "product"
    how_to = "how_to"


class TicketRecord(BaseModel):
    """One support ticket as a row: what the model must return."""

    category: Category
    urgent: bool = Field(description="true when the customer names a deadline or money is at stake")
    summary: str = Field(description="one sentence")


@dag(
    schedule=None,
    catchup=False,
    tags=["openrouter", "example", "structured"],
    params={"model": "openai/gpt-4o-mini", "sqlite_path": ""},
)
def example_openrouter_structured_tickets() -> None:
    extract = OpenRouterChatCompletionOperator.partial(
        task_id="extract",
        model="{{ params.model }}",
        system_prompt="Turn the customer's support ticket into a record.",
        output_type=TicketRecord,
        max_tokens=300,
        temperature=0,
    ).expand(content=TICKETS)

    @task
    def load(
        records: list[TicketRecord], generation_ids: list[str], costs: list[Decimal], params: dict
    ) -> int:
        path = params["sqlite_path"] or str(Path(os.environ.get("AIRFLOW_HOME", ".")) / "tickets.sqlite")
        rows = []
        for ticket, record, generation_id, cost in zip(TICKETS, records, generation_ids, costs, strict=True):
            rows.append(
                (ticket, record.category.value, record.urgent, record.summary, generation_id, str(cost))
            )
        with sqlite3.connect(path) as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS tickets (ticket TEXT, category TEXT, urgent INTEGER, "
                "summary TEXT, generation_id TEXT PRIMARY KEY, cost_usd TEXT)"
            )
            db.executemany("INSERT OR REPLACE INTO tickets VALUES (?, ?, ?, ?, ?, ?)", rows)
        kinds = "/".join(sorted({type(record).__name__ for record in records}))
        print(f"loaded {len(rows)} {kinds} records into {path}")
        return len(rows)

    load(extract.output, extract.output["generation_id"], extract.output["cost"])


example_openrouter_structured_tickets()
