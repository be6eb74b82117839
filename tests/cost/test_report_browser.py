"""The cost report in a real browser: headless Chromium opens the page with no console error, every chart is
there, and the totals it shows equal the audit table's. Skipped without /usr/bin/chromium, except in CI."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from chromium_launch import CHROMIUM, LAUNCH_ARGS, require_chromium
from cost_names import INFERENCE_CONN, MANAGEMENT_CONN, SQL_CONN

from airflow_provider_openrouter.cost.report import CHARTS
from airflow_provider_openrouter.models import ChatCompletion
from airflow_provider_openrouter.operators import OpenRouterCostAuditOperator, OpenRouterCostReportOperator

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class _TI:
    dag_id = "report_dag"
    run_id = "manual__report"
    task_id = "t"
    map_index = -1
    try_number = 1


def _artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    ignore = ARTIFACTS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")  # screenshots are for people, never for git
    return ARTIFACTS


def test_the_report_opens_cleanly_shows_every_chart_and_the_tables_totals(
    chat: Callable[..., ChatCompletion], connections: Path, tmp_path: Path
) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    answers = [chat(index) for index in range(5)]
    context: Any = {"ti": _TI()}
    OpenRouterCostAuditOperator(
        task_id="audit",
        generation_ids=[answer.id for answer in answers],
        openrouter_conn_id=INFERENCE_CONN,
        sql_conn_id=SQL_CONN,
        management_conn_id=MANAGEMENT_CONN,
        wait_for_stats=20,
    ).execute(context)
    chat(1)  # spend outside the audit: the page must show a gap
    OpenRouterCostAuditOperator(
        task_id="reconcile",
        generation_ids=[],
        openrouter_conn_id=INFERENCE_CONN,
        sql_conn_id=SQL_CONN,
        management_conn_id=MANAGEMENT_CONN,
        reconcile_days=sorted({row for row in _days(connections)}),
    ).execute(context)
    info = OpenRouterCostReportOperator(
        task_id="report", sql_conn_id=SQL_CONN, report_path=str(tmp_path / "report.html")
    ).execute(context)

    with contextlib.closing(sqlite3.connect(connections)) as db:
        costs = [Decimal(cost) for (cost,) in db.execute("SELECT cost FROM openrouter_generation_costs")]
        (prompt_tokens,) = db.execute("SELECT SUM(prompt_tokens) FROM openrouter_generation_costs").fetchone()
        gaps = [
            Decimal(d)
            for (d,) in db.execute("SELECT difference FROM openrouter_generation_costs_reconciliation")
        ]
    assert Path(info.png_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on(
                "console", lambda message: errors.append(message.text) if message.type == "error" else None
            )
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("requestfailed", lambda request: errors.append(f"request failed: {request.url}"))
            page.goto(Path(info.html_path).as_uri())
            page.wait_for_load_state("load")
            charts = page.eval_on_selector_all(
                "figure[data-chart]",
                "figures => figures.map(f => [f.dataset.chart, f.querySelectorAll('svg path').length,"
                " f.querySelector('svg').getBoundingClientRect().width])",
            )
            totals = page.eval_on_selector_all(
                "dd[data-total]",
                "items => Object.fromEntries(items.map(i => [i.dataset.total, i.textContent]))",
            )
            page.screenshot(path=str(_artifacts() / "cost-report.png"), full_page=True)
        finally:
            browser.close()

    assert errors == []
    assert [chart for chart, _, _ in charts] == [chart for chart, _ in CHARTS]
    assert all(paths > 0 and width > 100 for _, paths, width in charts), charts
    assert Decimal(totals["cost"]) == sum(costs, Decimal(0))
    assert int(totals["generations"]) == len(costs) == 5
    assert int(totals["prompt_tokens"]) == prompt_tokens
    assert Decimal(totals["difference"]) == sum(gaps, Decimal(0)) > 0


def _days(database: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        return [day for (day,) in db.execute("SELECT DISTINCT day FROM openrouter_generation_costs")]
