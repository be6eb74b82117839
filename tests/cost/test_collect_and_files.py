"""Where generation ids come from (results, batch output files and manifests, files of ids, JSON text), the
audit file formats, the table name rule, and the typed summary through XCom's serde."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from airflow_provider_openrouter.batch.manifest import BatchManifest, BatchTimings, OutcomeCounts, TokenCounts
from airflow_provider_openrouter.batch.outputs import dumps_record, failure_record, success_record
from airflow_provider_openrouter.cost.collect import CostSourceError, collect
from airflow_provider_openrouter.cost.files import file_format, write_records
from airflow_provider_openrouter.cost.records import Attribution
from airflow_provider_openrouter.cost.resolve import from_usages
from airflow_provider_openrouter.cost.schema import check_table_name, cost_table
from airflow_provider_openrouter.cost.summary import CostAuditSummary, UnresolvedGeneration, summarize
from airflow_provider_openrouter.models import ChatCompletion

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def completion(index: int, cost: str = "0.00000735") -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": f"gen-{index}",
            "model": "openai/gpt-4o-mini",
            "provider": "OpenAI",
            "created": 1764763200,  # 2025-12-03T12:00:00Z
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "red"}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": 12,
                "completion_tokens": 3,
                "total_tokens": 15,
                "cost": float(cost),
                "prompt_tokens_details": {"cached_tokens": 4},
                "completion_tokens_details": {"reasoning_tokens": 1},
            },
        }
    )


def batch_output(path: Path) -> Path:
    rows = [
        success_record(0, "row-0", completion(0), 1),
        success_record(1, "row-1", completion(1, "0.00000015"), 1),
        failure_record(2, "row-2", "not_sent", {"type": "X", "message": "refused"}, 0),
        failure_record(3, "row-3", "outcome_unknown", {"type": "Y", "generation_id": "gen-3"}, 1),
    ]
    path.write_bytes(b"".join(dumps_record(row) for row in rows))
    return path


def test_batch_output_rows_carry_custom_id_and_usage_and_rows_without_generation_are_counted(
    tmp_path: Path,
) -> None:
    found = collect(str(batch_output(tmp_path / "out.jsonl")))

    assert list(found.refs) == ["gen-0", "gen-1", "gen-3"]
    assert found.refs["gen-0"].hint.custom_id == "row-0"
    assert found.refs["gen-3"].status == "outcome_unknown"
    assert found.rows_without_generation == 1

    resolved = from_usages(found.refs.values(), NOW)

    assert {record.generation_id: record.cost for record in resolved.records} == {
        "gen-0": Decimal("0.00000735"),
        "gen-1": Decimal("0.00000015"),
    }
    assert [u.generation_id for u in resolved.unresolved] == ["gen-3"]
    assert "outcome_unknown" in resolved.unresolved[0].reason
    record = resolved.records[0]
    assert (record.cached_tokens, record.reasoning_tokens, record.custom_id) == (4, 1, "row-0")


def test_a_manifest_is_read_through_its_output_file(tmp_path: Path) -> None:
    output = batch_output(tmp_path / "out.jsonl")
    manifest = BatchManifest(
        mode="concurrent",
        mode_reason="test",
        model="openai/gpt-4o-mini",
        input="in.jsonl",
        output_path=str(output),
        identity="x",
        counts=OutcomeCounts(total=4, succeeded=2, failed=0, outcome_unknown=1, not_sent=1),
        tokens=TokenCounts(),
        cost=Decimal("0.0000075"),
        timings=BatchTimings(started_at=NOW, finished_at=NOW, wall_seconds=1.0),
    )

    assert list(collect(manifest).refs) == ["gen-0", "gen-1", "gen-3"]
    assert list(collect(manifest.model_dump(mode="json")).refs) == ["gen-0", "gen-1", "gen-3"]


def test_results_ids_files_and_json_text_nested_and_deduplicated(tmp_path: Path) -> None:
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("# ids of last night\ngen-a\n\ngen-b\n")
    csv_file = tmp_path / "ids.csv"
    csv_file.write_text("generation_id,note\ngen-c,x\n")

    found = collect([completion(7), ["gen-a", str(ids_file)], '["gen-b", "gen-d"]', str(csv_file), None])

    assert list(found.refs) == ["gen-7", "gen-a", "gen-b", "gen-d", "gen-c"]
    assert found.duplicates == 2  # gen-a inline and in the file, gen-b in the file and the JSON text
    assert found.refs["gen-7"].usage is not None


def test_a_mapped_upstream_gives_each_id_its_map_index() -> None:
    found = collect(["gen-x", "gen-y"], Attribution(dag_id="d", task_id="chat"), mapped=True)

    assert [(ref.hint.task_id, ref.hint.map_index) for ref in found.refs.values()] == [
        ("chat", 0),
        ("chat", 1),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("gen-a gen-b", "has spaces or commas"),
        ("[not json", "starts like JSON but is not JSON"),
        ({"foo": 1}, "holds no generation id"),
        (3.5, "cannot read generation ids from a float"),
        ("/nonexistent/ids.txt", "does not exist"),
    ],
)
def test_unreadable_sources_say_what_was_wrong(value: object, message: str) -> None:
    with pytest.raises(CostSourceError, match=message):
        collect(value)


def test_a_broken_line_in_a_batch_output_names_the_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "out.jsonl"
    broken.write_text('{"custom_id": "a", "generation_id": "gen-1"}\n{"custom_id": \n')

    with pytest.raises(CostSourceError, match=r"out.jsonl, line 2: not a JSON object"):
        collect(str(broken))


def test_files_in_jsonl_and_csv_keep_money_exact(tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    records = from_usages(collect([completion(1, "0.00000015")]).refs.values(), NOW).records
    write_records(ObjectStoragePath(str(tmp_path / "a.jsonl")), records)
    write_records(ObjectStoragePath(str(tmp_path / "sub" / "a.csv")), records)

    assert json.loads((tmp_path / "a.jsonl").read_text())["cost"] == "0.00000015"
    with (tmp_path / "sub" / "a.csv").open() as handle:
        assert next(csv.DictReader(handle))["cost"] == "0.00000015"
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["a.csv", "a.jsonl", "sub"]


def test_unknown_file_formats_are_refused() -> None:
    with pytest.raises(ValueError, match=r"use \.jsonl, \.csv or \.parquet"):
        file_format("costs.xlsx")


def test_table_names_must_be_plain_identifiers() -> None:
    assert check_table_name("analytics.llm_costs") == "analytics.llm_costs"
    with pytest.raises(ValueError, match="not a plain SQL table name"):
        check_table_name("costs; DROP TABLE x")
    assert "cost TEXT" in cost_table().create_sql("sqlite")
    assert "cost NUMERIC(38,18)" in cost_table().create_sql("postgres")


def test_the_summary_comes_back_typed_through_xcom_serde() -> None:
    from airflow.sdk.serde import deserialize, serialize

    records = from_usages(collect([completion(1), completion(2, "0.00000015")]).refs.values(), NOW).records
    summary = summarize(
        [record.as_json() | {"cost": record.cost} for record in records],
        source="usage",
        requested=3,
        unresolved=[UnresolvedGeneration(generation_id="gen-z", reason="404")],
    )

    back = deserialize(json.loads(json.dumps(serialize(summary))))

    assert isinstance(back, CostAuditSummary)
    assert back.total_cost == Decimal("0.0000075")
    assert back.by_model == {"openai/gpt-4o-mini": Decimal("0.0000075")}
    assert back.unresolved_ids == ["gen-z"]
    assert back.days == ["2025-12-03"]


def test_parquet_is_written_where_pyarrow_is_installed_and_refused_clearly_where_not(tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    records = from_usages(collect([completion(1, "0.00000015")]).refs.values(), NOW).records
    target = ObjectStoragePath(str(tmp_path / "a.parquet"))
    try:
        import pyarrow.parquet as pq
    except ImportError:
        with pytest.raises(ValueError, match="pyarrow is not installed"):
            write_records(target, records)
        assert not (tmp_path / "a.parquet").exists()
        return
    write_records(target, records)
    assert pq.read_table(tmp_path / "a.parquet").to_pylist()[0]["cost"] == "0.00000015"
