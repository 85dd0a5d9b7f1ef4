"""One logger for the run: TensorBoard events and a JSONL metrics file with the same numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter


class Logger:
    """``log(metrics, step)`` writes every scalar to TensorBoard and one JSON line ``{"step": ..., tag: ...}``.

    ``step`` is always the agent-step counter, so every curve shares one x-axis. Values may be Python numbers or
    0-d tensors (converted here, off the hot path).
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tb"))
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")

    def log(self, metrics: dict[str, float | torch.Tensor], step: int) -> None:
        row: dict[str, float | int] = {"step": int(step)}
        for tag, value in metrics.items():
            value = float(value)
            self.writer.add_scalar(tag, value, step)
            row[tag] = value if math.isfinite(value) else str(value)
        self._jsonl.write(json.dumps(row) + "\n")

    def flush(self) -> None:
        self.writer.flush()
        self._jsonl.flush()

    def close(self) -> None:
        self.writer.close()
        self._jsonl.close()
