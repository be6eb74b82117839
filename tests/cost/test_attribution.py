"""attribution_fields and friends: the Airflow context as OpenRouter's metadata, session_id and trace, within
OpenRouter's limits (addendum section 4), and read back from a generation."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_openrouter.cost.attribution import (
    ROW_PLACEHOLDER,
    AttributionError,
    apply_attribution,
    attribution_fields,
    attribution_from_metadata,
    attribution_setting,
    split_session_id,
    with_custom_id,
)


def context(**overrides: Any) -> dict[str, Any]:
    ti = SimpleNamespace(
        dag_id="nightly", task_id="summarise", run_id="scheduled__2026-12-01", map_index=3, try_number=2
    )
    for name, value in overrides.items():
        setattr(ti, name, value)
    return {"ti": ti}


def test_a_mapped_batch_row_gets_every_field() -> None:
    fields = attribution_fields(context(), custom_id="row-17")

    assert fields == {
        "metadata": {
            "airflow_dag_id": "nightly",
            "airflow_task_id": "summarise",
            "airflow_run_id": "scheduled__2026-12-01",
            "airflow_map_index": "3",
            "airflow_try_number": "2",
            "airflow_custom_id": "row-17",
        },
        "session_id": "nightly/scheduled__2026-12-01",
        "trace": {
            "trace_id": "nightly/scheduled__2026-12-01",
            "trace_name": "nightly",
            "span_name": "summarise[3]",
            "generation_name": "row-17",
        },
    }


@pytest.mark.parametrize(
    "ctx",
    [context(), context(map_index=-1), context(run_id="r" * 600), None],
    ids=["mapped", "unmapped", "long run id", "no task"],
)
@pytest.mark.parametrize("custom_id", ["row-17", "é" * 3, "x" * 700, "row-" + "9" * 511])
def test_a_rows_fields_from_the_runs_template_equal_the_fields_worked_out_for_that_row(
    ctx: dict[str, Any] | None, custom_id: str
) -> None:
    pairs = {"team": "search", "cost_center": "42"}
    template = attribution_fields(ctx, custom_id=ROW_PLACEHOLDER, user_pairs=pairs)

    expected = attribution_fields(ctx, custom_id=custom_id, user_pairs=pairs)
    assert with_custom_id(template, custom_id) == expected


def test_a_template_refuses_an_empty_custom_id_which_is_not_sent_at_all() -> None:
    with pytest.raises(ValueError, match="non-empty custom_id"):
        with_custom_id(attribution_fields(context(), custom_id=ROW_PLACEHOLDER), "")


def test_an_unmapped_task_leaves_the_map_index_out_and_names_the_generation_after_the_task() -> None:
    fields = attribution_fields(context(map_index=-1))

    assert "airflow_map_index" not in fields["metadata"]
    assert fields["trace"]["span_name"] == "summarise"
    assert fields["trace"]["generation_name"] == "summarise"


def test_explicit_ids_win_over_the_context() -> None:
    fields = attribution_fields(context(), task_id="other", try_number=5)

    assert fields["metadata"]["airflow_task_id"] == "other"
    assert fields["metadata"]["airflow_try_number"] == "5"


def test_disabled_or_without_context_it_adds_nothing_but_the_users_pairs() -> None:
    assert attribution_fields(context(), enabled=False) == {}
    assert attribution_fields(None) == {}
    assert attribution_fields(None, user_pairs={"team": "data", "cost_center": 42}) == {
        "metadata": {"team": "data", "cost_center": "42"}
    }


def test_values_are_cut_to_openrouters_limits_and_stay_distinct() -> None:
    long_run = "manual__" + "x" * 600
    first = attribution_fields(context(run_id=long_run + "a"))
    second = attribution_fields(context(run_id=long_run + "b"))

    assert len(first["metadata"]["airflow_run_id"]) == 512
    assert len(first["session_id"]) == 256
    assert first["metadata"]["airflow_run_id"] != second["metadata"]["airflow_run_id"]
    assert first["session_id"] != second["session_id"]


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ({"k" * 65: "v"}, "has 65 characters; OpenRouter allows 64"),
        ({"team": "v" * 513}, "has 513 characters; OpenRouter allows 512"),
        ({"airflow_dag_id": "spoof"}, "reserved prefix"),
        ({"team": ["a"]}, "must be a string or number"),
        ({f"k{i}": "v" for i in range(11)}, "do not fit beside the 6 Airflow pairs"),
    ],
)
def test_user_pairs_openrouter_would_refuse_are_refused_before_sending(
    pairs: dict[str, Any], message: str
) -> None:
    with pytest.raises(AttributionError, match=message):
        attribution_fields(context(), custom_id="row-1", user_pairs=pairs)


def test_ten_user_pairs_fit_beside_six_of_ours() -> None:
    fields = attribution_fields(context(), custom_id="row-1", user_pairs={f"k{i}": "v" for i in range(10)})

    assert len(fields["metadata"]) == 16


def test_apply_keeps_what_the_body_sets_and_fills_the_rest() -> None:
    body = {
        "model": "m",
        "metadata": {f"user{i}": "x" for i in range(14)},
        "session_id": "mine",
        "trace": {"trace_name": "my-trace"},
    }
    merged = apply_attribution(body, attribution_fields(context(), custom_id="row-1"))

    assert merged["session_id"] == "mine"
    assert merged["trace"]["trace_name"] == "my-trace"
    assert merged["trace"]["span_name"] == "summarise[3]"
    assert len(merged["metadata"]) == 16
    assert merged["metadata"]["airflow_dag_id"] == "nightly"
    assert merged["metadata"]["airflow_task_id"] == "summarise"
    assert "airflow_run_id" not in merged["metadata"]
    assert body["metadata"] == {f"user{i}": "x" for i in range(14)}  # the input is not changed


def test_apply_of_nothing_is_the_body() -> None:
    assert apply_attribution({"model": "m"}, {}) == {"model": "m"}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ((None, None), (True, {})),
        ((False, None), (False, {})),
        (("false",), (False, {})),
        ((None, "true"), (True, {})),
        (({"team": "a"}, False), (False, {"team": "a"})),
        (('{"team": "a"}', {"env": "prod"}), (True, {"team": "a", "env": "prod"})),
        ((False, {"team": "b"}), (True, {"team": "b"})),
    ],
)
def test_setting_from_connection_extra_then_operator_parameter(
    settings: tuple[Any, ...], expected: tuple[bool, dict[str, str]]
) -> None:
    assert attribution_setting(*settings) == expected


def test_a_setting_that_is_neither_bool_nor_pairs_is_refused() -> None:
    with pytest.raises(AttributionError, match="true, false or a JSON object"):
        attribution_setting("yes please")
    with pytest.raises(AttributionError, match="got list"):
        attribution_setting(["team"])


def test_metadata_and_session_read_back() -> None:
    fields = attribution_fields(context(), custom_id="row-17")

    assert attribution_from_metadata(fields["metadata"]) == {
        "dag_id": "nightly",
        "task_id": "summarise",
        "run_id": "scheduled__2026-12-01",
        "map_index": 3,
        "try_number": 2,
        "custom_id": "row-17",
    }
    assert split_session_id(fields["session_id"]) == ("nightly", "scheduled__2026-12-01")
    assert split_session_id("no-slash") == (None, None)
    assert split_session_id(None) == (None, None)
    assert attribution_from_metadata({"airflow_map_index": "three"}) == {}
