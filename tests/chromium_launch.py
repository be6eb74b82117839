"""Debian's headless Chromium for the browser checks (tests/browser, the cost report): where it is, the flags
it needs on these machines, and the rule that a missing browser skips locally but fails in CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling out, which this closed network refuses.
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    """Skip without /usr/bin/chromium on a developer's machine; fail in CI, which must run the checks."""
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the browser checks: {reason}", pytrace=False)
    pytest.skip(reason)
