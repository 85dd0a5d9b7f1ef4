"""VeRA (Kopiczko et al. 2024): ΔW = Λ_b·B·Λ_d·A with one frozen random pair A (r × d_in), B (d_out × r) shared by
every adapted layer, each layer training only its scaling vectors d (r, starts at ``d_initial``) and b (d_out,
starts at 0): Σ (r + d_out) parameters, about 10× fewer than LoRA at equal score in the paper.

The pair is drawn once for the largest shapes from ``projection_seed`` (Kaiming-uniform, as the paper) and each layer
takes its slice A[:, :d_in], B[:d_out, :]; the slices are buffers of the layer (``features.fc1.vera_A``), so a
checkpoint holds them too. A Conv2d is adapted through the same view as LoRA: A[:, :c_in·k_h·k_w] as a convolution
with the layer's kernel, stride and padding, B[:c_out] as a 1×1 convolution (``peft``'s VeRA takes Linear only). The
backbone keeps its names, as with LoRA.
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
class VeRAConfig:
    name: str = "vera"
    rank: int = 256  # r, the rank of the shared random A and B
    d_initial: float = 0.1  # the initial value of the trained scaling vector d
    projection_seed: int = 0  # the shared A, B are regenerated from it
    targets: list[str] = field(default_factory=list)  # layer names; empty = every layer
    train_head: str = "auto"  # auto | true | false
    export: str = "none"  # none | dense | masked: write the merged plain networks to export/ at the end

    def validate(self) -> None:
        require(self.rank >= 1, "rank", self.rank, "must be >= 1")
        require(self.d_initial > 0, "d_initial", self.d_initial, "must be > 0")
        check_head_and_export(self)


def fan_in(layer: nn.Module) -> int:
    return layer.weight[0].numel()


def _vera_hook(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
    x = inputs[0]
    if isinstance(layer, nn.Conv2d):
        down = F.conv2d(x, layer.vera_A, None, layer.stride, layer.padding, layer.dilation, layer.groups)
        up = F.conv2d(down * layer.vera_d.view(1, -1, 1, 1), layer.vera_B)
        return output + up * layer.vera_b.view(1, -1, 1, 1)
    return output + F.linear(F.linear(x, layer.vera_A) * layer.vera_d, layer.vera_B) * layer.vera_b


def add_vera(net: nn.Module, rank: int, d_initial: float, seed: int, targets: list[str], train_head: bool) -> nn.Module:
    layers = freeze(net, targets, train_head)
    if not layers:
        return net
    g = torch.Generator().manual_seed(seed)
    a = torch.empty(rank, max(fan_in(m) for m in layers.values()))
    b = torch.empty(max(m.weight.shape[0] for m in layers.values()), rank)
    nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=g)
    nn.init.kaiming_uniform_(b, a=math.sqrt(5), generator=g)
    for layer in layers.values():
        device, n_in, n_out = layer.weight.device, fan_in(layer), layer.weight.shape[0]
        a_l, b_l = a[:, :n_in].clone(), b[:n_out].clone()
        if isinstance(layer, nn.Conv2d):
            a_l, b_l = a_l.view(rank, *layer.weight.shape[1:]), b_l.view(n_out, rank, 1, 1)
        layer.register_buffer("vera_A", a_l.to(device))
        layer.register_buffer("vera_B", b_l.to(device))
        layer.vera_d = nn.Parameter(torch.full((rank,), d_initial, device=device))
        layer.vera_b = nn.Parameter(torch.zeros(n_out, device=device))
        layer.register_forward_hook(_vera_hook)
    return net


@ADAPTERS.register("vera", config=VeRAConfig)
def vera(cfg: VeRAConfig, train_head: bool):
    return lambda net: add_vera(net, cfg.rank, cfg.d_initial, cfg.projection_seed, list(cfg.targets), train_head)
