"""A worker process for the SIGKILL test: runs one concurrent batch job until it finishes or is killed.

Usage: python batch_sigkill_worker.py OUTPUT_PATH ROWS CONCURRENCY (the connection: from the environment).
"""

from __future__ import annotations

import sys

from batch_helpers import LOG, make_job

from airflow_provider_openrouter.batch.concurrent import RunnerSettings, run_job
from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook


def main() -> None:
    output, rows, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    hook = OpenRouterHook()
    job = make_job(hook, output, [f"question {n}" for n in range(rows)])
    job.open()
    run_job(
        job, hook, RunnerSettings(concurrency=concurrency, progress_interval=3600), LOG, mode_reason="test"
    )


if __name__ == "__main__":
    main()
