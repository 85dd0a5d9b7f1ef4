"""Munchausen-IQN (Vieillard et al. 2020) as the authors' code (google-research ``munchausen_rl/agents/m_iqn.py``,
built on Dopamine's TF IQN): IQN with a target that adds the scaled log-policy of the action taken and takes a soft,
entropy-regularised value of the next state.

With π = softmax(q/τ) of the target network's action values (the mean over K fractions),
T_j = R + α·clip(τ·log π(a|s), l₀, 0) + γ^k Σ_a' π(a'|s') (Z_target(s', a', τ'_j) − τ·log π(a'|s')).
Acting is IQN's ε-greedy on the mean over K fractions, as the published runs (the authors' ``train.py`` passes
``interact='greedy'``; the agent's own default, sampling π, feeds probabilities where ``tf.random.categorical`` wants
logits, and is not reproduced).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agents.iqn import IQN, IQNConfig
from agents.registry import AGENTS
from core.errors import require
from core.protocols import Batch
from core.spaces import ActionKind


@dataclass
class MIQNConfig(IQNConfig):
    """Defaults are the authors' Atari config (``munchausen_rl/configs/atari.gin``): IQN's, with 1-step returns."""

    name: str = "miqn"
    n_step: int = 1
    munchausen_tau: float = 0.03  # τ, the entropy temperature of π = softmax(q/τ)
    munchausen_alpha: float = 0.9  # α, the weight of the Munchausen term
    munchausen_clip: float = -1.0  # l₀: τ·log π(a|s) is clipped to [l₀, 0]

    def validate(self) -> None:
        super().validate()
        require(self.munchausen_tau > 0, "munchausen_tau", self.munchausen_tau, "must be > 0")
        require(0 <= self.munchausen_alpha <= 1, "munchausen_alpha", self.munchausen_alpha, "must be in [0, 1]")
        require(self.munchausen_clip < 0, "munchausen_clip", self.munchausen_clip, "must be < 0")


def scaled_log_softmax(q: torch.Tensor, tau: float) -> torch.Tensor:
    """τ·log softmax(q/τ) over the last axis, as the authors' ``stable_scaled_log_softmax``:
    q − (max q + τ·log Σ exp((q − max q)/τ))."""
    top = q.max(dim=-1, keepdim=True).values
    return q - (top + tau * torch.log(torch.exp((q - top) / tau).sum(dim=-1, keepdim=True)))


def munchausen_target(returns: torch.Tensor, discounts: torch.Tensor, actions: torch.Tensor, q: torch.Tensor,
                      next_q: torch.Tensor, next_z: torch.Tensor, tau: float, alpha: float,
                      clip: float) -> torch.Tensor:
    """The target quantiles (B, N'). ``q`` and ``next_q`` (B, A): the target network's action values at s and s';
    ``next_z`` (B, N', A): its quantiles at s'; ``returns`` and ``discounts`` (B,): R and γ^k (0 after a
    termination); ``actions`` (B,): the actions taken."""
    bonus = alpha * scaled_log_softmax(q, tau).gather(1, actions[:, None]).squeeze(1).clamp(clip, 0.0)
    next_log_pi = scaled_log_softmax(next_q, tau)
    next_pi = torch.softmax((next_q - next_q.max(dim=-1, keepdim=True).values) / tau, dim=-1)
    soft_next = (next_pi[:, None, :] * (next_z - next_log_pi[:, None, :])).sum(dim=-1)
    return (returns + bonus)[:, None] + discounts[:, None] * soft_next


@AGENTS.register("miqn", config=MIQNConfig, actions=ActionKind.discrete)
class MIQN(IQN):
    def target_quantiles(self, batch: Batch) -> torch.Tensor:
        c = self.cfg
        b = len(batch.actions)
        next_z = self.target(batch.next_obs, self.taus(b, c.num_tau_prime_samples))
        next_q = self.target.q_values(batch.next_obs, self.taus(b, c.num_quantile_samples))
        q = self.target.q_values(batch.obs, self.taus(b, c.num_quantile_samples))
        return munchausen_target(batch.returns, batch.discounts, batch.actions, q, next_q, next_z,
                                 c.munchausen_tau, c.munchausen_alpha, c.munchausen_clip)
