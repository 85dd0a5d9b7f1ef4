"""The pruning-method table. A method is a ``PruningMethod`` (a loop callback) built as
``cls(cfg.pruning, sparsity, log_every_updates=...)``; it registers with its config schema and, if it only suits
some agents, their names."""

from __future__ import annotations

from dataclasses import dataclass

from core.registry import Registry, Spec


@dataclass(frozen=True)
class MethodSpec(Spec):
    agents: tuple[str, ...] | None = None  # None: every agent
    sparse_from_start: bool = False  # trains a sparse network from step 0, so `sparsity` must be > 0


METHODS: Registry[MethodSpec] = Registry("pruning", MethodSpec, "pruning")
