"""Offline training (the paper's §4.4): gradient updates on a fixed dataset of logged replay, no environment steps,
evaluation still playing the real environment, as Dopamine's ``FixedReplayRunner``
(``dopamine/labs/offline_rl/jax/run_experiment.py``).

The loop's clock is the gradient update. ``OfflineTrainer`` is the online ``Trainer`` with the agent step taken out:
its ``env_step`` (the step of every logged row, evaluation and checkpoint) counts updates, so callbacks, the logger
and the checkpointer work unchanged, and GMP's window is a fraction of ``offline.updates``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from core.errors import require
from training.loop import EVAL_SEED_OFFSET, Trainer, cuda_rng_state


@dataclass
class OfflineConfig:
    dataset: str = ""  # a folder of logged replay (the DQN Replay Dataset's format) to train from; "" = online
    updates: int = 12_500_000  # gradient updates of an offline run: the paper's 200 iterations of 62,500
    # weight α of CQL's term logsumexp_a Q − Q(s, a_data) (Dopamine's bc_coefficient); 0 = plain offline DQN/Rainbow
    cql_alpha: float = 0.1
    # the first N (+ frame stack) rows of each dataset file, as Dopamine's fixed replay keeps
    # (its replay_capacity); 50,000 of the DQN Replay Dataset's 1M-row files is the paper's 5%; null = every row
    transitions_per_file: int | None = None
    eval_every_updates: int = 62_500  # gradient updates between evaluations and checkpoints (one Dopamine iteration)
    log_every_updates: int = 1_000  # gradient updates between rows of losses and updates per second
    write_dataset: str = ""  # an online run also writes its transitions here, in the same format; "" = not
    rows_per_file: int = 1_000_000  # write_dataset: rows per file (the DQN Replay Dataset's); also one at checkpoints

    @property
    def enabled(self) -> bool:
        return bool(self.dataset)

    def validate(self) -> None:
        require(self.updates >= 1, "updates", self.updates, "must be >= 1 (gradient updates)")
        require(self.cql_alpha >= 0, "cql_alpha", self.cql_alpha, "must be >= 0 (0 = no CQL term)")
        require(self.transitions_per_file is None or self.transitions_per_file >= 1, "transitions_per_file",
                self.transitions_per_file, "must be >= 1, or null for every row")
        require(self.eval_every_updates >= 1, "eval_every_updates", self.eval_every_updates, "must be >= 1")
        require(self.log_every_updates >= 1, "log_every_updates", self.log_every_updates, "must be >= 1")
        require(self.rows_per_file >= 2, "rows_per_file", self.rows_per_file, "must be >= 2")
        require(not (self.dataset and self.write_dataset), "write_dataset", self.write_dataset,
                "an offline run takes no environment steps, so it has nothing to write; give write_dataset to the "
                "online run that logs the data")


class OfflineTrainer(Trainer):
    """``Trainer`` over gradient updates on a filled, fixed replay: each step samples a batch and updates; the
    replay's contents are the dataset (read again on resume, never checkpointed), its sampling RNG is checkpointed."""

    CLOCK = "update"

    def state_dict(self) -> dict[str, Any]:
        return {"env_step": self.env_step, "updates": self.updates, "last_eval": self.last_eval,
                "train_metrics": {k: torch.as_tensor(v).detach().cpu() for k, v in self.train_metrics.items()},
                "episode_return": self.episode_return, "eval_pending": self.eval_pending,
                "eval_env": self.eval_env.rng_state(), "torch_rng": torch.get_rng_state(), **cuda_rng_state(),
                **self.clock_state()}

    def load_replay(self, state: dict, arrays: dict[str, np.ndarray]) -> None:
        """The dataset is already in the buffer: only its sampling RNG comes back."""
        self.replay_stored = True
        self.replay.rng.bit_generator.state = state["rng"]

    def _run(self) -> dict:
        cfg, total = self.cfg, self.cfg.total_env_steps
        for cb in self.callbacks:
            cb.on_train_start(self)
        self.eval_env.reset(seed=cfg.seed + EVAL_SEED_OFFSET)
        if self._resume_state is not None:
            self.eval_env.set_rng_state(self._resume_state["eval_env"])
        self._t0 = self._window_t = time.perf_counter()
        self._window_step = self._start_step = self.updates
        self._bar = tqdm(total=total, initial=self.updates, disable=not cfg.progress, unit="update", dynamic_ncols=True,
                         mininterval=2.0)
        try:
            if self.eval_pending:
                self._end_of_step()
            while self.updates < total:
                self._update()
                self._end_of_step()
        finally:
            self._bar.update(self.updates - self._bar.n)  # the last updates, when not a multiple of a window
            self._bar.close()
        for cb in self.callbacks:
            cb.on_train_end(self)
        self.logger.flush()
        return {"env_steps": 0, "updates": self.updates,
                "final_eval_return": self.last_eval["eval/episodic_return"], **self.timing()}

    def _update(self) -> None:
        self.env_step = self.updates + 1  # set first: callbacks of this update log at its number
        self._learn()
        if self.updates % self.cfg.log_every_env_steps == 0:
            now = time.perf_counter()
            ups = (self.updates - self._window_step) / (now - self._window_t)
            cumulative = (self.updates - self._start_step) / (now - self._t0)
            self.logger.log({**self.train_metrics, "charts/updates_per_second": ups, "charts/updates": self.updates,
                             "charts/updates_per_second_cumulative": cumulative}, self.updates)
            self._bar.update(self.updates - self._bar.n)
            last = self.last_eval.get("eval/episodic_return")
            shown = {"eval": f"{last:.1f}"} if last is not None else {}  # none before the first evaluation
            self._bar.set_postfix(ups=f"{ups:.0f}", **shown, refresh=False)
            self._window_t, self._window_step = now, self.updates
