"""The attribution of billable requests: the running task named in the body (``metadata``, ``session_id``,
``trace``), resolved and checked once per hook call or batch run, then added to each body."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

from airflow_provider_openrouter.cost.attribution import (
    ROW_PLACEHOLDER,
    apply_attribution,
    attribution_fields,
    with_custom_id,
)

__all__ = ["NO_ATTRIBUTION", "Attribution", "current_task_context"]


def current_task_context() -> Mapping[str, Any] | None:
    """The running task's Airflow context, or ``None`` outside a task."""
    from airflow.sdk import get_current_context

    try:
        return get_current_context()
    except RuntimeError:  # not inside a task: only the user's pairs are sent
        return None


@dataclasses.dataclass(frozen=True)
class Attribution:
    """The attribution of one hook call or one batch run, resolved and checked once, added to each body.

    ``fields`` are the body fields of a request without a batch row (see
    :func:`~airflow_provider_openrouter.cost.attribution.attribution_fields`); :meth:`apply` adds them, or a
    batch row's own (with its ``custom_id``), to a body, leaving whatever the body already sets.
    """

    context: Mapping[str, Any] | None
    enabled: bool
    pairs: dict[str, str]
    fields: dict[str, Any]

    def apply(self, body: Mapping[str, Any], custom_id: str | None = None) -> dict[str, Any]:
        if not self.enabled:
            return dict(body)
        fields = self.fields
        if custom_id:
            fields = with_custom_id(self._row_template, custom_id)
        elif custom_id is not None:
            fields = self._fields_for(custom_id)
        return apply_attribution(body, fields)

    @functools.cached_property
    def _row_template(self) -> dict[str, Any]:
        """The fields of a batch row, worked out once per run (per row only its custom_id changes)."""
        return self._fields_for(ROW_PLACEHOLDER)

    def _fields_for(self, custom_id: str) -> dict[str, Any]:
        return attribution_fields(self.context, custom_id=custom_id, user_pairs=self.pairs, enabled=True)


NO_ATTRIBUTION = Attribution(None, False, {}, {})
