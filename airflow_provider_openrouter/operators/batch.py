"""Batch completions: many chat completions in one task, through the Batch API or a rate-aware fan-out."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeGuard

from airflow_provider_openrouter import _coerce
from airflow_provider_openrouter.batch import MAX_BATCH_REQUESTS
from airflow_provider_openrouter.batch.manifest import BatchManifest
from airflow_provider_openrouter.exceptions import OpenRouterRequestError
from airflow_provider_openrouter.operators._base import (
    _INTEGER,
    _OBJECT,
    CHAT_PARAMETERS,
    OpenRouterChatParametersOperator,
)

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context, ObjectStoragePath
    from pydantic import BaseModel

    from airflow_provider_openrouter.batch.batch_api import BatchApiClient
    from airflow_provider_openrouter.batch.concurrent import ConcurrentRunner
    from airflow_provider_openrouter.batch.engine import BatchJob, BuildBody
    from airflow_provider_openrouter.batch.inputs import BatchRow, InputSource
    from airflow_provider_openrouter.budget import BudgetExhaustedError, OpenRouterBudget
    from airflow_provider_openrouter.exceptions import OpenRouterError
    from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook
    from airflow_provider_openrouter.transport import TransportSettings

Mode = Literal["auto", "batch_api", "concurrent"]
MODES: tuple[str, ...] = ("auto", "batch_api", "concurrent")
ENDPOINTS: tuple[str, ...] = ("chat", "embeddings")
BATCH_WINDOW = timedelta(hours=24)
MAX_CONCURRENCY = 1024
"""The most requests one task keeps in flight: each holds one socket of one event loop (the engine raises the
process's soft limit of open files towards the hard one when it needs more). Past a few hundred requests in
flight the account's rate limit, not concurrency, sets the pace (1,024 answers of 500 ms are 120,000 requests
a minute). For more, shard the input over several tasks."""

# Row fields that are parameters of build_chat_request; any other row field goes into the body as is.
_ROW_CHAT_PARAMETERS = tuple(name for name in CHAT_PARAMETERS if name != "extra_body")


class OpenRouterBatchCompletionOperator(OpenRouterChatParametersOperator):
    """Run a chat completion for every row of an input, write one JSONL line per row, return a manifest.

    **Input** (exactly one): ``inputs``, a list (templated, so it can come from an upstream task's XCom) or
    ``input_path``, a JSONL file on any ObjectStoragePath (``/data/in.jsonl``, ``s3://conn@bucket/in.jsonl``),
    read as a stream. A row is a prompt string, a list of messages, or an object with an optional
    ``custom_id`` and one of ``prompt``, ``messages`` or ``body`` (a full request body); see docs/batch.md.
    Every row is validated and its request built before anything is sent.

    **Output**: ``output_path`` (ObjectStoragePath) gets one JSON line per row, in input order: ``custom_id``,
    ``index``, ``status`` (``succeeded``, ``failed``, ``outcome_unknown``, ``not_sent``), ``text``,
    ``finish_reason``, ``model``, ``generation_id``, ``usage``, ``cost``, ``tool_calls``, ``error``,
    ``attempts``. It appears only when whole; ``<output_path>.manifest.json`` is written after it and vouches
    for it. The checkpoint ``<output_path>.checkpoint.jsonl`` stays (for an object store: under
    ``checkpoint_dir``, mirrored to ``<output_path>.checkpoint/``), so a rerun of the same run reuses finished
    rows instead of paying for them again.

    **Modes**: ``concurrent`` fans out ``concurrency`` requests at a time against ``/chat/completions`` within
    the connection's ``requests_per_minute``; ``batch_api`` submits OpenRouter batches from the worker, then
    defers (no worker slot held while OpenRouter works) and lands the results; ``auto`` picks ``batch_api``
    for at least ``batch_api_min_rows`` rows of one model when the task may wait out the 24 h batch window (no
    ``execution_timeout`` under 24 h), else ``concurrent``, and logs why.

    **Money**: every billable request carries an ``X-Idempotency-Key`` derived from the run and the row. A row
    is checkpointed the moment it finishes; a retry, a cleared task or a rerun after the worker was killed
    resends no finished row. A row whose answer was lost (``outcome_unknown``: it may have been billed) is not
    resent unless ``resend_unknown=True``. Batch API submissions are recorded in
    ``<output_path>.batches.json``, so a retry re-attaches to them instead of submitting again.

    **Failures**: a failed row is labelled in the output. The task fails, after writing the whole output, when
    the share of rows that did not succeed exceeds ``max_failed_fraction`` (default 0.0), or when an account
    error (401, 402, 403) stopped the run (the rows left are ``not_sent`` and go out on a retry). ``on_kill``
    stops a concurrent run the same way: rows in flight finish and are checkpointed, no new row is sent.

    :param model: the model every row uses unless a row names its own (templated).
    :param output_path: where the JSONL goes (templated).
    :param inputs: the rows, inline (templated).
    :param input_path: a JSONL file of rows (templated).
    :param mode: ``"auto"``, ``"batch_api"`` or ``"concurrent"``.
    :param concurrency: requests in flight at once in concurrent mode (1 to :data:`MAX_CONCURRENCY`, 1,024;
        never more than the rows to send).
    :param max_failed_fraction: share of rows (0..1) that may end other than ``succeeded``.
    :param system_prompt, temperature, top_p, max_tokens, stop, seed, response_format, tools, tool_choice,
        models, provider, reasoning, extra_body: defaults for every row, the same parameters as
        ``OpenRouterChatCompletionOperator`` (one definition, ``operators._base.CHAT_PARAMETERS``), merged the
        same way; a row's own fields win.
    :param shard_index, shard_count: run one of ``shard_count`` round-robin shards of the input (see
        :func:`airflow_provider_openrouter.batch.sharding.plan_shards`).
    :param requests_per_minute: this task's rate budget (default: the connection's / ``shard_count``).
    :param resend_unknown: send rows whose earlier outcome is unknown again (may pay twice for them).
    :param row_retries: the attempt cap of a row, with the connection's ``max_retries``: a row is sent at most
        ``1 + max_retries + row_retries`` times (default 1 + 5 + 3 = 9), 429s included, and only while it
        provably was not billed (OpenRouter's error envelope: 408, 429, 5xx) and within the connection's
        ``max_retry_wait`` seconds of its first send.
    :param progress_interval: seconds between progress lines in the log.
    :param poll_interval: seconds between Batch API status polls in the triggerer.
    :param batch_timeout: how long to wait for batches before the task fails (they keep running; a retry
        re-attaches).
    :param batch_api_min_rows: rows from which ``auto`` considers the Batch API.
    :param max_batch_requests: requests per submitted batch, at most OpenRouter's limit of 5,000 (the
        default); a bigger input becomes several batches.
    :param checkpoint_dir: local directory for the journal of an output on an object store (it is mirrored
        next to the output as well).
    :param attribution: every row's request names this task and the row (``metadata`` with DAG, task, run,
        map index, try number and ``custom_id``; ``session_id`` and ``trace``: the DAG run) unless
        ``False``; a dict (or its JSON text) adds your own metadata pairs. Overrides the connection extra
        ``attribution``. It is added when a row is sent, after the run's identity is made, so a retry still
        resumes.
    :param endpoint: ``"chat"`` (``/chat/completions``, the default) or ``"embeddings"``: every row is one
        input to embed (``/embeddings``, one vector per row; see docs/embeddings.md).
    :param output_type: a pydantic class (or its dotted path ``"pkg.mod.Class"``) every chat answer is
        validated into (docs/structured-outputs.md): the record gets ``output``; an answer that does not fit
        is ``invalid_output`` (paid for, counted against ``max_failed_fraction``).
    :param budget: an :class:`~airflow_provider_openrouter.budget.OpenRouterBudget`, or the name of one in
        the connection extra ``budgets`` (docs/budgets.md). Concurrent mode reserves each row's worst case
        before its ``sending`` record; when a row does not fit, nothing more is sent (the rest is
        ``not_sent``), the output is written whole, and the task fails, skips or waits for the next period
        as the budget's ``on_exhausted`` says (waiting, a rerun sends only the unsent rows).
    :param openrouter_conn_id: the OpenRouter connection (templated).

    **XCom contract**

    ================  ===============================  =====================================================
    key               type                             value
    ================  ===============================  =====================================================
    ``return_value``  ``batch.manifest.BatchManifest``  counts by outcome, tokens, total cost (Decimal),
                                                       output path, timings, batch ids, mode and why
    ``batch_ids``     ``list[str]``                    Batch API only: pushed as soon as batches exist
    ``manifest``      ``BatchManifest``                pushed before the task fails on too many failed rows
    ================  ===============================  =====================================================

    Outlets: every ``Asset`` in ``outlets`` gets an event whose extra is ``manifest.summary()``.
    """

    result_type: ClassVar[type[BatchManifest]] = BatchManifest
    # Set while execute() runs; on_kill reads them (from Airflow's signal handler) to stop the runner.
    _runner: ConcurrentRunner | None = None
    _killed: bool = False
    template_fields: Sequence[str] = (
        "openrouter_conn_id",
        "model",
        "inputs",
        "input_path",
        "output_path",
        "concurrency",
        "max_failed_fraction",
        *CHAT_PARAMETERS,
        "shard_index",
        "shard_count",
        "requests_per_minute",
        "checkpoint_dir",
        "attribution",
        "budget",
    )
    template_fields_renderers = {
        **OpenRouterChatParametersOperator.template_fields_renderers,
        "inputs": "json",
        "attribution": "json",
    }

    def __init__(
        self,
        *,
        model: str | None,
        output_path: str | ObjectStoragePath,
        inputs: list[Any] | str | None = None,
        input_path: str | ObjectStoragePath | None = None,
        mode: Mode = "auto",
        concurrency: int | str = 16,
        max_failed_fraction: float | str = 0.0,
        shard_index: int | str = 0,
        shard_count: int | str = 1,
        requests_per_minute: float | str | None = None,
        resend_unknown: bool = False,
        row_retries: int = 3,
        progress_interval: float = 30.0,
        poll_interval: float = 60.0,
        batch_timeout: timedelta = timedelta(hours=26),
        batch_api_min_rows: int = 1000,
        max_batch_requests: int = MAX_BATCH_REQUESTS,
        checkpoint_dir: str | None = None,
        attribution: bool | dict[str, Any] | str | None = None,
        endpoint: str = "chat",
        output_type: type | str | None = None,
        budget: OpenRouterBudget | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if endpoint not in ENDPOINTS:
            raise self.bad_parameter("endpoint", endpoint, f"one of {', '.join(ENDPOINTS)}")
        if mode not in MODES:
            raise self.bad_parameter("mode", mode, f"one of {', '.join(MODES)}")
        if inputs is not None and input_path is not None:
            raise self.bad_parameter(
                "inputs", "...", "left out when input_path is given (one input, not two)"
            )
        if inputs is None and input_path is None:
            raise self.bad_parameter("inputs", None, "given, or input_path: there is nothing to run")
        self.model = model
        self.output_path = output_path
        self.inputs = inputs
        self.input_path = input_path
        self.mode = mode
        self.concurrency = concurrency
        self.max_failed_fraction = max_failed_fraction
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.requests_per_minute = requests_per_minute
        self.resend_unknown = resend_unknown
        self.row_retries = row_retries
        self.progress_interval = progress_interval
        self.poll_interval = poll_interval
        self.batch_timeout = batch_timeout
        self.batch_api_min_rows = batch_api_min_rows
        self.max_batch_requests = max_batch_requests
        self.checkpoint_dir = checkpoint_dir
        self.attribution = attribution
        self.endpoint = endpoint
        self.output_type = output_type
        self.budget = budget

    def render_template(
        self,
        content: Any,
        context: Context,
        jinja_env: jinja2.Environment | None = None,
        seen_oids: set[int] | None = None,
    ) -> Any:
        """Airflow's rendering, except that a string Jinja would render to itself is returned as it is.

        Airflow compiles every string of a template field as a template (about 250 us each): for ``inputs`` of
        10,000 prompts that is seconds of the task's time before ``execute()``, spent on text without any
        template syntax. Such a string renders to itself, so skipping Jinja for it changes no result.
        """
        if isinstance(content, str) and jinja_env is not None and self._renders_as_itself(content, jinja_env):
            return content
        return super().render_template(content, context, jinja_env, seen_oids)

    def _renders_as_itself(self, text: str, env: jinja2.Environment) -> bool:
        """No template syntax, no newline Jinja would rewrite, no native types, not a template file name."""
        from jinja2.nativetypes import NativeEnvironment

        if isinstance(env, NativeEnvironment):  # native rendering turns "42" into 42
            return False
        markers = (
            env.block_start_string,
            env.variable_start_string,
            env.comment_start_string,
            env.line_statement_prefix,
            env.line_comment_prefix,
        )
        if any(marker and marker in text for marker in markers) or "\r" in text:
            return False
        if "\n" in text and (
            env.newline_sequence != "\n" or (text.endswith("\n") and not env.keep_trailing_newline)
        ):
            return False
        return not (self.template_ext and text.endswith(tuple(self.template_ext)))

    # -- rendered parameters -------------------------------------------------------------------------------

    def _whole_number(self, name: str, value: Any, low: int, high: int | None = None, why: str = "") -> int:
        number = self.as_int(name, value)
        if number is None or number < low or (high is not None and number > high):
            bounds = f">= {low}" if high is None else f"from {low} to {high:,}{why}"
            raise self.bad_parameter(name, value, f"a whole number {bounds}")
        return number

    def _positive_number(self, name: str, value: Any) -> float:
        number = self.as_float(name, value)
        if number is None or number <= 0:
            raise self.bad_parameter(name, value, "a number of seconds > 0")
        return number

    def _max_failed_fraction(self) -> float:
        fraction = self.as_float("max_failed_fraction", self.max_failed_fraction)
        if fraction is None or not 0.0 <= fraction <= 1.0:
            raise self.bad_parameter("max_failed_fraction", self.max_failed_fraction, "a number from 0 to 1")
        return fraction

    def _concurrency(self) -> int:
        return self._whole_number(
            "concurrency", self.concurrency, 1, MAX_CONCURRENCY, " (shard the input for more)"
        )

    def _max_batch_requests(self) -> int:
        return self._whole_number(
            "max_batch_requests",
            self.max_batch_requests,
            1,
            MAX_BATCH_REQUESTS,
            ", OpenRouter's limit of requests per batch",
        )

    def _rate_budget(self) -> float | None:
        """This task's requests per minute when given (``None``: the connection's, shared by the shards)."""
        share = self.as_float("requests_per_minute", self.requests_per_minute)
        if share is not None and share < 0:
            raise self.bad_parameter("requests_per_minute", self.requests_per_minute, "a number >= 0")
        return share

    def _check_parameters(self) -> None:
        """Every parameter, before anything is read, written or sent: a typo costs nothing."""
        self._max_failed_fraction()
        self._concurrency()
        self._max_batch_requests()
        self._rate_budget()
        self._whole_number("shard_index", self.shard_index, 0)
        self._whole_number("shard_count", self.shard_count, 1)
        self._whole_number("row_retries", self.row_retries, 0)
        self._whole_number("batch_api_min_rows", self.batch_api_min_rows, 1)
        self._positive_number("progress_interval", self.progress_interval)
        self._positive_number("poll_interval", self.poll_interval)
        self.as_bool("resend_unknown", self.resend_unknown)
        if not isinstance(self.batch_timeout, timedelta) or self.batch_timeout <= timedelta(0):
            raise self.bad_parameter("batch_timeout", self.batch_timeout, "a positive datetime.timedelta")
        if not str(self.output_path or "").strip():
            raise self.bad_parameter(
                "output_path", self.output_path, "a file path such as s3://bucket/out.jsonl"
            )

    @staticmethod
    def _path(value: Any) -> ObjectStoragePath:
        from airflow.sdk import ObjectStoragePath

        return value if isinstance(value, ObjectStoragePath) else ObjectStoragePath(str(value).strip())

    def _source(self) -> InputSource:
        from airflow_provider_openrouter.batch.inputs import (
            InlineInputSource,
            JsonlInputSource,
            coerce_inline_inputs,
        )

        if self.input_path not in (None, ""):
            return JsonlInputSource(self._path(self.input_path))
        return InlineInputSource(coerce_inline_inputs(self.inputs))

    def _body_builder(self, hook: OpenRouterHook, model: str) -> BuildBody:
        if self.endpoint == "embeddings":
            from airflow_provider_openrouter.batch.inputs import embedding_body

            defaults = self.chat_parameters()
            # Of the operator's parameters, these are the ones an /embeddings request takes.
            shared = {
                name: defaults[name] for name in ("provider", "extra_body") if defaults[name] is not None
            }
            return lambda row: embedding_body(row, model, shared)
        defaults = self.chat_parameters()

        def build_body(row: BatchRow) -> dict[str, Any]:
            overrides = dict(row.overrides)
            row_model = overrides.pop("model", None) or model
            params = {**defaults}
            # A row from a template carries text where numbers are meant ("0.2"), as the operator's fields do.
            named = {name: overrides.pop(name) for name in _ROW_CHAT_PARAMETERS if name in overrides}
            params.update(
                _coerce.chat_parameters(named, _bad_row_field, integer_kind=_INTEGER, object_kind=_OBJECT)
            )
            extra_body = {**(params.pop("extra_body") or {}), **overrides}
            # The identity is made of this body: the attribution (with its try number) is added when sent.
            return hook.build_chat_request(
                row_model, messages=row.messages, extra_body=extra_body or None, attribution=False, **params
            )

        # An operator extra_body with its own "messages" replaces every row's: no prompt body to copy then.
        return _ChatBodies(build_body, reuse="messages" not in (defaults["extra_body"] or {}))

    def _run_key(self, context: Context) -> str:
        ti = context["ti"]
        return f"{ti.dag_id}/{ti.task_id}/{ti.run_id}/{getattr(ti, 'map_index', -1)}"

    def _job(self, context: Context) -> BatchJob:
        """The job of this run, scanned: every row validated and its body built, nothing sent yet."""
        from airflow_provider_openrouter.batch.engine import BatchJob, BatchSpec
        from airflow_provider_openrouter.batch.errors import BatchInputError

        hook = self.hook
        model = (self.model or "").strip() or hook.settings.default_model
        if not model:
            raise BatchInputError(
                f"task {self.task_id!r}: no model given and connection '{self.openrouter_conn_id}' has no "
                "default_model. Pass model='author/slug'"
            )
        spec = BatchSpec(
            source=self._source(),
            output_path=self._path(self.output_path),
            model=model,
            build_body=self._body_builder(hook, model),
            run_key=self._run_key(context),
            shard_index=self._whole_number("shard_index", self.shard_index, 0),
            shard_count=self._whole_number("shard_count", self.shard_count, 1),
            resend_unknown=self.as_bool("resend_unknown", self.resend_unknown),
            checkpoint_dir=Path(self.checkpoint_dir) if self.checkpoint_dir else None,
            attribute=hook.attribution_for(self.attribution, context=context, rows=True).apply,
            endpoint=self.endpoint,
        )
        job = BatchJob(spec, self.log)
        scan = job.scan()
        self.log.info(
            "batch input %s: %d rows (shard %d of %d), identity %s",
            spec.source.description,
            scan.total,
            spec.shard_index + 1,
            spec.shard_count,
            scan.identity[:16],
        )
        return job

    @cached_property
    def engine_hook(self) -> OpenRouterHook:
        """The hook the rows go through: this task's share of the rate budget (the engine's pace).

        N shards share the connection's ``requests_per_minute``: each uses 1/N of it unless
        ``requests_per_minute`` gives this task's own budget.
        """
        from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook

        share = self._rate_budget()
        connection_rate = self.hook.settings.requests_per_minute
        shards = self._whole_number("shard_count", self.shard_count, 1)
        if share is None and shards > 1 and connection_rate:
            share = connection_rate / shards
        if share is not None and share != connection_rate:
            self.log.info(
                "rate budget of this task: %g requests/minute (connection: %g)", share, connection_rate or 0
            )
        return OpenRouterHook(
            self.openrouter_conn_id, requests_per_minute=share, max_connections=self._concurrency()
        )

    @property
    def engine_settings(self) -> TransportSettings:
        """The connection's settings with this task's rate budget."""
        return self.engine_hook.settings

    def _close(self, job: BatchJob | None) -> None:
        """Close what this attempt opened, whatever ended it: the checkpoint (flushed to disk), the hooks."""
        try:
            if job is not None:
                job.close()
        finally:
            for name in ("engine_hook", "hook"):
                opened = self.__dict__.pop(name, None)
                if opened is not None:
                    opened.close()

    # -- mode choice ---------------------------------------------------------------------------------------

    def _choose_mode(self, job: BatchJob) -> tuple[str, str]:
        from airflow_provider_openrouter.batch.errors import BatchInputError

        scan = job.scanned
        other_models = sorted(scan.row_models - {job.spec.model})
        if self.mode == "concurrent":
            return "concurrent", "mode='concurrent' was requested"
        if self.mode == "batch_api":
            if other_models:
                raise BatchInputError(
                    f"mode='batch_api' runs one model per batch, but rows ask for {other_models}. Use "
                    "mode='concurrent', or drop the per-row model"
                )
            return "batch_api", "mode='batch_api' was requested"
        if other_models:
            return "concurrent", f"auto: rows use models other than {job.spec.model} ({other_models[:3]})"
        if scan.total < self.batch_api_min_rows:
            return "concurrent", (
                f"auto: {scan.total} rows, fewer than batch_api_min_rows={self.batch_api_min_rows}, finish "
                "sooner concurrently"
            )
        if self.execution_timeout is not None and self.execution_timeout < BATCH_WINDOW:
            return "concurrent", (
                f"auto: execution_timeout {self.execution_timeout} is shorter than the Batch API's "
                f"{BATCH_WINDOW} window"
            )
        return "batch_api", (
            f"auto: {scan.total} rows of one model, and the task may wait out the {BATCH_WINDOW} batch "
            "window without holding a worker slot"
        )

    def _check_models(self, job: BatchJob) -> None:
        """Fail before paying when a model is not in the catalog (one GET /models, not billed)."""
        from airflow_provider_openrouter.batch.errors import BatchInputError
        from airflow_provider_openrouter.exceptions import OpenRouterError

        wanted = {job.spec.model, *job.scanned.row_models, *(self.chat_parameters()["models"] or [])}
        try:
            known = {model.id for model in self.hook.list_models().data}
        except OpenRouterError as err:
            self.log.warning("could not read the model catalog to check %s first: %s", sorted(wanted), err)
            return
        unknown = sorted(wanted - known)
        if unknown:
            raise BatchInputError(
                f"task {self.task_id!r}: model(s) {unknown} are not in OpenRouter's catalog ({len(known)} "
                "models). Use exact ids from OpenRouterListModelsOperator"
            )

    # -- execution ---------------------------------------------------------------------------------------

    def execute(self, context: Context) -> BatchManifest:
        started = time.monotonic()
        self._check_parameters()
        job: BatchJob | None = None
        try:
            job = self._job(context)
            mode, reason = self._choose_mode(job)
            self.log.info("batch mode: %s (%s)", mode, reason)
            self._check_models(job)
            job.open()
            if mode == "batch_api":
                fallback = self._submit_and_defer(context, job, reason, started)
                if fallback is None:  # nothing left to wait for
                    return self._land(context, job)
                reason = fallback
                self.log.info("batch mode: concurrent (%s)", reason)
            return self._run_concurrent(context, job, reason)
        finally:
            self._close(job)

    def _output_type(self) -> type[BaseModel] | None:
        if self.output_type in (None, ""):
            return None
        from airflow_provider_openrouter.structured import load_output_type

        assert self.output_type is not None
        return load_output_type(self.output_type)

    def _budget(self) -> OpenRouterBudget | None:
        value = self.budget
        if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
            return None
        return self.hook.budget_for(value)

    def _run_concurrent(self, context: Context, job: BatchJob, reason: str) -> BatchManifest:
        from airflow_provider_openrouter.batch.concurrent import RunnerSettings, run_job

        budget = self._budget()
        reserve = None
        ledger = None
        if budget is not None:
            ledger = budget.open(self.hook, run_id=context["ti"].run_id)
            opened = ledger

            def reserve(row: BatchRow) -> Any:
                return opened.reserve(job.request_body(row))

        settings = RunnerSettings(
            concurrency=self._concurrency(),
            row_retries=self._whole_number("row_retries", self.row_retries, 0),
            progress_interval=self._positive_number("progress_interval", self.progress_interval),
        )
        try:
            manifest, runner = run_job(
                job,
                self.engine_hook,
                settings,
                self.log,
                mode_reason=reason,
                on_start=self._runner_started,
                output_type=self._output_type(),
                reserve=reserve,
            )
        finally:
            # Every reservation is settled by now; each engine thread opened its own SQLite connection.
            if ledger is not None:
                ledger.close()
        stop_error = runner.stop_error
        if budget is not None and _is_budget_error(stop_error):
            self._emit_asset_events(context, manifest)
            if self.do_xcom_push:
                context["ti"].xcom_push(key="manifest", value=manifest)
            self._wait_for_budget(stop_error, budget)
        if stop_error is None and self._killed and manifest.counts.not_sent:
            from airflow_provider_openrouter.batch.errors import BatchFailedRowsError

            stop_error = BatchFailedRowsError(
                f"task {self.task_id!r} was stopped (on_kill) before every row was sent: "
                f"{manifest.counts.not_sent} of {manifest.counts.total} rows not sent. See "
                f"{manifest.output_path}",
                conn_id=self.openrouter_conn_id,
            )
        return self._conclude(context, manifest, stop_error)

    def _wait_for_budget(self, err: Any, budget: OpenRouterBudget) -> None:
        """The output is whole; now what the budget's ``on_exhausted`` says: raise ``err`` (fail), skip, or
        defer until the next period starts and run again (only the unsent rows go out then)."""
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        from airflow_provider_openrouter.budget import raise_for_exhausted

        moment = raise_for_exhausted(err, budget)
        self.log.info("Budget %r is exhausted; waiting until %s", budget.name, moment.isoformat())
        self.defer(trigger=DateTimeTrigger(moment=moment), method_name="execute_after_budget_wait")

    def execute_after_budget_wait(self, context: Context, event: Any = None) -> BatchManifest:
        """Run the task again once its budget's next period has started: the checkpoint resumes it."""
        return self.execute(context)

    def _runner_started(self, runner: ConcurrentRunner) -> None:
        self._runner = runner
        if self._killed:  # on_kill came before the runner existed: send nothing
            runner.stop()

    def on_kill(self) -> None:
        """Stop a concurrent run from sending: rows in flight finish and are checkpointed, the rest stay
        unsent (``not_sent``) for a retry. Never raises. In ``batch_api`` mode the submitted batches keep
        running on OpenRouter and a retry re-attaches to them."""
        try:
            self._killed = True
            runner = self._runner
            if runner is not None:
                runner.stop()
                self.log.info("on_kill: no further rows are sent; rows in flight finish and are checkpointed")
        except Exception:  # on_kill runs inside Airflow's kill path and must not fail it
            self.log.debug("on_kill: could not stop the batch runner", exc_info=True)

    def _batch_client(self, job: BatchJob) -> BatchApiClient:
        from airflow_provider_openrouter.batch.batch_api import BatchApiClient

        provider = self.chat_parameters()["provider"]
        batch_provider = (
            {key: provider[key] for key in ("only", "allow_fallbacks") if key in provider}
            if provider
            else None
        )
        return BatchApiClient(
            job,
            self.engine_hook.transport,
            max_requests=self._max_batch_requests(),
            provider=batch_provider or None,
            log=self.log,
            endpoint=self.endpoint,
            output_type=self._output_type(),
        )

    def _submit_and_defer(self, context: Context, job: BatchJob, reason: str, started: float) -> str | None:
        """Submit (or re-attach to) the batches and defer; return a fallback reason, or None if all landed."""
        from airflow_provider_openrouter.exceptions import OpenRouterNotFoundError
        from airflow_provider_openrouter.triggers.batch import OpenRouterBatchTrigger

        client = self._batch_client(job)
        ti = context["ti"]
        try:
            batch_ids = client.submit_all(on_submitted=lambda ids: ti.xcom_push(key="batch_ids", value=ids))
        except (OpenRouterRequestError, OpenRouterNotFoundError) as err:
            if self.mode != "auto" or client.state.batch_ids:
                raise
            # Refused before anything was created or paid: the model or request does not suit the Batch API.
            return f"auto: the Batch API refused the submission ({err.message}); running concurrently instead"
        ti.xcom_push(key="batch_ids", value=batch_ids)
        waiting = client.pending_batch_ids()
        job.close()
        submit_seconds = time.monotonic() - started
        client.note_submission(reason, submit_seconds)
        if not waiting:
            return None
        self.log.info(
            "submitted %d batch(es) in %.1fs; deferring until they finish: %s",
            len(batch_ids),
            submit_seconds,
            ", ".join(batch_ids),
        )
        timeout = self.batch_timeout
        self.defer(
            trigger=OpenRouterBatchTrigger(
                openrouter_conn_id=self.openrouter_conn_id,
                batch_ids=waiting,
                poll_interval=self._positive_number("poll_interval", self.poll_interval),
                end_time=time.time() + timeout.total_seconds(),
            ),
            method_name="execute_complete",
            timeout=timeout
            + timedelta(seconds=self._positive_number("poll_interval", self.poll_interval) + 300),
        )
        return None  # pragma: no cover - defer() raises TaskDeferred

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> BatchManifest:
        """Resume after the trigger: check the event against the allow-list, then land the results.

        Everything else comes from the state file, not from the deferral: a resumed task is a new instance.
        An error event raises the exception the trigger met, rebuilt with its class, so the task fails or
        retries as it would have had it polled on the worker.
        """
        self._check_event(event)
        assert event is not None  # checked above
        if event["reason"] != "completed":
            raise self._wait_error(event)
        self._check_parameters()
        job: BatchJob | None = None
        try:
            job = self._job(context)
            job.open()
            return self._land(context, job, wait_seconds=float(event.get("waited_seconds") or 0.0))
        finally:
            self._close(job)

    def _check_event(self, event: dict[str, Any] | None) -> None:
        from airflow_provider_openrouter.exceptions import OpenRouterResponseError
        from airflow_provider_openrouter.triggers.batch import EVENT_REASONS, EVENT_STATUSES

        if (
            not isinstance(event, dict)
            or event.get("status") not in EVENT_STATUSES
            or event.get("reason") not in EVENT_REASONS
            or not isinstance(event.get("batch_ids"), list)
            or not isinstance(event.get("error") or {}, dict)
        ):
            shown = repr(event)[:200]
            raise OpenRouterResponseError(
                f"task {self.task_id!r}: the batch trigger sent an event this operator does not know: "
                f"{shown}",
                conn_id=self.openrouter_conn_id,
                billed=None,
                hint="Retry the task: it re-attaches to the submitted batches. If it repeats, the trigger "
                "and operator versions differ; align the provider version on workers and triggerer.",
            )

    def _wait_error(self, event: dict[str, Any]) -> OpenRouterError:
        from airflow_provider_openrouter.batch.errors import BatchWaitError
        from airflow_provider_openrouter.exceptions import error_from_event

        self.log.error(
            "waiting for batches %s ended (%s); they keep running on OpenRouter, and a retry of the task "
            "re-attaches to them: %s",
            ", ".join(map(str, event["batch_ids"])),
            event["reason"],
            event.get("message", ""),
        )
        if event.get("error"):
            return error_from_event(event["error"])
        message = f"task {self.task_id!r}: batches {event['batch_ids']}: {event.get('message', '')}"
        return BatchWaitError(message, conn_id=self.openrouter_conn_id, code=event["reason"])

    def _land(self, context: Context, job: BatchJob, *, wait_seconds: float = 0.0) -> BatchManifest:
        client = self._batch_client(job)
        landing_started = time.monotonic()
        client.land_all()
        manifest = job.finish(
            mode="batch_api",
            mode_reason=client.state.mode_reason,
            requests_sent=client.requests_sent,
            batch_ids=client.state.batch_ids,
            submit_seconds=client.state.submit_seconds,
            wait_seconds=wait_seconds,
            landing_seconds=time.monotonic() - landing_started,
        )
        return self._conclude(context, manifest, None)

    def _conclude(
        self, context: Context, manifest: BatchManifest, stop_error: OpenRouterError | None
    ) -> BatchManifest:
        """Announce the manifest on the outlets; fail (after the output is whole) if the run says so."""
        from airflow_provider_openrouter.batch.errors import BatchFailedRowsError

        self._emit_asset_events(context, manifest)
        allowed = self._max_failed_fraction()
        if stop_error is None and manifest.failed_fraction <= allowed:
            return manifest
        if self.do_xcom_push:
            context["ti"].xcom_push(key="manifest", value=manifest)
        if stop_error is not None:
            raise stop_error
        counts = manifest.counts
        raise BatchFailedRowsError(
            f"task {self.task_id!r}: {counts.total - counts.succeeded} of {counts.total} rows did not "
            f"succeed ({counts.failed} failed, {counts.invalid_output} invalid output, "
            f"{counts.outcome_unknown} outcome unknown, {counts.not_sent} not sent), more than "
            f"max_failed_fraction={allowed:g} allows. See {manifest.output_path}",
            conn_id=self.openrouter_conn_id,
        )

    def _emit_asset_events(self, context: Context, manifest: BatchManifest) -> None:
        from airflow.sdk import Asset

        outlet_events = context.get("outlet_events")
        if outlet_events is None:
            return
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                outlet_events[outlet].extra = manifest.summary()


class _ChatBodies:
    """A chat row's request body, built by ``build`` (the hook's checks and the operator's defaults).

    Rows that are one user message of text with no fields of their own (a prompt, the common row) differ
    only in that text, so the body of the first one is kept and the others get a copy with their own text:
    the hook's checks and merging run once instead of once per row (twice per row in all: the input scan
    and the send), which was most of the task's time per row outside the HTTP client.
    """

    def __init__(self, build: BuildBody, *, reuse: bool) -> None:
        self._build = build
        self._reuse = reuse
        self._prompt_body: dict[str, Any] | None = None

    def __call__(self, row: BatchRow) -> dict[str, Any]:
        text = _prompt_text(row) if self._reuse else None
        if text is None:
            return self._build(row)
        kept = self._prompt_body
        if kept is None:
            body = self._build(row)
            self._prompt_body = {**body, "messages": [dict(message) for message in body["messages"]]}
            return body
        body = dict(kept)
        # The kept body's last message is its row's prompt; the ones before it come from system_prompt.
        body["messages"] = [*map(dict, kept["messages"][:-1]), {"role": "user", "content": text}]
        return body


def _prompt_text(row: BatchRow) -> str | None:
    """The text of a row that is exactly one user message of text and sets no request field itself."""
    if row.overrides or len(row.messages) != 1:
        return None
    message = row.messages[0]
    content = message.get("content")
    if len(message) == 2 and message.get("role") == "user" and type(content) is str:
        return content
    return None


def _bad_row_field(name: str, value: Any, expected: str) -> OpenRouterRequestError:
    """A row field that does not read as its type (the engine adds which row)."""
    return OpenRouterRequestError(f"{name} must be {expected}, got {_coerce.shown(value)}")


def _is_budget_error(err: OpenRouterError | None) -> TypeGuard[BudgetExhaustedError]:
    from airflow_provider_openrouter.budget import BudgetExhaustedError

    return isinstance(err, BudgetExhaustedError)
