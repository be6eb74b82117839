"""Errors raised by the batch engine itself (the wire's errors come from ``exceptions.py``)."""

from __future__ import annotations

from typing import Any

from airflow_provider_openrouter.exceptions import OpenRouterError, OpenRouterRequestError


class _SentenceMessage:
    """The engine's messages are full sentences; ``OpenRouterError.__str__`` adds the final period."""

    def __init__(self, message: str = "", **kwargs: Any) -> None:
        super().__init__(message.rstrip(". "), **kwargs)  # type: ignore[call-arg]


class BatchInputError(_SentenceMessage, OpenRouterRequestError):
    """The input, the output path or a parameter cannot be used; raised before anything is paid for."""

    title = "Batch input cannot be used"

    def default_hint(self) -> str:
        return "Nothing was sent or billed."


class BatchFailedRowsError(_SentenceMessage, OpenRouterError):
    """More rows failed than ``max_failed_fraction`` allows. The output is complete and labels every row."""

    default_billed = None
    title = "Too many batch rows failed"

    def default_hint(self) -> str:
        return (
            "Every row is in the output with its status and error; a retry of the task sends again only the "
            "rows that failed without being billed."
        )


class BatchStateError(_SentenceMessage, OpenRouterError):
    """A checkpoint or Batch API state file disagrees with this run (another input, or unreadable)."""

    default_billed = None
    title = "Batch state cannot be used"

    def default_hint(self) -> str:
        return "Nothing was sent for this run."


class BatchWaitError(_SentenceMessage, OpenRouterError):
    """Waiting for submitted batches ended without their results (deadline, polling errors, lost access).

    ``code`` is the trigger's machine-readable reason. The batches keep running on OpenRouter.
    """

    retryable = True
    default_billed = None
    title = "Waiting for OpenRouter batches failed"

    def default_hint(self) -> str:
        return (
            "The batches keep running on OpenRouter; a retry of the task re-attaches to them (no new "
            "submission) and lands their results."
        )
