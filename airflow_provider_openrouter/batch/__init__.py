"""The batch engine behind ``OpenRouterBatchCompletionOperator``.

``inputs`` (rows from a list or a JSONL file), ``engine`` (scan, identity, checkpoint, output, manifest),
``concurrent`` (the rate-aware fan-out), ``batch_api`` (OpenRouter's Batch API), ``checkpoint``, ``outputs``,
``manifest`` and ``sharding`` (``plan_shards`` for ``.expand_kwargs()``). Nothing is imported here, so a DAG
file that imports the operator does not pay for the engine until the task runs.
"""

MAX_BATCH_REQUESTS = 5_000
"""OpenRouter takes at most this many requests in one ``POST /batches``; also the default chunk size. (Here,
so the operator's signature has it without importing the engine.)"""
