"""The model catalog: the connector's "List models" (GET /models) and "List model endpoints" actions
(GET /models/{author}/{slug}/endpoints)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_openrouter import _coerce
from airflow_provider_openrouter.exceptions import OpenRouterError
from airflow_provider_openrouter.models import ModelEndpoints, ModelList
from airflow_provider_openrouter.operators._base import OpenRouterBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath


class OpenRouterListModelsOperator(OpenRouterBaseOperator):
    """List the models available through OpenRouter, optionally filtered server-side. Not billable.

    :param category: e.g. ``"programming"``.
    :param supported_parameters: models that accept all of these request parameters, e.g.
        ``["tools", "seed"]`` (a list, its JSON text, or ``"tools,seed"``).
    :param output_modalities: e.g. ``["text"]`` (OpenRouter's default) or ``["all"]``.
    :param input_modalities: e.g. ``["image"]``.
    :param filters: any further query parameter of ``GET /models`` (``sort``, ``q``, ...), as a dict.
    :param output_path: where to write the full catalog as JSON (a path or URL that ``ObjectStoragePath``
        understands, e.g. ``"s3://bucket/catalog/{{ ds }}.json"`` with ``conn_id`` in the URL's storage
        options, or a local path). When set, XCom gets a small manifest instead of the catalog.
    :param openrouter_conn_id: the OpenRouter connection (default ``openrouter_default``).

    All parameters are template fields.

    **XCom contract**: without ``output_path``, ``return_value`` is a ``models.ModelList`` (``.data`` is a
    list of ``models.Model`` with ``pricing`` in ``Decimal`` USD per token). The full catalog is several
    hundred KB, which lands in the metadata database; filter it, or use ``output_path``. With ``output_path``,
    ``return_value`` is ``{"path": str, "count": int, "bytes": int}`` and the file holds the ``ModelList``
    JSON (read it back with ``ModelList.model_validate_json(ObjectStoragePath(path).read_text())``).
    """

    result_type = ModelList
    template_fields: Sequence[str] = (
        "openrouter_conn_id",
        "category",
        "supported_parameters",
        "output_modalities",
        "input_modalities",
        "filters",
        "output_path",
    )
    template_fields_renderers = {
        "supported_parameters": "json",
        "output_modalities": "json",
        "input_modalities": "json",
        "filters": "json",
    }

    def __init__(
        self,
        *,
        category: str | None = None,
        supported_parameters: list[str] | str | None = None,
        output_modalities: list[str] | str | None = None,
        input_modalities: list[str] | str | None = None,
        filters: dict[str, Any] | str | None = None,
        output_path: str | ObjectStoragePath | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.category = category
        self.supported_parameters = supported_parameters
        self.output_modalities = output_modalities
        self.input_modalities = input_modalities
        self.filters = filters
        self.output_path = output_path

    def execute(self, context: Context) -> ModelList | dict[str, Any]:
        with self.hook:
            query: dict[str, Any] = {
                "category": self.category or None,
                "supported_parameters": self.as_str_list("supported_parameters", self.supported_parameters),
                "output_modalities": self.as_str_list("output_modalities", self.output_modalities),
                "input_modalities": self.as_str_list("input_modalities", self.input_modalities),
                **(self.as_dict("filters", self.filters) or {}),
            }
            # Paging is numbers to the hook; a template renders them as text.
            for name in ("limit", "offset"):
                if name in query:
                    query[name] = self.as_int(name, query[name])
            try:
                catalog = self.hook.list_models(**{k: v for k, v in query.items() if v is not None})
            except OpenRouterError as err:
                self.log_failure("list models", err)
                raise
            self.log.info("OpenRouter listed %d models", len(catalog.data))
            if not self.output_path:
                return catalog
            return self.write_catalog(catalog, self.output_path)

    def write_catalog(self, catalog: ModelList, output_path: str | ObjectStoragePath) -> dict[str, Any]:
        from airflow.sdk import ObjectStoragePath

        path = ObjectStoragePath(output_path)
        if path.protocol in ("", "file"):  # object stores have no directories to create
            path.parent.mkdir(parents=True, exist_ok=True)
        payload = catalog.model_dump_json().encode()
        with path.open("wb") as out:
            out.write(payload)
        self.log.info("Wrote the catalog (%d models, %d bytes) to %s", len(catalog.data), len(payload), path)
        return {"path": str(path), "count": len(catalog.data), "bytes": len(payload)}


class OpenRouterListModelEndpointsOperator(OpenRouterBaseOperator):
    """List the provider endpoints that serve one model (price, context, parameters, uptime). Not billable.

    Name the model as the connector does, ``author`` + ``slug`` (``"openai"`` + ``"gpt-4o-mini"``), or as one
    ``model="openai/gpt-4o-mini"`` (split at the first ``/``).

    :param author: first part of the model id.
    :param slug: the rest of the model id, with its ``:variant`` if any (e.g. ``"llama-3-8b-instruct:free"``).
        Both parts must have OpenRouter's id shape (letters, digits, ``.``, ``_``, ``-``; no ``/``), checked
        before anything is sent.
    :param model: ``"author/slug"``, instead of ``author`` and ``slug``.
    :param openrouter_conn_id: the OpenRouter connection (default ``openrouter_default``).

    All parameters are template fields.

    **XCom contract**: ``return_value`` is a ``models.ModelEndpoints`` (``id``, ``name``, ``architecture``,
    ``endpoints``: each with ``provider_name``, ``context_length``, ``pricing`` in ``Decimal``,
    ``supported_parameters``, ...). No other keys. It is the answer's inner ``data`` object: the connector's
    ``data.endpoints`` is ``result.endpoints``.
    """

    result_type = ModelEndpoints
    template_fields: Sequence[str] = ("openrouter_conn_id", "author", "slug", "model")

    def __init__(
        self,
        *,
        author: str | None = None,
        slug: str | None = None,
        model: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if model is None and (author is None or slug is None):
            raise self.bad_parameter("model", None, "given as 'author/slug' (or give 'author' and 'slug')")
        if model is not None and (author is not None or slug is not None):
            raise self.bad_parameter("model", model, "given alone (pass 'model' or 'author' and 'slug')")
        self.author = author
        self.slug = slug
        self.model = model

    def model_path(self) -> tuple[str, str]:
        """The rendered ``(author, slug)``, each in OpenRouter's id shape (no ``/``, no ``..``)."""
        if self.model is not None:
            author, _, slug = str(self.model).strip().partition("/")
            if not author or not slug:
                raise self.bad_parameter("model", self.model, "a model id of the form 'author/slug'")
            for part, value in (("author", author), ("slug", slug)):
                _coerce.model_id_part(
                    part,
                    value,
                    lambda _name, _value, expected: self.bad_parameter(
                        "model", self.model, f"'author/slug' with {expected}"
                    ),
                    part=part,
                )
            return author, slug
        if isinstance(self.author, str) and "/" in self.author:
            raise self.bad_parameter(
                "author",
                self.author,
                "the model's author without '/'",
                hint="Pass model='author/slug' instead of author and slug, or author and slug separately; "
                "nothing was sent.",
            )
        return (
            _coerce.model_id_part("author", self.author, self.bad_parameter, part="author"),
            _coerce.model_id_part("slug", self.slug, self.bad_parameter, part="slug"),
        )

    def execute(self, context: Context) -> ModelEndpoints:
        with self.hook:
            author, slug = self.model_path()
            try:
                endpoints = self.hook.list_model_endpoints(author, slug)
            except OpenRouterError as err:
                self.log_failure("list model endpoints", err)
                raise
            self.log.info("OpenRouter model %s/%s has %d endpoints", author, slug, len(endpoints.endpoints))
            return endpoints
