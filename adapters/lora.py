"""LoRA (Hu et al. 2021), as PERL uses it for the RL stage: h = W₀x + (α/r)·B·A·x with W₀ frozen, A random, B = 0 at
init, so the adapted network starts as the source network exactly.

For a Conv2d layer A is a convolution with the layer's kernel, stride, padding and dilation and r output channels,
and B a 1×1 convolution to the layer's output channels (r·(c_in·k_h·k_w + c_out) parameters); for a Linear layer A is
r×d_in and B d_out×r. A and B are parameters of the adapted layer itself (``features.fc1.lora_A``) and its forward
hook adds the low-rank term, so every backbone tensor keeps its name in ``state_dict``, masks and checkpoints. Not
``peft``: it wraps layers (renaming their parameters) and pulls in transformers and the hub.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from adapters.backbone import check_head_and_export, freeze
from adapters.registry import ADAPTERS
from core.errors import require


@dataclass
class LoRAConfig:
    name: str = "lora"
    rank: int = 8  # r, the rank of the update B·A
    alpha: float = 8.0  # the update is scaled by alpha / rank
    targets: list[str] = field(default_factory=list)  # layer names (features.fc1, head, ...); empty = every layer
    train_head: str = "auto"  # auto | true | false; auto: a new, trained head when the action count differs
    export: str = "none"  # none | dense | masked: write the merged plain networks to export/ at the end

    def validate(self) -> None:
        require(self.rank >= 1, "rank", self.rank, "must be >= 1")
        require(self.alpha > 0, "alpha", self.alpha, "must be > 0")
        check_head_and_export(self)


def lora_parameters(layer: nn.Module, rank: int) -> tuple[nn.Parameter, nn.Parameter]:
    """A (Kaiming-uniform, as LoRA's reference code) and B (zeros) for one layer."""
    if isinstance(layer, nn.Conv2d):
        a = torch.empty(rank, layer.in_channels // layer.groups, *layer.kernel_size)
        b = torch.zeros(layer.out_channels, rank, 1, 1)
    else:
        a, b = torch.empty(rank, layer.in_features), torch.zeros(layer.out_features, rank)
    nn.init.kaiming_uniform_(a, a=math.sqrt(5))
    device = layer.weight.device
    return nn.Parameter(a.to(device)), nn.Parameter(b.to(device))


def _lora_hook(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
    x = inputs[0]
    if isinstance(layer, nn.Conv2d):
        down = F.conv2d(x, layer.lora_A, None, layer.stride, layer.padding, layer.dilation, layer.groups)
        return output + layer.lora_scale * F.conv2d(down, layer.lora_B)
    return output + layer.lora_scale * F.linear(F.linear(x, layer.lora_A), layer.lora_B)


def add_lora(net: nn.Module, rank: int, alpha: float, targets: list[str], train_head: bool) -> nn.Module:
    """Freeze the network (``freeze``) and give each layer to adapt its A and B."""
    for layer in freeze(net, targets, train_head).values():
        layer.lora_A, layer.lora_B = lora_parameters(layer, rank)
        layer.lora_scale = alpha / rank
        layer.register_forward_hook(_lora_hook)
    return net


@ADAPTERS.register("lora", config=LoRAConfig)
def lora(cfg: LoRAConfig, train_head: bool):
    return lambda net: add_lora(net, cfg.rank, cfg.alpha, list(cfg.targets), train_head)
