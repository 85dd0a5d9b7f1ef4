"""Rainbow (Hessel et al. 2018) as Dopamine's JAX agent: by default its "compact" Rainbow (C51 + n-step +
prioritized replay), with dueling, noisy nets and double DQN as switches for the full agent.

The distributional math (projection, cross-entropy) is module-level functions; the agent reuses DQN's acting,
target copies and checkpoint state. The n-step returns and priorities live in the replay buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from agents.cql import cql_penalty
from agents.dqn import DQN, ValueAgentConfig
from agents.networks import build_network
from agents.noisy import NoisyLinear
from agents.registry import AGENTS
from core.activations import noise_off
from core.errors import require
from core.protocols import Batch, UpdateResult
from core.spaces import ActionKind

PRIORITY_EPS = 1e-10  # Dopamine: priority = sqrt(loss + 1e-10)


@dataclass
class RainbowConfig(ValueAgentConfig):
    """Defaults are Dopamine's compact Rainbow (``dopamine/jax/agents/rainbow/configs/rainbow.gin``); the rest of
    the schedule is DQN's (``protocol.md`` §3). ``noisy`` sets the training ε to 0, as Dopamine's full Rainbow."""

    name: str = "rainbow"
    n_step: int = 3
    prioritized: bool = True  # prioritized replay (Schaul et al.); false samples uniformly
    num_atoms: int = 51  # atoms of the C51 support
    v_min: float = -10.0  # lowest atom of the C51 support (CartPole: −100)
    v_max: float = 10.0  # highest atom of the C51 support (CartPole: 100)
    dueling: bool = False  # dueling heads (a value stream beside the advantages)
    noisy: bool = False  # factorised noisy layers in the head; sets the training ε to 0
    noisy_sigma0: float = 0.5  # Fortunato et al. 2018, factorised noise

    def validate(self) -> None:
        super().validate()
        require(self.num_atoms >= 2, "num_atoms", self.num_atoms, "must be >= 2")
        require(self.v_min < self.v_max, "v_min", self.v_min, f"must be below agent.v_max ({self.v_max})")
        require(self.noisy_sigma0 >= 0, "noisy_sigma0", self.noisy_sigma0, "must be >= 0")


def project_distribution(returns: torch.Tensor, discounts: torch.Tensor, probs: torch.Tensor,
                         support: torch.Tensor) -> torch.Tensor:
    """The C51 target (Bellemare et al. 2017): the distribution of R + γ^k Z, clipped to [v_min, v_max], projected
    onto the fixed support. Each atom z_j moves to Tz_j and splits its mass p_j between the two support atoms
    around it in proportion to closeness: the triangle kernel m_i = Σ_j p_j · clip(1 − |Tz_j − z_i| / Δz, 0, 1) of
    Dopamine's ``project_distribution``, computed here in O(B·N) with two scatter-adds. When Tz_j lands exactly on
    an atom (l == u) that atom gets all of p_j; the textbook floor/ceil form would lose it. Shapes: returns,
    discounts (B,); probs (B, N); support (N,), evenly spaced. Δz = (v_max − v_min)/(N − 1) from the end points (a
    float32 ``linspace``'s neighbours differ by 0.39999962 where Δz is 0.4)."""
    n = support.numel()
    v_min, v_max = support[0], support[-1]  # tensors: no host sync
    tz = (returns[:, None] + discounts[:, None] * support[None, :]).clamp(v_min, v_max)
    pos = (tz - v_min) / ((v_max - v_min) / (n - 1))  # in [0, N - 1]
    lower = pos.floor().clamp(0, n - 2)
    upper_w = (pos - lower).clamp(0.0, 1.0)
    lower = lower.long()
    m = torch.zeros_like(probs)
    m.scatter_add_(1, lower, probs * (1.0 - upper_w))
    m.scatter_add_(1, lower + 1, probs * upper_w)
    return m


def c51_loss(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Per-transition cross-entropy −Σ_i m_i log p_i between the projected target and the predicted distribution."""
    return -(target_probs * logits.log_softmax(dim=-1)).sum(dim=-1)


class C51Head(nn.Module):
    """Logits (B, actions, atoms). With ``dueling`` (Wang et al. 2016) a value stream and an advantage stream over
    the same features, logits = V + A − mean_a A, per atom, as Dopamine's full Rainbow network."""

    def __init__(self, hidden: int, n_actions: int, support: torch.Tensor, dueling: bool, noisy: bool,
                 sigma0: float):
        super().__init__()
        self.n_actions, self.n_atoms = n_actions, len(support)
        self.register_buffer("support", support)

        def linear(n_out: int) -> nn.Linear:
            return NoisyLinear(hidden, n_out, sigma0) if noisy else nn.Linear(hidden, n_out)

        self.advantage = linear(n_actions * self.n_atoms)
        self.value = linear(self.n_atoms) if dueling else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.advantage(x).view(-1, self.n_actions, self.n_atoms)
        if self.value is None:
            return logits
        return self.value(x).view(-1, 1, self.n_atoms) + logits - logits.mean(dim=1, keepdim=True)

    def q_values(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(dim=-1) @ self.support


@AGENTS.register("rainbow", config=RainbowConfig, actions=ActionKind.discrete)
class Rainbow(DQN):
    def build_network(self, network_cfg, obs_shape: tuple[int, ...], n_actions: int, transform=None) -> nn.Module:
        c = self.cfg
        support = torch.linspace(c.v_min, c.v_max, c.num_atoms)
        return build_network(network_cfg, obs_shape, n_actions, transform=transform,
                             head=lambda hidden, n: C51Head(hidden, n, support, c.dueling, c.noisy, c.noisy_sigma0))

    def epsilon(self, env_step: int) -> float:
        return 0.0 if self.cfg.noisy else super().epsilon(env_step)

    def greedy(self, obs: np.ndarray, eval_mode: bool) -> int:
        if not eval_mode:
            return super().greedy(obs, eval_mode)
        with noise_off(self.online):
            return super().greedy(obs, eval_mode)

    def update(self, batch: Batch) -> UpdateResult:
        """One optimizer step on the importance-weighted C51 loss (Dopamine: mean(w · CE)); ``losses/c51_loss`` is the
        plain mean of the cross-entropies; offline, plus ``cql_alpha`` times CQL's term on the expected Q-values (as
        Dopamine's ``OfflineJaxRainbowAgent``). With prioritized replay, each transition's new priority is
        √(CE + 1e-10), as Dopamine's agent computes it (in float64). Target copies as in DQN."""
        head = self.online.head
        rows = torch.arange(len(batch.actions), device=batch.actions.device)
        with torch.no_grad():
            next_logits = self.target(batch.next_obs)
            next_probs = next_logits.softmax(dim=-1)
            chooser = self.online(batch.next_obs).softmax(dim=-1) if self.cfg.double else next_probs
            greedy = (chooser @ head.support).argmax(dim=1)
            target = project_distribution(batch.returns, batch.discounts, next_probs[rows, greedy], head.support)
        all_logits = self.online(batch.obs)
        logits = all_logits[rows, batch.actions]
        losses = c51_loss(logits, target)
        loss = (batch.weights * losses).mean()
        logged = {"losses/c51_loss": losses.detach().mean()}
        if self.cql_alpha:
            penalty = cql_penalty(head.q_values(all_logits), batch.actions)
            loss = loss + self.cql_alpha * penalty
            logged["losses/cql_loss"] = penalty.detach()
        self.optimize(loss)
        q_taken = logits.detach().softmax(dim=-1) @ head.support
        priorities = (losses.detach().double() + PRIORITY_EPS).sqrt() if self.cfg.prioritized else None
        return UpdateResult(losses=logged, metrics={"losses/q_values": q_taken.mean()}, priorities=priorities)
