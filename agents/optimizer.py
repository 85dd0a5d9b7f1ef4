"""The agents' optimizers: Adam's settings in one place, and the centred RMSProp of the MinAtar paper's DQN."""

from __future__ import annotations

from enum import Enum

import torch


class OptimizerName(str, Enum):
    adam = "adam"
    rmsprop = "rmsprop"


def adam(params, lr: float, eps: float, weight_decay: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam (fused on CPU and CUDA), or AdamW when ``weight_decay`` > 0: decoupled decay, w ← w − lr·λ·w each step
    (Loshchilov & Hutter 2019), in every torch version the suite allows."""
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    if weight_decay > 0:
        return torch.optim.AdamW(params, lr=lr, eps=eps, weight_decay=weight_decay, **fused)
    return torch.optim.Adam(params, lr=lr, eps=eps, **fused)


def rmsprop(params, lr: float, alpha: float, eps: float, centered: bool) -> torch.optim.Optimizer:
    """``torch.optim.RMSprop`` exactly as MinAtar's ``examples/dqn.py`` builds it (lr 2.5e-4, alpha 0.95, eps 0.01,
    centred): w ← w − lr·g / (sqrt(v − m²) + eps), eps outside the square root (Dopamine's TF RMSProp puts its 1e-5
    inside; the two differ)."""
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, centered=centered)


def value_optimizer(params, cfg, device: torch.device) -> torch.optim.Optimizer:
    """DQN's and Rainbow's optimizer from their config (``agent.optimizer`` and its settings)."""
    if cfg.optimizer == OptimizerName.rmsprop:
        return rmsprop(params, cfg.lr, cfg.rmsprop_alpha, cfg.rmsprop_eps, cfg.rmsprop_centered)
    return adam(params, cfg.lr, cfg.adam_eps, cfg.weight_decay, device)
