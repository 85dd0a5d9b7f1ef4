"""What every pruning method is to the loop: a callback built from its config and the run's final sparsity.

A method reaches the weights only through the agent's ``networks()``, ``target_networks()`` and ``optimizers()``:
it installs optimizer-step hooks in ``on_train_start`` (``MagnitudePruner.attach``: masks recomputed before a step,
re-applied after it; a method that grows weights reads dense gradients in the pre-step hook and zeroes Adam moments
with ``zero_optimizer_state``). ``target_sparsity`` is the sparsity it aims at now, reported in
``summary.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from core.callbacks import Callback
from core.protocols import TrainerView
from pruning.measure import sparsity_metrics


@dataclass
class MethodConfig:
    """What every method's config has."""

    sparse_inference: bool = False  # no-grad forwards of large linear layers from CSR once masks are final
    sparse_compute: Any = False  # false | auto | true: pruned linear layers train from CSR (pruning/sparse_compute.py)

    def schedule_warning(self, total_updates: int, sparsity: float) -> str | None:
        """A one-line warning when this run's length leaves the method's schedule other than its config reads (GMP:
        a window shorter than one mask-update period prunes in a jump); ``ConfigError`` when no setting of the method
        could run it as meant. None when all is as configured."""
        return None


class PruningMethod(Callback):
    def __init__(self, cfg: Any, sparsity: float, log_every_updates: int, seed: int = 0):
        """``log_every_updates``: how often the measured ``sparsity/*`` tags are written besides mask updates;
        ``seed``: the run's seed, for a method that draws (its own generator, apart from the agent's)."""
        self.cfg, self.sparsity, self.log_every_updates, self.seed = cfg, sparsity, log_every_updates, seed
        self.target_sparsity = 0.0  # the schedule's s_t at the last mask update (the sparsity/target tag)

    @property
    def target(self) -> float:
        """The old name of ``target_sparsity``, read and written by plugins written before it (``target`` now means a
        network copy everywhere else)."""
        return self.target_sparsity

    @target.setter
    def target(self, value: float) -> None:
        self.target_sparsity = value

    def current_masks(self) -> dict[str, torch.Tensor] | None:
        """The masks by ``<network>/<parameter>`` (None while dense), for ReDo and resets to respect."""
        pruner = getattr(self, "pruner", None)
        return None if pruner is None else pruner.masks

    def masks_final(self, updates: int) -> bool:
        """Whether the masks will not change after ``updates`` updates (``sparse_inference`` converts then)."""
        return False

    def dense_gradient_due(self, update: int) -> bool:
        """Whether update ``update`` (0-based) needs the dense gradient of masked weights (RigL's growth score):
        sparse compute then forms it for that update only."""
        return False

    def log_sparsity(self, trainer: TrainerView) -> None:
        trainer.logger.log(sparsity_metrics(trainer.agent.networks(), self.target_sparsity), trainer.env_step)
