"""Attribution: the Airflow context that made a billable request, in the request body OpenRouter keeps.

OpenRouter stores three request fields with each generation and passes them to the account's broadcast
destinations (Langfuse, LangSmith, OpenTelemetry collectors; addendum section 4):

* ``metadata``: string to string, at most 16 pairs, keys up to 64 characters, values up to 512;
* ``session_id``: up to 256 characters, groups requests;
* ``trace``: ``{trace_id, trace_name, span_name, generation_name, parent_span_id}``.

:func:`attribution_fields` builds them from a task's context; :func:`apply_attribution` merges them into a
request body without overriding anything the user set; :func:`attribution_from_metadata` and
:func:`split_session_id` read them back (the cost audit uses these on ``GET /generation`` answers).

What is sent, for task ``summarise`` (map index 3, try 2) of DAG ``nightly`` run ``scheduled__2026-12-01``,
batch row ``row-17``::

    metadata   = {"airflow_dag_id": "nightly", "airflow_task_id": "summarise",
                  "airflow_run_id": "scheduled__2026-12-01", "airflow_map_index": "3",
                  "airflow_try_number": "2", "airflow_custom_id": "row-17"}
    session_id = "nightly/scheduled__2026-12-01"           (the DAG run; DAG ids never contain "/")
    trace      = {"trace_id": "nightly/scheduled__2026-12-01", "trace_name": "nightly",
                  "span_name": "summarise[3]", "generation_name": "row-17"}

Pure functions, no I/O: the hook's request builder and the batch engine call them for every request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MAX_KEY_CHARS",
    "MAX_METADATA_PAIRS",
    "MAX_SESSION_ID_CHARS",
    "MAX_VALUE_CHARS",
    "METADATA_KEYS",
    "ROW_PLACEHOLDER",
    "AttributionError",
    "apply_attribution",
    "attribution_fields",
    "attribution_from_metadata",
    "attribution_setting",
    "split_session_id",
    "with_custom_id",
]

MAX_METADATA_PAIRS = 16
MAX_KEY_CHARS = 64
MAX_VALUE_CHARS = 512
MAX_SESSION_ID_CHARS = 256
MAX_TRACE_CHARS = 512  # OpenRouter names no limit for trace fields; the metadata value limit keeps them sane

PREFIX = "airflow_"
METADATA_KEYS: dict[str, str] = {
    field: PREFIX + field for field in ("dag_id", "task_id", "run_id", "map_index", "try_number", "custom_id")
}
"""Context field -> metadata key, in the order the pairs are sent (and kept when slots run short)."""


class AttributionError(ValueError):
    """User pairs or an ``attribution`` setting that OpenRouter would refuse or that make no sense."""


def _fit(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters; a cut value ends in a hash of the whole, so two long values
    that share a prefix stay distinct."""
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:12]
    return f"{value[: limit - 13]}~{digest}"


def _context_ids(context: Mapping[str, Any] | None) -> dict[str, Any]:
    if not context:
        return {}
    ti = context.get("ti") or context.get("task_instance")
    ids: dict[str, Any] = {}
    for field in ("dag_id", "task_id", "run_id", "map_index", "try_number"):
        value = getattr(ti, field, None) if ti is not None else None
        if value is None and field == "dag_id" and context.get("dag") is not None:
            value = getattr(context["dag"], "dag_id", None)
        if value is None and field == "run_id":
            value = context.get("run_id")
        ids[field] = value
    return ids


def _user_pairs(user_pairs: Mapping[str, Any] | None) -> dict[str, str]:
    if not user_pairs:
        return {}
    if not isinstance(user_pairs, Mapping):
        raise AttributionError(
            f"attribution metadata must be an object of string pairs, got {type(user_pairs).__name__}"
        )
    pairs: dict[str, str] = {}
    for key, value in user_pairs.items():
        if not isinstance(key, str) or not key.strip():
            raise AttributionError(f"attribution metadata key {key!r} must be a non-empty string")
        if len(key) > MAX_KEY_CHARS:
            raise AttributionError(
                f"attribution metadata key {key[:20]!r}... has {len(key)} characters; OpenRouter allows "
                f"{MAX_KEY_CHARS}"
            )
        if key.startswith(PREFIX):
            raise AttributionError(
                f"attribution metadata key {key!r} uses the reserved prefix {PREFIX!r}; choose another name"
            )
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        if not isinstance(value, str):
            raise AttributionError(
                f"attribution metadata value of {key!r} must be a string or number, got "
                f"{type(value).__name__}"
            )
        if len(value) > MAX_VALUE_CHARS:
            raise AttributionError(
                f"attribution metadata value of {key!r} has {len(value)} characters; OpenRouter allows "
                f"{MAX_VALUE_CHARS}"
            )
        pairs[key] = value
    return pairs


def attribution_fields(
    context: Mapping[str, Any] | None = None,
    *,
    dag_id: str | None = None,
    task_id: str | None = None,
    run_id: str | None = None,
    map_index: int | None = None,
    try_number: int | None = None,
    custom_id: str | None = None,
    user_pairs: Mapping[str, Any] | None = None,
    enabled: bool = True,
) -> dict[str, Any]:
    """The ``metadata``, ``session_id`` and ``trace`` body fields naming the Airflow task sending a request.

    The ids come from ``context`` (a task's Airflow context: its ``ti`` gives dag, task, run, map index and
    try number); an explicit keyword wins over the context. ``custom_id`` is the batch row's id.
    ``user_pairs`` are the user's own metadata pairs, sent after ours. ``enabled=False`` returns ``{}``.

    Returns ``{"metadata": {...}, "session_id": "...", "trace": {...}}`` with only the parts that are known
    (no context and no ids: ``{}``, or only the user's pairs). All values are strings within OpenRouter's
    limits: a map index of ``-1`` (an unmapped task) is left out, over-long values are cut and end in a hash.
    Raises :class:`AttributionError` (a ``ValueError``) for user pairs OpenRouter would refuse: a key over 64
    characters or with the reserved ``airflow_`` prefix, a value over 512 characters or not a string or
    number, or more pairs than fit beside ours in 16.

    **How the hook calls it** (its request builder, for every billable body; nothing is sent on error)::

        enabled, pairs = attribution_setting(connection_extra.get("attribution"), operator_attribution)
        body = apply_attribution(body, attribution_fields(context, user_pairs=pairs, enabled=enabled))

    where ``context`` is the running task's context (``airflow.sdk.get_current_context()`` inside a task,
    ``None`` outside one, which then adds only the user's pairs). **The batch engine** makes the same two
    calls per row with ``custom_id=row.custom_id``, *after* it derived the row's idempotency key and
    checkpoint identity from the body: the try number changes between attempts, and a resumed row must keep
    its identity. (Batch API submissions likewise carry the fields inside each request's body.)

    **Turning it off, adding pairs**: the connection extra ``attribution`` and the operator parameter
    ``attribution`` (the operator's wins) are read by :func:`attribution_setting`: ``false`` turns it off;
    ``true``/unset keeps it on; an object (or its JSON text) keeps it on and adds those pairs.
    """
    if not enabled:
        return {}
    ids = _context_ids(context)
    explicit = {
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": run_id,
        "map_index": map_index,
        "try_number": try_number,
        "custom_id": custom_id,
    }
    ids.update({key: value for key, value in explicit.items() if value is not None})
    if ids.get("map_index") is not None and int(ids["map_index"]) < 0:
        ids["map_index"] = None
    ours = {
        METADATA_KEYS[field]: _fit(str(value), MAX_VALUE_CHARS)
        for field, value in ids.items()
        if field in METADATA_KEYS and value is not None and str(value) != ""
    }
    pairs = _user_pairs(user_pairs)
    if len(ours) + len(pairs) > MAX_METADATA_PAIRS:
        raise AttributionError(
            f"{len(pairs)} attribution metadata pairs do not fit beside the {len(ours)} Airflow pairs in "
            f"OpenRouter's {MAX_METADATA_PAIRS}; pass at most {MAX_METADATA_PAIRS - len(ours)}"
        )
    fields: dict[str, Any] = {}
    if ours or pairs:
        fields["metadata"] = {**ours, **pairs}
    dag, run, task = ids.get("dag_id"), ids.get("run_id"), ids.get("task_id")
    session = f"{dag}/{run}" if dag and run else None
    if session:
        fields["session_id"] = _fit(session, MAX_SESSION_ID_CHARS)
    trace: dict[str, str] = {}
    if session:
        trace["trace_id"] = _fit(session, MAX_TRACE_CHARS)
    if dag:
        trace["trace_name"] = _fit(str(dag), MAX_TRACE_CHARS)
    if task:
        span = f"{task}[{ids['map_index']}]" if ids.get("map_index") is not None else str(task)
        trace["span_name"] = _fit(span, MAX_TRACE_CHARS)
    generation_name = ids.get("custom_id") or task
    if generation_name:
        trace["generation_name"] = _fit(str(generation_name), MAX_TRACE_CHARS)
    if trace:
        fields["trace"] = trace
    return fields


ROW_PLACEHOLDER = "\x00row"
"""A ``custom_id`` for :func:`attribution_fields` whose result :func:`with_custom_id` turns into any row's."""


def with_custom_id(template: Mapping[str, Any], custom_id: str) -> dict[str, Any]:
    """The fields of ``attribution_fields(..., custom_id=custom_id)``, made from ``template``, the result of
    the same call with ``custom_id=ROW_PLACEHOLDER``: only the row's two values differ between the rows of a
    batch, so the rest is worked out once per run instead of once per row. (An empty ``custom_id`` is not
    sent at all; ask :func:`attribution_fields` for that one.)"""
    if not custom_id:
        raise ValueError("with_custom_id needs a non-empty custom_id")
    fields = dict(template)
    metadata = dict(template["metadata"])
    metadata[METADATA_KEYS["custom_id"]] = _fit(custom_id, MAX_VALUE_CHARS)
    fields["metadata"] = metadata
    fields["trace"] = {**template["trace"], "generation_name": _fit(custom_id, MAX_TRACE_CHARS)}
    return fields


def apply_attribution(body: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with the attribution ``fields`` added; whatever the body already sets wins.

    The user's own ``metadata`` pairs (from ``extra_body``) keep their values and come first; ours fill the
    slots left of the 16, in :data:`METADATA_KEYS` order. A ``session_id`` or ``trace`` in the body is kept
    whole (a trace's missing keys are filled from ours). The body is not modified; a new dict is returned.
    """
    merged = dict(body)
    if not fields:
        return merged
    ours = fields.get("metadata") or {}
    theirs = body.get("metadata")
    if ours:
        if isinstance(theirs, Mapping):
            combined = dict(theirs)
            for key, value in ours.items():
                if len(combined) >= MAX_METADATA_PAIRS:
                    break
                combined.setdefault(key, value)
            merged["metadata"] = combined
        elif theirs is None:
            merged["metadata"] = dict(ours)
    if fields.get("session_id") and not body.get("session_id"):
        merged["session_id"] = fields["session_id"]
    trace = fields.get("trace")
    if trace:
        existing = body.get("trace")
        if isinstance(existing, Mapping):
            merged["trace"] = {**trace, **existing}
        elif existing is None:
            merged["trace"] = dict(trace)
    return merged


def attribution_setting(*settings: Any) -> tuple[bool, dict[str, str]]:
    """``(enabled, user_pairs)`` from the connection extra then the operator parameter (later ones win).

    Each setting is ``None`` (no opinion), a bool, ``"true"``/``"false"``, or an object of pairs (or its JSON
    text), which means on with those pairs. Pairs of several settings are merged, later ones winning.
    """
    import json

    enabled = True
    pairs: dict[str, str] = {}
    for setting in settings:
        value = setting
        if isinstance(value, str):
            text = value.strip()
            if text.lower() in ("", "none", "null"):
                continue
            if text.lower() in ("true", "false"):
                value = text.lower() == "true"
            else:
                try:
                    value = json.loads(text)
                except json.JSONDecodeError:
                    raise AttributionError(
                        f"attribution must be true, false or a JSON object of metadata pairs, got "
                        f"{text[:60]!r}"
                    ) from None
        if value is None:
            continue
        if isinstance(value, bool):
            enabled = value
        elif isinstance(value, Mapping):
            enabled = True
            pairs.update(_user_pairs(value))
        else:
            raise AttributionError(
                f"attribution must be true, false or an object of metadata pairs, got {type(value).__name__}"
            )
    return enabled, pairs


def attribution_from_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Airflow ids in a generation's ``metadata`` (as sent by :func:`attribution_fields`).

    Returns only the fields present: ``dag_id``, ``task_id``, ``run_id``, ``custom_id`` as strings,
    ``map_index`` and ``try_number`` as ints (text that is not a number is left out).
    """
    if not isinstance(metadata, Mapping):
        return {}
    found: dict[str, Any] = {}
    for field, key in METADATA_KEYS.items():
        value = metadata.get(key)
        if not isinstance(value, str) or not value:
            continue
        if field in ("map_index", "try_number"):
            try:
                found[field] = int(value)
            except ValueError:
                continue
        else:
            found[field] = value
    return found


def split_session_id(session_id: str | None) -> tuple[str | None, str | None]:
    """``(dag_id, run_id)`` of a ``session_id`` written by :func:`attribution_fields`, else ``(None, None)``.

    A DAG id never contains ``/``, so the first ``/`` separates them; a cut (hashed) session id is not
    trusted for the run id.
    """
    if not isinstance(session_id, str) or "/" not in session_id:
        return None, None
    dag_id, run_id = session_id.split("/", 1)
    if not dag_id or not run_id or len(session_id) >= MAX_SESSION_ID_CHARS:
        return (dag_id or None), None
    return dag_id, run_id
