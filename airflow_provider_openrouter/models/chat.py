"""Chat and text completions (``POST /chat/completions``, ``POST /completions``)."""

# No ``from __future__ import annotations`` here: real annotation objects spare pydantic from compiling and
# evaluating annotation strings at import, which DAG files pay for at parse time.
import json
import re
from decimal import Decimal
from typing import Any

from airflow_provider_openrouter.models._money import (
    Money,
    OpenRouterModel,
)


class ErrorInfo(OpenRouterModel):
    """An ``error`` object: ``{code, message, metadata}``."""

    code: int | str | None = None
    message: str | None = None
    metadata: dict[str, Any] | None = None


class ToolCallFunction(OpenRouterModel):
    name: str
    arguments: str = ""

    def parsed_arguments(self) -> Any:
        """The ``arguments`` JSON string, decoded."""
        return json.loads(self.arguments) if self.arguments else {}


class ToolCall(OpenRouterModel):
    id: str | None = None
    type: str = "function"
    function: ToolCallFunction
    index: int | None = None


class ChatMessage(OpenRouterModel):
    role: str = "assistant"
    content: str | list[Any] | None = None
    refusal: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_details: list[Any] | None = None
    images: list[Any] | None = None
    annotations: list[Any] | None = None
    audio: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """The content as text: a string as is, text parts joined, ``""`` when there is none."""
        if isinstance(self.content, str):
            return self.content
        if isinstance(self.content, list):
            return "".join(str(part.get("text", "")) for part in self.content if isinstance(part, dict))
        return ""


class ChatChoice(OpenRouterModel):
    index: int = 0
    message: ChatMessage
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    logprobs: Any = None
    error: ErrorInfo | None = None


class PromptTokensDetails(OpenRouterModel):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    audio_tokens: int | None = None
    video_tokens: int | None = None


class CompletionTokensDetails(OpenRouterModel):
    reasoning_tokens: int | None = None
    audio_tokens: int | None = None
    image_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None


class CostDetails(OpenRouterModel):
    upstream_inference_cost: Money | None = None
    upstream_inference_prompt_cost: Money | None = None
    upstream_inference_completions_cost: Money | None = None
    server_tool_cost: Money | None = None


class Usage(OpenRouterModel):
    """Token counts and the cost in USD (credits) of one completion."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: Money | None = None
    is_byok: bool | None = None
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None
    cost_details: CostDetails | None = None
    server_tool_use_details: dict[str, Any] | None = None


_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


class ChatCompletion(OpenRouterModel):
    """``POST /chat/completions``. ``id`` is the generation id that ``GET /generation`` accepts."""

    id: str
    object: str = "chat.completion"
    created: int | None = None
    model: str | None = None
    provider: str | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None
    choices: list[ChatChoice] = []
    usage: Usage | None = None
    openrouter_metadata: dict[str, Any] | None = None

    @property
    def generation_id(self) -> str:
        return self.id

    @property
    def message(self) -> ChatMessage | None:
        """The first choice's message."""
        return self.choices[0].message if self.choices else None

    @property
    def text(self) -> str:
        """The first choice's content as text; ``""`` when there is none (e.g. only tool calls)."""
        message = self.message
        return message.text if message is not None else ""

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None

    @property
    def tool_calls(self) -> list[ToolCall]:
        message = self.message
        return list(message.tool_calls or []) if message is not None else []

    @property
    def cost(self) -> Decimal | None:
        """What this completion cost in USD, as reported in ``usage.cost``."""
        return self.usage.cost if self.usage is not None else None

    def parsed_json(self) -> Any:
        """Decode the text as JSON (for ``response_format`` json_object / json_schema results).

        Tolerates a Markdown code fence around the JSON. Raises ``ValueError`` naming the generation when the
        text is not JSON.
        """
        text = self.text
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1)
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            preview = " ".join(self.text.split())[:80]
            raise ValueError(
                f"Generation {self.id} did not return JSON ({err.msg} at char {err.pos}); text starts "
                f"{preview!r}. Ask for response_format={{'type': 'json_object'}} or a json_schema."
            ) from None


class TextChoice(OpenRouterModel):
    text: str | None = None
    index: int = 0
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    logprobs: Any = None
    reasoning: str | None = None
    error: ErrorInfo | None = None


class TextCompletion(OpenRouterModel):
    """Legacy ``POST /completions``."""

    id: str
    object: str = "text_completion"
    created: int | None = None
    model: str | None = None
    provider: str | None = None
    system_fingerprint: str | None = None
    choices: list[TextChoice] = []
    usage: Usage | None = None

    @property
    def generation_id(self) -> str:
        return self.id

    @property
    def text(self) -> str:
        """The first choice's text, ``""`` when there is none."""
        return (self.choices[0].text or "") if self.choices else ""

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None

    @property
    def cost(self) -> Decimal | None:
        return self.usage.cost if self.usage is not None else None
