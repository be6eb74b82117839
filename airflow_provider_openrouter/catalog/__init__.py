"""A watch on OpenRouter's model catalog: snapshots of ``GET /models`` (and model endpoints) kept in SQL or a
file, and the typed diff between two snapshots. See docs/catalog.md."""

from airflow_provider_openrouter.catalog.diff import CatalogDiff, ContextChange, PriceChange
from airflow_provider_openrouter.catalog.snapshot import CatalogEntry, CatalogError, Snapshot, Watch

__all__ = [
    "CatalogDiff",
    "CatalogEntry",
    "CatalogError",
    "ContextChange",
    "PriceChange",
    "Snapshot",
    "Watch",
]
