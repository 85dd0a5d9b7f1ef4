"""READ (Wang et al. 2023, "Recurrent adaptation of large transformers"): a small recurrent side network reads the
frozen backbone's hidden-layer outputs and corrects its final features; no gradient flows through the backbone.

Here the GRU (``hidden`` units) runs over the post-ReLU outputs of ``features`` in order (a conv layer's pooled per
channel over H×W), each through its own linear joiner; its final state is projected (zero-initialised, so the network
starts as the source) and added to the features before the head. The side network is ``read.*`` in the network's
``state_dict``; the backbone keeps its names and, frozen, builds no autograd graph, so after ``backward()`` every
backbone ``.grad`` is None.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from adapters.backbone import ADAPTABLE, check_head_and_export, freeze
from adapters.registry import ADAPTERS
from core.activations import NONLINEARITIES
from core.errors import require
from core.protocols import BuiltNetwork


@dataclass
class READConfig:
    name: str = "read"
    hidden: int = 64  # GRU units
    train_head: str = "auto"  # auto | true | false

    def validate(self) -> None:
        require(self.hidden >= 1, "hidden", self.hidden, "must be >= 1")
        check_head_and_export(self)


class SideNetwork(nn.Module):
    def __init__(self, widths: list[int], hidden: int):
        super().__init__()
        self.hidden = hidden
        self.joiners = nn.ModuleList(nn.Linear(w, hidden) for w in widths)
        self.gru = nn.GRUCell(hidden, hidden)
        self.proj = nn.Linear(hidden, widths[-1])
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, taps: list[torch.Tensor]) -> torch.Tensor:
        h = taps[0].new_zeros(taps[0].shape[0], self.hidden)
        for joiner, a in zip(self.joiners, taps, strict=True):
            h = self.gru(joiner(a), h)
        return self.proj(h)


def feature_relus(net: BuiltNetwork) -> list[tuple[nn.Module, int]]:
    """The ReLUs (or tanhs) inside ``features`` in order, each with its width: the output channels of the last conv or
    linear layer before it in module order (what it activates, residual blocks included)."""
    taps, width = [], None
    for m in net.features.modules():
        if isinstance(m, ADAPTABLE):
            width = m.weight.shape[0]
        elif isinstance(m, NONLINEARITIES) and width is not None:
            taps.append((m, width))
    return taps


def _tap(relu: nn.Module, inputs, out: torch.Tensor) -> None:
    relu.__dict__["_read_out"] = out.mean(dim=(2, 3)) if out.dim() == 4 else out.flatten(1)


def _correct_features(head: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    side, relus = head.__dict__["_read_ref"]
    return (inputs[0] + side([r.__dict__.pop("_read_out") for r in relus]),)


def add_read(net: BuiltNetwork, hidden: int, train_head: bool) -> nn.Module:
    """Freeze the network and add the side network (plain attributes on the head and ReLUs point at each other, so a
    ``deepcopy`` of the network, a DQN target, gets its own side network and taps)."""
    freeze(net, [], train_head)
    taps = feature_relus(net)
    net.read = SideNetwork([w for _, w in taps], hidden).to(next(net.parameters()).device)
    for relu, _ in taps:
        relu.register_forward_hook(_tap)
    net.head.__dict__["_read_ref"] = (net.read, [r for r, _ in taps])
    net.head.register_forward_pre_hook(_correct_features)
    return net


@ADAPTERS.register("read", config=READConfig)
def read(cfg: READConfig, train_head: bool):
    return lambda net: add_read(net, cfg.hidden, train_head)
