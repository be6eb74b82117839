"""Turning collected ids into :class:`CostRecord` rows: from their own usage (free) or ``GET /generation``.

``GET /generation`` answers 404 for a while after a completion. The ids are asked in rounds: every id still
unresolved is asked once per round, concurrently on a thread pool (the hook's transport paces every request
to the connection's rate limit, so the pool only hides latency), then the 404s wait for the next round
(0.5 s, 1 s, 2 s, ... at most 5 s later) until ``wait_for_stats`` seconds have passed. No thread sleeps while
others work, and an id that never resolves is reported with its reason, never dropped.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_openrouter.cost.collect import IdRef
from airflow_provider_openrouter.cost.records import CostRecord, from_generation, from_usage
from airflow_provider_openrouter.exceptions import (
    OpenRouterAuthenticationError,
    OpenRouterError,
    OpenRouterInsufficientCreditsError,
    OpenRouterNotFoundError,
    OpenRouterPermissionError,
)

if TYPE_CHECKING:
    from airflow_provider_openrouter.models import Generation

FIRST_ROUND_DELAY_S = 0.5
MAX_ROUND_DELAY_S = 5.0
DEFAULT_MAX_WORKERS = 8
# Failures no later round can fix: the whole audit stops on them (with the key's problem, not 10,000 rows).
_FATAL = (OpenRouterAuthenticationError, OpenRouterPermissionError, OpenRouterInsufficientCreditsError)


@dataclasses.dataclass(slots=True)
class Unresolved:
    generation_id: str
    reason: str


@dataclasses.dataclass
class Resolved:
    records: list[CostRecord]
    unresolved: list[Unresolved]
    requests: int = 0  # GET /generation requests sent
    rounds: int = 0


def from_usages(refs: Iterable[IdRef], audited_at: datetime) -> Resolved:
    """Records from the answers' own usage; nothing is sent. An id that came without usage (a bare id, a
    batch row that failed) is unresolved: only ``GET /generation`` knows its cost."""
    records: list[CostRecord] = []
    unresolved: list[Unresolved] = []
    for ref in refs:
        if ref.generation is not None:
            records.append(from_generation(ref.generation, ref.hint, audited_at))
        elif ref.usage is not None and ref.usage.get("cost") is not None:
            records.append(
                from_usage(
                    ref.generation_id,
                    ref.usage,
                    model=ref.model,
                    provider=ref.provider,
                    created=ref.created,
                    hint=ref.hint,
                    audited_at=audited_at,
                )
            )
        else:
            status = f" (its batch row is {ref.status})" if ref.status and ref.status != "succeeded" else ""
            unresolved.append(
                Unresolved(
                    ref.generation_id,
                    f"the source has no usage with a cost for this id{status}; audit it with "
                    "source='generation'",
                )
            )
    return Resolved(records, unresolved)


def from_generation_endpoint(
    refs: Iterable[IdRef],
    fetch: Callable[[str], Generation],
    audited_at: datetime,
    *,
    wait_for_stats: float,
    max_workers: int = DEFAULT_MAX_WORKERS,
    log: Any = None,
) -> Resolved:
    """Records from ``GET /generation`` (``fetch`` is ``hook.get_generation``), asked in rounds until each id
    resolves or ``wait_for_stats`` seconds pass. An id already resolved at the source (a ``Generation``) is
    not asked again. Raises the first authentication, permission or credit error (no round can fix it)."""
    pending: dict[str, IdRef] = {}
    records: list[CostRecord] = []
    for ref in refs:
        if ref.generation is not None:
            records.append(from_generation(ref.generation, ref.hint, audited_at))
        else:
            pending[ref.generation_id] = ref
    result = Resolved(records, [])
    if not pending:
        return result
    deadline = time.monotonic() + max(0.0, wait_for_stats)
    delay = FIRST_ROUND_DELAY_S
    reasons: dict[str, str] = {}
    workers = max(1, min(max_workers, len(pending)))
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="cost-audit") as pool:
        while pending:
            result.rounds += 1
            ids = list(pending)
            result.requests += len(ids)
            for generation_id, outcome in zip(ids, pool.map(_ask(fetch), ids), strict=True):
                if isinstance(outcome, OpenRouterError):
                    if isinstance(outcome, _FATAL):
                        raise outcome
                    reasons[generation_id] = _reason(outcome)
                    if not isinstance(outcome, OpenRouterNotFoundError) and not outcome.retryable:
                        # e.g. 400: asking again gets the same answer
                        del pending[generation_id]
                        result.unresolved.append(Unresolved(generation_id, reasons[generation_id]))
                    continue
                ref = pending.pop(generation_id)
                result.records.append(from_generation(outcome, ref.hint, audited_at))
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                break
            if log is not None:
                log.info("%d generation(s) have no stats yet; asking again in %.1f s", len(pending), delay)
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, MAX_ROUND_DELAY_S)
    waited = wait_for_stats
    for generation_id in pending:
        reason = reasons.get(generation_id, "not asked")
        result.unresolved.append(
            Unresolved(generation_id, f"{reason}; asked {result.rounds} time(s) over {waited:g} s")
        )
    return result


def _ask(fetch: Callable[[str], Generation]) -> Callable[[str], Generation | OpenRouterError]:
    def ask(generation_id: str) -> Generation | OpenRouterError:
        try:
            return fetch(generation_id)
        except OpenRouterError as err:
            return err

    return ask


def _reason(err: OpenRouterError) -> str:
    if isinstance(err, OpenRouterNotFoundError):
        return "GET /generation still answered 404 (no stats: a wrong id, or stats later than wait_for_stats)"
    status = getattr(err, "status_code", None) or getattr(err, "status", None)
    first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
    return f"GET /generation failed ({type(err).__name__}{f', {status}' if status else ''}): {first_line}"
