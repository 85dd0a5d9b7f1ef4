"""What every adapter does to the network it adapts: freeze the backbone (the head too unless it is trained) and
choose the conv and linear layers to adapt."""

from __future__ import annotations

from torch import nn

from core.errors import require

ADAPTABLE = (nn.Linear, nn.Conv2d)


def head_mode(value) -> str:
    """``train_head`` as written (Hydra reads ``true``/``false`` as booleans): auto, true or false."""
    return str(value).lower()


def check_head_and_export(cfg) -> None:
    """The keys adapters share: ``train_head``, and ``export`` where the adapter folds into the weights."""
    require(head_mode(cfg.train_head) in ("auto", "true", "false"), "train_head", cfg.train_head,
            "allowed: auto, true, false")
    export = getattr(cfg, "export", "none")
    require(export in ("none", "dense", "masked"), "export", export, "allowed: none, dense, masked")


def adaptable_layers(net: nn.Module) -> dict[str, nn.Module]:
    """Every conv and linear layer of the network by name (a noisy head's layers included)."""
    return {name: m for name, m in net.named_modules() if isinstance(m, ADAPTABLE)}


def freeze(net: nn.Module, targets: list[str], train_head: bool) -> dict[str, nn.Module]:
    """Freeze every tensor of ``net`` (the head stays trainable with ``train_head``) and return the layers to adapt:
    ``targets`` (every conv and linear layer when empty), the head's left out when it is trained. Raises ValueError
    for a target that is not a conv or linear layer of the network."""
    layers = adaptable_layers(net)
    unknown = [t for t in targets if t not in layers]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} (layers: {', '.join(layers)})")
    for p in net.parameters():
        p.requires_grad_(False)
    head = {id(m) for m in net.head.modules()} if train_head else set()
    if train_head:
        for p in net.head.parameters():
            p.requires_grad_(True)
    return {n: m for n, m in layers.items() if (not targets or n in targets) and id(m) not in head}
