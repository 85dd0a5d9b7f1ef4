"""The agents' optimizer: one place for Adam's settings."""

from __future__ import annotations

import torch


def adam(params, lr: float, eps: float, weight_decay: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam (fused on CPU and CUDA), or AdamW when ``weight_decay`` > 0: decoupled decay, w ← w − lr·λ·w each step
    (Loshchilov & Hutter 2019), in every torch version the suite allows."""
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    if weight_decay > 0:
        return torch.optim.AdamW(params, lr=lr, eps=eps, weight_decay=weight_decay, **fused)
    return torch.optim.Adam(params, lr=lr, eps=eps, **fused)
