"""One catalog sync: snapshot the watched models, diff against the watch's previous snapshot, keep the new
one."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from airflow_provider_openrouter.catalog.diff import CatalogDiff, diff_snapshots
from airflow_provider_openrouter.catalog.snapshot import Watch, take_snapshot
from airflow_provider_openrouter.catalog.store import SnapshotStore


def sync_catalog(
    hook: Any,
    store: SnapshotStore,
    *,
    watch: str,
    models: list[str] | None = None,
    endpoints: bool = False,
    filters: Mapping[str, Any] | None = None,
    rise_threshold_percent: Decimal = Decimal(0),
) -> CatalogDiff:
    """Snapshot, diff and store; the snapshot is stored only after the catalog was read whole, so a failed
    request leaves the previous snapshot as the reference of the next run."""
    watched = Watch(models)
    previous = store.previous(watch)
    current = take_snapshot(hook, watched, name=watch, endpoints=endpoints, filters=filters)
    diff = diff_snapshots(
        previous,
        current,
        rise_threshold_percent=rise_threshold_percent,
        not_listed=watched.missing(entry.model for entry in current.entries.values()),
    )
    store.save(current)
    return diff.model_copy(update={"stored_in": store.description})
