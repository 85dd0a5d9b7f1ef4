"""One logger for the run: TensorBoard events and a JSONL metrics file with the same numbers."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

METRICS = "metrics.jsonl"


class Logger:
    """``log(metrics, step)`` writes every scalar to TensorBoard and one JSON line ``{"step": ..., tag: ...}``.

    ``step`` is always the agent-step counter, so every curve shares one x-axis. Values may be Python numbers or
    0-d tensors (converted here, off the hot path).
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tb"))
        self._jsonl = open(self.run_dir / METRICS, "a", encoding="utf-8")

    def log(self, metrics: dict[str, float | torch.Tensor], step: int) -> None:
        row: dict[str, float | int] = {"step": int(step)}
        for tag, value in metrics.items():
            value = float(value)
            self.writer.add_scalar(tag, value, step)
            row[tag] = value if math.isfinite(value) else str(value)
        self._jsonl.write(json.dumps(row) + "\n")

    def offsets(self) -> dict:
        """Bytes written so far to each file, after a flush: a checkpoint stores them so a resumed run can cut off
        what was logged after it."""
        self.flush()
        return {"metrics": (self.run_dir / METRICS).stat().st_size,
                "tb": {p.name: p.stat().st_size for p in (self.run_dir / "tb").glob("events.out.tfevents.*")}}

    @staticmethod
    def rewind(run_dir: str | Path, offsets: dict | None) -> None:
        """Cut the metrics file and the TensorBoard event files back to ``offsets`` (from ``offsets()``; None means
        empty). Event files created after those offsets were taken are removed. Event files are sequences of
        length-prefixed records, and offsets are taken after a flush, so each cut falls on a record boundary."""
        run_dir = Path(run_dir)
        offsets = offsets or {"metrics": 0, "tb": {}}
        if (run_dir / METRICS).exists():
            _cut(run_dir / METRICS, offsets["metrics"])
        for p in (run_dir / "tb").glob("events.out.tfevents.*"):
            if p.name in offsets["tb"]:
                _cut(p, offsets["tb"][p.name])
            else:
                p.unlink()

    def flush(self) -> None:
        self.writer.flush()
        self._jsonl.flush()

    def close(self) -> None:
        self.writer.close()
        self._jsonl.close()


def _cut(path: Path, size: int) -> None:
    if path.stat().st_size > size:
        os.truncate(path, size)
