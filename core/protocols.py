"""The contracts between the training loop and its parts: what an agent, a replay buffer and a resumable env
provide, what one gradient update reports, and what a callback may read from the loop. ``training/`` is written
against these alone, so it never imports a concrete agent, env or pruning method.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn


class Batch(NamedTuple):
    obs: torch.Tensor
    actions: torch.Tensor
    returns: torch.Tensor  # Σ_{t<k} γ^t r_t over the transition's k-step horizon (k = n unless the episode ended)
    next_obs: torch.Tensor  # the observation k steps later
    discounts: torch.Tensor  # γ^k, or 0 where the episode terminated within the horizon (no bootstrapping)
    weights: torch.Tensor  # importance-sampling weights (ones for uniform replay)
    indices: np.ndarray  # slots, to write priorities back


@dataclass
class UpdateResult:
    """What one gradient update reports. Values are detached 0-d tensors (the loop never blocks on ``.item()``)."""

    losses: dict[str, torch.Tensor]  # logged, and checked for NaN or inf after every update (the run stops)
    metrics: dict[str, torch.Tensor | float] = field(default_factory=dict)  # logged only
    priorities: torch.Tensor | None = None  # one per transition of the batch, for a prioritized replay

    def logged(self) -> dict[str, torch.Tensor | float]:
        return {**self.losses, **self.metrics}


@runtime_checkable
class BuiltNetwork(Protocol):
    """What every network an agent lists in ``networks()`` declares, and what pruning, the health probe, ReDo, the
    reset and the adapters read (``agents/networks.py``'s ``Network`` is the one implementation):

    - ``features``: everything up to the penultimate activation, each nonlinearity its own named ``nn.ReLU``;
    - ``head``: the output layer(s), fed the penultimate activation;
    - ``builder_weights``: the names of the weight tensors the builder made, the default prunable set, which nothing
      added later (an adapter's tensors) joins;
    - ``fresh_parameters(layer, generator)``: new values for a conv or linear layer's own parameters, drawn as the
      builder drew them, from ``generator`` alone (re-initialisation without touching torch's global stream)."""

    features: nn.Module
    head: nn.Module
    builder_weights: frozenset[str]

    def fresh_parameters(self, layer: nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]: ...


@runtime_checkable
class Agent(Protocol):
    """An agent acts, learns from batches and lists its parts; it knows nothing about pruning or adapters.

    ``optimizers()`` is the seam for methods that act around an optimizer step: PyTorch's
    ``Optimizer.register_step_pre_hook`` (dense gradients are in ``p.grad``) and ``register_step_post_hook``
    (re-apply masks, zero Adam moments in ``optimizer.state[p]``) on these, installed in ``on_train_start``. Inside a
    hook, ``trainer.updates`` is the index of the update in progress. Each ``update`` steps each optimizer at most
    once, and anything the agent derives from the stepped weights (a target copy, a Polyak average) comes after."""

    def act(self, obs: np.ndarray, env_step: int, eval_mode: bool = False) -> Any: ...

    def update(self, batch: Batch) -> UpdateResult: ...

    def networks(self) -> dict[str, nn.Module]:
        """The networks that may be pruned and measured, by name; each is a ``BuiltNetwork``."""
        ...

    def target_networks(self) -> dict[str, nn.Module]:
        """Target copies, by the name of the network each follows."""
        ...

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimizer, by name (``online``; SAC: ``actor``, ``critic``, ``alpha``)."""
        ...

    def network_inputs(self, obs: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """What each network takes for replay states and the actions taken there (the health probe's inputs)."""
        ...

    def charts(self, env_step: int) -> dict[str, float]:
        """Schedule values to log (ε)."""
        ...

    def rng_state(self) -> dict[str, Any]:
        """The agent's own random state (not torch's global generator, which the loop keeps)."""
        ...

    def set_rng_state(self, state: dict[str, Any]) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class OnPolicyAgent(Agent, Protocol):
    """An agent that learns from its own rollouts (PPO), trained by ``training/on_policy.py``: each iteration the
    loop steps ``num_envs`` environments ``num_steps`` times, handing every step over (``collect`` the actions,
    ``record`` the outcome), then draws the agent's gradient updates on that rollout from ``learn`` one at a time,
    counting each as it is taken. ``rollout`` has the rollout's states for the probes (``sample_states``)."""

    num_envs: int
    num_steps: int
    rollout: Any

    def updates_per_iteration(self) -> int:
        """Gradient updates per rollout when nothing stops them early: what the pruning schedule plans with."""
        ...

    def start(self, obs: np.ndarray) -> None:
        """The envs' first observations, at the run's start (not on resume)."""
        ...

    def collect(self, obs: np.ndarray) -> np.ndarray:
        """The actions for the envs' observations (num_envs, ...); the agent stores what it learns from."""
        ...

    def record(self, rewards: np.ndarray, terminations: np.ndarray, truncations: np.ndarray, next_obs: np.ndarray,
               final_obs: dict[int, np.ndarray]) -> None:
        """One step's outcome; ``next_obs`` holds the reset observation of an env whose episode ended, and
        ``final_obs`` that episode's last one, by env."""
        ...

    def learn(self, obs: np.ndarray, iteration: int, num_iterations: int) -> Iterator[UpdateResult]:
        """The gradient updates on the full rollout, each yielded after its optimizer step; ``iteration`` counts
        from 1 and ``obs`` is the observation after the rollout's last step."""
        ...


class Replay(Protocol):
    def __len__(self) -> int: ...

    def add(self, obs: np.ndarray, action: Any, reward: float, terminated: bool, episode_end: bool,
            next_obs: np.ndarray) -> None: ...

    def sample(self, batch_size: int) -> Batch: ...

    def update_priorities(self, indices: np.ndarray, priorities: torch.Tensor) -> None: ...

    def sample_states(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Observations and the actions taken there, drawn with ``rng`` so probes leave the learner's draws alone."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def arrays(self) -> dict[str, np.ndarray]: ...

    def load_state_dict(self, state: dict[str, Any], arrays: dict[str, np.ndarray] | None) -> None: ...


class ResumableEnv(Protocol):
    """A Gymnasium env that a checkpoint can put back where it was, without pickling it."""

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]: ...

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]: ...

    def state_dict(self) -> dict[str, Any]:
        """What ``resume`` needs to rebuild the current episode."""
        ...

    def resume(self, state: dict[str, Any], init_seed: int, expected_obs: np.ndarray) -> np.ndarray: ...

    def rng_state(self) -> dict[str, Any]:
        """The env's random state; taken between episodes it fixes everything the next episodes do."""
        ...

    def set_rng_state(self, state: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class MetricsLogger(Protocol):
    def log(self, metrics: dict[str, float | torch.Tensor], step: int) -> None: ...


class TrainerView(Protocol):
    """What a callback may read from the loop. ``env_step`` and ``updates`` are the only clocks."""

    agent: Agent
    replay: Replay
    logger: MetricsLogger
    env_step: int
    updates: int  # updates done; inside an optimizer-step hook, the index of the update in progress
    total_updates: int  # the run's gradient updates, known before the first
    resumed: bool
