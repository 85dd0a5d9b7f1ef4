"""A trained adapter folded back into plain weights: the network without its hooks, as the builder made it, with
W = W₀ + ΔW (LoRA: (α/r)·B·A; VeRA: Λ_b·B·Λ_d·A; a conv's ΔW composes its A convolution with B's 1×1). ``masked``
keeps a pruned backbone's zeros (ΔW is multiplied by W₀ ≠ 0), at the cost of moving the outputs a little: the merged
network is then no longer the adapted one exactly. READ's side network does not fold into the backbone."""

from __future__ import annotations

import torch
from torch import nn


def delta_weight(layer: nn.Module) -> torch.Tensor | None:
    """ΔW of one adapted layer, shaped like its weight (None for a layer without an adapter)."""
    if hasattr(layer, "lora_A"):
        a, b, scale = layer.lora_A, layer.lora_B, layer.lora_scale
        if isinstance(layer, nn.Conv2d):
            return scale * torch.einsum("or,rikl->oikl", b.flatten(1), a)
        return scale * b @ a
    if hasattr(layer, "vera_A"):
        a, b = layer.vera_A, layer.vera_B
        if isinstance(layer, nn.Conv2d):
            return layer.vera_b.view(-1, 1, 1, 1) * torch.einsum("or,rikl->oikl", b.flatten(1) * layer.vera_d, a)
        return layer.vera_b[:, None] * (b * layer.vera_d) @ a
    return None


@torch.no_grad()
def merged_state_dict(net: nn.Module, masked: bool) -> dict[str, torch.Tensor]:
    """The backbone's ``state_dict`` with every adapter folded in; raises ValueError for a network with READ."""
    if hasattr(net, "read"):
        raise ValueError("READ's side network does not fold into the backbone's weights")
    state = {k: v.detach().clone() for k, v in net.state_dict().items()
             if not any(part.startswith(("lora_", "vera_")) for part in k.split("."))}
    for name, layer in net.named_modules():
        delta = delta_weight(layer)
        if delta is not None:
            w = state[f"{name}.weight"]
            state[f"{name}.weight"] = w + (delta * (w != 0) if masked else delta)
    return state
