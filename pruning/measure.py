"""Which weights are prunable, and sparsity measured from the weights themselves, whatever produced the zeros."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

PrunableFilter = Callable[[nn.Module, str, nn.Parameter], bool]  # (network, parameter name, parameter) -> prunable


def builder_weights(network: nn.Module, name: str, param: nn.Parameter) -> bool:
    """The default filter: the weight tensors the network's builder made (``Network.builder_weights``: conv kernels
    and linear weights, never biases), so nothing an adapter adds afterwards is pruned or counted. A module that
    declares none is taken as it is: every tensor with ndim > 1."""
    declared = getattr(network, "builder_weights", None)
    return name in declared if declared is not None else param.ndim > 1


def prunable_weights(module: nn.Module, include: PrunableFilter = builder_weights) -> dict[str, nn.Parameter]:
    return {name: p for name, p in module.named_parameters() if include(module, name, p)}


def weight_sparsity(networks: dict[str, nn.Module], per_layer: bool = False,
                    include: PrunableFilter = builder_weights) -> dict[str, float]:
    """Fraction of exact zeros among prunable weights: ``total``, one entry per network, and with ``per_layer``
    one ``<network>/<parameter>`` entry per tensor."""
    out, zeros_all, numel_all = {}, 0, 0
    for name, net in networks.items():
        zeros = numel = 0
        for pname, w in prunable_weights(net, include).items():
            z = int((w == 0).sum())
            if per_layer:
                out[f"{name}/{pname}"] = z / w.numel()
            zeros, numel = zeros + z, numel + w.numel()
        out[name] = zeros / numel if numel else 0.0
        zeros_all, numel_all = zeros_all + zeros, numel_all + numel
    out["total"] = zeros_all / numel_all if numel_all else 0.0
    return out


def sparsity_metrics(networks: dict[str, nn.Module], target_sparsity: float) -> dict[str, float]:
    """The ``sparsity/*`` tags: the method's current target sparsity and the measured sparsity per network and
    tensor."""
    measured = weight_sparsity(networks, per_layer=True)
    return {"sparsity/target": target_sparsity, **{f"sparsity/{k}": v for k, v in measured.items()}}
