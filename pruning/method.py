"""What every pruning method is to the loop: a callback built from its config and the run's final sparsity.

A method reaches the weights only through the agent's ``networks()``, ``target_networks()`` and ``optimizers()``:
it installs optimizer-step hooks in ``on_train_start`` (``MagnitudePruner.attach`` re-applies masks after each
step; a method that grows weights reads dense gradients in a pre-step hook and zeroes Adam moments in
``optimizer.state[p]``). ``target`` is the sparsity it aims at now, reported in ``summary.json``.
"""

from __future__ import annotations

from typing import Any

from core.callbacks import Callback
from core.protocols import TrainerView
from pruning.measure import sparsity_metrics


class PruningMethod(Callback):
    def __init__(self, cfg: Any, sparsity: float, log_every_updates: int):
        """``log_every_updates``: how often the measured ``sparsity/*`` tags are written besides mask updates."""
        self.cfg, self.sparsity, self.log_every_updates = cfg, sparsity, log_every_updates
        self.target = 0.0

    def log_sparsity(self, trainer: TrainerView) -> None:
        trainer.logger.log(sparsity_metrics(trainer.agent.networks(), self.target), trainer.env_step)
