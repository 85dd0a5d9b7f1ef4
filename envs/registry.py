"""The env table. An env registers its factory with the observations it gives and the actions it takes; a suite
with both kinds of action (classic control) also says which kind a given config has."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.registry import Registry, Spec
from core.spaces import ActionKind, ObservationKind


@dataclass(frozen=True)
class EnvSpec(Spec):
    observations: ObservationKind = ObservationKind.vector
    actions: tuple[ActionKind, ...] = (ActionKind.discrete,)  # every kind its ids have
    actions_of: Callable[[Any], ActionKind] | None = None  # which one a config's id has, when there are several

    def action_kind(self, cfg: Any) -> ActionKind:
        return self.actions_of(cfg) if self.actions_of is not None else self.actions[0]


ENVS: Registry[EnvSpec] = Registry("env", EnvSpec, "envs")
