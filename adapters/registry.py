"""The adapter table. An adapter registers a function ``make(cfg, train_head) -> transform`` with its config schema;
the transform gets each network an agent builds (``build_network(..., transform=)``), freezes what it should and adds
its own trainable tensors beside the backbone's, whose names it never changes."""

from __future__ import annotations

from dataclasses import dataclass

from core.registry import Registry, Spec


@dataclass(frozen=True)
class AdapterSpec(Spec):
    pass


ADAPTERS: Registry[AdapterSpec] = Registry("adapter", AdapterSpec, "adapters")
