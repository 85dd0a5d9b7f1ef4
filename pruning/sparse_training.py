"""Sparse training from the first step (Graesser et al. 2022; JaxPruner's ``StaticRandomSparse``): the network is
sparse at ``sparsity`` before the agent acts, with ERK per-layer targets at exact keep counts, and stays at that
sparsity. ``pruning=static`` keeps the random mask it drew; SET and RigL (``dynamic_sparse.py``) and the lottery
ticket (``lottery.py``) build on this class.

As JaxPruner's sparse trainers (``is_sparse_gradients``), gradients are masked before each optimizer step, so
Adam's moments of pruned weights stay 0, and the masks are multiplied in after it. The masks are also multiplied
into the targets at the start (they are copies of the online networks, so a DQN target or a SAC Polyak average holds
the same zeros from step 0); ``mask_targets`` keeps them masked after every update as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.protocols import TrainerView, UpdateResult
from pruning.method import MethodConfig, PruningMethod
from pruning.pruner import Distribution, MagnitudePruner, top_k_mask
from pruning.registry import METHODS


@dataclass
class StaticConfig(MethodConfig):
    """A random sparse network at the top-level ``sparsity`` from step 0 (``sparsity`` must be > 0)."""

    name: str = "static"
    distribution: Distribution = Distribution.erk  # erk (Erdős–Rényi-Kernel) or uniform per-layer sparsities
    prune_output_layer: bool = True  # prune the output (head) layer too, as the paper
    mask_targets: bool = False  # also re-mask target networks after every update (docs/agents.md, "Pruning SAC")

    def validate(self) -> None:
        pass


def method_generator(seed: int, tag: int) -> torch.Generator:
    """A CPU generator of the method's own, derived from the run's seed: the masks it draws never shift the agent's
    or torch's global random streams."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, tag]).generate_state(1)[0]))


@METHODS.register("static", config=StaticConfig, sparse_from_start=True)
class SparseTraining(PruningMethod):
    """Sparse from the first step at a constant ``sparsity``. Subclasses change the masks during training
    (``update_masks``) or start from other masks (``initial_masks``)."""

    GENERATOR_TAG = 0x57A7

    def __init__(self, cfg: StaticConfig, sparsity: float, log_every_updates: int, seed: int = 0):
        super().__init__(cfg, sparsity, log_every_updates, seed)
        self.target_sparsity = sparsity
        self.generator = method_generator(seed, self.GENERATOR_TAG)
        self._state: dict | None = None
        self._hooks: list = []
        self.trainer: TrainerView | None = None
        self.pruner: MagnitudePruner | None = None  # built at on_train_start, once the networks exist

    def on_train_start(self, trainer: TrainerView) -> None:
        c, agent = self.cfg, trainer.agent
        self.trainer = trainer
        self.pruner = MagnitudePruner(agent.networks(), c.distribution, prune_output_layer=c.prune_output_layer,
                                      targets=agent.target_networks() if c.mask_targets else None,
                                      sparsity=self.sparsity)
        if self._state is not None:
            self.generator.set_state(self._state["generator"])
            self.pruner.load_state_dict(self._state["pruner"])
        else:
            self.pruner.set_masks(self.initial_masks(trainer))
            self.pruner.apply()
            self.pruner.apply_to_targets(agent.target_networks())
        self._hooks, _ = self.pruner.attach(agent.optimizers(), self.before_step, self.after_step)
        if not trainer.resumed:
            self.log_sparsity(trainer)

    def initial_masks(self, trainer: TrainerView) -> dict[str, torch.Tensor]:
        """Random masks with each layer's exact ERK (or uniform) keep count, drawn from the method's generator."""
        masks = {}
        for k, count in self.pruner.keep_counts().items():
            p = self.pruner.params[k]
            scores = torch.rand(p.numel(), generator=self.generator)
            masks[k] = top_k_mask(scores, count).view(p.shape).to(p)
        return masks

    def masks_final(self, updates: int) -> bool:
        return True

    def before_step(self, networks: list[str], optimizer: torch.optim.Optimizer) -> None:
        """Masked gradients (JaxPruner's ``is_sparse_gradients``): pruned weights get no Adam update or moments."""
        self.mask_gradients(optimizer)

    def mask_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        for k in self.pruner.owned_by(optimizer):
            grad = self.pruner.params[k].grad
            if grad is not None:
                grad.mul_(self.pruner.masks[k])

    def after_step(self, networks: list[str], optimizer: torch.optim.Optimizer) -> None:
        pass

    def on_update_end(self, trainer: TrainerView, result: UpdateResult) -> None:
        if trainer.updates % self.log_every_updates == 0:
            self.log_sparsity(trainer)

    def on_train_end(self, trainer: TrainerView) -> None:
        for handle in self._hooks:
            handle.remove()

    def state_dict(self) -> dict:
        return {"pruner": self.pruner.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self._state = state  # applied in on_train_start, once the networks exist
