"""IQN (Dabney et al. 2018) as Dopamine's JAX ``implicit_quantile`` agent, on any network builder.

The loss is a module-level function; the agent is DQN's (schedule, optimizer, target copies, uniform replay) with a
quantile network and the quantile Huber loss. Fractions τ are drawn from torch's generator (which checkpoints carry),
fresh for each of the three forwards of an update and for every action, and each state draws its own, as Dopamine's
JAX agent (one key per state since April 2022) and its TF agent do. Dopamine's JAX train step takes no importance
weights and writes no priorities, so the replay is uniform.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from agents.dqn import DQN, ValueAgentConfig
from agents.networks import build_network
from agents.quantile import QuantileNetwork, variance_scaling_uniform, with_quantile_embedding
from agents.registry import AGENTS
from core.errors import require
from core.protocols import Batch, UpdateResult
from core.spaces import ActionKind


@dataclass
class IQNConfig(ValueAgentConfig):
    """Defaults are Dopamine's (``dopamine/jax/agents/implicit_quantile/configs/implicit_quantile.gin``): 3-step
    returns, Adam 5e-5 with ε 3.125e-4, N = N' = 64, K = 32, a 64-feature cosine embedding, κ = 1; the schedule is
    DQN's."""

    name: str = "iqn"
    n_step: int = 3
    lr: float = 5e-5
    adam_eps: float = 3.125e-4
    kappa: float = 1.0  # κ of the quantile Huber loss
    num_tau_samples: int = 64  # N: fractions τ for the online quantiles of the loss
    num_tau_prime_samples: int = 64  # N': fractions τ' for the target quantiles
    num_quantile_samples: int = 32  # K: fractions for the action values that pick actions (acting, next action)
    quantile_embedding_dim: int = 64  # cosine features of each τ

    def validate(self) -> None:
        super().validate()
        require(self.kappa > 0, "kappa", self.kappa, "must be > 0 (the loss divides by it)")
        for key in ("num_tau_samples", "num_tau_prime_samples", "num_quantile_samples", "quantile_embedding_dim"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "must be >= 1")


def quantile_huber_loss(target: torch.Tensor, chosen: torch.Tensor, taus: torch.Tensor,
                        kappa: float) -> torch.Tensor:
    """Per transition (B,): with u_ji = T_j − Z_i (target j of N', online quantile i of N, fraction τ_i),
    ρ = |τ_i − 1{u_ji < 0}| · Huber_κ(u_ji) / κ, summed over i and averaged over j (Dopamine's
    ``quantile_huber_loss``: sum over the online axis, mean over the target axis). Shapes: target (B, N'),
    chosen and taus (B, N)."""
    u = target[:, :, None] - chosen[:, None, :]
    abs_u = u.abs()
    huber = torch.where(abs_u <= kappa, 0.5 * u.square(), kappa * (abs_u - 0.5 * kappa))
    weight = (taus[:, None, :] - (u.detach() < 0).to(u.dtype)).abs()
    return (weight * huber / kappa).sum(dim=2).mean(dim=1)


@AGENTS.register("iqn", config=IQNConfig, actions=ActionKind.discrete)
class IQN(DQN):
    def build_network(self, network_cfg, obs_shape: tuple[int, ...], n_actions: int, transform=None) -> nn.Module:
        return build_network(network_cfg, obs_shape, n_actions, transform=transform, cls=QuantileNetwork,
                             edit=with_quantile_embedding(self.cfg.quantile_embedding_dim),
                             weight_init=variance_scaling_uniform)

    def taus(self, batch: int, n: int) -> torch.Tensor:
        """n fractions τ ~ U[0, 1) for each state: (batch, n)."""
        return torch.rand(batch, n, device=self.device)

    def greedy(self, obs: np.ndarray, eval_mode: bool) -> int:
        x = torch.from_numpy(np.asarray(obs)).to(self.device).unsqueeze(0)
        with torch.inference_mode():
            q = self.online.q_values(x, self.taus(1, self.cfg.num_quantile_samples))
        return int(q.argmax(dim=1).item())

    def next_action(self, next_obs: torch.Tensor) -> torch.Tensor:
        """argmax_a of the mean over K fractions, from the target network (the online one with ``double``)."""
        chooser = self.online if self.cfg.double else self.target
        return chooser.q_values(next_obs, self.taus(len(next_obs), self.cfg.num_quantile_samples)).argmax(dim=1)

    def target_quantiles(self, batch: Batch) -> torch.Tensor:
        """T_j = R + γ^k Z_target(s', a*, τ'_j), (B, N'); γ^k is 0 where the episode terminated."""
        c = self.cfg
        rows = torch.arange(len(batch.actions), device=batch.actions.device)
        greedy = self.next_action(batch.next_obs)
        z_next = self.target(batch.next_obs, self.taus(len(rows), c.num_tau_prime_samples))[rows, :, greedy]
        return batch.returns[:, None] + batch.discounts[:, None] * z_next

    def update(self, batch: Batch) -> UpdateResult:
        c = self.cfg
        rows = torch.arange(len(batch.actions), device=batch.actions.device)
        with torch.no_grad():
            target = self.target_quantiles(batch)
        taus = self.taus(len(rows), c.num_tau_samples)
        chosen = self.online(batch.obs, taus)[rows, :, batch.actions]  # (B, N)
        loss = quantile_huber_loss(target, chosen, taus, c.kappa).mean()
        self.optimize(loss)
        return UpdateResult(losses={"losses/quantile_loss": loss.detach()},
                            metrics={"losses/q_values": chosen.detach().mean()})
