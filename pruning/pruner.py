"""Magnitude masks over the weight tensors of any set of ``nn.Module``s.

The masks are plain float tensors multiplied into the weights in place (``torch._foreach_mul_``), so parameter
names, ``deepcopy``, ``state_dict`` and hard target copies all see ordinary dense tensors with exact zeros. This is
why the suite does not use ``torch.nn.utils.prune``, which renames parameters to ``weight_orig`` plus a
recomputed ``weight`` attribute. Masking gives no speed-up by itself: the weights stay dense.

Regrowth: ``attach`` re-applies the masks right after every step of each optimizer that updates masked weights
(PyTorch's step post-hooks, the counterpart of JaxPruner's ``post_gradient_update``), so a pruned weight is exactly
0 whenever anything reads it, including a target copied or averaged later in the same update. Adam's moments for
pruned entries are left as they are (JaxPruner does the same): they can only move a weight that the next
``apply()`` zeroes again, and masks only ever grow during GMP, so nothing pruned comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum
from functools import partial

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from pruning.distribution import erk_densities, keep_counts, uniform_densities
from pruning.measure import PrunableFilter, builder_weights, prunable_weights


class Distribution(str, Enum):
    erk = "erk"
    uniform = "uniform"


# ``global`` is a keyword, so this enum is built by name: Scope.layer, Scope["global"]
Scope = Enum("Scope", {"layer": "layer", "global": "global"}, type=str)


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


def _output_layer(module: nn.Module) -> set[int]:
    """The parameters of the layer a network declares as its ``head`` (none for a module without one)."""
    head = getattr(module, "head", None)
    return {id(p) for p in head.parameters()} if isinstance(head, nn.Module) else set()


class MagnitudePruner:
    """Holds one mask per prunable weight; ``prune_to(s)`` recomputes them by |w| so that exactly ``s`` of the
    pruned tensors' weights are zero (per layer targets from the distribution, or one global ranking)."""

    def __init__(self, networks: dict[str, nn.Module], distribution: Distribution = Distribution.erk,
                 scope: Scope = Scope.layer, prune_output_layer: bool = True,
                 targets: dict[str, nn.Module] | None = None, include: PrunableFilter = builder_weights):
        """``include`` picks the prunable tensors of each network (default: the builder's weights); the output layer
        is the network's declared ``head``. ``targets`` maps a network's name to a copy that gets the same masks
        (``mask_targets``)."""
        self.params: dict[str, nn.Parameter] = {}
        for net, module in networks.items():
            head = set() if prune_output_layer else _output_layer(module)
            self.params.update({f"{net}/{name}": p for name, p in prunable_weights(module, include).items()
                                if id(p) not in head})
        self.target_params = {f"{net}/{name}": p for net, module in (targets or {}).items()
                              for name, p in module.named_parameters() if f"{net}/{name}" in self.params}
        self.networks = list(dict.fromkeys(k.split("/", 1)[0] for k in self.params))
        self.distribution, self.scope = distribution, scope
        self.masks: dict[str, torch.Tensor] | None = None  # None: dense, nothing to apply

    def _keys(self, networks: Iterable[str] | None) -> list[str]:
        if networks is None:
            return list(self.params)
        chosen = set(networks)
        return [k for k in self.params if k.split("/", 1)[0] in chosen]

    @torch.no_grad()
    def prune_to(self, sparsity: float, networks: Iterable[str] | None = None) -> None:
        """Each network (of ``networks``, default all) separately reaches ``sparsity`` (its own ERK budget or global
        ranking), so that an actor and its critics are pruned alike whatever their relative sizes."""
        masks = dict(self.masks or {})
        for net in self.networks if networks is None else networks:
            params = {k: self.params[k] for k in self._keys([net])}
            for k, keep in self._keep(params, sparsity).items():
                masks[k] = torch.empty_like(params[k]).copy_(keep.view(params[k].shape))
        for k, p in self.params.items():  # a network not pruned yet keeps a mask of ones
            masks.setdefault(k, torch.ones_like(p))
        self.masks = masks
        self.apply(networks)

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
    def apply(self, networks: Iterable[str] | None = None) -> None:
        """Multiply the masks of ``networks`` (default all) into their weights, and into their targets' copies."""
        self._apply(self._keys(networks))

    def _apply(self, keys: list[str]) -> None:
        if self.masks is None:
            return
        torch._foreach_mul_([self.params[k] for k in keys], [self.masks[k] for k in keys])
        targets = [k for k in keys if k in self.target_params]
        if targets:
            torch._foreach_mul_([self.target_params[k] for k in targets], [self.masks[k] for k in targets])

    def attach(self, optimizers: dict[str, torch.optim.Optimizer],
               before_apply: Callable[[list[str]], None] | None = None) -> tuple[list[RemovableHandle], list[str]]:
        """After every step of each optimizer that updates masked weights, call ``before_apply(networks)`` (a
        method may recompute masks there) and re-apply the masks of the networks whose weights it updates.
        Returns the hook handles and the networks no optimizer updates (frozen: their masks only change when the
        method prunes them)."""
        handles, stepped = [], set()
        for optimizer in optimizers.values():
            ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
            nets = [n for n in self.networks if any(id(self.params[k]) in ids for k in self._keys([n]))]
            if nets:
                stepped.update(nets)
                hook = partial(self._after_step, nets, self._keys(nets), before_apply)
                handles.append(optimizer.register_step_post_hook(hook))
        return handles, [n for n in self.networks if n not in stepped]

    @torch.no_grad()
    def _after_step(self, networks: list[str], keys: list[str], before_apply, *_hook_args) -> None:
        """The post-step hook (PyTorch passes the optimizer and the step's arguments, which it does not need)."""
        if before_apply is not None:
            before_apply(networks)
        self._apply(keys)

    def state_dict(self) -> dict:
        return {"masks": None if self.masks is None else {k: m.clone() for k, m in self.masks.items()}}

    def load_state_dict(self, state: dict) -> None:
        masks = state["masks"]
        self.masks = None if masks is None else {k: masks[k].to(self.params[k]) for k in self.params}
        self.apply()
