"""One logger for the run: TensorBoard events and a JSONL metrics file with the same numbers."""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from core.errors import require

METRICS = "metrics.jsonl"


@dataclass
class LoggerConfig:
    wandb: bool = False  # mirror the scalars and the config to Weights & Biases (the wandb extra)
    wandb_project: str = "pedrl"  # the W&B project
    wandb_entity: str = ""  # "" = your default entity
    wandb_group: str = ""  # "" = none; a sweep may set one to group its runs

    def validate(self) -> None:
        require(bool(self.wandb_project), "wandb_project", self.wandb_project, "must not be empty")
TB_VIDEO_FRAMES = 2_000  # a TensorBoard GIF's frames at most (the MP4 in the run folder has the whole episode)


class Logger:
    """``log(metrics, step)`` writes every scalar to TensorBoard and one JSON line ``{"step": ..., tag: ...}``.

    ``step`` is always the agent-step counter, so every curve shares one x-axis. Values may be Python numbers or
    0-d tensors (converted here, off the hot path).
    """

    def __init__(self, run_dir: str | Path, mirrors: list[Callable[[dict[str, float], int], None]] = ()):
        """``mirrors`` receive every row of scalars as well (an experiment tracker such as W&B)."""
        self.run_dir = Path(run_dir)
        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tb"))
        self._jsonl = open(self.run_dir / METRICS, "a", encoding="utf-8")
        self.mirrors = list(mirrors)

    def log(self, metrics: dict[str, float | torch.Tensor], step: int) -> None:
        row: dict[str, float | int] = {"step": int(step)}
        values = {}
        for tag, value in metrics.items():
            value = values[tag] = float(value)
            self.writer.add_scalar(tag, value, step)
            row[tag] = value if math.isfinite(value) else str(value)
        self._jsonl.write(json.dumps(row) + "\n")
        for mirror in self.mirrors:
            mirror(values, int(step))

    def video(self, tag: str, frames: list[np.ndarray], step: int, fps: float) -> None:
        """An animated GIF in TensorBoard's Images tab, as torch's ``add_video`` writes one (which imports
        ``moviepy.editor``, gone since moviepy 2); at most ``TB_VIDEO_FRAMES`` frames."""
        frames = frames[:TB_VIDEO_FRAMES]
        if not frames:
            return
        images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
        buf = io.BytesIO()
        images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        h, w = frames[0].shape[:2]
        image = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=buf.getvalue())
        self.writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def hparams(self, params: dict[str, float | int | str | bool], metrics: dict[str, float], step: int) -> None:
        """TensorBoard's HParams summary of this run (its tab compares and filters a sweep's runs by setting) and
        its final ``metrics``, as scalars under the same tags, in the run's own event file."""
        for summary in hparams(params, metrics):
            self.writer._get_file_writer().add_summary(summary)
        self.log(metrics, step)

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
