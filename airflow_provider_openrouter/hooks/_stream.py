"""A streamed chat answer (server-sent event chunks) assembled into the body the same request answers
without streaming (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["assemble_chat_stream"]


def assemble_chat_stream(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One ``chat.completion`` body from the chunks of a streamed answer, with every field the same request
    answered without streaming carries.

    * Top level (``id``, ``model``, ``provider``, ``created``, ``system_fingerprint``, ``service_tier``,
      ``usage``, ``openrouter_metadata``, and any other key): the last value sent wins.
    * Per choice (by ``index``): ``finish_reason`` and ``native_finish_reason`` as last sent; ``logprobs``
      lists (``content``, ``refusal``) concatenated across chunks.
    * Per message: text deltas (``content``, ``reasoning``, ``refusal``, ``audio.data`` and
      ``audio.transcript``) concatenated; ``tool_calls`` and ``reasoning_details`` merged by their ``index``
      (their text pieces joined); ``images`` and ``annotations`` collected in order.

    A server that answered with one whole object is passed on.
    """
    result: dict[str, Any] = {"object": "chat.completion"}
    choices: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.get("object") == "chat.completion":
            return dict(event)
        for key, value in event.items():
            if key not in ("object", "choices") and value is not None:
                result[key] = value
        for part in event.get("choices") or ():
            index = part.get("index", 0)
            choice = choices.setdefault(
                index,
                {"index": index, "message": {"role": "assistant"}, "finish_reason": None, "logprobs": None},
            )
            for key, value in part.items():
                if key == "delta":
                    _merge_delta(choice["message"], value or {})
                elif key == "logprobs":
                    choice["logprobs"] = _merge_logprobs(choice["logprobs"], value)
                elif key != "index" and value is not None:
                    choice[key] = value
    result["choices"] = [choices[index] for index in sorted(choices)]
    for choice in result["choices"]:
        message = choice["message"]
        # The role chunk opens with content "": an answer that is only tool calls or a refusal has no content.
        if not message.get("content") and (message.get("tool_calls") or message.get("refusal")):
            message["content"] = None
        message.setdefault("content", None)
    return result


_DELTA_TEXTS = ("content", "reasoning", "refusal")
_DELTA_LISTS = ("images", "annotations")
# Streamed in pieces: a reasoning detail's text (or summary, or encrypted data) arrives across chunks that
# share the detail's index; the other keys (type, format, id, signature) are sent whole.
_DETAIL_TEXTS = ("text", "summary", "data")


def _merge_delta(message: dict[str, Any], delta: Mapping[str, Any]) -> None:
    for key, value in delta.items():
        if value is None:
            continue
        if key in _DELTA_TEXTS and isinstance(value, str):
            message[key] = (message.get(key) or "") + value
        elif key in _DELTA_LISTS and isinstance(value, list):
            message.setdefault(key, []).extend(value)
        elif key == "tool_calls":
            _merge_tool_calls(message.setdefault("tool_calls", []), value)
        elif key == "reasoning_details":
            _merge_reasoning_details(message.setdefault("reasoning_details", []), value)
        elif key == "audio" and isinstance(value, Mapping):
            audio = message.setdefault("audio", {})
            for name, piece in value.items():
                if name in ("data", "transcript") and isinstance(piece, str):
                    audio[name] = audio.get(name, "") + piece
                elif piece is not None:
                    audio[name] = piece
        else:
            message[key] = value


def _merge_tool_calls(calls: list[dict[str, Any]], deltas: Iterable[Mapping[str, Any]]) -> None:
    for call in deltas:
        position = call.get("index", len(calls))
        while len(calls) <= position:
            calls.append(
                {
                    "id": None,
                    "type": "function",
                    "index": len(calls),
                    "function": {"name": "", "arguments": ""},
                }
            )
        target = calls[position]
        for key, value in call.items():
            if key == "function":
                for name, piece in (value or {}).items():
                    if name in ("name", "arguments") and isinstance(piece, str):
                        target["function"][name] += piece
                    elif piece is not None:
                        target["function"][name] = piece
            elif key != "index" and value is not None:
                target[key] = value


def _merge_reasoning_details(details: list[dict[str, Any]], deltas: Iterable[Mapping[str, Any]]) -> None:
    for detail in deltas:
        index = detail.get("index")
        target = next(
            (
                known
                for known in details
                if index is not None
                and known.get("index") == index
                and known.get("type") == detail.get("type")
            ),
            None,
        )
        if target is None:
            details.append(dict(detail))
            continue
        for key, value in detail.items():
            if key in _DETAIL_TEXTS and isinstance(value, str):
                target[key] = (target.get(key) or "") + value
            elif value is not None:
                target[key] = value


def _merge_logprobs(known: Any, piece: Any) -> Any:
    """Per-token logprob lists (``content``, ``refusal``) of one choice, concatenated across chunks."""
    if not isinstance(piece, Mapping):
        return known
    merged = dict(known) if isinstance(known, Mapping) else {}
    for key, value in piece.items():
        if isinstance(value, list):
            merged[key] = [*(merged.get(key) or []), *value]
        elif key not in merged or value is not None:
            merged[key] = value
    return merged
