"""Batch inputs: an inline list or a JSONL file, read as a stream and normalised row by row.

A row is one of:

* a string: a user prompt;
* a list of chat messages (dicts with a ``role``);
* an object with an optional ``custom_id`` and exactly one of ``prompt`` (string), ``messages`` (list) or
  ``body`` (a full chat request body, as in an OpenAI batch file line). With ``prompt`` or ``messages``, the
  object's other keys are per-row request fields (``{"prompt": "hi", "temperature": 0}``).

Every row becomes a :class:`BatchRow`: ``messages`` plus ``overrides`` (request fields the row sets itself,
which win over the operator's defaults). A row without ``custom_id`` gets ``row-<n>``, ``n`` counting rows
from 1 in input order (blank JSONL lines are not rows), so the id is stable as long as the input is.

A batch of ``endpoint="embeddings"`` rows (:data:`EMBEDDINGS`) reads a row as one input to embed: a string
(the text), a list of token ids, or an object with an optional ``custom_id`` and exactly one of ``input`` (a
string, token ids or one ``{"content": [parts]}`` object; the other keys are per-row request fields such as
``dimensions``) or ``body`` (a full ``/v1/embeddings`` request body). The input is the row's ``input``;
``messages`` is empty. One row is one vector: a list of texts is refused (give each its own row).
:func:`embedding_body` builds such a row's request body.

Invariants: the file is never read whole (one line at a time); a row index is the row's position among all
rows of the input, also when only one shard's rows are yielded; every error names where the bad row is.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_openrouter import _coerce
from airflow_provider_openrouter.batch.errors import BatchInputError
from airflow_provider_openrouter.embeddings import build_embeddings_request

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

# Keys that describe an OpenAI-style batch file line around `body`; accepted and not sent.
_ENVELOPE_KEYS = frozenset({"custom_id", "method", "url", "body"})
_CHAT_URLS = frozenset({"/v1/chat/completions", "/chat/completions", "/api/v1/chat/completions"})
_EMBEDDINGS_URLS = frozenset({"/v1/embeddings", "/embeddings", "/api/v1/embeddings"})

CHAT = "chat"
EMBEDDINGS = "embeddings"
ENDPOINTS = (CHAT, EMBEDDINGS)
"""What a batch runs: chat completions (``/chat/completions``) or embeddings (``/embeddings``)."""
ENDPOINT_PATHS = {CHAT: "/chat/completions", EMBEDDINGS: "/embeddings"}
"""The path each endpoint's rows are POSTed to in concurrent mode."""


@dataclass(frozen=True, slots=True)
class BatchRow:
    """One normalised input row.

    ``index`` is the 0-based position among all rows of the input; ``where`` says where the row came from
    (``line 12 of s3://b/in.jsonl`` or ``inputs[3]``) for error messages. ``input`` is the input of an
    embeddings row (``None`` for a chat row).
    """

    index: int
    custom_id: str
    messages: list[dict[str, Any]]
    overrides: dict[str, Any]
    where: str
    input: Any = None


class InputSource(Protocol):
    """Where rows come from. ``raw_rows`` yields ``(where, value)`` for every non-blank row, in order."""

    description: str

    def raw_rows(self, shard_index: int = 0, shard_count: int = 1) -> Iterator[tuple[int, str, Any]]:
        """Yield ``(row_index, where, parsed JSON value)`` for the rows of one shard."""
        ...


def _in_shard(index: int, shard_index: int, shard_count: int) -> bool:
    return index % shard_count == shard_index


class InlineInputSource:
    """An inline list of rows (e.g. rendered from an upstream task's XCom)."""

    description = "inputs"

    def __init__(self, values: Sequence[Any]) -> None:
        self._values = values

    def raw_rows(self, shard_index: int = 0, shard_count: int = 1) -> Iterator[tuple[int, str, Any]]:
        for index, value in enumerate(self._values):
            if _in_shard(index, shard_index, shard_count):
                yield index, f"inputs[{index}]", value


class JsonlInputSource:
    """A JSONL file on ObjectStoragePath, read one line at a time.

    Lines outside the requested shard are counted but not parsed, so each of N shards reads the file once
    and parses only its own rows.
    """

    def __init__(self, path: ObjectStoragePath) -> None:
        self.path = path
        self.description = str(path)

    def raw_rows(self, shard_index: int = 0, shard_count: int = 1) -> Iterator[tuple[int, str, Any]]:
        try:
            handle = self.path.open("rb")
        except (OSError, ValueError) as err:
            raise BatchInputError(
                f"Cannot read input_path {self.description}: {type(err).__name__}: {err}; "
                "check that the file exists and that the storage connection can read it"
            ) from err
        index = -1
        line_number = 0
        with handle:
            while True:
                try:
                    raw = handle.readline()
                except OSError as err:
                    raise BatchInputError(
                        f"Cannot read line {line_number + 1} of {self.description}: "
                        f"{type(err).__name__}: {err}"
                    ) from err
                if not raw:
                    return
                line_number += 1
                if not raw.strip():
                    continue
                index += 1
                if not _in_shard(index, shard_index, shard_count):
                    continue
                where = f"line {line_number} of {self.description}"
                try:
                    line = raw.decode("utf-8-sig" if line_number == 1 else "utf-8")
                except UnicodeDecodeError as err:
                    raise BatchInputError(
                        f"Input row at {where} is not UTF-8 ({err.reason} at byte {err.start}). "
                        "Save the file as UTF-8 JSONL"
                    ) from None
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as err:
                    raise BatchInputError(
                        f"Input row at {where} is not valid JSON ({err.msg}, column {err.colno}). "
                        "Each line must be one JSON value: a prompt string, a message list or an object"
                    ) from None
                yield index, where, value


def coerce_inline_inputs(value: Any) -> list[Any]:
    """Turn the rendered ``inputs`` template field into a list.

    Jinja renders an XCom pulled inside a template string to its text form unless the DAG sets
    ``render_template_as_native_obj=True``; that text is parsed back (JSON first, then a Python literal).
    """
    if isinstance(value, str):
        parsed: Any
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            try:
                parsed = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise BatchInputError(
                    "inputs rendered to a string that is neither JSON nor a Python list literal. Pass a list "
                    "(or an XComArg such as upstream.output), or set render_template_as_native_obj=True."
                ) from None
        value = parsed
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        raise BatchInputError(
            f"inputs must be a list of rows, got {type(value).__name__}. "
            "Wrap a single prompt in a list, or use input_path for a JSONL file."
        )
    return value


def _messages_from(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise BatchInputError(
            f"Input row at {where} has messages that are not a non-empty list. "
            'Use [{"role": "user", "content": "..."}].'
        )
    for position, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BatchInputError(
                f"Input row at {where}: message {position} is not an object with a string 'role'. "
                'Use {"role": "user", "content": "..."}.'
            )
    return value


def _prompt_messages(prompt: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(prompt, str):
        raise BatchInputError(
            f"Input row at {where} has a prompt that is not text ({_coerce.shown(prompt)}). "
            "Give the prompt text."
        )
    if _coerce.unset(prompt):
        # Also "None"/"null": what a template renders for a missing value, which would be sent and paid for.
        raise BatchInputError(
            f"Input row at {where} has no prompt (got {_coerce.shown(prompt)}). Give the prompt text; if a "
            "template fills it in, check the value it reads (a missing one renders as 'None')."
        )
    return [{"role": "user", "content": prompt}]


def _custom_id(value: Any, index: int, where: str) -> str:
    if value is None:
        return f"row-{index + 1}"
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BatchInputError(f"Input row at {where} has a custom_id that is not a string. Use a string id.")
    custom_id = str(value)
    if not custom_id.strip():
        raise BatchInputError(f"Input row at {where} has an empty custom_id. Give a non-empty id or omit it.")
    return custom_id


def _line_body(value: dict[str, Any], where: str, endpoint: str) -> dict[str, Any]:
    """The ``body`` of a batch-file line (``custom_id``, ``method``, ``url``, ``body``) for ``endpoint``."""
    unknown = sorted(set(value) - _ENVELOPE_KEYS)
    if unknown:
        raise BatchInputError(
            f"Input row at {where} has 'body' and also {unknown}; put request fields inside 'body'."
        )
    url = value.get("url")
    if endpoint == CHAT and url is not None and url not in _CHAT_URLS:
        hint = " (set endpoint='embeddings' to run /v1/embeddings rows)" if url in _EMBEDDINGS_URLS else ""
        raise BatchInputError(
            f"Input row at {where} targets url {url!r}; this batch only runs chat completions{hint}."
        )
    if endpoint == EMBEDDINGS and url is not None and url not in _EMBEDDINGS_URLS:
        raise BatchInputError(f"Input row at {where} targets url {url!r}; this batch runs /v1/embeddings.")
    body = value["body"]
    if not isinstance(body, dict):
        raise BatchInputError(f"Input row at {where} has a 'body' that is not an object.")
    return body


def _from_object(index: int, where: str, value: dict[str, Any]) -> BatchRow:
    custom_id = _custom_id(value.get("custom_id"), index, where)
    shapes = [key for key in ("prompt", "messages", "body") if key in value]
    if len(shapes) != 1:
        found = " and ".join(shapes) if shapes else "none of them"
        raise BatchInputError(
            f"Input row at {where} must have exactly one of 'prompt', 'messages' or 'body' (found {found})."
        )
    if shapes[0] == "body":
        body = _line_body(value, where, CHAT)
        overrides = {key: item for key, item in body.items() if key != "messages"}
        if "prompt" in overrides:
            raise BatchInputError(
                f"Input row at {where} has a 'prompt' inside 'body'; a chat body needs 'messages'."
            )
        return BatchRow(index, custom_id, _messages_from(body.get("messages"), where), overrides, where)
    overrides = {key: item for key, item in value.items() if key not in ("custom_id", shapes[0])}
    if shapes[0] == "prompt":
        messages = _prompt_messages(value["prompt"], where)
    else:
        messages = _messages_from(value["messages"], where)
    return BatchRow(index, custom_id, messages, overrides, where)


def _embedding_input(value: Any, where: str) -> str | list[Any]:
    """One input to embed: text, token ids, or one ``{"content": [parts]}`` object (sent as a list of one)."""
    if isinstance(value, str):
        if _coerce.unset(value):
            raise BatchInputError(
                f"Input row at {where} has no input (got {_coerce.shown(value)}). Give the text to embed; "
                "if a template fills it in, check the value it reads (a missing one renders as 'None')."
            )
        return value
    if isinstance(value, list) and value and all(type(item) is int for item in value):
        return value
    if isinstance(value, dict):
        parts = value.get("content")
        if isinstance(parts, list) and parts and all(isinstance(part, dict) for part in parts):
            return [value]
    if isinstance(value, list) and len(value) == 1:
        return _embedding_input(value[0], where)
    raise BatchInputError(
        f"Input row at {where} has an input that is not one text, one list of token ids or one "
        f"{{'content': [...]}} object ({_coerce.shown(value)}). A row is one vector: give each text its "
        "own row."
    )


def _embedding_row(index: int, where: str, value: Any) -> BatchRow:
    if isinstance(value, str | list):
        return BatchRow(index, f"row-{index + 1}", [], {}, where, _embedding_input(value, where))
    if not isinstance(value, dict):
        raise BatchInputError(
            f"Input row at {where} is a JSON {type(value).__name__}; an embeddings row is a text, token ids, "
            "or an object with 'input' or 'body'."
        )
    custom_id = _custom_id(value.get("custom_id"), index, where)
    shapes = [key for key in ("input", "body") if key in value]
    if len(shapes) != 1:
        found = " and ".join(shapes) if shapes else "none of them"
        chat = " ('prompt' and 'messages' are chat rows)" if "prompt" in value or "messages" in value else ""
        raise BatchInputError(
            f"Input row at {where} must have exactly one of 'input' or 'body' (found {found}){chat}."
        )
    if shapes[0] == "input":
        overrides = {key: item for key, item in value.items() if key not in ("custom_id", "input")}
        return BatchRow(index, custom_id, [], overrides, where, _embedding_input(value["input"], where))
    body = _line_body(value, where, EMBEDDINGS)
    if "input" not in body:
        raise BatchInputError(f"Input row at {where} has a 'body' without 'input'.")
    overrides = {key: item for key, item in body.items() if key != "input"}
    return BatchRow(index, custom_id, [], overrides, where, _embedding_input(body["input"], where))


def embedding_body(row: BatchRow, model: str, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``/embeddings`` request body of an embeddings row: the operator's ``model`` and ``defaults``
    (``dimensions``, ``encoding_format``, ``input_type``, ``provider``, ``user``, ``extra_body`` as a dict)
    with the row's own fields winning; a row field the builder does not name goes into the body as is.
    Checked by :func:`~airflow_provider_openrouter.embeddings.build_embeddings_request`, so a bad field raises
    its one-line error (the batch engine adds where the row is)."""
    named = ("model", "dimensions", "encoding_format", "input_type", "provider", "user")
    shared = dict(defaults or {})
    # The row's own fields win over the operator's extra_body too, not only over its named defaults.
    shared_extra = {
        key: item for key, item in (shared.pop("extra_body", None) or {}).items() if key not in row.overrides
    }
    fields = {**shared, **{key: item for key, item in row.overrides.items() if key in named}}
    if shared_extra:
        fields["extra_body"] = shared_extra
    extra = {key: item for key, item in row.overrides.items() if key not in named}
    chosen = fields.pop("model", None) or model
    body = build_embeddings_request(chosen, row.input, **fields)
    body.update(extra)
    return body


def normalise_row(index: int, where: str, value: Any, endpoint: str = CHAT) -> BatchRow:
    """Normalise one parsed row; raise :class:`BatchInputError` naming ``where`` if it has no known shape.

    ``endpoint`` is what the batch runs (:data:`ENDPOINTS`): an embeddings row is read as one input.
    """
    if endpoint == EMBEDDINGS:
        return _embedding_row(index, where, value)
    if isinstance(value, str):
        return BatchRow(index, f"row-{index + 1}", _prompt_messages(value, where), {}, where)
    if isinstance(value, list):
        return BatchRow(index, f"row-{index + 1}", _messages_from(value, where), {}, where)
    if isinstance(value, dict):
        return _from_object(index, where, value)
    raise BatchInputError(
        f"Input row at {where} is a JSON {type(value).__name__}; expected a prompt string, "
        "a message list or an object with prompt/messages/body."
    )


def iter_rows(
    source: InputSource, shard_index: int = 0, shard_count: int = 1, endpoint: str = CHAT
) -> Iterator[BatchRow]:
    """Stream the normalised rows of one shard of ``source`` (``endpoint``: see :func:`normalise_row`)."""
    for index, where, value in source.raw_rows(shard_index, shard_count):
        yield normalise_row(index, where, value, endpoint)
