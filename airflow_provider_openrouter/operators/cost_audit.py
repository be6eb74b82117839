"""Cost audit: record what each generation cost, attributed to the DAG that made it, in SQL and/or a file;
reconcile with OpenRouter's ledger; draw the report. See docs/cost-audit.md."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_openrouter import _coerce
from airflow_provider_openrouter.cost.schema import DEFAULT_TABLE
from airflow_provider_openrouter.cost.summary import CostAuditSummary, CostReportInfo
from airflow_provider_openrouter.operators._base import OpenRouterBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_openrouter.cost.collect import Collected

_SOURCES = ("generation", "usage")


def _upstream_tasks(value: Any) -> list[tuple[str, bool]]:
    """``(task_id, is_mapped)`` of every task whose XCom ``value`` references (parse time, no I/O)."""
    try:
        from airflow.sdk.definitions.xcom_arg import XComArg
    except ImportError:  # pragma: no cover - every supported task SDK has it
        return []
    seen: dict[str, bool] = {}
    for operator, _key in XComArg.iter_xcom_references(value):
        seen[operator.task_id] = bool(getattr(operator, "is_mapped", False))
    return list(seen.items())


def _split_days(value: Any, fail: Any) -> list[str] | None:
    if value is None or (isinstance(value, str) and _coerce.unset(value)):
        return None
    days = _coerce.string_list("reconcile_days", value, fail)
    if days is None:
        return None
    from datetime import date

    for day in days:
        try:
            date.fromisoformat(day)
        except ValueError:
            raise fail("reconcile_days", day, "UTC days as YYYY-MM-DD") from None
    return days


class OpenRouterCostAuditOperator(OpenRouterBaseOperator):
    """Record each generation's cost once, with the DAG, task and run that made it, in a SQL table and/or a
    file; optionally reconcile the audited days with OpenRouter's ``GET /activity``. Only GETs are sent.

    :param generation_ids: where the ids come from, nested at any depth: ids; our chat and completion
        operators' XCom (``chat.output`` or ``chat.output["generation_id"]``, a mapped task's list too);
        ``OpenRouterBatchCompletionOperator``'s manifest (its output file is read) or output file; a file of
        ids (one per line, a JSON list, or batch output JSONL) as a path or ObjectStoragePath.
    :param source: ``"generation"`` (default): ``GET /generation`` for every id (complete: provider, latency,
        cache discount; answers 404 for a while after a completion, so asked again for ``wait_for_stats``
        seconds); ``"usage"``: the answers' own usage (free and immediate; ids given bare are unresolved).
    :param sql_conn_id: an Airflow SQL connection (common-sql: ``sqlite`` to a file, ``postgres``, ...); the
        table is created when missing and upserted by generation id, so a rerun never duplicates a row.
    :param table: the table name (default ``openrouter_generation_costs``; reconciliation goes to
        ``<table>_reconciliation``).
    :param output_path: a file (local path or ObjectStoragePath URL) of this audit's rows: ``.jsonl``,
        ``.csv``, or ``.parquet`` (needs pyarrow). At least one of ``sql_conn_id`` and ``output_path``.
    :param wait_for_stats: seconds to keep asking ids that answer 404 (default 120).
    :param max_workers: concurrent ``GET /generation`` requests (default 8); the connection's
        ``requests_per_minute`` paces them all.
    :param management_conn_id: a connection holding a management key: reconcile the audited days (or
        ``reconcile_days``) with ``GET /activity``.
    :param reconcile_days: UTC days (``YYYY-MM-DD``) to reconcile instead of the audited ones (e.g.
        ``"{{ macros.ds_add(ds, -1) }}"``): with ``generation_ids=[]`` a pure reconciliation of the table.
    :param fail_on_unresolved: fail the task (after writing what resolved) when an id stays unresolved.
    :param openrouter_conn_id: the OpenRouter connection for ``GET /generation``.

    Attribution: from the generation's own ``metadata``/``session_id`` (sent by the provider's requests),
    else from the source: a batch row's ``custom_id``, and, for ids read from one upstream task's XCom, that
    task, this DAG run, and (mapped upstream) the map index.

    **XCom contract**: ``return_value`` is a
    :class:`~airflow_provider_openrouter.cost.summary.CostAuditSummary`: totals (``total_cost`` exact
    ``Decimal``), cost by model, provider and DAG, counts, ``unresolved`` ids with their reason, the table and
    its row count, and the reconciliation. No other keys.
    """

    result_type = CostAuditSummary
    template_fields: Sequence[str] = (
        "generation_ids",
        "source",
        "sql_conn_id",
        "table",
        "output_path",
        "wait_for_stats",
        "management_conn_id",
        "reconcile_days",
        "openrouter_conn_id",
    )
    ui_color = "#d8f3dc"

    def __init__(
        self,
        *,
        generation_ids: Any,
        source: str = "generation",
        sql_conn_id: str | None = None,
        table: str = DEFAULT_TABLE,
        output_path: Any = None,
        wait_for_stats: float | str = 120.0,
        max_workers: int = 8,
        management_conn_id: str | None = None,
        reconcile_days: Any = None,
        fail_on_unresolved: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.generation_ids = generation_ids
        self.source = source
        self.sql_conn_id = sql_conn_id
        self.table = table
        self.output_path = output_path
        self.wait_for_stats = wait_for_stats
        self.max_workers = max_workers
        self.management_conn_id = management_conn_id
        self.reconcile_days = reconcile_days
        self.fail_on_unresolved = fail_on_unresolved
        self._upstream = _upstream_tasks(generation_ids)
        if sql_conn_id is None and output_path is None and management_conn_id is None:
            raise self.bad_parameter(
                "sql_conn_id", None, "given, or output_path: the audit needs somewhere to write its rows"
            )

    def _collect(self, context: Context) -> Collected:
        from airflow_provider_openrouter.cost.collect import CostSourceError, collect
        from airflow_provider_openrouter.cost.records import Attribution

        hint = Attribution()
        mapped = False
        if len(self._upstream) == 1:
            # Ids from one upstream task's XCom were made by that task in this very DAG run.
            ti = context["ti"]
            task_id, mapped = self._upstream[0]
            hint = Attribution(dag_id=ti.dag_id, task_id=task_id, run_id=ti.run_id, map_index=None)
        elif self._upstream:
            ti = context["ti"]
            hint = Attribution(dag_id=ti.dag_id, run_id=ti.run_id)
        try:
            return collect(self.generation_ids, hint, mapped=mapped)
        except CostSourceError as err:
            raise self.bad_parameter(
                "generation_ids", self.generation_ids, "readable", hint=str(err)
            ) from None

    def execute(self, context: Context) -> CostAuditSummary:
        from airflow.sdk import ObjectStoragePath

        from airflow_provider_openrouter.cost.audit import run_audit
        from airflow_provider_openrouter.cost.files import file_format
        from airflow_provider_openrouter.cost.schema import check_table_name
        from airflow_provider_openrouter.cost.store import CostStore, CostStoreError
        from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook

        source = str(self.source).strip().lower()
        if source not in _SOURCES:
            raise self.bad_parameter("source", self.source, "'generation' or 'usage'")
        wait = self.as_float("wait_for_stats", self.wait_for_stats) or 0.0
        workers = self.as_int("max_workers", self.max_workers) or 1
        days = _split_days(self.reconcile_days, self.bad_parameter)
        try:
            table = check_table_name(str(self.table))
        except ValueError as err:
            raise self.bad_parameter("table", self.table, "a plain SQL table name", hint=str(err)) from None
        output = None
        if not _coerce.unset(self.output_path):
            output = ObjectStoragePath(str(self.output_path))
            try:
                file_format(output)
            except ValueError as err:
                raise self.bad_parameter(
                    "output_path", self.output_path, "a .jsonl/.csv/.parquet path", hint=str(err)
                ) from None
        collected = self._collect(context)
        store = None
        if not _coerce.unset(self.sql_conn_id):
            try:
                store = CostStore.open(str(self.sql_conn_id), table)
            except CostStoreError as err:
                raise self.bad_parameter(
                    "sql_conn_id", self.sql_conn_id, "a SQL connection", hint=str(err)
                ) from None
        self.log.info(
            "Auditing %d generation id(s) (%d duplicate(s) dropped) from %s",
            len(collected.refs),
            collected.duplicates,
            source,
        )
        with (
            OpenRouterHook(self.openrouter_conn_id, max_connections=workers) as hook,
            self._management() as manager,
        ):
            result = run_audit(
                collected,
                source=source,
                fetch=hook.get_generation,
                store=store,
                output_path=output,
                wait_for_stats=wait,
                max_workers=workers,
                activity_transport=manager.transport if manager is not None and days is None else None,
                management_conn_id=self.management_conn_id,
            )
            summary = result.summary
            if manager is not None and days is not None:
                summary = self._reconcile_days(summary, store, manager, days)
        self._log_summary(summary)
        if summary.unresolved and self.fail_on_unresolved:
            from airflow_provider_openrouter.exceptions import OpenRouterError

            shown = ", ".join(f"{u.generation_id} ({u.reason})" for u in summary.unresolved[:3])
            raise OpenRouterError(
                f"task {self.task_id!r}: {len(summary.unresolved)} generation(s) were not recorded: {shown}",
                conn_id=self.openrouter_conn_id,
                request="GET /generation",
                hint="The recorded ones are saved. Raise wait_for_stats, or check the ids' source.",
            )
        return summary

    def _management(self) -> Any:
        import contextlib

        from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook

        if _coerce.unset(self.management_conn_id):
            return contextlib.nullcontext(None)
        return OpenRouterHook(str(self.management_conn_id))

    def _reconcile_days(
        self, summary: CostAuditSummary, store: Any, manager: Any, days: list[str]
    ) -> CostAuditSummary:
        from airflow_provider_openrouter.cost.reconcile import (
            fetch_activity,
            reconcile,
            reconciliation_sql_rows,
        )

        items, unavailable = fetch_activity(manager.transport, days, str(self.management_conn_id))
        recorded = store.cost_rows(days) if store is not None else []
        reconciliation = reconcile(items, recorded, days, unavailable)
        if store is not None:
            store.upsert_reconciliation(reconciliation_sql_rows(reconciliation))
        return summary.model_copy(update={"reconciliation": reconciliation})

    def _log_summary(self, summary: CostAuditSummary) -> None:
        from airflow_provider_openrouter.models import plain_decimal

        self.log.info(
            "Cost audit: %d of %d generation(s) recorded, total %s USD, %d unresolved, %d GET /generation "
            "request(s)%s",
            summary.recorded,
            summary.requested,
            plain_decimal(summary.total_cost),
            len(summary.unresolved),
            summary.requests_sent,
            f", {summary.rows_in_table} row(s) in {summary.table}" if summary.table else "",
        )
        recon = summary.reconciliation
        if recon is not None:
            self.log.info(
                "Reconciliation: billed %s USD, recorded %s USD, difference %s USD%s",
                plain_decimal(recon.billed_total),
                plain_decimal(recon.recorded_total),
                plain_decimal(recon.difference_total),
                f"; no activity for {', '.join(recon.unavailable_days)}" if recon.unavailable_days else "",
            )


class OpenRouterCostReportOperator(OpenRouterBaseOperator):
    """Draw the cost report from the audit table: a self-contained HTML page (inline SVG charts, no script,
    no network) and a PNG of the same charts beside it. Sends nothing to OpenRouter.

    :param sql_conn_id: the SQL connection holding the audit table.
    :param table: the audit table (its ``<table>_reconciliation`` is read too).
    :param report_path: the HTML file (local path or ObjectStoragePath URL); the PNG is written beside it,
        ``.png`` instead of ``.html``.
    :param days: UTC days (``YYYY-MM-DD``) to report, or ``None`` for the whole table.
    :param title: the page title.

    **XCom contract**: ``return_value`` is a :class:`~airflow_provider_openrouter.cost.summary.CostReportInfo`
    (``html_path``, ``png_path``, ``generations``, ``total_cost``, ``billed``, ``difference``).
    """

    result_type = CostReportInfo
    template_fields: Sequence[str] = ("sql_conn_id", "table", "report_path", "days", "title")
    ui_color = "#d8f3dc"

    def __init__(
        self,
        *,
        sql_conn_id: str,
        report_path: Any,
        table: str = DEFAULT_TABLE,
        days: Any = None,
        title: str = "OpenRouter cost audit",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sql_conn_id = sql_conn_id
        self.table = table
        self.report_path = report_path
        self.days = days
        self.title = title

    def execute(self, context: Context) -> CostReportInfo:
        from airflow.sdk import ObjectStoragePath

        from airflow_provider_openrouter.cost.report import build_report, write_report
        from airflow_provider_openrouter.cost.store import CostStore, CostStoreError

        if _coerce.unset(self.report_path) or not str(self.report_path).lower().endswith((".html", ".htm")):
            raise self.bad_parameter("report_path", self.report_path, "a path ending in .html")
        days = None if self.days is None else _split_days(self.days, self.bad_parameter)
        try:
            store = CostStore.open(str(self.sql_conn_id), str(self.table))
        except (CostStoreError, ValueError) as err:
            raise self.bad_parameter(
                "sql_conn_id", self.sql_conn_id, "a SQL connection", hint=str(err)
            ) from None
        rows = store.cost_rows(days)
        reconciliation = store.reconciliation_rows(days)
        report = build_report(rows, reconciliation, title=str(self.title))
        html_path = ObjectStoragePath(str(self.report_path))
        png_path = write_report(report, html_path)
        totals = report.totals
        self.log.info(
            "Cost report of %d generation(s), %s USD: %s (PNG %s)",
            totals.generations,
            totals.cost,
            html_path,
            png_path,
        )
        return CostReportInfo(
            html_path=str(html_path),
            png_path=str(png_path),
            generations=totals.generations,
            total_cost=totals.cost,
            billed=totals.billed,
            difference=totals.difference,
        )
