"""Magnitude masks over the weight tensors of any set of ``nn.Module``s.

The masks are plain float tensors multiplied into the weights in place (``torch._foreach_mul_``), so parameter
names, ``deepcopy``, ``state_dict`` and hard target copies all see ordinary dense tensors with exact zeros. This is
why the suite does not use ``torch.nn.utils.prune``, which renames parameters to ``weight_orig`` plus a
recomputed ``weight`` attribute. Masking gives no speed-up by itself: the weights stay dense.

Regrowth: the loop calls ``apply()`` after every optimizer step, so a pruned weight is exactly 0 whenever anything
reads it. Adam's moments for pruned entries are left as they are (JaxPruner does the same): they can only move a
weight that the next ``apply()`` zeroes again, and masks only ever grow during GMP, so nothing pruned comes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
from torch import nn

from pruning.distribution import erk_densities, keep_counts, uniform_densities
from pruning.measure import prunable_weights
from training.errors import require


class Distribution(str, Enum):
    erk = "erk"
    uniform = "uniform"


# ``global`` is a keyword, so this enum is built by name: Scope.layer, Scope["global"]
Scope = Enum("Scope", {"layer": "layer", "global": "global"}, type=str)


@dataclass
class PruningConfig:
    """GMP as Obando-Ceron et al. 2024 use it (JaxPruner's ``baselines/dopamine/configs``): prune from 20% to 80%
    of the gradient updates, masks recomputed every 1,000 updates, ERK per layer, output layer included."""

    name: str = "gmp"
    start_frac: float = 0.2  # of the run's gradient updates
    end_frac: float = 0.8
    update_freq_updates: int = 1_000
    distribution: Distribution = Distribution.erk
    scope: Scope = Scope.layer
    prune_output_layer: bool = True
    mask_targets: bool = False  # also zero the pruned weights of target networks (see README)

    def validate(self) -> None:
        require(0 <= self.start_frac < 1, "start_frac", self.start_frac, "must be in [0, 1)")
        require(self.start_frac < self.end_frac, "start_frac", self.start_frac,
                f"the schedule must start before it ends: pruning.start_frac < pruning.end_frac ({self.end_frac})")
        require(self.end_frac <= 1, "end_frac", self.end_frac, "must be in (pruning.start_frac, 1]")
        require(self.update_freq_updates >= 1, "update_freq_updates", self.update_freq_updates, "must be >= 1")


def top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the k largest scores in a 1-D tensor; among equal scores the lowest indices are kept, so
    the result is deterministic. O(n) through ``kthvalue`` rather than a sort."""
    n = scores.numel()
    if k >= n:
        return torch.ones(n, dtype=torch.bool, device=scores.device)
    if k <= 0:
        return torch.zeros(n, dtype=torch.bool, device=scores.device)
    threshold = scores.kthvalue(n - k + 1).values
    mask = scores > threshold
    missing = k - int(mask.sum())
    if missing > 0:
        mask[(scores == threshold).nonzero().squeeze(1)[:missing]] = True
    return mask


class MagnitudePruner:
    """Holds one mask per prunable weight; ``prune_to(s)`` recomputes them by |w| so that exactly ``s`` of the
    pruned tensors' weights are zero (per layer targets from the distribution, or one global ranking)."""

    def __init__(self, networks: dict[str, nn.Module], distribution: Distribution = Distribution.erk,
                 scope: Scope = Scope.layer, prune_output_layer: bool = True,
                 targets: dict[str, nn.Module] | None = None):
        """``targets`` maps a network's name to a copy that gets the same masks (``mask_targets``)."""
        self.params: dict[str, nn.Parameter] = {
            f"{net}/{name}": p for net, module in networks.items() for name, p in prunable_weights(module).items()
            if prune_output_layer or not name.startswith("head.")}
        self.target_params = {f"{net}/{name}": p for net, module in (targets or {}).items()
                              for name, p in prunable_weights(module).items() if f"{net}/{name}" in self.params}
        self.distribution, self.scope = distribution, scope
        self.masks: dict[str, torch.Tensor] | None = None  # None: dense, nothing to apply

    @torch.no_grad()
    def prune_to(self, sparsity: float) -> None:
        """Each network separately reaches ``sparsity`` (its own ERK budget or global ranking), so that an actor
        and its critics are pruned alike whatever their relative sizes."""
        kept: dict[str, torch.Tensor] = {}
        for net in dict.fromkeys(k.split("/", 1)[0] for k in self.params):
            params = {k: p for k, p in self.params.items() if k.split("/", 1)[0] == net}
            kept.update(self._keep(params, sparsity))
        self.masks = {k: torch.empty_like(p).copy_(kept[k].view(p.shape)) for k, p in self.params.items()}
        self.apply()

    def _keep(self, params: dict[str, nn.Parameter], sparsity: float) -> dict[str, torch.Tensor]:
        scores = {k: p.detach().abs().flatten() for k, p in params.items()}
        if self.scope == Scope["global"]:
            flat = torch.cat(list(scores.values()))
            keep = top_k_mask(flat, round((1.0 - sparsity) * flat.numel()))
            return dict(zip(scores, keep.split([s.numel() for s in scores.values()]), strict=True))
        shapes = {k: tuple(p.shape) for k, p in params.items()}
        dist = erk_densities if self.distribution == Distribution.erk else uniform_densities
        counts = keep_counts(shapes, dist(shapes, sparsity), sparsity)
        return {k: top_k_mask(s, counts[k]) for k, s in scores.items()}

    @torch.no_grad()
    def apply(self) -> None:
        if self.masks is not None:
            torch._foreach_mul_(list(self.params.values()), list(self.masks.values()))
            if self.target_params:
                torch._foreach_mul_(list(self.target_params.values()), [self.masks[k] for k in self.target_params])

    def state_dict(self) -> dict:
        return {"masks": None if self.masks is None else {k: m.clone() for k, m in self.masks.items()}}

    def load_state_dict(self, state: dict) -> None:
        masks = state["masks"]
        self.masks = None if masks is None else {k: masks[k].to(self.params[k]) for k in self.params}
        self.apply()
