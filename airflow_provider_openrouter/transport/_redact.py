"""Keeping the connection's key out of what the clients return or raise (answers, excerpts of bodies)."""

from __future__ import annotations

import functools
import json
from typing import Any

from airflow_provider_openrouter.exceptions import MIN_SECRET_CHARS, scrub


def excerpt(text: str, limit: int, secrets: tuple[str, ...]) -> str:
    """The first ``limit`` characters of ``text``, keys redacted first (a key cut in two is not found)."""
    margin = max((len(secret) for secret in secrets), default=0) + 64
    return str(scrub(text[: limit + margin], secrets))[:limit]


# A key could hide in a JSON string behind an escape (\u0073k-or-..., \/), so such bodies are walked too.
_MAY_HIDE_A_KEY = (b"sk-or-", b"\\u", b"\\/")


@functools.lru_cache(maxsize=64)
def secret_needles(secrets: tuple[str, ...]) -> tuple[bytes, ...]:
    """Byte patterns that betray a key in a raw answer: as written, and as JSON writes it (\" and \\).
    Cached: every answer is checked for them (a process holds a handful of connections' keys)."""
    return _MAY_HIDE_A_KEY + tuple(
        {
            form.encode()
            for secret in secrets
            if len(secret) >= MIN_SECRET_CHARS
            for form in (secret, json.dumps(secret)[1:-1])
        }
    )


def scrub_answer(
    payload: dict[str, Any], raw: bytes, needles: tuple[bytes, ...], secrets: tuple[str, ...]
) -> Any:
    """``payload`` with the connection's key and any ``sk-or-`` token redacted from every string (ids too),
    so a server echoing the key cannot put it into XCom. A body without any of ``needles`` is not walked."""
    if any(needle in raw for needle in needles):
        return scrub(payload, secrets, bearer=False)
    return payload


def short_body(content: bytes, content_type: str, secrets: tuple[str, ...]) -> str:
    kind = content_type.split(";")[0].strip() or "no content type"
    if not content:
        return f"empty body ({kind})"
    if "html" in kind:
        return f"an HTML page instead of OpenRouter's JSON ({len(content)} bytes)"
    snippet = excerpt(content[:4096].decode("utf-8", "replace"), 120, secrets)
    return f"a non-JSON body ({kind}): {snippet!r}"
