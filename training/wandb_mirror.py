"""Weights & Biases beside TensorBoard (``logger.wandb=true``, the wandb extra): the run's resolved config and every
scalar row the logger writes, at the agent step. The W&B run id is kept in the run folder, so a resumed run logs to
the same W&B run (the steps replayed after the checkpoint are logged again, as in TensorBoard before its rewind).
``WANDB_MODE=offline`` keeps everything in ``<run>/wandb/`` for a later ``wandb sync``; ``WANDB_DIR``, when set, puts
W&B's files there instead (W&B's own convention)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

ID_FILE = "wandb_id.txt"


class WandbMirror:
    def __init__(self, run_dir: Path, config: dict[str, Any], project: str, entity: str = "", group: str = ""):
        import wandb  # heavy, and an optional extra

        id_path = run_dir / ID_FILE
        run_id = id_path.read_text().strip() if id_path.is_file() else secrets.token_hex(6)  # W&B: [a-z0-9]
        id_path.write_text(run_id + "\n")
        self.run = wandb.init(project=project, entity=entity or None, group=group or None, name=run_dir.name,
                              id=run_id, resume="allow", config=config,
                              dir=os.environ.get("WANDB_DIR") or str(run_dir))
        self.run.define_metric("global_step")
        self.run.define_metric("*", step_metric="global_step")  # the agent step: steps may repeat after a resume

    def __call__(self, values: dict[str, float], step: int) -> None:
        self.run.log({**values, "global_step": step})

    def finish(self) -> None:
        self.run.finish()
