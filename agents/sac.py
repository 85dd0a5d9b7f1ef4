"""Soft Actor-Critic (Haarnoja et al. 2018, "SAC: algorithms and applications") with automatic entropy tuning.

A squashed-Gaussian actor, twin critics with Polyak-averaged targets, and a learned temperature α. Defaults follow
Dopamine's JAX SAC (``dopamine/jax/agents/sac/sac_agent.py`` and ``configs/sac.gin``: Adam 3e-4 for all three, batch
256, γ 0.99, τ 0.005, 10k warm-up steps, one update per step) with Haarnoja et al.'s target entropy −|A|
(Dopamine's code default is −|A|/2) and unscaled rewards (Dopamine's sac.gin scales them by 0.1); both are keys, and
``conf/tuned/sac_mujoco.yaml`` sets Dopamine's values. Actions live in [-1, 1]; the env factory rescales continuous
action spaces.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.networks import Network, build_network, trainable
from agents.optimizer import adam
from agents.registry import AGENTS
from agents.replay import check_learning_schedule
from core.errors import require
from core.protocols import Batch, UpdateResult
from core.spaces import ActionKind

LOG_2 = math.log(2.0)


@dataclass
class SACConfig:
    name: str = "sac"
    learning_starts: int = 10_000  # agent steps of uniform random actions before the first update
    replay_capacity: int = 1_000_000  # transitions
    batch_size: int = 256  # transitions per gradient update
    update_period: int = 1  # one gradient update (critics, actor, α) every this many agent steps
    actor_lr: float = 3e-4  # the actor's Adam learning rate
    critic_lr: float = 3e-4  # the critics' Adam learning rate
    alpha_lr: float = 3e-4  # the temperature α's Adam learning rate
    adam_eps: float = 1e-8  # Adam's ε (all three optimizers)
    gamma: float = 0.99  # discount factor
    n_step: int = 1  # only 1 (the soft target's entropy term is per step)
    tau: float = 0.005  # Polyak factor of the target critics, once per update
    init_alpha: float = 1.0  # the temperature α at the start
    autotune: bool = True  # learn α; false keeps it at init_alpha
    target_entropy: float | None = None  # null = target_entropy_per_action_dim × |A|
    # the target entropy per action dimension when target_entropy is null: −1 (Haarnoja et al., CleanRL), −0.5
    # (Dopamine's SACAgent default)
    target_entropy_per_action_dim: float = -1.0
    reward_scale: float = 1.0  # the critics regress on reward_scale · r + γ(...) (Dopamine's reward_scale_factor)
    log_std_min: float = -5.0  # the actor's log σ is squashed into [min, max] with a tanh (as CleanRL)
    log_std_max: float = 2.0  # upper bound of the actor's log σ
    weight_decay: float = 0.0  # decoupled (AdamW-style), on the actor's and critics' optimizers; not on α

    def validate(self) -> None:
        check_learning_schedule(self)
        for key in ("actor_lr", "critic_lr", "alpha_lr", "adam_eps", "init_alpha"):
            require(getattr(self, key) > 0, key, getattr(self, key), "must be > 0")
        require(0 <= self.gamma <= 1, "gamma", self.gamma, "must be in [0, 1]")
        require(self.n_step == 1, "n_step", self.n_step,
                "must be 1: an n-step soft target would need the entropy terms of the steps in between")
        require(0 < self.tau <= 1, "tau", self.tau, "must be in (0, 1]")
        require(self.reward_scale > 0, "reward_scale", self.reward_scale, "must be > 0 (1 = the raw reward)")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0 (0 = none)")
        require(self.log_std_min < self.log_std_max, "log_std_min", self.log_std_min,
                f"must be below agent.log_std_max ({self.log_std_max})")


def squashed_gaussian_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log π(a) of a = tanh(u), u ~ N(mean, σ²), summed over action dims: the Gaussian log-density of u minus
    log(1 − tanh(u)²) = 2 (log 2 − u − softplus(−2u)), the stable form (no log(1 − a² + ε) fudge)."""
    gaussian = -0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    log_det = 2.0 * (LOG_2 - u - F.softplus(-2.0 * u))
    return (gaussian - log_det).sum(dim=-1)


class Actor(Network):
    """Outputs (B, 2·|A|): the Gaussian's mean and unsquashed log σ, which ``dist`` splits and bounds."""

    log_std_min, log_std_max = -5.0, 2.0

    def dist(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self(obs).chunk(2, dim=-1)
        lo, hi = self.log_std_min, self.log_std_max
        return mean, lo + 0.5 * (hi - lo) * (torch.tanh(log_std) + 1.0)

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action in (-1, 1) and its log-probability."""
        mean, log_std = self.dist(obs)
        u = mean + log_std.exp() * torch.randn_like(mean)
        return torch.tanh(u), squashed_gaussian_log_prob(u, mean, log_std)


@AGENTS.register("sac", config=SACConfig, actions=ActionKind.continuous, networks=("mlp",))
class SAC:
    def __init__(self, cfg: SACConfig, network_cfg, obs_shape: tuple[int, ...], action_dim: int,
                 rng: np.random.Generator, device: torch.device, transform=None):
        """Critics read the flat state and action, so the network is an MLP. ``transform`` is applied to the actor
        and each critic as they are built (an adapter); the targets copy the critics."""
        self.cfg, self.action_dim, self.rng, self.device = cfg, action_dim, rng, device
        obs_dim = math.prod(obs_shape)
        self.actor = build_network(network_cfg, obs_shape, 2 * action_dim, cls=Actor, transform=transform).to(device)
        self.actor.log_std_min, self.actor.log_std_max = cfg.log_std_min, cfg.log_std_max
        self.critic1 = build_network(network_cfg, (obs_dim + action_dim,), 1, transform=transform).to(device)
        self.critic2 = build_network(network_cfg, (obs_dim + action_dim,), 1, transform=transform).to(device)
        self.target1 = copy.deepcopy(self.critic1).requires_grad_(False)
        self.target2 = copy.deepcopy(self.critic2).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), device=device, requires_grad=cfg.autotune)
        self.target_entropy = cfg.target_entropy_per_action_dim * action_dim if cfg.target_entropy is None \
            else cfg.target_entropy
        self.actor_opt = adam(trainable(self.actor), cfg.actor_lr, cfg.adam_eps, cfg.weight_decay, device)
        self._critic_params = trainable(self.critic1, self.critic2)
        self.critic_opt = adam(self._critic_params, cfg.critic_lr, cfg.adam_eps, cfg.weight_decay, device)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, eps=cfg.adam_eps)
        self._online = [*self.critic1.parameters(), *self.critic2.parameters()]
        self._targets = [*self.target1.parameters(), *self.target2.parameters()]
        self.updates = 0

    def networks(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic1": self.critic1, "critic2": self.critic2}

    def target_networks(self) -> dict[str, nn.Module]:
        """Polyak averages of the critics, by the name of the network they follow."""
        return {"critic1": self.target1, "critic2": self.target2}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.actor_opt, "critic": self.critic_opt, "alpha": self.alpha_opt}

    def network_inputs(self, obs: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """What each network takes, for replay states and the actions taken there (health probes)."""
        sa = torch.cat([obs.flatten(1), actions], dim=1)
        return {"actor": obs, "critic1": sa, "critic2": sa}

    def charts(self, env_step: int) -> dict[str, float]:
        return {}

    def act(self, obs: np.ndarray, env_step: int, eval_mode: bool = False) -> np.ndarray:
        """Uniform random actions until ``learning_starts``, then a policy sample; the mean's tanh in evaluation."""
        if not eval_mode and env_step < self.cfg.learning_starts:
            return self.rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)
        with torch.inference_mode():
            x = torch.from_numpy(np.asarray(obs, dtype=np.float32)).to(self.device).unsqueeze(0)
            action = torch.tanh(self.actor.dist(x)[0]) if eval_mode else self.actor.sample(x)[0]
        return action.squeeze(0).cpu().numpy()

    def q(self, critic: nn.Module, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return critic(torch.cat([obs.flatten(1), actions], dim=1)).squeeze(1)

    def update(self, batch: Batch) -> UpdateResult:
        """One gradient step, as Dopamine's JAX SAC: the critic, actor and temperature losses are all computed from
        the same parameters, then each part takes its Adam step, then the target critics take their Polyak step
        toward the stepped critics (so with pruning they average masked weights: the critics' optimizer hooks
        re-apply the masks inside its step). The actor's loss goes through the critics with their weights frozen.
        Returns detached tensors tagged as CleanRL's ``sac_continuous_action.py``."""
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            next_a, next_logp = self.actor.sample(batch.next_obs)
            next_q = torch.min(self.q(self.target1, batch.next_obs, next_a), self.q(self.target2, batch.next_obs,
                                                                                     next_a))
            target = self.cfg.reward_scale * batch.returns + batch.discounts * (next_q - alpha * next_logp)
        q1, q2 = self.q(self.critic1, batch.obs, batch.actions), self.q(self.critic2, batch.obs, batch.actions)
        qf1_loss, qf2_loss = F.mse_loss(q1, target), F.mse_loss(q2, target)
        a, logp = self.actor.sample(batch.obs)
        self._critics_grad(False)
        q_pi = torch.min(self.q(self.critic1, batch.obs, a), self.q(self.critic2, batch.obs, a))
        self._critics_grad(True)
        actor_loss = (alpha * logp - q_pi).mean()
        self.critic_opt.zero_grad(set_to_none=True)
        self.actor_opt.zero_grad(set_to_none=True)
        (qf1_loss + qf2_loss + actor_loss).backward()
        self.critic_opt.step()
        self.actor_opt.step()
        losses = {"losses/qf1_loss": qf1_loss.detach(), "losses/qf2_loss": qf2_loss.detach(),
                  "losses/qf_loss": (qf1_loss.detach() + qf2_loss.detach()) / 2.0,
                  "losses/actor_loss": actor_loss.detach()}
        metrics = {"losses/qf1_values": q1.detach().mean(), "losses/qf2_values": q2.detach().mean(),
                   "losses/alpha": alpha, "losses/entropy": -logp.detach().mean()}
        if self.cfg.autotune:
            alpha_loss = -(self.log_alpha.exp() * (logp.detach() + self.target_entropy)).mean()
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
            losses["losses/alpha_loss"] = alpha_loss.detach()
        with torch.no_grad():
            torch._foreach_lerp_(self._targets, self._online, self.cfg.tau)
        self.updates += 1
        return UpdateResult(losses=losses, metrics=metrics)

    def _critics_grad(self, on: bool) -> None:
        """Freeze (and unfreeze) the critics' trainable weights; what an adapter froze stays frozen."""
        for p in self._critic_params:
            p.requires_grad_(on)

    def rng_state(self) -> dict:
        return {"numpy": self.rng.bit_generator.state}

    def set_rng_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["numpy"]

    def state_dict(self) -> dict:
        return {"actor": self.actor.state_dict(), "critic1": self.critic1.state_dict(),
                "critic2": self.critic2.state_dict(), "target1": self.target1.state_dict(),
                "target2": self.target2.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "alpha_opt": self.alpha_opt.state_dict(), "updates": self.updates,
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        for key in ("actor", "critic1", "critic2", "target1", "target2"):
            getattr(self, key).load_state_dict(state[key])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        for key in ("actor_opt", "critic_opt", "alpha_opt"):
            getattr(self, key).load_state_dict(state[key])
        self.updates, self.rng.bit_generator.state = state["updates"], state["rng"]
