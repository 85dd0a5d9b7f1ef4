"""DQN (Mnih et al. 2015) as in Dopamine's JAX agent, with optional double DQN (van Hasselt et al. 2016).

The loss and target math are module-level functions; the agent holds the networks, optimizer and RNG.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from enum import Enum

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import MISSING
from torch import nn

from agents.cql import cql_penalty
from agents.exploration import linear_epsilon
from agents.networks import build_network, trainable
from agents.optimizer import OptimizerName, value_optimizer
from agents.registry import AGENTS
from agents.replay import check_learning_schedule
from core.errors import require
from core.protocols import Batch, UpdateResult
from core.spaces import ActionKind


class Loss(str, Enum):
    mse = "mse"
    huber = "huber"


@dataclass
class ValueAgentConfig:
    """What DQN and Rainbow share. Defaults are Dopamine's DQN (``dopamine/jax/agents/dqn/configs/dqn.gin``); every
    period is in agent steps (one agent step = one env step = 4 Atari frames)."""

    name: str = MISSING
    learning_starts: int = 20_000  # agent steps of pure exploration before the first update
    replay_capacity: int = 1_000_000  # transitions
    batch_size: int = 32  # transitions per gradient update
    update_period: int = 4  # one gradient update every this many agent steps
    target_update_period: int = 8_000  # hard target copy every this many agent steps
    lr: float = 6.25e-5  # the optimizer's learning rate
    # adam, or rmsprop: torch's RMSprop as the MinAtar paper's DQN builds it
    optimizer: OptimizerName = OptimizerName.adam
    adam_eps: float = 1.5e-4  # Adam's ε
    rmsprop_alpha: float = 0.95  # optimizer=rmsprop: torch's alpha, the squared-gradient average's decay
    rmsprop_eps: float = 0.01  # outside the square root, as torch.optim.RMSprop
    rmsprop_centered: bool = True  # optimizer=rmsprop: centred (the gradient's mean subtracted), as the MinAtar paper
    gamma: float = 0.99  # discount factor
    n_step: int = 1  # n-step returns (Dopamine's update_horizon), folded into replay at add time
    double: bool = False  # double DQN: the online network picks the next action, the target network values it
    max_grad_norm: float | None = None  # no clipping, as Dopamine
    weight_decay: float = 0.0  # decoupled (AdamW-style): w ← w − lr·λ·w each step; the paper's comparison uses 1e-5
    epsilon_start: float = 1.0  # ε of ε-greedy while the replay fills and at the start of the decay
    epsilon_end: float = 0.01  # ε after epsilon_decay_steps
    epsilon_decay_steps: int = 250_000  # agent steps after learning_starts
    eval_epsilon: float = 0.001  # ε of evaluation episodes

    def validate(self) -> None:
        check_learning_schedule(self)
        require(self.target_update_period >= self.update_period and
                self.target_update_period % self.update_period == 0, "target_update_period",
                self.target_update_period, f"must be a positive multiple of agent.update_period ({self.update_period})")
        require(self.lr > 0, "lr", self.lr, "must be > 0")
        require(self.adam_eps > 0, "adam_eps", self.adam_eps, "must be > 0")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0 (0 = none)")
        require(self.weight_decay == 0 or self.optimizer == OptimizerName.adam, "weight_decay", self.weight_decay,
                "decoupled weight decay is AdamW's: with optimizer=rmsprop keep it 0")
        require(0 <= self.rmsprop_alpha < 1, "rmsprop_alpha", self.rmsprop_alpha, "must be in [0, 1)")
        require(self.rmsprop_eps > 0, "rmsprop_eps", self.rmsprop_eps, "must be > 0")
        require(0 <= self.gamma <= 1, "gamma", self.gamma, "must be in [0, 1]")
        require(1 <= self.n_step <= 255, "n_step", self.n_step, "must be in [1, 255]")
        require(self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm,
                "must be > 0 or null")
        for key in ("epsilon_start", "epsilon_end", "eval_epsilon"):
            require(0 <= getattr(self, key) <= 1, key, getattr(self, key), "must be in [0, 1]")
        require(self.epsilon_decay_steps >= 0, "epsilon_decay_steps", self.epsilon_decay_steps, "must be >= 0")


@dataclass
class DQNConfig(ValueAgentConfig):
    name: str = "dqn"
    loss: Loss = Loss.mse  # mse (Dopamine JAX) or huber (Nature DQN, δ = 1)


def td_target(returns: torch.Tensor, discounts: torch.Tensor, next_q_target: torch.Tensor,
              next_q_online: torch.Tensor | None = None) -> torch.Tensor:
    """R + γ^k Q_target(s', a*), with a* = argmax Q_target (DQN) or argmax Q_online (double DQN); replay gives the
    k-step return R and the discount γ^k, 0 where the episode terminated (for n = 1: r + γ (1 − terminated) ...)."""
    greedy = (next_q_online if next_q_online is not None else next_q_target).argmax(dim=1, keepdim=True)
    next_v = next_q_target.gather(1, greedy).squeeze(1)
    return returns + discounts * next_v


def td_loss(q_taken: torch.Tensor, target: torch.Tensor, kind: Loss) -> torch.Tensor:
    """Mean over the batch of (target − Q)² (Dopamine JAX's ``mse_loss``) or Huber with δ = 1 (Nature DQN)."""
    if kind == Loss.huber:
        return F.smooth_l1_loss(q_taken, target)
    return F.mse_loss(q_taken, target)


@AGENTS.register("dqn", config=DQNConfig, actions=ActionKind.discrete)
class DQN:
    def __init__(self, cfg: DQNConfig, network_cfg, obs_shape: tuple[int, ...], n_actions: int,
                 rng: np.random.Generator, device: torch.device, transform=None):
        """``transform`` is applied to the online network as it is built (an adapter); the target copies it."""
        self.cfg, self.n_actions, self.rng, self.device = cfg, n_actions, rng, device
        self.online = self.build_network(network_cfg, obs_shape, n_actions, transform).to(device)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.optimizer = value_optimizer(trainable(self.online), cfg, device)
        self.updates = 0
        self._target_every_updates = cfg.target_update_period // cfg.update_period
        self.cql_alpha = 0.0  # offline runs: the weight of CQL's term (``offline.cql_alpha``, set by suite.py)

    def build_network(self, network_cfg, obs_shape: tuple[int, ...], n_actions: int, transform=None) -> nn.Module:
        return build_network(network_cfg, obs_shape, n_actions, transform=transform)

    def networks(self) -> dict[str, nn.Module]:
        """What may be pruned and measured. The target is a copy of ``online`` and inherits its zeros."""
        return {"online": self.online}

    def target_networks(self) -> dict[str, nn.Module]:
        """The hard-copied target, by the name of the network it copies."""
        return {"online": self.target}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"online": self.optimizer}

    def network_inputs(self, obs: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """What each network takes, for replay states and the actions taken there (health probes)."""
        return {"online": obs}

    def charts(self, env_step: int) -> dict[str, float]:
        return {"charts/epsilon": self.epsilon(env_step)}

    def epsilon(self, env_step: int) -> float:
        c = self.cfg
        return linear_epsilon(env_step, c.learning_starts, c.epsilon_decay_steps, c.epsilon_start, c.epsilon_end)

    def act(self, obs: np.ndarray, env_step: int, eval_mode: bool = False) -> int:
        eps = self.cfg.eval_epsilon if eval_mode else self.epsilon(env_step)
        if self.rng.random() < eps:
            return int(self.rng.integers(self.n_actions))
        return self.greedy(obs, eval_mode)

    def greedy(self, obs: np.ndarray, eval_mode: bool) -> int:
        with torch.inference_mode():
            q = self.online.q_values(torch.from_numpy(np.asarray(obs)).to(self.device).unsqueeze(0))
        return int(q.argmax(dim=1).item())

    def update(self, batch: Batch) -> UpdateResult:
        """One optimizer step on a batch, then the target copy when due. Returns detached tensors so the hot loop never
        blocks on ``.item()``; the logger converts them when it writes."""
        with torch.no_grad():
            next_q_target = self.target(batch.next_obs)
            next_q_online = self.online(batch.next_obs) if self.cfg.double else None
            target = td_target(batch.returns, batch.discounts, next_q_target, next_q_online)
        q_values = self.online(batch.obs)
        q_taken = q_values.gather(1, batch.actions.unsqueeze(1)).squeeze(1)
        loss = td_loss(q_taken, target, self.cfg.loss)
        losses = {"losses/td_loss": loss.detach()}
        if self.cql_alpha:
            penalty = cql_penalty(q_values, batch.actions)
            loss = loss + self.cql_alpha * penalty
            losses["losses/cql_loss"] = penalty.detach()
        self.optimize(loss)
        return UpdateResult(losses=losses, metrics={"losses/q_values": q_taken.detach().mean()})

    def optimize(self, loss: torch.Tensor) -> None:
        """One optimizer step on ``loss`` (with optional gradient clipping); counts the update and, every
        ``target_update_period`` agent steps, copies the online network into the target (as Dopamine: after the
        step, so the copy holds whatever the optimizer's step hooks left, e.g. re-applied pruning masks)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.max_grad_norm is not None:
            nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]],
                                     self.cfg.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        if self.updates % self._target_every_updates == 0:
            self.sync_target()

    def sync_target(self) -> None:
        self.target.load_state_dict(self.online.state_dict())

    def rng_state(self) -> dict:
        return {"numpy": self.rng.bit_generator.state}

    def set_rng_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["numpy"]

    def state_dict(self) -> dict:
        return {"online": self.online.state_dict(), "target": self.target.state_dict(),
                "optimizer": self.optimizer.state_dict(), "updates": self.updates,
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = state["updates"]
        self.rng.bit_generator.state = state["rng"]
