"""Where a network's units are: each conv or linear layer of ``features`` followed by a ReLU is a layer of units (a conv
channel is one unit; a tanh stands where a ReLU does), fed by that layer's rows and feeding the columns of the next
such layer, or of every conv or linear layer in the ``head`` for the last one. A module that ``gates_features`` (x ⊙
ReLU(fc(·)), IQN's quantile embedding) adds its ``fc`` units, feeding the next layer as the units before it do. ReDo
re-initialises units through this map; resets use the head. Shared by ``redo.py`` and ``reset.py``; knows networks
only through ``features``, ``head`` and ``fresh_parameters``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from core.activations import NONLINEARITIES
from core.protocols import BuiltNetwork

LAYERS = (nn.Linear, nn.Conv2d)


@dataclass
class UnitLayer:
    name: str  # the layer's name in the network (features.fc1)
    layer: nn.Module
    relu: nn.Module
    outgoing: list[nn.Module]


def unit_layers(net: BuiltNetwork) -> list[UnitLayer]:
    """The hidden unit layers in order; raises ValueError for a network whose ``features`` hold anything with
    parameters other than plain conv and linear layers (a residual stack), where units cannot be mapped this way."""
    children = list(net.features.named_children())
    for name, module in children:
        gate = getattr(module, "gates_features", False)
        if not isinstance(module, LAYERS) and not gate and any(True for _ in module.parameters()):
            raise ValueError(f"features.{name} is a {type(module).__name__}, not a plain conv or linear layer")
    found: list[UnitLayer] = []
    pending: tuple[str, nn.Module] | None = None
    for name, module in children:
        if isinstance(module, LAYERS):
            for unit in found:
                unit.outgoing = unit.outgoing or [module]
            pending = (name, module)
        elif isinstance(module, NONLINEARITIES) and pending is not None:
            found.append(UnitLayer(f"features.{pending[0]}", pending[1], module, []))
            pending = None
        elif getattr(module, "gates_features", False):
            # x ⊙ ReLU(fc(·)) (IQN's quantile embedding): its units feed the next layer's columns one to one, as
            # the units before it do, so both map to that layer
            found.append(UnitLayer(f"features.{name}.fc", module.fc, module.relu, []))
    for unit in found:
        unit.outgoing = unit.outgoing or [m for m in net.head.modules() if isinstance(m, LAYERS)]
    return found


def head_layers(net: BuiltNetwork) -> list[nn.Module]:
    return [m for m in net.head.modules() if isinstance(m, LAYERS)]


def optimizer_of(param: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]) -> torch.optim.Optimizer | None:
    for optimizer in optimizers.values():
        if any(p is param for group in optimizer.param_groups for p in group["params"]):
            return optimizer
    return None


def outgoing_columns(dead: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """Which input columns of ``layer`` come from the dead units: a conv's input channels, or, after a flatten of
    (C, H, W) maps, the H·W consecutive columns of each channel (PyTorch flattens channel-major)."""
    n_in = layer.weight.shape[1]
    return dead if n_in == dead.numel() else dead.repeat_interleave(n_in // dead.numel())
