"""The agent and network tables. An agent registers with the actions it takes (and, if it is particular, the
networks it can use); a network builder with the observations it reads and how it is initialised."""

from __future__ import annotations

from dataclasses import dataclass

from core.registry import Registry, Spec
from core.spaces import ActionKind, ObservationKind


@dataclass(frozen=True)
class AgentSpec(Spec):
    actions: ActionKind | tuple[ActionKind, ...] = ActionKind.discrete  # the kinds it takes (PPO: both)
    networks: tuple[str, ...] | None = None  # the networks it can use; None: any that fits the env
    on_policy: bool = False  # learns from its own rollouts (training/on_policy.py), not from a replay buffer

    def takes(self, kind: ActionKind) -> bool:
        return kind in self.actions if isinstance(self.actions, tuple) else kind == self.actions

    def action_kinds(self) -> tuple[ActionKind, ...]:
        return self.actions if isinstance(self.actions, tuple) else (self.actions,)


@dataclass(frozen=True)
class NetworkSpec(Spec):
    observations: tuple[ObservationKind, ...] = ()
    xavier_init: bool = False  # Dopamine's init (Xavier-uniform weights, zero biases); else PyTorch's default
    uint8_max: float = 255.0  # uint8 inputs are divided by this (1 for MinAtar's 0/1 grids)
    plain_features: bool = True  # `features` chains conv/linear layers and ReLUs: ReDo can map its units


AGENTS: Registry[AgentSpec] = Registry("agent", AgentSpec, "agents")
NETWORKS: Registry[NetworkSpec] = Registry("network", NetworkSpec, "agents")
