"""A watch on OpenRouter's model catalog: snapshot the watched models, diff against the previous snapshot,
emit an Asset event when something changed. See docs/catalog.md."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias

from airflow_provider_openrouter import _coerce
from airflow_provider_openrouter.catalog.diff import CatalogDiff
from airflow_provider_openrouter.catalog.store import DEFAULT_TABLE
from airflow_provider_openrouter.exceptions import OpenRouterError
from airflow_provider_openrouter.models import plain_decimal
from airflow_provider_openrouter.operators._base import OpenRouterBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_openrouter.catalog.store import SnapshotStore

DEFAULT_ASSET_URI = "openrouter://catalog"
_EMIT_WHEN = ("changed", "flagged", "always")


def change_alias(asset: Asset) -> AssetAlias:
    """The alias through which the operator emits ``asset``: only an alias lets a task succeed without an
    event (Airflow emits every Asset listed in a task's ``outlets`` each time the task succeeds)."""
    return AssetAlias(f"openrouter-catalog:{asset.uri}")


class OpenRouterModelCatalogOperator(OpenRouterBaseOperator):
    """Snapshot the watched part of OpenRouter's model catalog (``GET /models``, and on request each watched
    model's endpoints) into a SQL table or a file, and return what changed since the previous snapshot of
    the same watch: models added and removed, every price that rose or fell (old, new, ratio), context limit
    changes. Only GETs are sent (not billable).

    :param models: model ids (``"openai/gpt-4o"``) and prefixes (``"openai/*"``, ``"anthropic/claude-*"``,
        ``"openai/"``) to watch; ``None`` (default): the whole catalog.
    :param endpoints: also snapshot each watched model's provider endpoints (one ``GET`` per model); their
        entries are ``<model id>@<provider tag>``.
    :param filters: query parameters of ``GET /models`` (``{"output_modalities": "all"}`` to include image
        and audio models, which OpenRouter leaves out by default).
    :param rise_threshold_percent: a price rise is ``flagged`` only above this percentage (default 0: every
        rise). Cuts are reported, never flagged.
    :param sql_conn_id: an Airflow SQL connection (common-sql: ``sqlite``, ``postgres``, ...) holding
        ``table``. With neither ``sql_conn_id`` nor ``output_path``, the table lives in an embedded SQLite
        file, ``$AIRFLOW_HOME/openrouter_catalog.db`` (fine on one machine; name a connection when tasks run
        on several workers).
    :param table: the snapshot table (default ``openrouter_model_catalog``), created when missing.
    :param output_path: instead of SQL, a ``.json`` file (the latest snapshot of each watch) or ``.jsonl``
        file (every snapshot), a local path or ObjectStoragePath URL.
    :param watch_name: the name this watch's snapshots are kept under (default ``<dag_id>.<task_id>``); two
        tasks with the same name compare against each other's snapshots.
    :param asset: the Asset (or its URI) to emit when ``emit_when`` holds; default ``openrouter://catalog``;
        ``None``: no event. Schedule a DAG on it: ``schedule=[Asset("openrouter://catalog")]``.
    :param emit_when: ``"changed"`` (default: anything in the diff), ``"flagged"`` (a price rise above the
        threshold), or ``"always"`` (every run, even with an empty diff).
    :param openrouter_conn_id: the OpenRouter connection (default ``openrouter_default``).

    The event's ``extra`` is the diff as JSON (``CatalogDiff.model_dump(mode="json")``: prices as plain
    decimal strings). Assets listed in ``outlets`` are emitted by Airflow on every success; the operator
    puts the same diff in their ``extra``.

    **XCom contract**: ``return_value`` is a
    :class:`~airflow_provider_openrouter.catalog.diff.CatalogDiff` (typed, registered with XCom's serde):
    ``added``, ``removed``, ``price_changes`` (``old``, ``new``, ``ratio``, ``change_percent``, ``direction``,
    ``flagged``), ``context_changes``, ``changed``, ``flagged_rises``, ``first_snapshot``. No other keys.
    """

    result_type = CatalogDiff
    template_fields: Sequence[str] = (
        "openrouter_conn_id",
        "models",
        "endpoints",
        "filters",
        "rise_threshold_percent",
        "sql_conn_id",
        "table",
        "output_path",
        "watch_name",
        "emit_when",
    )
    template_fields_renderers = {"models": "json", "filters": "json"}
    ui_color = "#fff3bf"

    def __init__(
        self,
        *,
        models: list[str] | str | None = None,
        endpoints: bool | str = False,
        filters: dict[str, Any] | str | None = None,
        rise_threshold_percent: float | str | Decimal = 0,
        sql_conn_id: str | None = None,
        table: str = DEFAULT_TABLE,
        output_path: str | ObjectStoragePath | None = None,
        watch_name: str | None = None,
        asset: Asset | str | None = DEFAULT_ASSET_URI,
        emit_when: str = "changed",
        **kwargs: Any,
    ) -> None:
        self.asset = Asset(asset) if isinstance(asset, str) else asset
        if self.asset is not None:
            outlets = kwargs.pop("outlets", None) or []
            outlets = list(outlets) if isinstance(outlets, list | tuple) else [outlets]
            kwargs["outlets"] = [*outlets, change_alias(self.asset)]
        super().__init__(**kwargs)
        if self.asset is not None and self.asset in self.outlets:
            raise self.bad_parameter(
                "outlets",
                self.asset.uri,
                "without the operator's own asset",
                hint="Airflow emits an Asset listed in outlets on every success; the operator emits "
                "`asset` itself when emit_when holds. Leave it out of outlets.",
            )
        if sql_conn_id is not None and output_path is not None:
            raise self.bad_parameter(
                "output_path", output_path, "omitted when sql_conn_id is given (snapshots go to one store)"
            )
        self.models = models
        self.endpoints = endpoints
        self.filters = filters
        self.rise_threshold_percent = rise_threshold_percent
        self.sql_conn_id = sql_conn_id
        self.table = table
        self.output_path = output_path
        self.watch_name = watch_name
        self.emit_when = emit_when

    def _threshold(self) -> Decimal:
        value = self.rise_threshold_percent
        try:
            threshold = Decimal(str(value).strip().removesuffix("%"))
        except ArithmeticError:
            threshold = Decimal(-1)
        if isinstance(value, bool) or not threshold.is_finite() or threshold < 0:
            raise self.bad_parameter("rise_threshold_percent", value, "a percentage >= 0, e.g. 10 or '10%'")
        return threshold

    def _store(self) -> SnapshotStore:
        from airflow.sdk import ObjectStoragePath

        from airflow_provider_openrouter.catalog.snapshot import CatalogError
        from airflow_provider_openrouter.catalog.store import FileSnapshotStore, SqlSnapshotStore
        from airflow_provider_openrouter.cost.store import CostStoreError

        if not _coerce.unset(self.output_path):
            try:
                return FileSnapshotStore(ObjectStoragePath(str(self.output_path)))
            except CatalogError as err:
                raise self.bad_parameter(
                    "output_path", self.output_path, "a .json or .jsonl path", hint=str(err)
                ) from None
        conn_id = None if _coerce.unset(self.sql_conn_id) else str(self.sql_conn_id)
        try:
            return SqlSnapshotStore.open(conn_id, str(self.table))
        except (CostStoreError, ValueError) as err:
            name, value = (
                ("sql_conn_id", conn_id) if isinstance(err, CostStoreError) else ("table", self.table)
            )
            raise self.bad_parameter(name, value, "usable for the snapshot table", hint=str(err)) from None

    def execute(self, context: Context) -> CatalogDiff:
        from airflow_provider_openrouter.catalog.snapshot import CatalogError
        from airflow_provider_openrouter.catalog.sync import sync_catalog

        emit_when = str(self.emit_when).strip().lower()
        if emit_when not in _EMIT_WHEN:
            raise self.bad_parameter("emit_when", self.emit_when, "'changed', 'flagged' or 'always'")
        threshold = self._threshold()
        models = self.as_str_list("models", self.models)
        endpoints = self.as_bool("endpoints", self.endpoints)
        filters = self.as_dict("filters", self.filters)
        ti = context["ti"]
        watch = f"{ti.dag_id}.{ti.task_id}" if _coerce.unset(self.watch_name) else str(self.watch_name)
        store = self._store()
        with self.hook:
            try:
                diff = sync_catalog(
                    self.hook,
                    store,
                    watch=watch,
                    models=models,
                    endpoints=endpoints,
                    filters=filters,
                    rise_threshold_percent=threshold,
                )
            except CatalogError as err:
                raise self.bad_parameter(
                    "models", self.models, "model ids or prefixes", hint=str(err)
                ) from None
            except OpenRouterError as err:
                self.log_failure("model catalog snapshot", err)
                raise
        self._log(diff)
        self._emit(context, diff, emit_when)
        return diff

    def _log(self, diff: CatalogDiff) -> None:
        self.log.info(
            "Catalog watch %r: %d entries stored in %s; %s",
            diff.watch,
            diff.watched,
            diff.stored_in,
            "first snapshot, nothing to compare"
            if diff.first_snapshot
            else f"{len(diff.added)} added, {len(diff.removed)} removed, {len(diff.price_changes)} price "
            f"change(s) ({diff.flagged_rises} flagged rise(s)), {len(diff.context_changes)} context "
            "change(s)",
        )
        for rise in diff.rises(flagged_only=True):
            self.log.warning(
                "Price rise: %s %s %s -> %s (%s%%)",
                rise.id,
                rise.field,
                "none" if rise.old is None else plain_decimal(rise.old),
                plain_decimal(rise.new) if rise.new is not None else "none",
                "new" if rise.change_percent is None else plain_decimal(rise.change_percent),
            )
        if diff.not_listed:
            self.log.warning("Watched model id(s) not in the catalog: %s", ", ".join(diff.not_listed))

    def _emit(self, context: Context, diff: CatalogDiff, emit_when: str) -> None:
        extra = diff.model_dump(mode="json")
        events = context["outlet_events"]
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                events[outlet].extra = extra
        wanted = {"changed": diff.changed, "flagged": diff.flagged_rises > 0, "always": True}[emit_when]
        if self.asset is not None and wanted:
            events[change_alias(self.asset)].add(self.asset, extra=extra)
            self.log.info("Emitted an event of Asset %r with the diff in its extra", self.asset.uri)
