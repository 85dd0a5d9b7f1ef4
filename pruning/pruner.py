"""Magnitude masks over the weight tensors of any set of ``nn.Module``s.

The masks are plain float tensors multiplied into the weights in place (``torch._foreach_mul_``), so parameter
names, ``deepcopy``, ``state_dict`` and hard target copies all see ordinary dense tensors with exact zeros. This is
why the suite does not use ``torch.nn.utils.prune``, which renames parameters to ``weight_orig`` plus a
recomputed ``weight`` attribute. Masking gives no speed-up by itself: the weights stay dense.

Per-layer targets follow JaxPruner (``base_updater.py``): each layer's final sparsity s_l^F is computed once from
the distribution at the run's final sparsity, and a schedule scales it, s_l(t) = s_l^F·f(t); a layer keeps
round(n_l·(1 − s_l(t))) weights. So per-layer sparsities only grow, kept counts never increase, and a pruned
weight (|w| = 0, the lowest score) never comes back.

Timing: ``attach`` installs hooks on every optimizer that updates masked weights. Before its step (the counterpart of
JaxPruner's ``update_state`` inside the wrapped optimizer) a method may recompute masks from the weights as they are
before the step and from the dense gradients; right after the step (``post_gradient_update``) the masks are
multiplied in, so a pruned weight is exactly 0 whenever anything reads it, including a target copied or averaged
later in the same update. Adam's moments for pruned entries are left as they are (JaxPruner's GMP does the same):
they can only move a weight that the next ``apply()`` zeroes again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum
from functools import partial

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from pruning.distribution import erk_sparsities, keep_count, uniform_sparsities
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
    """Holds one mask per prunable weight and each layer's final sparsity. ``prune_to(s)`` prunes at once to ``s``
    (per-layer targets from the distribution at ``s``, or one global ranking); ``prune_scaled(f)`` prunes each layer
    to f times its final sparsity (GMP's schedule)."""

    def __init__(self, networks: dict[str, nn.Module], distribution: Distribution = Distribution.erk,
                 scope: Scope = Scope.layer, prune_output_layer: bool = True,
                 targets: dict[str, nn.Module] | None = None, include: PrunableFilter = builder_weights,
                 sparsity: float | None = None):
        """``include`` picks the prunable tensors of each network (default: the builder's weights); the output layer
        is the network's declared ``head``. ``targets`` maps a network's name to a copy that gets the same masks
        (``mask_targets``). ``sparsity`` is the final sparsity the per-layer targets are computed for."""
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
        self.final: dict[str, float] = {}
        self.final_sparsity: float | None = None
        self._owned: dict[int, list[str]] = {}
        self.held: set[str] = set()  # weights that sparse compute keeps exact at their masks (no O(n) re-apply)
        if sparsity is not None:
            self.set_final(sparsity)

    def _keys(self, networks: Iterable[str] | None) -> list[str]:
        if networks is None:
            return list(self.params)
        chosen = set(networks)
        return [k for k in self.params if k.split("/", 1)[0] in chosen]

    def set_final(self, sparsity: float) -> None:
        """Each layer's final sparsity, per network (an actor and its critics each reach ``sparsity`` on their
        own, whatever their relative sizes). With global scope every layer holds the network's total."""
        self.final_sparsity = sparsity
        for net in self.networks:
            keys = self._keys([net])
            if self.scope == Scope["global"]:
                self.final.update({k: sparsity for k in keys})
                continue
            dist = erk_sparsities if self.distribution == Distribution.erk else uniform_sparsities
            self.final.update(dist({k: tuple(self.params[k].shape) for k in keys}, sparsity))

    def keep_counts(self, fraction: float = 1.0) -> dict[str, int]:
        """Weights each layer keeps at ``fraction`` of its final sparsity (layer scope)."""
        return {k: keep_count(p.numel(), self.final[k] * fraction) for k, p in self.params.items()}

    @torch.no_grad()
    def prune_to(self, sparsity: float, networks: Iterable[str] | None = None) -> None:
        """One-shot: each network (of ``networks``, default all) pruned to ``sparsity`` by |w| and the masks
        applied."""
        if sparsity != self.final_sparsity:
            self.set_final(sparsity)
        self.prune_scaled(1.0, networks)

    @torch.no_grad()
    def prune_scaled(self, fraction: float, networks: Iterable[str] | None = None, apply: bool = True) -> None:
        """Masks by |w| with every layer at ``fraction`` × its final sparsity; ``apply=False`` only computes them
        (inside an optimizer step they are applied after it)."""
        masks = dict(self.masks or {})
        for net in self.networks if networks is None else networks:
            keys = self._keys([net])
            for k, keep in self._keep(keys, fraction).items():
                masks[k] = torch.empty_like(self.params[k]).copy_(keep.view(self.params[k].shape))
        for k, p in self.params.items():  # a network not pruned yet keeps a mask of ones
            masks.setdefault(k, torch.ones_like(p))
        self.masks = masks
        if apply:
            self.apply(networks)

    def set_masks(self, masks: dict[str, torch.Tensor]) -> None:
        """Every mask at once (a method's initial masks), as new tensors: what caches a mask (sparse inference, sparse
        compute) notices the change by the tensor's identity."""
        self.masks = {k: masks[k].view(self.params[k].shape).to(self.params[k]) for k in self.params}

    def set_mask(self, key: str, mask: torch.Tensor) -> None:
        """One layer's new mask (SET's and RigL's drop and grow), as a new tensor, as ``set_masks``."""
        self.masks[key] = mask.view(self.params[key].shape).to(self.params[key])

    def _keep(self, keys: list[str], fraction: float) -> dict[str, torch.Tensor]:
        scores = {k: self.params[k].detach().abs().flatten() for k in keys}
        if self.scope == Scope["global"]:
            # JaxPruner's GlobalMagnitudePruning: each layer's scores divided by their L2 norm, then one ranking
            flat = torch.cat([s / (torch.linalg.vector_norm(s) + 1e-8) for s in scores.values()])
            keep = top_k_mask(flat, keep_count(flat.numel(), self.final[keys[0]] * fraction))
            return dict(zip(scores, keep.split([s.numel() for s in scores.values()]), strict=True))
        return {k: top_k_mask(s, keep_count(s.numel(), self.final[k] * fraction)) for k, s in scores.items()}

    @torch.no_grad()
    def apply(self, networks: Iterable[str] | None = None) -> None:
        """Multiply the masks of ``networks`` (default all) into their weights, and into their targets' copies."""
        self._apply(self._keys(networks))

    def apply_to_targets(self, targets: dict[str, nn.Module]) -> None:
        """Multiply the masks into copies of the networks (targets at the start of a sparse run)."""
        if self.masks is None:
            return
        with torch.no_grad():
            for net, module in targets.items():
                for name, p in module.named_parameters():
                    if f"{net}/{name}" in self.masks:
                        p.mul_(self.masks[f"{net}/{name}"])

    def _apply(self, keys: list[str]) -> None:
        if self.masks is None:
            return
        online = [k for k in keys if k not in self.held]
        if online:
            torch._foreach_mul_([self.params[k] for k in online], [self.masks[k] for k in online])
        targets = [k for k in keys if k in self.target_params]
        if targets:
            torch._foreach_mul_([self.target_params[k] for k in targets], [self.masks[k] for k in targets])

    def owned_by(self, optimizer: torch.optim.Optimizer) -> list[str]:
        """The keys of the masked weights ``optimizer`` updates (found once per optimizer: sparse methods ask at every
        step, and an optimizer's parameters do not change)."""
        if id(optimizer) not in self._owned:
            ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
            self._owned[id(optimizer)] = [k for k, p in self.params.items() if id(p) in ids]
        return self._owned[id(optimizer)]

    def attach(self, optimizers: dict[str, torch.optim.Optimizer],
               before_step: Callable[[list[str], torch.optim.Optimizer], None] | None = None,
               after_step: Callable[[list[str], torch.optim.Optimizer], None] | None = None,
               ) -> tuple[list[RemovableHandle], list[str]]:
        """On every optimizer that updates masked weights: ``before_step(networks, optimizer)`` runs before its step
        (a method may recompute masks there, read or mask the dense gradients, or skip the step by setting them to
        None); after the step the masks of those networks are applied, then ``after_step(networks, optimizer)``
        runs. Returns the hook handles and the networks no optimizer updates (frozen: their masks only change when
        the method prunes them)."""
        handles, stepped = [], set()
        for optimizer in optimizers.values():
            owned = set(self.owned_by(optimizer))
            nets = [n for n in self.networks if any(k in owned for k in self._keys([n]))]
            if not nets:
                continue
            stepped.update(nets)
            if before_step is not None:
                handles.append(optimizer.register_step_pre_hook(
                    lambda opt, _args, _kwargs, nets=nets: before_step(nets, opt)))
            handles.append(optimizer.register_step_post_hook(partial(self._after_step, nets, after_step)))
        return handles, [n for n in self.networks if n not in stepped]

    @torch.no_grad()
    def _after_step(self, networks: list[str], after_step, optimizer, *_hook_args) -> None:
        """The post-step hook (PyTorch also passes the step's arguments, which it does not need)."""
        self._apply(self._keys(networks))
        if after_step is not None:
            after_step(networks, optimizer)

    def state_dict(self) -> dict:
        return {"masks": None if self.masks is None else {k: m.clone() for k, m in self.masks.items()}}

    def load_state_dict(self, state: dict) -> None:
        masks = state["masks"]
        self.masks = None if masks is None else {k: masks[k].to(self.params[k]) for k in self.params}
        self.apply()


@torch.no_grad()
def zero_optimizer_state(optimizer: torch.optim.Optimizer, param: torch.Tensor, where: torch.Tensor) -> None:
    """Zero the optimizer's per-entry state of ``param`` (Adam's two moments; any state tensor shaped like the
    parameter) where ``where`` is true, as JaxPruner's ``restart_inner_state`` and Dopamine's ReDo do. A weight that
    sparse compute holds (``sparse_held``) keeps its moments over its kept entries, and zeroes those."""
    held = getattr(param, "sparse_held", None)
    if held is not None:
        held.zero_state(where)
        return
    for value in optimizer.state.get(param, {}).values():
        if torch.is_tensor(value) and value.shape == param.shape:
            value.masked_fill_(where, 0)
