"""The typed difference between two catalog snapshots: :class:`CatalogDiff`, the XCom of
``OpenRouterModelCatalogOperator`` and the extra of its Asset event.

Registered with XCom's serde on import (like :mod:`airflow_provider_openrouter.models`), so a downstream task
gets it back typed. Prices are ``Decimal`` and written to JSON in plain notation (``"0.00000015"``).
"""

# No ``from __future__ import annotations``: pydantic reads the real annotation objects (see models.py).
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, computed_field

from airflow_provider_openrouter.catalog.snapshot import CatalogEntry, Snapshot
from airflow_provider_openrouter.models import Money, register_with_serde

_HUNDRED = Decimal(100)
CONTEXT_FIELDS = ("context_length", "max_completion_tokens")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, protected_namespaces=())


class PriceChange(_Frozen):
    """One price of one model (or endpoint) that changed.

    ``ratio`` = ``new / old`` and ``change_percent`` = ``(new - old) / old * 100``; both ``None`` when there
    was no price before (or it was 0). A price that appears counts as a rise, one that disappears as a cut.
    ``flagged``: a rise above the operator's ``rise_threshold_percent`` (a rise from nothing is always
    flagged).
    """

    id: str
    model: str
    provider: str | None = None
    field: str
    old: Money | None
    new: Money | None
    ratio: Money | None
    change_percent: Money | None
    direction: Literal["rise", "cut"]
    flagged: bool = False


class ContextChange(_Frozen):
    """A context limit that changed: ``field`` is ``context_length`` or ``max_completion_tokens``."""

    id: str
    model: str
    provider: str | None = None
    field: str
    old: int | None
    new: int | None


class CatalogDiff(_Frozen):
    """What changed in the watched catalog since the previous snapshot of the same watch.

    ``first_snapshot``: there was no previous snapshot, so nothing is compared (the lists are empty).
    ``changed``: anything at all changed; ``flagged_rises``: how many price rises passed the threshold.
    ``not_listed``: model ids watched by exact id that the catalog does not list now.
    """

    watch: str
    snapshot_at: str
    previous_snapshot_at: str | None = None
    first_snapshot: bool = False
    watched: int = 0
    rise_threshold_percent: Money = Decimal(0)
    added: list[CatalogEntry] = []
    removed: list[CatalogEntry] = []
    price_changes: list[PriceChange] = []
    context_changes: list[ContextChange] = []
    not_listed: list[str] = []
    stored_in: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.price_changes or self.context_changes)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def flagged_rises(self) -> int:
        return sum(change.flagged for change in self.price_changes)

    def rises(self, *, flagged_only: bool = False) -> list[PriceChange]:
        return [c for c in self.price_changes if c.direction == "rise" and (c.flagged or not flagged_only)]

    def cuts(self) -> list[PriceChange]:
        return [c for c in self.price_changes if c.direction == "cut"]


def _ratio(old: Decimal | None, new: Decimal | None) -> tuple[Decimal | None, Decimal | None]:
    if old is None or new is None or old == 0:
        return None, None
    return new / old, (new - old) / old * _HUNDRED


def price_changes(before: CatalogEntry, after: CatalogEntry, threshold: Decimal) -> list[PriceChange]:
    changes = []
    for field in sorted(before.pricing.keys() | after.pricing.keys()):
        old, new = before.pricing.get(field), after.pricing.get(field)
        if old == new:
            continue
        ratio, percent = _ratio(old, new)
        rise = (new if new is not None else Decimal(0)) > (old if old is not None else Decimal(0))
        changes.append(
            PriceChange(
                id=after.id,
                model=after.model,
                provider=after.provider,
                field=field,
                old=old,
                new=new,
                ratio=ratio,
                change_percent=percent,
                direction="rise" if rise else "cut",
                flagged=rise and (percent is None or percent > threshold),
            )
        )
    return changes


def diff_snapshots(
    previous: Snapshot | None,
    current: Snapshot,
    *,
    rise_threshold_percent: Decimal = Decimal(0),
    not_listed: list[str] | None = None,
) -> CatalogDiff:
    """The diff of ``current`` against ``previous`` (``None``: the first snapshot of this watch)."""
    base = CatalogDiff(
        watch=current.watch,
        snapshot_at=current.snapshot_at,
        first_snapshot=previous is None,
        watched=len(current.entries),
        rise_threshold_percent=rise_threshold_percent,
        not_listed=not_listed or [],
    )
    if previous is None:
        return base
    before, after = previous.entries, current.entries
    prices: list[PriceChange] = []
    limits: list[ContextChange] = []
    for key in sorted(before.keys() & after.keys()):
        old, new = before[key], after[key]
        prices += price_changes(old, new, rise_threshold_percent)
        limits += [
            ContextChange(
                id=key,
                model=new.model,
                provider=new.provider,
                field=field,
                old=getattr(old, field),
                new=getattr(new, field),
            )
            for field in CONTEXT_FIELDS
            if getattr(old, field) != getattr(new, field)
        ]
    return base.model_copy(
        update={
            "previous_snapshot_at": previous.snapshot_at,
            "added": [after[key] for key in sorted(after.keys() - before.keys())],
            "removed": [before[key] for key in sorted(before.keys() - after.keys())],
            "price_changes": prices,
            "context_changes": limits,
        }
    )


register_with_serde(CatalogDiff, PriceChange, ContextChange, CatalogEntry)
