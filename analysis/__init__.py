"""Reading run folders back: figures and aggregates from ``metrics.jsonl`` and ``summary.json``."""
