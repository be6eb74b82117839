"""Embeddings: typed results of ``POST /embeddings`` and ``GET /embeddings/models``, and the request builder.

Invariants:

* The types are shaped as the API's answer (``.data[i].embedding``, ``.data[i].index``, ``.model``,
  ``.usage.prompt_tokens``, ``.usage.total_tokens``, ``.usage.cost``), keep fields the API adds later, and
  are registered with Airflow's serde like the results in :mod:`airflow_provider_openrouter.models`, so a
  downstream task gets an :class:`Embeddings` back with the default deserialization settings.
* ``embedding`` is always a list of floats: an answer asked for with ``encoding_format="base64"``
  (little-endian float32, as OpenAI and OpenRouter encode it) is decoded when it is read.
* Money is :data:`~airflow_provider_openrouter.models.Money`: exact, plain decimal text in JSON.
* :func:`build_embeddings_request` checks every argument and raises a one-line
  :class:`~airflow_provider_openrouter.exceptions.OpenRouterRequestError` before anything is sent.

Cheap to import (pydantic and the models module only): DAG files and the batch engine import it.
"""

import base64
import binascii
import sys
from array import array
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from pydantic import field_validator

from airflow_provider_openrouter import _coerce
from airflow_provider_openrouter.exceptions import OpenRouterRequestError
from airflow_provider_openrouter.models import (
    ModelList,
    Money,
    OpenRouterModel,
    PromptTokensDetails,
    register_with_serde,
)

__all__ = [
    "EMBEDDINGS_PATH",
    "EMBEDDING_MODELS_PATH",
    "EMBEDDING_RESULT_MODELS",
    "ENCODING_FORMATS",
    "EmbeddingData",
    "EmbeddingModelList",
    "EmbeddingUsage",
    "Embeddings",
    "build_embeddings_request",
    "decode_base64_embedding",
]

EMBEDDINGS_PATH = "/embeddings"
EMBEDDING_MODELS_PATH = "/embeddings/models"
ENCODING_FORMATS = ("float", "base64")
_REQUEST = f"POST {EMBEDDINGS_PATH}"


def decode_base64_embedding(text: str) -> list[float]:
    """A base64 embedding (little-endian float32 values) as floats; ``ValueError`` if it is not one."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError(f"the embedding is neither a list of numbers nor base64 ({err})") from None
    if len(raw) % 4:
        raise ValueError(f"a base64 embedding must hold float32 values (4 bytes each), got {len(raw)} bytes")
    values = array("f")
    values.frombytes(raw)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


class EmbeddingData(OpenRouterModel):
    """One vector: ``embedding`` (floats, decoded from base64 when the request asked for it) and its ``index``
    into the request's ``input``."""

    object: str = "embedding"
    embedding: list[float]
    index: int | None = None

    @field_validator("embedding", mode="before")
    @classmethod
    def _decode(cls, value: Any) -> Any:
        return decode_base64_embedding(value) if isinstance(value, str) else value

    @property
    def dimensions(self) -> int:
        return len(self.embedding)


class EmbeddingUsage(OpenRouterModel):
    """Token counts and the cost in USD of one embeddings request (embeddings have no completion tokens)."""

    prompt_tokens: int = 0
    total_tokens: int = 0
    cost: Money | None = None
    is_byok: bool | None = None
    cost_details: dict[str, Any] | None = None
    prompt_tokens_details: PromptTokensDetails | None = None


class Embeddings(OpenRouterModel):
    """``POST /embeddings``: ``data[i]`` is the vector of ``input[i]``; ``usage.cost`` what it cost.

    ``id`` is the generation id when OpenRouter sends one (``GET /generation`` accepts it).
    """

    id: str | None = None
    object: str = "list"
    model: str
    data: list[EmbeddingData]
    usage: EmbeddingUsage | None = None

    @property
    def generation_id(self) -> str | None:
        return self.id

    @property
    def cost(self) -> Decimal | None:
        """What the request cost in USD, as reported in ``usage.cost``."""
        return self.usage.cost if self.usage is not None else None

    @property
    def vectors(self) -> list[list[float]]:
        """The vectors in input order (by ``index`` where the answer gives one)."""
        ordered = sorted(
            enumerate(self.data), key=lambda item: item[1].index if item[1].index is not None else item[0]
        )
        return [item.embedding for _, item in ordered]

    @property
    def dimensions(self) -> int | None:
        """The length of the vectors (``None`` for an answer without any)."""
        return self.data[0].dimensions if self.data else None


class EmbeddingModelList(ModelList):
    """``GET /embeddings/models``: the embedding models (``data`` holds :class:`~.models.Model` objects; the
    general ``GET /models`` hides them unless asked for ``output_modalities=embeddings``)."""


EMBEDDING_RESULT_MODELS: tuple[type[OpenRouterModel], ...] = (Embeddings, EmbeddingModelList)
"""The classes the embeddings operator and hook return (for ``deserialization_allowed_class_fields``)."""


# --- the request -------------------------------------------------------------------------------------------


def _bad(name: str, value: Any, expected: str) -> OpenRouterRequestError:
    return OpenRouterRequestError(f"{name} must be {expected}, got {_coerce.shown(value)}", request=_REQUEST)


_INPUT_SHAPES = (
    "a non-empty string, a list of non-empty strings, a list of token ids, a list of token-id lists, or a "
    "list of {'content': [parts]} objects"
)


def _is_tokens(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, int) and not isinstance(item, bool) for item in value)
    )


def check_embeddings_input(value: Any, name: str = "input") -> str | list[Any]:
    """``value`` if it is an ``input`` OpenRouter embeds, else a one-line error naming ``name``.

    Text that is blank or ``"None"``/``"null"`` (what a template renders for a missing value) is refused: it
    would be embedded and paid for as if it were the text.
    """
    if isinstance(value, str):
        if _coerce.unset(value):
            raise _bad(name, value, "non-empty text (a missing template value renders as 'None')")
        return value
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list) or not value:
        raise _bad(name, value, _INPUT_SHAPES)
    if _is_tokens(value):
        return value
    for position, item in enumerate(value):
        where = f"{name}[{position}]"
        if isinstance(item, str):
            if _coerce.unset(item):
                raise _bad(where, item, "non-empty text (a missing template value renders as 'None')")
        elif isinstance(item, Mapping):
            parts = item.get("content")
            if (
                not isinstance(parts, list)
                or not parts
                or not all(isinstance(part, Mapping) and isinstance(part.get("type"), str) for part in parts)
            ):
                raise _bad(where, item, "{'content': [{'type': 'text', 'text': ...}, ...]}")
        elif not _is_tokens(item):
            raise _bad(where, item, "a non-empty string, a list of token ids or a {'content': [...]} object")
    kinds = {str if isinstance(item, str) else type(item) for item in value}
    if len(kinds) > 1:
        raise _bad(name, value, "a list of one kind of item (all strings, all token lists or all objects)")
    return [dict(item) if isinstance(item, Mapping) else item for item in value]


def build_embeddings_request(
    model: str | None,
    input: str | Sequence[Any] | None,
    *,
    dimensions: int | str | None = None,
    encoding_format: str | None = None,
    input_type: str | None = None,
    provider: Mapping[str, Any] | str | None = None,
    user: str | None = None,
    extra_body: Mapping[str, Any] | str | None = None,
    default_model: str | None = None,
    conn_id: str | None = None,
) -> dict[str, Any]:
    """The JSON body of ``POST /embeddings``, every argument checked (nothing is sent here).

    ``input`` is a string, a list of strings, token ids (a list of ints, or a list of such lists) or
    multimodal ``[{"content": [parts]}]``; each item gets one vector. ``dimensions`` (>= 1) asks a model
    that supports it for shorter vectors; ``encoding_format`` is ``"float"`` or ``"base64"`` (the typed
    answer decodes both); ``input_type`` (``search_query``, ``search_document`` ...), ``provider`` routing
    preferences and ``user`` are sent as given; ``extra_body`` adds fields the API has and this builder does
    not name. Numbers and dicts rendered by a template (``"256"``, JSON text of a dict) are read as their
    native form. A missing ``model`` falls back to ``default_model`` (the connection's).
    """
    if model is not None and not isinstance(model, str):
        raise _bad("model", model, "a model id string such as 'openai/text-embedding-3-small'")
    chosen = (model or "").strip() or (default_model or "").strip()
    if not chosen:
        where = f"connection '{conn_id}'" if conn_id else "the connection"
        raise OpenRouterRequestError(
            f"no model given and {where} has no default_model",
            request=_REQUEST,
            conn_id=conn_id,
            hint="Pass model='author/slug' (OpenRouterHook.list_embedding_models() lists them), or set the "
            f"default_model extra of {where}.",
        )
    fail = _bad
    body: dict[str, Any] = {"model": chosen, "input": check_embeddings_input(input)}
    size = _coerce.integer("dimensions", dimensions, fail, low=1)
    if size is not None:
        body["dimensions"] = size
    if not _coerce.unset(encoding_format):
        if encoding_format not in ENCODING_FORMATS:
            raise _bad("encoding_format", encoding_format, "'float' or 'base64'")
        body["encoding_format"] = encoding_format
    for name, text in (("input_type", input_type), ("user", user)):
        if _coerce.unset(text):
            continue
        if not isinstance(text, str):
            raise _bad(name, text, "text")
        body[name] = text.strip()
    routing = _coerce.mapping("provider", provider, fail)
    if routing:
        body["provider"] = routing
    extra = _coerce.mapping("extra_body", extra_body, fail)
    if extra:
        if "input" in extra or "model" in extra:
            raise _bad("extra_body", extra, "fields other than 'model' and 'input' (pass those as arguments)")
        body.update(extra)
    return body


register_with_serde(*EMBEDDING_RESULT_MODELS, EmbeddingData, EmbeddingUsage)
