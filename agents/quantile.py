"""The implicit quantile network (Dabney et al. 2018) on any builder's layers, as Dopamine's
``ImplicitQuantileNetwork``: the state's features x (the torso's flat output) are multiplied, element by element,
by an embedding of each sampled quantile fraction τ, φ(τ) = ReLU(W·cos(π·i·τ) + b) with i = 1..n, and the product
goes on through the builder's last hidden layer to the output layer, one row per (state, τ).

The embedding is a module of ``features`` (``features.quantile``), placed before the builder's last linear layer,
so the parts that know networks only through ``features`` and ``head`` keep working: its weight is prunable like
any other, its ReLU is probed for dormancy and recycled by ReDo, and ``head`` stays the output layer.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from agents.networks import QNetwork


class QuantileEmbedding(nn.Module):
    """x ⊙ φ(τ) for every state and each of its τ: (B, D) features and (B, N) fractions -> (B·N, D), state-major
    (the N rows of a state are consecutive). ``taus`` is set by the network before each forward."""

    gates_features = True  # ReDo's unit map (pruning/recycling.py): fc's units feed the next layer one to one

    def __init__(self, embedding_dim: int, state_dim: int):
        super().__init__()
        self.fc, self.relu = nn.Linear(embedding_dim, state_dim), nn.ReLU()
        self.register_buffer("frequencies", torch.arange(1, embedding_dim + 1, dtype=torch.float32) * math.pi,
                             persistent=False)
        self.taus: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        taus = self.taus
        b, n = taus.shape
        cosines = torch.cos(taus.reshape(b * n, 1) * self.frequencies)  # (B·N, n)
        phi = self.relu(self.fc(cosines))  # (B·N, D): one row per (state, τ), as the probes read units
        return x.repeat_interleave(n, dim=0) * phi


def with_quantile_embedding(embedding_dim: int):
    """A ``build_network`` edit: the embedding goes right before the builder's last linear layer (Nature CNN, IMPALA
    and MinAtar: between the flattened torso and the Dense layer; an MLP: before its last hidden layer)."""

    def edit(layers: OrderedDict[str, nn.Module]) -> OrderedDict[str, nn.Module]:
        names = list(layers)
        last = max(i for i, name in enumerate(names) if isinstance(layers[name], nn.Linear))
        out = OrderedDict((name, layers[name]) for name in names[:last])
        out["quantile"] = QuantileEmbedding(embedding_dim, layers[names[last]].in_features)
        out.update((name, layers[name]) for name in names[last:])
        return out

    return edit


def variance_scaling_uniform(weight: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dopamine's IQN initializer, ``variance_scaling(scale=1/√3, mode='fan_in', distribution='uniform')``:
    U(−b, b) with b = √(3·scale/fan_in) = √(√3/fan_in); fan_in is a kernel's inputs times its spatial size."""
    bound = math.sqrt(math.sqrt(3.0) / weight[0].numel())
    return nn.init.uniform_(weight, -bound, bound, generator=generator)


def midpoint_taus(batch: int, n: int, device: torch.device) -> torch.Tensor:
    """(i + ½)/n for i < n: fixed fractions for forwards that must not draw (health probes, ReDo's scoring)."""
    return ((torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n).expand(batch, n)


class QuantileNetwork(QNetwork):
    """``forward(x, taus)`` -> quantile values (B, N, actions) at the fractions ``taus`` (B, N); ``q_values`` is
    their mean over the fractions. Without ``taus``, ``num_probe_taus`` fixed midpoints (no random draw)."""

    num_probe_taus = 32

    def forward(self, x: torch.Tensor, taus: torch.Tensor | None = None) -> torch.Tensor:
        if taus is None:
            taus = midpoint_taus(x.shape[0], self.num_probe_taus, x.device)
        self.features.quantile.taus = taus
        try:
            return super().forward(x).view(taus.shape[0], taus.shape[1], -1)
        finally:
            self.features.quantile.taus = None

    def q_values(self, x: torch.Tensor, taus: torch.Tensor | None = None) -> torch.Tensor:
        return self(x, taus).mean(dim=1)
