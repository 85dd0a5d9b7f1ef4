"""What PPO keeps between acting and learning: the rollout storage of CleanRL's PPO (``obs``, ``actions``,
``logprobs``, ``rewards``, ``dones``, ``values``, each ``(num_steps, num_envs, ...)``), and the running
observation and reward normalisation its continuous version gets from Gymnasium's wrappers.

CleanRL wraps each environment in ``NormalizeObservation`` and ``NormalizeReward`` (``ppo_continuous_action.py``,
``make_env``). Here the agent normalises, with one running mean and variance per environment as those per-env
wrappers keep, by Gymnasium's own ``RunningMeanStd`` and the wrappers' formulas: the statistics then travel in the
agent's checkpoint, re-playing an episode to rebuild an environment on resume leaves them alone, and evaluation uses
the training statistics (frozen) instead of starting new ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium.wrappers.utils import RunningMeanStd

EPSILON = 1e-8  # NormalizeObservation's and NormalizeReward's default epsilon


def _rms_state(rms: RunningMeanStd) -> dict[str, Any]:
    return {"mean": torch.from_numpy(np.array(rms.mean)), "var": torch.from_numpy(np.array(rms.var)),
            "count": float(rms.count)}


def _set_rms_state(rms: RunningMeanStd, state: dict[str, Any]) -> None:
    rms.mean, rms.var, rms.count = state["mean"].numpy().copy(), state["var"].numpy().copy(), state["count"]


class ObservationNormalizer:
    """Gymnasium's ``NormalizeObservation`` followed by CleanRL's clip to ±``clip``, one per environment: each
    observation an environment returns (the final one of an episode included, then the reset one) updates that
    environment's statistics, and is normalised with them."""

    def __init__(self, num_envs: int, shape: tuple[int, ...], clip: float):
        self.rms = [RunningMeanStd(shape=shape) for _ in range(num_envs)]
        self.clip = clip

    def update(self, env: int, obs: np.ndarray) -> None:
        self.rms[env].update(np.array([obs]))

    def __call__(self, obs: np.ndarray, env: int) -> np.ndarray:
        """One environment's observation, normalised with its statistics (float64, as the wrapper), clipped, float32."""
        rms = self.rms[env]
        return np.clip((obs - rms.mean) / np.sqrt(rms.var + EPSILON), -self.clip, self.clip).astype(np.float32)

    def batch(self, obs: np.ndarray) -> np.ndarray:
        """Row i normalised with environment i's statistics."""
        return np.stack([self(o, i) for i, o in enumerate(obs)])

    def state_dict(self) -> list[dict[str, Any]]:
        return [_rms_state(r) for r in self.rms]

    def load_state_dict(self, state: list[dict[str, Any]]) -> None:
        for rms, s in zip(self.rms, state, strict=True):
            _set_rms_state(rms, s)


class RewardNormalizer:
    """Gymnasium's ``NormalizeReward`` followed by CleanRL's clip to ±``clip``, one per environment: a discounted sum
    of the rewards (reset only by a termination, as the wrapper) updates a running variance, and each reward is
    divided by its standard deviation."""

    def __init__(self, num_envs: int, gamma: float, clip: float):
        self.rms = [RunningMeanStd(shape=()) for _ in range(num_envs)]
        self.discounted = np.zeros(num_envs)
        self.gamma, self.clip = gamma, clip

    def __call__(self, rewards: np.ndarray, terminations: np.ndarray) -> np.ndarray:
        out = np.empty(len(rewards))
        for i, (reward, terminated) in enumerate(zip(rewards, terminations, strict=True)):
            self.discounted[i] = self.discounted[i] * self.gamma * (1 - terminated) + float(reward)
            self.rms[i].update(np.array([self.discounted[i]]))
            out[i] = reward / np.sqrt(self.rms[i].var + EPSILON)
        return np.clip(out, -self.clip, self.clip)

    def state_dict(self) -> dict[str, Any]:
        return {"rms": [_rms_state(r) for r in self.rms], "discounted": torch.from_numpy(self.discounted.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for rms, s in zip(self.rms, state["rms"], strict=True):
            _set_rms_state(rms, s)
        self.discounted = state["discounted"].numpy().copy()


class Rollout:
    """One rollout of ``num_steps`` steps of ``num_envs`` environments, as CleanRL's storage tensors; ``t`` is the next
    step to fill. Observations keep their dtype (uint8 frames stay uint8; the network scales them), or float32 once
    normalised; the tensors are made at the first observation, when its dtype is known."""

    def __init__(self, num_steps: int, num_envs: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...],
                 device: torch.device):
        self.num_steps, self.num_envs, self.obs_shape, self.device = num_steps, num_envs, obs_shape, device
        self.t = 0
        shape = (num_steps, num_envs)
        self.obs: torch.Tensor | None = None
        self.actions = torch.zeros(shape + action_shape, device=device)
        self.logprobs = torch.zeros(shape, device=device)
        self.rewards = torch.zeros(shape, device=device)
        self.dones = torch.zeros(shape, device=device)
        self.values = torch.zeros(shape, device=device)

    def store_obs(self, obs: torch.Tensor) -> None:
        if self.obs is None:
            shape = (self.num_steps, self.num_envs, *self.obs_shape)
            self.obs = torch.zeros(shape, dtype=obs.dtype, device=self.device)
        self.obs[self.t] = obs

    @property
    def full(self) -> bool:
        return self.t == self.num_steps

    def sample_states(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Observations of the rollout and the actions taken there, uniform with replacement, drawn with ``rng`` (the
        health probe's and ReDo's inputs; the learner's minibatches are not disturbed)."""
        idx = torch.from_numpy(rng.integers(0, self.num_steps * self.num_envs, n)).to(self.device)
        return self.obs.flatten(0, 1)[idx], self.actions.flatten(0, 1)[idx]
