"""ivos.bench: the ``ivos-bench`` CLI (ops, click, latency, video benchmarks)."""
