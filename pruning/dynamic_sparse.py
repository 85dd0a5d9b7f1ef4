"""Dynamic sparse training: SET (Mocanu et al. 2018) and RigL (Evci et al. 2020), as Graesser et al. 2022 ran them
in deep RL, through JaxPruner's ``sparse_trainers.SET`` / ``RigL``.

Every ``update_freq_updates`` updates (from the first multiple on) while t ≤ T_end = ⌊``end_frac``·T⌋, each layer
drops ⌊d_t·n_active⌋ of its active weights, those of smallest |w| (Graesser et al.'s TF code; JaxPruner keeps
round(n_active·(1 − d_t)) instead), and grows as many among all the others, the just-dropped included: at random
(SET) or by the largest |dense gradient| of this update (RigL). d_t = d0·½(1 + cos(π·t/T_end)) (optax's cosine decay,
as JaxPruner). A grown weight starts at 0 with its Adam moments zeroed; a weight dropped and grown again keeps its
value and moments. As JaxPruner (``skip_gradients``), the optimizer step of a mask-update step is skipped: the masks
change instead of the weights. Ties go to the lowest index, as JaxPruner's top-k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from core.errors import require
from core.protocols import TrainerView, UpdateResult
from pruning.pruner import top_k_mask, zero_optimizer_state
from pruning.registry import METHODS
from pruning.sparse_training import SparseTraining, StaticConfig


@dataclass
class SETConfig(StaticConfig):
    """Defaults for classic control, MinAtar and SAC (JaxPruner's ``create_updater_from_config``: every 1,000 updates,
    d0 0.1); ``conf/tuned/pruning/<method>_atari.yaml`` sets Graesser et al.'s Atari values (5,000, 0.3)."""

    name: str = "set"
    update_freq_updates: int = 1_000  # gradient updates between mask updates
    drop_fraction: float = 0.1  # d0, the fraction of active weights replaced at t = 0, decayed by a cosine to 0
    end_frac: float = 0.8  # of the run's gradient updates; the masks are fixed after it

    def validate(self) -> None:
        require(0 <= self.drop_fraction <= 1, "drop_fraction", self.drop_fraction, "must be in [0, 1]")
        require(self.update_freq_updates >= 1, "update_freq_updates", self.update_freq_updates, "must be >= 1")
        require(0 < self.end_frac <= 1, "end_frac", self.end_frac, "must be in (0, 1]")


@dataclass
class RigLConfig(SETConfig):
    name: str = "rigl"


def drop_fraction(t: int, t_end: int, d0: float) -> float:
    """d_t = d0·½(1 + cos(π·min(t, T_end)/T_end)): d0 at 0, d0/2 at T_end/2, 0 from T_end on."""
    if t_end <= 0:
        return 0.0
    return d0 * (0.5 * (1.0 + math.cos(math.pi * min(t, t_end) / t_end)))


def drop_and_grow(mask: torch.Tensor, weight: torch.Tensor, grow_score: torch.Tensor,
                  fraction: float) -> tuple[torch.Tensor, int, torch.Tensor]:
    """One layer's new mask (bool, flat), the number dropped, and the entries newly grown (were inactive)."""
    active = mask.flatten() != 0
    n_active = int(active.sum())
    n_drop = math.floor(fraction * n_active)
    if n_drop == 0:
        return active, 0, torch.zeros_like(active)
    survivors = top_k_mask(weight.detach().abs().flatten().masked_fill(~active, -math.inf), n_active - n_drop)
    grow = top_k_mask(grow_score.flatten().masked_fill(survivors, -math.inf), n_drop)
    return survivors | grow, n_drop, grow & ~active


def skip_step(optimizer: torch.optim.Optimizer) -> None:
    """No step this update: every gradient gone (JaxPruner skips the optimizer's step on a mask update)."""
    for group in optimizer.param_groups:
        for q in group["params"]:
            q.grad = None


@METHODS.register("set", config=SETConfig, sparse_from_start=True)
class SET(SparseTraining):
    """Random growth."""

    cfg: SETConfig

    def __init__(self, cfg: SETConfig, sparsity: float, log_every_updates: int, seed: int = 0):
        super().__init__(cfg, sparsity, log_every_updates, seed)
        self.t_end = 0  # ⌊end_frac·T⌋ updates, the cosine's length, once the run's T is known
        self.grown: dict[str, torch.Tensor] = {}  # per layer, the entries grown at this update (moments zeroed after)
        self.stats: dict[str, float] | None = None  # the last mask update's counts, logged at the update's end

    def on_train_start(self, trainer: TrainerView) -> None:
        self.t_end = int(self.cfg.end_frac * trainer.total_updates)
        self.grown, self.stats = {}, None
        super().on_train_start(trainer)

    def is_mask_update(self, t: int) -> bool:
        return 0 < t <= self.t_end and t % self.cfg.update_freq_updates == 0

    def masks_final(self, updates: int) -> bool:
        return updates > self.t_end

    def grow_scores(self, key: str, p: torch.Tensor) -> torch.Tensor:
        return torch.rand(p.numel(), generator=self.generator).view(p.shape).to(p.device)

    def before_step(self, networks: list[str], optimizer: torch.optim.Optimizer) -> None:
        """Off a mask update, masked gradients; on one, new masks for this optimizer's layers and no step."""
        t = self.trainer.updates
        if not self.is_mask_update(t):
            self.mask_gradients(optimizer)
            return
        self.update_masks(optimizer, drop_fraction(t, self.t_end, self.cfg.drop_fraction))
        skip_step(optimizer)

    @torch.no_grad()
    def update_masks(self, optimizer: torch.optim.Optimizer, fraction: float) -> None:
        """Drop and grow ``fraction`` of each layer's kept weights, for the layers ``optimizer`` steps; remembers
        what grew (its moments are zeroed after the step) and the counts to log."""
        stats = {"sparse/drop_fraction": fraction}
        for k in self.pruner.owned_by(optimizer):
            p = self.pruner.params[k]
            new, n_drop, grown = drop_and_grow(self.pruner.masks[k], p, self.grow_scores(k, p), fraction)
            self.pruner.set_mask(k, new)
            self.grown[k] = grown.view(p.shape)
            net = k.split("/", 1)[0]
            stats[f"sparse/{net}/dropped"] = stats.get(f"sparse/{net}/dropped", 0) + n_drop
            stats[f"sparse/{net}/grown"] = stats.get(f"sparse/{net}/grown", 0) + int(grown.sum())
        self.stats = {**(self.stats or {}), **stats}

    def after_step(self, networks: list[str], optimizer: torch.optim.Optimizer) -> None:
        for k in self.pruner.owned_by(optimizer):
            if k in self.grown:
                zero_optimizer_state(optimizer, self.pruner.params[k], self.grown.pop(k))

    def on_update_end(self, trainer: TrainerView, result: UpdateResult) -> None:
        if self.stats is not None:
            trainer.logger.log(self.stats, trainer.env_step)
            self.stats = None
            self.log_sparsity(trainer)
        elif trainer.updates % self.log_every_updates == 0:
            self.log_sparsity(trainer)


@METHODS.register("rigl", config=RigLConfig, sparse_from_start=True)
class RigL(SET):
    """Growth by the largest |dense gradient| of the update (the gradient before masking)."""

    def grow_scores(self, key: str, p: torch.Tensor) -> torch.Tensor:
        return p.grad.abs() if p.grad is not None else torch.zeros_like(p)

    def dense_gradient_due(self, update: int) -> bool:
        return self.is_mask_update(update)
