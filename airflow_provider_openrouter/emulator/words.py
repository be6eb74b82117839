"""The vocabulary of the emulator's answers: plain words read as filler (a repeated word weighs more)."""

from __future__ import annotations

# One string, so the list reads as prose rather than 109 lines of one word each.
WORDS = tuple(
    """
    the pipeline runs every night and reports its cost to a table of model answers with clear numbers
    for each task data flows from source into tidy rows that analysts read in the morning when scheduler
    wakes up queue drains quickly batch finishes on time budget stays within limits tokens are counted
    carefully retry waits patiently result is stored safely once summary lists three points first second
    third request returns a short reply about weather markets code review invoice customer ticket
    priority high low medium status green orange report draft final version checks pass quietly graph
    shows steady growth across regions team ships small changes often log line explains
    """.split()  # noqa: SIM905
)
