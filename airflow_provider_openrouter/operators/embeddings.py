"""``OpenRouterEmbeddingOperator`` (``POST /embeddings``): vectors in XCom, or in a Parquet/JSONL file."""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from airflow_provider_openrouter import _coerce
from airflow_provider_openrouter.batch.vectors import VectorFile
from airflow_provider_openrouter.embeddings import Embeddings
from airflow_provider_openrouter.exceptions import OpenRouterResponseError
from airflow_provider_openrouter.models import Money, PlainDecimal, plain_decimal, register_with_serde
from airflow_provider_openrouter.operators._base import OpenRouterGenerationOperator

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

MAX_XCOM_INPUTS = 256
"""Without ``output_path`` the vectors travel in XCom (the metadata database): at most this many inputs."""
_COST_PLACES = Decimal("1e-18")


class EmbeddingsManifest(BaseModel):
    """What an embeddings task with ``output_path`` wrote (its XCom ``return_value``; never the vectors).

    ``vectors`` is the file (path, ``parquet`` or ``jsonl``, rows, dimensions); ``cost`` the USD the request
    cost as reported, exact; ``generation_id`` the request's id when OpenRouter sent one.
    """

    model_config = ConfigDict(frozen=True)

    model: str
    vectors: VectorFile
    prompt_tokens: int = 0
    total_tokens: int = 0
    cost: Money | None = None
    generation_id: str | None = None


register_with_serde(EmbeddingsManifest)


def row_costs(cost: Decimal | None, rows: int) -> list[Decimal | None]:
    """The request's ``cost`` shared equally over its ``rows`` (OpenRouter reports one cost per request), to
    18 places; the last row takes the rounding, so the column sums to ``cost`` exactly."""
    if cost is None or rows == 0:
        return [None] * rows
    share = (cost / rows).quantize(_COST_PLACES)
    return [*([share] * (rows - 1)), cost - share * (rows - 1)]


class OpenRouterEmbeddingOperator(OpenRouterGenerationOperator):
    """Embed texts (``POST /embeddings``, billable) and return the vectors, or write them to a file.

    :param model: embedding model id (e.g. ``openai/text-embedding-3-small``; ``OpenRouterHook.
        list_embedding_models()`` lists them); default: the connection's ``default_model``. Templated.
    :param input: the texts: a list of strings (one vector each), one string, token ids, or multimodal
        ``[{"content": [parts]}]``. Templated; a list rendered to text (``"{{ ti.xcom_pull(...) }}"``) is read
        back as a list.
    :param custom_ids: optional ids of the inputs, written with their vectors (default ``row-1``, ``row-2``,
        ...). Templated.
    :param dimensions: shorter vectors, where the model supports it. Templated.
    :param encoding_format: ``"float"`` or ``"base64"`` (the vectors are decoded either way). Templated.
    :param input_type: e.g. ``"search_query"`` or ``"search_document"``. Templated.
    :param provider: provider routing preferences (dict or JSON). Templated.
    :param user: end-user id for OpenRouter's abuse checks. Templated.
    :param extra_body: further request fields. Templated.
    :param output_path: an ObjectStoragePath (or its string) ending ``.parquet`` or ``.jsonl``: the vectors go
        there, one row per input with ``custom_id``, ``index``, ``model``, ``dimensions``, ``cost`` (the row's
        equal share of the request's cost, summing to it exactly) and ``embedding``. Parquet needs pyarrow;
        without it a ``.parquet`` path is written as JSONL with the suffix ``.jsonl``. Checked before
        anything is sent. Templated.
    :param attribution: as in ``OpenRouterChatCompletionOperator``. Templated.
    :param budget: an ``OpenRouterBudget``, or the name of one declared in the connection extra ``budgets``:
        the request's worst case is reserved first; when it does not fit nothing is sent and the task fails,
        skips or waits for the next period, as the budget's ``on_exhausted`` says. Templated.

    **XCom contract**:

    ===================  ==============================  ===================================================
    key                  type                            value
    ===================  ==============================  ===================================================
    ``return_value``     ``embeddings.Embeddings``       without ``output_path``: the whole typed answer
                                                         (``.data[i].embedding``, ``.usage``, ``.cost``); at
                                                         most 256 inputs
    ``return_value``     ``EmbeddingsManifest``          with ``output_path``: where the vectors are, how
                                                         many, their dimensions, tokens and cost
    ``generation_id``    ``str | None``                  the request's id, when OpenRouter sent one
    ``usage``            ``dict | None``                 token counts and cost as JSON, plus ``try_number``
    ``cost``             ``decimal.Decimal | None``      USD charged, as reported in ``usage.cost``
    ===================  ==============================  ===================================================

    ``generation_id``, ``usage`` and ``cost`` are pushed before the vectors are written, so a failed write
    still shows what was paid.
    """

    template_fields: Sequence[str] = (
        "openrouter_conn_id",
        "model",
        "input",
        "custom_ids",
        "dimensions",
        "encoding_format",
        "input_type",
        "provider",
        "user",
        "extra_body",
        "output_path",
        "attribution",
        "budget",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        "input": "json",
        "provider": "json",
        "extra_body": "json",
    }
    result_type = Embeddings
    manifest_type = EmbeddingsManifest
    deserialization_allowed_class_fields: ClassVar[tuple[str, ...]] = ("result_type", "manifest_type")

    def __init__(
        self,
        *,
        input: Any,
        model: str | None = None,
        custom_ids: Sequence[str] | str | None = None,
        dimensions: int | str | None = None,
        encoding_format: str | None = None,
        input_type: str | None = None,
        provider: dict[str, Any] | str | None = None,
        user: str | None = None,
        extra_body: dict[str, Any] | str | None = None,
        output_path: ObjectStoragePath | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.input = input
        self.custom_ids = custom_ids
        self.dimensions = dimensions
        self.encoding_format = encoding_format
        self.input_type = input_type
        self.provider = provider
        self.user = user
        self.extra_body = extra_body
        self.output_path = output_path

    def _inputs(self) -> Any:
        """``input`` as rendered, with a list that a template turned into text read back as a list."""
        value = self.input
        if isinstance(value, str) and value.strip()[:1] == "[":
            for parse in (json.loads, ast.literal_eval):
                try:
                    parsed = parse(value)
                except (ValueError, SyntaxError):
                    continue
                if isinstance(parsed, list):
                    return parsed
        return list(value) if isinstance(value, tuple) else value

    def _custom_ids(self, count: int) -> list[str]:
        ids = self.as_str_list("custom_ids", self.custom_ids)
        if ids is None:
            return [f"row-{number}" for number in range(1, count + 1)]
        if len(ids) != count or len(set(ids)) != count:
            raise self.bad_parameter(
                "custom_ids", self.custom_ids, f"{count} unique ids, one per input", hint=None
            )
        return ids

    def _target(self) -> tuple[ObjectStoragePath, str] | None:
        """Where the vectors go (checked before anything is sent), or ``None`` for XCom."""
        if _coerce.unset(self.output_path):
            return None
        from airflow.sdk import ObjectStoragePath

        from airflow_provider_openrouter.batch.outputs import check_output_location
        from airflow_provider_openrouter.batch.vectors import vector_path

        output = self.output_path
        path = output if isinstance(output, ObjectStoragePath) else ObjectStoragePath(str(output))
        target, kind = vector_path(path)
        check_output_location(target)
        if target != path:
            self.log.warning("pyarrow is not installed: the vectors go to %s as JSONL, not Parquet", target)
        return target, kind

    def execute(self, context: Context) -> Embeddings | EmbeddingsManifest:
        from airflow_provider_openrouter.embeddings import check_embeddings_input

        with self.hook:
            inputs = self._inputs()
            target = self._target()
            checked = check_embeddings_input(inputs)
            count = len(checked) if isinstance(checked, list) and not _is_one_tokens(checked) else 1
            if target is None and count > MAX_XCOM_INPUTS:
                raise self.bad_parameter(
                    "input",
                    f"{count} inputs",
                    f"at most {MAX_XCOM_INPUTS} inputs when the vectors go to XCom",
                    hint="Set output_path (a .parquet or .jsonl file) to write them to storage, or use "
                    "OpenRouterBatchCompletionOperator(endpoint='embeddings') for large inputs; nothing was "
                    "sent.",
                )
            ids = self._custom_ids(count) if target is not None else []
            idempotency_key = self.idempotency_key(context)
            result = self.call_billable(
                context,
                "embeddings",
                lambda: self.hook.embeddings(
                    self.model or None,
                    checked,
                    dimensions=self.dimensions,
                    encoding_format=self.encoding_format,
                    input_type=self.input_type,
                    provider=self.provider,
                    user=self.user,
                    extra_body=self.extra_body,
                    idempotency_key=idempotency_key,
                    attribution=self.attribution,
                    budget=self.budget_value(),
                ),
            )
            self._push_cost(context, result)
            if target is None:
                return result
            return self._write(result, ids, *target)

    def _push_cost(self, context: Context, result: Embeddings) -> None:
        ti = context["ti"]
        usage = result.usage.model_dump(mode="json") if result.usage is not None else None
        if usage is not None:
            usage["try_number"] = ti.try_number
        self.log.info(
            "OpenRouter embeddings %s: model %s, %d vectors of %s dimensions, %s prompt tokens, cost %s USD "
            "(attempt %s)",
            result.id or "(no id)",
            result.model,
            len(result.data),
            result.dimensions,
            result.usage.prompt_tokens if result.usage is not None else "?",
            plain_decimal(result.cost) if result.cost is not None else "unknown",
            ti.try_number,
        )
        if not self.do_xcom_push:
            return
        ti.xcom_push(key="generation_id", value=result.id)
        ti.xcom_push(key="usage", value=usage)
        ti.xcom_push(key="cost", value=PlainDecimal(result.cost) if result.cost is not None else None)

    def _write(
        self, result: Embeddings, ids: list[str], target: ObjectStoragePath, kind: Any
    ) -> EmbeddingsManifest:
        from airflow_provider_openrouter.batch.vectors import VectorWriter

        vectors = result.vectors
        if len(vectors) != len(ids):
            rejected = OpenRouterResponseError(
                f"task {self.task_id!r}: the answer holds {len(vectors)} vectors for {len(ids)} inputs",
                conn_id=self.openrouter_conn_id,
                generation_id=result.id,
                billed=True,
                hint="The answer was billed; its cost is in XCom 'cost'. Check the model's input limits.",
            )
            raise self.not_retried_if_billed(rejected)
        writer = VectorWriter(target, kind)
        try:
            for index, (custom_id, vector, cost) in enumerate(
                zip(ids, vectors, row_costs(result.cost, len(ids)), strict=True)
            ):
                writer.add(
                    {
                        "custom_id": custom_id,
                        "index": index,
                        "model": result.model,
                        "dimensions": len(vector),
                        "cost": cost,
                        "embedding": vector,
                    }
                )
            written = writer.commit()
        except BaseException:
            writer.abort()
            raise
        assert written is not None  # at least one input was checked above
        self.log.info("wrote %d vectors to %s (%s)", written.rows, written.path, written.format)
        usage = result.usage
        return EmbeddingsManifest(
            model=result.model,
            vectors=written,
            prompt_tokens=usage.prompt_tokens if usage is not None else 0,
            total_tokens=usage.total_tokens if usage is not None else 0,
            cost=result.cost,
            generation_id=result.id,
        )


def _is_one_tokens(value: list[Any]) -> bool:
    """A list of ints is one input (token ids), not several."""
    return all(isinstance(item, int) and not isinstance(item, bool) for item in value)
