"""Worker of bench_batch.py part 4: run the batch engine over WORKDIR/in.jsonl, print its peak RSS as JSON.

    python benchmarks/bench_batch_rss.py WORKDIR   (the connection comes from the environment)

One process per input size, so each peak belongs to one run. ``ru_maxrss`` is the kernel's high-water mark of
this process's resident set, i.e. the true peak, not a sample.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from bench_batch import run_engine


def main() -> None:
    workdir = Path(sys.argv[1])
    run = run_engine(workdir / "in.jsonl", workdir / "out.jsonl", concurrency=32)
    seconds, manifest = run.seconds, run.manifest
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {"seconds": seconds, "peak_rss_mb": peak_kib / 1024, "succeeded": manifest.counts.succeeded}
        )
    )


if __name__ == "__main__":
    main()
