"""Gymnasium's classic-control tasks with vector observations, for fast learning checks."""

from __future__ import annotations

import os
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import RecordEpisodeStatistics, RescaleAction

from core.errors import one_of, require
from core.spaces import ActionKind, ObservationKind
from envs.registry import ENVS

DISCRETE_IDS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")
CONTINUOUS_IDS = ("Pendulum-v1", "MountainCarContinuous-v0")
CLASSIC_IDS = DISCRETE_IDS + CONTINUOUS_IDS


@dataclass
class ClassicConfig:
    name: str = "classic"
    # CartPole-v1, Acrobot-v1, MountainCar-v0; continuous: Pendulum-v1, MountainCarContinuous-v0
    id: str = "CartPole-v1"
    reward_clip: float | None = None  # learner-side clipping to [-c, c]; null keeps raw rewards

    def validate(self) -> None:
        require(self.id in CLASSIC_IDS, "id", self.id, one_of(self.id, CLASSIC_IDS, "allowed classic-control ids"))
        require(self.reward_clip is None or self.reward_clip > 0, "reward_clip", self.reward_clip,
                "must be > 0 or null")


def action_kind(cfg: ClassicConfig) -> ActionKind:
    return ActionKind.continuous if cfg.id in CONTINUOUS_IDS else ActionKind.discrete


@ENVS.register("classic", config=ClassicConfig, observations=ObservationKind.vector,
               actions=(ActionKind.discrete, ActionKind.continuous), actions_of=action_kind)
def make_classic(cfg: ClassicConfig, render_mode: str | None = None) -> gym.Env:
    """Continuous actions are rescaled to [-1, 1], the range of a squashed policy (and of dm_control)."""
    if render_mode == "rgb_array":
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame draws off-screen: no display, no warning
    env = gym.make(cfg.id, render_mode=render_mode)
    if isinstance(env.action_space, gym.spaces.Box):
        one = np.ones(env.action_space.shape, env.action_space.dtype)
        env = RescaleAction(env, -one, one)
    return RecordEpisodeStatistics(env)
