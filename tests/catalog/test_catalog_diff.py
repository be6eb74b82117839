"""The diff of price fields the emulator does not let a test change (it models prompt and completion prices
only): a per-request fee that appears, a cache-read price that disappears, an unchanged zero (pure units)."""

from __future__ import annotations

from decimal import Decimal

from airflow_provider_openrouter.catalog.diff import diff_snapshots
from airflow_provider_openrouter.catalog.snapshot import CatalogEntry, Snapshot

MODEL = "acme/model-1"


def snapshot(at: str, **pricing: str) -> Snapshot:
    entry = CatalogEntry(id=MODEL, model=MODEL, pricing={k: Decimal(v) for k, v in pricing.items()})
    return Snapshot(watch="w", snapshot_at=at, entries={MODEL: entry})


def test_a_fee_that_appears_is_a_flagged_rise_and_a_price_that_goes_is_a_cut() -> None:
    before = snapshot("1", prompt="0.000001", request="0", input_cache_read="0.0000005", image="0")
    after = snapshot("2", prompt="0.000001", request="0.002", image="0")

    diff = diff_snapshots(before, after, rise_threshold_percent=Decimal(1000))

    by_field = {change.field: change for change in diff.price_changes}
    assert set(by_field) == {"request", "input_cache_read"}  # prompt and image did not move
    fee = by_field["request"]
    assert (fee.old, fee.new, fee.ratio, fee.change_percent) == (0, Decimal("0.002"), None, None)
    assert fee.direction == "rise" and fee.flagged  # a rise from nothing passes any threshold
    gone = by_field["input_cache_read"]
    assert (gone.old, gone.new, gone.direction, gone.flagged) == (Decimal("0.0000005"), None, "cut", False)
    assert diff.flagged_rises == 1
    assert diff.model_dump(mode="json")["price_changes"][0]["new"] is None  # input_cache_read sorts first


def test_first_snapshot_compares_nothing() -> None:
    diff = diff_snapshots(None, snapshot("1", prompt="0.000001"))

    assert (
        diff.first_snapshot and not diff.changed and diff.watched == 1 and diff.previous_snapshot_at is None
    )
