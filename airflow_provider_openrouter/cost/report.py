"""The cost report: one self-contained HTML page (inline SVG charts, no script, no network) and a PNG of the
same charts, drawn with matplotlib (the ``cost-audit`` extra).

Charts (each a ``<figure data-chart="...">`` on the page, in this order): cost per day by model, cost by DAG
and task, tokens by model, latency percentiles by provider, cache savings, and the reconciliation gap. The
totals are text (``<dd data-total="...">``), money in exact plain decimal notation; the charts round only
what they draw.
"""

from __future__ import annotations

import dataclasses
import html
import io
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from airflow_provider_openrouter.cost.summary import UNKNOWN, column_totals
from airflow_provider_openrouter.models import plain_decimal

CHARTS: tuple[tuple[str, str], ...] = (
    ("cost-per-day", "Cost per day by model (USD)"),
    ("cost-by-task", "Cost by DAG and task (USD)"),
    ("tokens-by-model", "Tokens by model"),
    ("latency-by-provider", "Latency percentiles by provider (ms)"),
    ("cache-savings", "Cache savings by model"),
    ("reconciliation-gap", "Billed by OpenRouter vs recorded, per day (USD)"),
)
PERCENTILES = (50, 90, 99)
_MAX_BARS = 15  # more categories than this are summed into "other", so a chart stays readable


@dataclasses.dataclass(frozen=True)
class Totals:
    """The figures printed as text on the page (and returned to the caller)."""

    generations: int
    cost: Decimal
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cached_tokens: int
    cache_discount: Decimal
    billed: Decimal | None
    difference: Decimal | None

    def items(self) -> list[tuple[str, str, str]]:
        """``(key, label, text)`` of each total, as shown."""

        def text(value: Decimal | int | None) -> str:
            if value is None:
                return "not reconciled"
            return plain_decimal(value) if isinstance(value, Decimal) else str(value)

        return [
            ("generations", "Generations", text(self.generations)),
            ("cost", "Total cost (USD)", text(self.cost)),
            ("prompt_tokens", "Prompt tokens", text(self.prompt_tokens)),
            ("completion_tokens", "Completion tokens", text(self.completion_tokens)),
            ("reasoning_tokens", "Reasoning tokens", text(self.reasoning_tokens)),
            ("cached_tokens", "Cached prompt tokens", text(self.cached_tokens)),
            ("cache_discount", "Cache savings (USD)", text(self.cache_discount)),
            ("billed", "Billed by OpenRouter (USD)", text(self.billed)),
            ("difference", "Billed minus recorded (USD)", text(self.difference)),
        ]


def totals_of(rows: Sequence[Mapping[str, Any]], reconciliation: Sequence[Mapping[str, Any]]) -> Totals:
    totals = column_totals(rows)
    billed = sum((row["billed_usage"] for row in reconciliation), Decimal(0)) if reconciliation else None
    difference = sum((row["difference"] for row in reconciliation), Decimal(0)) if reconciliation else None
    return Totals(
        generations=len(rows),
        cost=totals["cost"],
        prompt_tokens=totals["prompt_tokens"],
        completion_tokens=totals["completion_tokens"],
        reasoning_tokens=totals["reasoning_tokens"],
        cached_tokens=totals["cached_tokens"],
        cache_discount=totals["cache_discount"],
        billed=billed,
        difference=difference,
    )


def _top(values: Mapping[str, float]) -> dict[str, float]:
    ordered = sorted(values.items(), key=lambda item: -item[1])
    if len(ordered) <= _MAX_BARS:
        return dict(ordered)
    kept = dict(ordered[: _MAX_BARS - 1])
    kept["other"] = sum(value for _, value in ordered[_MAX_BARS - 1 :])
    return kept


def _empty(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#666666")
    ax.set_xticks([])
    ax.set_yticks([])


def _barh(ax: Any, values: Mapping[str, float], xlabel: str, empty: str) -> None:
    if not values:
        _empty(ax, empty)
        return
    values = _top(values)
    labels = list(values)[::-1]
    ax.barh(labels, [values[label] for label in labels], color="#6c5ce7")
    ax.set_xlabel(xlabel)
    ax.tick_params(axis="y", labelsize=8)


def _cost_per_day(ax: Any, rows: Sequence[Mapping[str, Any]], _: Sequence[Mapping[str, Any]]) -> None:
    table: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        table[str(row.get("model") or UNKNOWN)][str(row["day"])] += float(row.get("cost") or 0)
    if not table:
        _empty(ax, "no generations recorded")
        return
    days = sorted({day for per_day in table.values() for day in per_day})
    bottom = [0.0] * len(days)
    positions = list(range(len(days)))
    for model in sorted(table):
        heights = [table[model].get(day, 0.0) for day in days]
        ax.bar(positions, heights, bottom=bottom, label=model)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_xticks(positions, days)
    ax.set_ylabel("USD")
    ax.legend(fontsize=7, loc="upper left")
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)


def _cost_by_task(ax: Any, rows: Sequence[Mapping[str, Any]], _: Sequence[Mapping[str, Any]]) -> None:
    values: dict[str, float] = defaultdict(float)
    for row in rows:
        values[f"{row.get('dag_id') or UNKNOWN} / {row.get('task_id') or UNKNOWN}"] += float(
            row.get("cost") or 0
        )
    _barh(ax, values, "USD", "no generations recorded")


def _tokens_by_model(ax: Any, rows: Sequence[Mapping[str, Any]], _: Sequence[Mapping[str, Any]]) -> None:
    kinds = ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens")
    table: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(kinds, 0))
    for row in rows:
        for kind in kinds:
            table[str(row.get("model") or UNKNOWN)][kind] += int(row.get(kind) or 0)
    if not table:
        _empty(ax, "no generations recorded")
        return
    models = sorted(table)[:_MAX_BARS]
    _grouped_bars(ax, models, {kind.replace("_", " "): [table[m][kind] for m in models] for kind in kinds})
    ax.tick_params(axis="x", labelrotation=20, labelsize=7)


def _grouped_bars(ax: Any, categories: list[str], series: Mapping[str, Sequence[float]]) -> None:
    """One group of bars per category, one bar per series, with a legend."""
    width = 0.8 / len(series)
    for offset, (label, values) in enumerate(series.items()):
        ax.bar([index + offset * width for index in range(len(categories))], values, width, label=label)
    ax.set_xticks([index + 0.4 - width / 2 for index in range(len(categories))], categories)
    ax.legend(fontsize=7)


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile of ``values`` by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _latency(ax: Any, rows: Sequence[Mapping[str, Any]], _: Sequence[Mapping[str, Any]]) -> None:
    latencies: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row.get("latency_ms") is not None:
            latencies[str(row.get("provider") or UNKNOWN)].append(float(row["latency_ms"]))
    if not latencies:
        _empty(ax, "no latency recorded (audit with source='generation')")
        return
    providers = sorted(latencies)[:_MAX_BARS]
    _grouped_bars(
        ax, providers, {f"p{pct}": [percentile(latencies[p], pct) for p in providers] for pct in PERCENTILES}
    )
    ax.set_ylabel("ms")
    ax.tick_params(axis="x", labelsize=8)


def _cache_savings(ax: Any, rows: Sequence[Mapping[str, Any]], _: Sequence[Mapping[str, Any]]) -> None:
    savings: dict[str, float] = defaultdict(float)
    cached: dict[str, int] = defaultdict(int)
    for row in rows:
        model = str(row.get("model") or UNKNOWN)
        savings[model] += float(row.get("cache_discount") or 0)
        cached[model] += int(row.get("cached_tokens") or 0)
    if not any(savings.values()) and not any(cached.values()):
        _empty(ax, "no cache savings: no cached prompt tokens recorded")
        return
    _barh(
        ax, {f"{model} ({cached[model]} cached tokens)": value for model, value in savings.items()}, "USD", ""
    )


def _reconciliation_gap(ax: Any, _: Sequence[Mapping[str, Any]], recon: Sequence[Mapping[str, Any]]) -> None:
    if not recon:
        _empty(ax, "not reconciled (needs a management key)")
        return
    billed: dict[str, float] = defaultdict(float)
    recorded: dict[str, float] = defaultdict(float)
    for row in recon:
        billed[str(row["day"])] += float(row["billed_usage"])
        recorded[str(row["day"])] += float(row["recorded_cost"])
    days = sorted(billed.keys() | recorded.keys())
    positions = list(range(len(days)))
    ax.bar([p - 0.2 for p in positions], [billed[d] for d in days], 0.4, label="billed (GET /activity)")
    ax.bar([p + 0.2 for p in positions], [recorded[d] for d in days], 0.4, label="recorded (audit)")
    ax.set_xticks(positions, days)
    ax.set_ylabel("USD")
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.legend(fontsize=7)


_DRAW: dict[str, Callable[[Any, Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]], None]] = {
    "cost-per-day": _cost_per_day,
    "cost-by-task": _cost_by_task,
    "tokens-by-model": _tokens_by_model,
    "latency-by-provider": _latency,
    "cache-savings": _cache_savings,
    "reconciliation-gap": _reconciliation_gap,
}


@dataclasses.dataclass(frozen=True)
class Report:
    html: str
    png: bytes
    totals: Totals


def build_report(
    rows: Sequence[Mapping[str, Any]],
    reconciliation: Sequence[Mapping[str, Any]] = (),
    *,
    title: str = "OpenRouter cost audit",
) -> Report:
    """The HTML page and PNG of audit ``rows`` (table rows, money as Decimal) and reconciliation rows."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    sections = []
    for chart, caption in CHARTS:
        figure = Figure(figsize=(7.5, 3.6), layout="constrained")
        _DRAW[chart](figure.subplots(), rows, reconciliation)
        svg = io.StringIO()
        figure.savefig(svg, format="svg", metadata={"Date": None})
        markup = svg.getvalue()
        markup = markup[markup.index("<svg") :]  # drop the XML prolog and doctype: inline SVG in HTML
        sections.append(
            f'<figure data-chart="{chart}"><figcaption>{html.escape(caption)}</figcaption>{markup}</figure>'
        )
    grid = Figure(figsize=(15, 11), layout="constrained")
    for ax, (chart, caption) in zip(grid.subplots(3, 2).flat, CHARTS, strict=True):
        _DRAW[chart](ax, rows, reconciliation)
        ax.set_title(caption, fontsize=10)
    png = io.BytesIO()
    grid.savefig(png, format="png", dpi=90)
    totals = totals_of(rows, reconciliation)
    return Report(_page(title, totals, sections, reconciliation), png.getvalue(), totals)


def _page(
    title: str, totals: Totals, sections: list[str], reconciliation: Sequence[Mapping[str, Any]]
) -> str:
    escaped = html.escape(title)
    facts = "".join(
        f'<dt>{html.escape(label)}</dt><dd data-total="{key}">{html.escape(text)}</dd>'
        for key, label, text in totals.items()
    )
    recon_rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(_cell(row[name]))}</td>"
            for name in ("day", "model", "billed_usage", "recorded_cost", "difference")
        )
        + "</tr>"
        for row in reconciliation
    )
    recon_table = (
        '<h2>Reconciliation</h2><table id="reconciliation"><thead><tr><th>Day (UTC)</th><th>Model</th>'
        "<th>Billed (USD)</th><th>Recorded (USD)</th><th>Difference (USD)</th></tr></thead>"
        f"<tbody>{recon_rows}</tbody></table>"
        if reconciliation
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escaped}</title>
<link rel="icon" href="data:,">
<style>
body{{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1200px}}
dl{{display:grid;grid-template-columns:max-content auto;gap:.25rem 1.5rem}}
dt{{color:#555}} dd{{margin:0;font-variant-numeric:tabular-nums;font-weight:600}}
.charts{{display:grid;grid-template-columns:repeat(auto-fit,minmax(540px,1fr));gap:1.5rem}}
figure{{margin:0}} figcaption{{font-weight:600;margin-bottom:.25rem}} svg{{max-width:100%;height:auto}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:.2rem .6rem;text-align:right}}
</style></head>
<body><h1>{escaped}</h1>
<h2>Totals</h2><dl id="totals">{facts}</dl>
<div class="charts">{"".join(sections)}</div>
{recon_table}
</body></html>
"""


def _cell(value: Any) -> str:
    return plain_decimal(value) if isinstance(value, Decimal) else str(value)


def write_report(report: Report, html_path: Any) -> Any:
    """Write the page to ``html_path`` (ObjectStoragePath or local path) and the PNG beside it
    (``.png`` instead of ``.html``); returns the PNG's path."""
    path = html_path if hasattr(html_path, "protocol") else Path(str(html_path))
    png_path = path.with_name(path.name.rsplit(".", 1)[0] + ".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        handle.write(report.html)
    with png_path.open("wb") as handle:
        handle.write(report.png)
    return png_path
