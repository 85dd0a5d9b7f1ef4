"""Noisy linear layer with factorised Gaussian noise (Fortunato et al. 2018), Rainbow's exploration.

A subclass of ``nn.Linear`` whose ``weight`` and ``bias`` are the means μ, so the pruner, the health probes and
the network builders treat it like any linear layer; the noise scales σ are two more parameters
(``weight_sigma`` is 2-D, so it is pruned like a weight, by its own magnitude). In training mode every forward
draws fresh noise from torch's global RNG (which the checkpoint keeps), ε_ij = f(ε_i) f(ε_j) with
f(x) = sign(x)√|x|; in eval mode the layer is its mean, as Dopamine evaluates its noisy agents.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _scaled_noise(n: int, device: torch.device) -> torch.Tensor:
    x = torch.randn(n, device=device)
    return x.sign() * x.abs().sqrt()


class NoisyLinear(nn.Linear):
    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5):
        super().__init__(in_features, out_features)
        self.sigma0 = sigma0
        bound = 1.0 / math.sqrt(in_features)
        self.weight_sigma = nn.Parameter(torch.full((out_features, in_features), sigma0 * bound))
        self.bias_sigma = nn.Parameter(torch.full((out_features,), sigma0 * bound))
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            self.bias.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.linear(x, self.weight, self.bias)
        eps_in = _scaled_noise(self.in_features, x.device)
        eps_out = _scaled_noise(self.out_features, x.device)
        weight = self.weight + self.weight_sigma * torch.outer(eps_out, eps_in)
        return F.linear(x, weight, self.bias + self.bias_sigma * eps_out)
