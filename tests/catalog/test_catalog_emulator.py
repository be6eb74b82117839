"""The catalog watch against the emulator: prices, models and context limits changed through its admin
endpoints show in the typed diff; snapshots kept in a real SQLite file (Airflow connection) or a file."""

from __future__ import annotations

import json
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_openrouter.catalog.diff import CatalogDiff
from airflow_provider_openrouter.catalog.store import FileSnapshotStore, SqlSnapshotStore
from airflow_provider_openrouter.catalog.sync import sync_catalog
from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.hooks import OpenRouterHook

RISER = "openai/gpt-4o-mini"
CUT = "anthropic/claude-3.5-haiku"
GONE = "mistralai/mistral-nemo"
NEW = "mistralai/mistral-emulated-7b"


def wire_models(emulator: RunningEmulator) -> dict[str, dict[str, Any]]:
    """``GET /models`` as JSON, read without the provider's code: the prices the test starts from."""
    request = urllib.request.Request(
        f"{emulator.base_url}/models?output_modalities=all",
        headers={"Authorization": f"Bearer {emulator.api_key}"},
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=30) as answer:
        return {model["id"]: model for model in json.loads(answer.read())["data"]}


def sync(hook: OpenRouterHook, store: Any, models: list[str], threshold: str = "0") -> CatalogDiff:
    return sync_catalog(hook, store, watch="test", models=models, rise_threshold_percent=Decimal(threshold))


def text(value: Decimal) -> str:
    return format(value, "f")


def test_second_run_without_change_is_empty(hook: OpenRouterHook, sqlite_conn: str) -> None:
    store = SqlSnapshotStore.open(sqlite_conn)

    first = sync(hook, store, ["openai/*", CUT])
    second = sync(hook, store, ["openai/*", CUT])

    assert first.first_snapshot and not first.changed
    assert first.watched == second.watched > 1
    assert not second.first_snapshot
    assert second.previous_snapshot_at == first.snapshot_at
    assert (second.added, second.removed, second.price_changes, second.context_changes) == ([], [], [], [])
    assert not second.changed and second.flagged_rises == 0


def test_price_rise_and_cut_in_the_typed_diff(
    hook: OpenRouterHook, emulator: RunningEmulator, sqlite_conn: str
) -> None:
    store = SqlSnapshotStore.open(sqlite_conn)
    before = wire_models(emulator)
    riser = {field: Decimal(price) for field, price in before[RISER]["pricing"].items()}
    cut = {field: Decimal(price) for field, price in before[CUT]["pricing"].items()}
    sync(hook, store, [RISER, CUT], threshold="50")

    prompt, completion = riser["prompt"] * 3, riser["completion"] * Decimal("1.1")
    halved = cut["completion"] / 2
    emulator.update_model(RISER, pricing={"prompt": text(prompt), "completion": text(completion)})
    emulator.update_model(CUT, pricing={"completion": text(halved)})
    diff = sync(hook, store, [RISER, CUT], threshold="50")

    found = {(c.id, c.field): c for c in diff.price_changes}
    assert set(found) == {(RISER, "prompt"), (RISER, "completion"), (CUT, "completion")}
    rise = found[RISER, "prompt"]
    assert (rise.old, rise.new, rise.ratio, rise.change_percent) == (riser["prompt"], prompt, 3, 200)
    assert rise.direction == "rise" and rise.flagged  # +200 % is above the 50 % threshold
    small = found[RISER, "completion"]
    assert (small.old, small.new, small.ratio, small.change_percent) == (
        riser["completion"],
        completion,
        Decimal("1.1"),
        10,
    )
    assert small.direction == "rise" and not small.flagged  # +10 % is below it
    lower = found[CUT, "completion"]
    assert (lower.old, lower.new, lower.ratio, lower.change_percent) == (
        cut["completion"],
        halved,
        Decimal("0.5"),
        -50,
    )
    assert lower.direction == "cut" and not lower.flagged
    assert diff.changed and diff.flagged_rises == 1
    assert (diff.added, diff.removed, diff.context_changes) == ([], [], [])
    # The JSON form (XCom, Asset extra) holds prices as plain decimal text.
    as_json = {(c["id"], c["field"]): c for c in diff.model_dump(mode="json")["price_changes"]}
    assert as_json[RISER, "prompt"]["new"] == text(prompt) and "E" not in as_json[RISER, "prompt"]["new"]
    assert as_json[CUT, "completion"]["ratio"] == "0.5"


def test_removed_and_added_models_and_context_change(
    hook: OpenRouterHook, emulator: RunningEmulator, sqlite_conn: str
) -> None:
    store = SqlSnapshotStore.open(sqlite_conn)
    before = wire_models(emulator)
    sync(hook, store, ["mistralai/*", RISER])

    pricing = {**before[GONE]["pricing"], "prompt": "0.00000004", "completion": "0.00000012"}
    added = {
        **before[GONE],
        "id": NEW,
        "canonical_slug": NEW,
        "name": "Mistral: Emulated 7B",
        "pricing": pricing,
    }
    added["context_length"] = 32000
    emulator.remove_model(GONE)
    emulator.add_model(added)
    longer = before[RISER]["context_length"] * 2
    emulator.update_model(RISER, context_length=longer)
    diff = sync(hook, store, ["mistralai/*", RISER])

    assert [model.id for model in diff.removed] == [GONE]
    assert diff.removed[0].pricing == {k: Decimal(v) for k, v in before[GONE]["pricing"].items()}
    assert [model.id for model in diff.added] == [NEW]
    assert diff.added[0].pricing == {field: Decimal(price) for field, price in pricing.items()}
    assert diff.added[0].context_length == 32000
    assert [(c.id, c.field, c.old, c.new) for c in diff.context_changes] == [
        (RISER, "context_length", before[RISER]["context_length"], longer)
    ]
    assert diff.price_changes == []


def test_jsonl_file_keeps_every_snapshot_and_diffs_the_last(
    hook: OpenRouterHook, emulator: RunningEmulator, tmp_path: Path
) -> None:
    path = ObjectStoragePath(f"file://{tmp_path}/catalog/snapshots.jsonl")
    old = Decimal(wire_models(emulator)[RISER]["pricing"]["completion"])
    sync(hook, FileSnapshotStore(path), [RISER])
    emulator.update_model(RISER, pricing={"completion": text(old / 4)})

    diff = sync(hook, FileSnapshotStore(path), [RISER])

    assert [(c.field, c.old, c.new, c.ratio, c.direction) for c in diff.price_changes] == [
        ("completion", old, old / 4, Decimal("0.25"), "cut")
    ]
    lines = (tmp_path / "catalog" / "snapshots.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["entries"][RISER]["pricing"]["completion"] == text(old / 4)
    assert not list((tmp_path / "catalog").glob("*.partial-*"))


def test_json_file_holds_the_latest_snapshot_of_each_watch(hook: OpenRouterHook, tmp_path: Path) -> None:
    path = ObjectStoragePath(f"file://{tmp_path}/latest.json")
    sync_catalog(hook, FileSnapshotStore(path), watch="a", models=[RISER])
    sync_catalog(hook, FileSnapshotStore(path), watch="b", models=[CUT])

    again = sync_catalog(hook, FileSnapshotStore(path), watch="a", models=[RISER])

    stored = json.loads((tmp_path / "latest.json").read_text())
    assert sorted((snap["watch"], list(snap["entries"])) for snap in stored) == [("a", [RISER]), ("b", [CUT])]
    assert again.previous_snapshot_at is not None and not again.changed


def test_watched_id_missing_from_the_catalog_is_named(hook: OpenRouterHook, tmp_path: Path) -> None:
    path = ObjectStoragePath(f"file://{tmp_path}/latest.json")

    diff = sync_catalog(hook, FileSnapshotStore(path), watch="typo", models=[RISER, "openai/gpt-4o-mni"])

    assert diff.not_listed == ["openai/gpt-4o-mni"] and diff.watched == 1


def test_endpoints_are_entries_of_their_own(
    hook: OpenRouterHook, emulator: RunningEmulator, tmp_path: Path
) -> None:
    request = urllib.request.Request(
        f"{emulator.base_url}/models/{RISER}/endpoints",
        headers={"Authorization": f"Bearer {emulator.api_key}"},
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=30) as answer:
        listed = json.loads(answer.read())["data"]["endpoints"]
    store = FileSnapshotStore(ObjectStoragePath(f"file://{tmp_path}/latest.json"))

    sync_catalog(hook, store, watch="endpoints", models=[RISER], endpoints=True)

    snapshot = store.previous("endpoints")
    assert snapshot is not None
    assert set(snapshot.entries) == {RISER} | {f"{RISER}@{endpoint['tag']}" for endpoint in listed}
    for endpoint in listed:
        entry = snapshot.entries[f"{RISER}@{endpoint['tag']}"]
        assert entry.kind == "endpoint" and entry.provider == endpoint["tag"]
        assert entry.pricing["prompt"] == Decimal(endpoint["pricing"]["prompt"])
        assert entry.context_length == endpoint["context_length"]


def test_failed_sync_stores_nothing_so_the_next_run_still_sees_the_change(
    hook: OpenRouterHook, emulator: RunningEmulator, sqlite_conn: str
) -> None:
    from airflow_provider_openrouter.exceptions import OpenRouterError

    store = SqlSnapshotStore.open(sqlite_conn)
    old = Decimal(wire_models(emulator)[RISER]["pricing"]["prompt"])
    sync_catalog(hook, store, watch="test", models=[RISER], endpoints=True)
    emulator.update_model(RISER, pricing={"prompt": text(old * 2)})
    emulator.configure(fail_next={"GET /models/{author}/{slug}/endpoints": [400]})

    with pytest.raises(OpenRouterError):
        sync_catalog(hook, store, watch="test", models=[RISER], endpoints=True)
    diff = sync_catalog(hook, store, watch="test", models=[RISER], endpoints=True)

    assert [(c.id, c.field, c.old, c.new) for c in diff.price_changes if c.id == RISER] == [
        (RISER, "prompt", old, old * 2)
    ]
