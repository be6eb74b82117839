"""Names and one helper the budget tests share (a module of its own: ``conftest`` is ambiguous when several
test folders run together)."""

from __future__ import annotations

from typing import Any

BUDGET_CONN = "openrouter_budget_test"
MODEL = "openai/gpt-4o-mini"


def spend(hook: Any, ledger: Any, text: str, max_tokens: int = 40) -> Any:
    """One chat completion through ``ledger``: reserve its worst case, send, then settle, release or keep."""
    return ledger.spend(
        hook.build_chat_request(MODEL, "user", text, max_tokens=max_tokens), hook.send_chat_request
    )
