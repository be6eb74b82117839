"""Collecting generation ids from wherever they come from, each with what its source tells about it.

Accepted, nested in lists at any depth (a mapped upstream's XCom is such a list):

* a generation id (``"gen-..."``), or a JSON list of ids as text (a template rendered without ``tojson``);
* a typed result of our operators: ``ChatCompletion`` / ``TextCompletion`` (id and usage), ``Generation``
  (already resolved: nothing is fetched for it), ``BatchManifest`` (its output file is read);
* the JSON form of those (a dict with ``id`` and ``usage``, a batch output row with ``generation_id``, a
  manifest dict with ``output_path``);
* a file, as an ``ObjectStoragePath``, a local path or URL text (``/``, ``://`` or a ``.jsonl``/``.json``/
  ``.txt``/``.csv`` suffix): a batch output JSONL, a JSON list, or one id per line (``#`` starts a comment).

Batch rows that never produced a generation (not sent, refused before sending) have no id and are counted in
:attr:`Collected.rows_without_generation`, not audited.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_openrouter.cost.records import Attribution

_FILE_SUFFIXES = (".jsonl", ".json", ".txt", ".csv", ".ndjson")


class CostSourceError(ValueError):
    """A source of generation ids that cannot be read: what it was, where, and what to pass instead."""


@dataclasses.dataclass(slots=True)
class IdRef:
    """One generation id to audit, with what its source said: attribution, and the answer's usage if any."""

    generation_id: str
    hint: Attribution
    usage: Mapping[str, Any] | None = None
    model: str | None = None
    provider: str | None = None
    created: float | None = None
    status: str | None = None  # a batch row's status, when it came from one
    generation: Any = None  # an already resolved models.Generation


@dataclasses.dataclass
class Collected:
    refs: dict[str, IdRef] = dataclasses.field(default_factory=dict)
    seen: int = 0  # ids met, duplicates included
    rows_without_generation: int = 0

    def add(self, ref: IdRef) -> None:
        self.seen += 1
        known = self.refs.get(ref.generation_id)
        if known is None:
            self.refs[ref.generation_id] = ref
            return
        known.hint = known.hint.filled_from(ref.hint)
        for name in ("usage", "model", "provider", "created", "generation", "status"):
            if getattr(known, name) is None:
                setattr(known, name, getattr(ref, name))

    @property
    def duplicates(self) -> int:
        return self.seen - len(self.refs)


def collect(value: Any, hint: Attribution | None = None, *, mapped: bool = False) -> Collected:
    """Every generation id in ``value`` (see the module docstring), each once.

    ``hint`` is what the caller knows of the source (e.g. the upstream task); ``mapped=True`` says the top
    list is a mapped task's XCom, so position ``i`` is map index ``i``.
    """
    found = Collected()
    base = hint or Attribution()
    if mapped and _is_sequence(value):
        for index, item in enumerate(value):
            _walk(item, dataclasses.replace(base, map_index=index), found, f"item {index}")
    else:
        _walk(value, base, found, "generation_ids")
    return found


def _is_sequence(value: Any) -> bool:
    if isinstance(value, str | bytes | Mapping):
        return False
    return hasattr(value, "__iter__") and hasattr(value, "__len__")


def _looks_like_path(text: str) -> bool:
    return "/" in text or "://" in text or text.lower().endswith(_FILE_SUFFIXES)


def _walk(value: Any, hint: Attribution, found: Collected, where: str) -> None:
    from airflow_provider_openrouter.models import ChatCompletion, Generation, TextCompletion

    if value is None:
        return
    if isinstance(value, Generation):
        found.add(IdRef(value.id, hint, generation=value))
        return
    if isinstance(value, ChatCompletion | TextCompletion):
        usage = value.usage.model_dump(mode="json") if value.usage is not None else None
        found.add(IdRef(value.id, hint, usage, value.model, value.provider, value.created))
        return
    if type(value).__name__ == "BatchManifest":
        _read_file(getattr(value, "output_path", ""), hint, found, where)
        return
    if isinstance(value, str):
        _walk_text(value, hint, found, where)
        return
    if isinstance(value, Mapping):
        _walk_mapping(value, hint, found, where)
        return
    if hasattr(value, "protocol") and hasattr(value, "open"):  # an ObjectStoragePath
        _read_path(value, hint, found, str(value))
        return
    if _is_sequence(value) or isinstance(value, Iterable):
        for index, item in enumerate(value):
            _walk(item, hint, found, f"{where}[{index}]")
        return
    raise CostSourceError(
        f"{where}: cannot read generation ids from a {type(value).__name__}; pass ids, our operators' "
        "results (ChatCompletion, TextCompletion, Generation, BatchManifest), batch output files or a file "
        "of ids"
    )


def _walk_text(text: str, hint: Attribution, found: Collected, where: str) -> None:
    stripped = text.strip()
    if not stripped or stripped.lower() in ("none", "null"):
        return
    if stripped[0] in "[{":
        try:
            parsed = json.loads(stripped)
        except json.JSONDecodeError:
            raise CostSourceError(
                f"{where}: {stripped[:60]!r} starts like JSON but is not JSON; render lists with | tojson"
            ) from None
        _walk(parsed, hint, found, where)
        return
    if _looks_like_path(stripped):
        _read_file(stripped, hint, found, where)
        return
    if any(char.isspace() for char in stripped) or "," in stripped:
        raise CostSourceError(
            f"{where}: {stripped[:60]!r} is not a generation id (it has spaces or commas); pass a list of ids"
        )
    found.add(IdRef(stripped, hint))


def _walk_mapping(row: Mapping[str, Any], hint: Attribution, found: Collected, where: str) -> None:
    if "__data__" in row and isinstance(row.get("__data__"), Mapping):  # an undeserialized XCom value
        _walk(row["__data__"], hint, found, where)
        return
    if "output_path" in row and "counts" in row:  # a batch manifest as JSON
        _read_file(str(row["output_path"]), hint, found, where)
        return
    if "generation_id" in row or "custom_id" in row:  # a batch output row
        generation_id = row.get("generation_id")
        if not isinstance(generation_id, str) or not generation_id:
            found.rows_without_generation += 1
            return
        custom_id = row.get("custom_id")
        row_hint = hint.with_custom_id(custom_id) if isinstance(custom_id, str) else hint
        usage = row.get("usage") if isinstance(row.get("usage"), Mapping) else None
        if usage is not None and "cost" not in usage and row.get("cost") is not None:
            usage = {**usage, "cost": row["cost"]}
        found.add(
            IdRef(
                generation_id,
                row_hint,
                usage,
                row.get("model"),
                row.get("provider"),
                row.get("created"),
                status=row.get("status"),
            )
        )
        return
    if isinstance(row.get("id"), str):  # a completion's or generation's JSON
        from airflow_provider_openrouter.models import Generation

        if "total_cost" in row:
            found.add(IdRef(row["id"], hint, generation=Generation.model_validate(row)))
            return
        usage = row.get("usage") if isinstance(row.get("usage"), Mapping) else None
        found.add(IdRef(row["id"], hint, usage, row.get("model"), row.get("provider"), row.get("created")))
        return
    raise CostSourceError(
        f"{where}: an object with keys {', '.join(sorted(map(str, row))[:8])} holds no generation id; pass a "
        "completion result, a batch output row or manifest, or ids"
    )


def _read_file(location: str, hint: Attribution, found: Collected, where: str) -> None:
    from airflow.sdk import ObjectStoragePath

    if not location:
        raise CostSourceError(f"{where}: an empty file location")
    _read_path(ObjectStoragePath(location), hint, found, where)


def _read_path(path: Any, hint: Attribution, found: Collected, where: str) -> None:
    try:
        with path.open("r", encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise CostSourceError(
            f"{where}: the file {path} does not exist; pass the batch output path or a file of ids"
        ) from None
    except OSError as err:
        raise CostSourceError(f"{where}: cannot read {path}: {err}") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            _walk(json.loads(stripped), hint, found, str(path))
        except json.JSONDecodeError as err:
            raise CostSourceError(f"{path}: not valid JSON ({err.msg} at char {err.pos})") from None
        return
    name = str(path)  # once: an ObjectStoragePath's str() is not free, and every line's location uses it
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise CostSourceError(
                    f"{name}, line {number}: not a JSON object ({err.msg}); a batch output file has one "
                    "JSON object a line"
                ) from None
            _walk_mapping(row, hint, found, f"{name}, line {number}")
        else:
            cell = line.split(",")[0].strip().strip('"')
            if number == 1 and cell.lower() in ("generation_id", "id"):  # a CSV header
                continue
            _walk_text(cell, hint, found, f"{name}, line {number}")
