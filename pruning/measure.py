"""Sparsity measured from the weights themselves, whatever produced the zeros."""

from __future__ import annotations

from torch import nn


def prunable_weights(module: nn.Module) -> dict[str, nn.Parameter]:
    """Every weight tensor with ndim > 1 (conv kernels, linear weights); biases and norms are never prunable."""
    return {name: p for name, p in module.named_parameters() if p.ndim > 1}


def weight_sparsity(networks: dict[str, nn.Module], per_layer: bool = False) -> dict[str, float]:
    """Fraction of exact zeros among prunable weights: ``total``, one entry per network, and with ``per_layer``
    one ``<network>/<parameter>`` entry per tensor."""
    out, zeros_all, numel_all = {}, 0, 0
    for name, net in networks.items():
        zeros = numel = 0
        for pname, w in prunable_weights(net).items():
            z = int((w == 0).sum())
            if per_layer:
                out[f"{name}/{pname}"] = z / w.numel()
            zeros, numel = zeros + z, numel + w.numel()
        out[name] = zeros / numel if numel else 0.0
        zeros_all, numel_all = zeros_all + zeros, numel_all + numel
    out["total"] = zeros_all / numel_all if numel_all else 0.0
    return out
