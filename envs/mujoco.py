"""Gymnasium's MuJoCo locomotion and manipulation tasks (``HalfCheetah-v5``, ``Walker2d-v5``, ...), state
observations, through the ``mujoco`` bindings that dm-control already brings.

Only the ``-v5`` ids are offered: Gymnasium keeps ``-v4`` for old results, and the ``-v2``/``-v3`` ids that
Dopamine's and most papers' MuJoCo numbers come from ran on ``mujoco-py``, which Gymnasium 1.x no longer registers.
``HalfCheetah-v5`` keeps ``-v2``'s model, 17-d observation, reward (forward velocity − 0.1·|a|²), reset noise (0.1)
and 1,000-step cap, on a newer MuJoCo; other tasks changed more across versions (Gymnasium's version history).

Observations are cast to float32 (the suite's replay dtype for vectors); actions are the suite's [-1, 1], rescaled
to the task's bounds with Gymnasium's ``RescaleAction`` where they differ (Humanoid's ±0.4, Pusher's ±2), as
Dopamine's SAC scales its tanh output by the action limits. The 1,000-step cap (Reacher 50, Pusher 100) is a
truncation; a fall (Hopper, Walker2d, Ant, Humanoid leave their healthy range) is a termination.
Rendering needs MuJoCo's OpenGL (``MUJOCO_GL=egl`` or ``osmesa``); without it nothing renders.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import RecordEpisodeStatistics, RescaleAction, TransformObservation

from core.errors import one_of, require
from core.spaces import ActionKind, ObservationKind
from envs.registry import ENVS

VERSION = 5  # the Gymnasium version suffix offered


@cache
def mujoco_ids() -> tuple[str, ...]:
    """Every ``<Task>-v5`` id Gymnasium registers for its MuJoCo envs, in registration order."""
    return tuple(sorted(name for name, spec in gym.registry.items()
                        if isinstance(spec.entry_point, str) and spec.entry_point.startswith("gymnasium.envs.mujoco.")
                        and spec.version == VERSION))


@dataclass
class MuJoCoConfig:
    name: str = "mujoco"
    # a Gymnasium MuJoCo task, -v5: HalfCheetah-v5, Hopper-v5, Walker2d-v5, Ant-v5, Humanoid-v5, ...
    id: str = "HalfCheetah-v5"
    reward_clip: float | None = None  # learner-side clipping to [-c, c]; null keeps raw rewards

    def validate(self) -> None:
        require(self.id in mujoco_ids(), "id", self.id, one_of(self.id, mujoco_ids(), "allowed MuJoCo ids"))
        require(self.reward_clip is None or self.reward_clip > 0, "reward_clip", self.reward_clip,
                "must be > 0 or null")


# Gymnasium's half_cheetah.xml sets the total mass with ``settotalmass="14"``, which MuJoCo 3.17 still applies but
# reports as deprecated on stdout each time the model compiles (every env made): the one message dropped here.
KNOWN_WARNING = "compiler attribute 'settotalmass' is deprecated"


@contextmanager
def known_warning_dropped():
    """MuJoCo's warnings as Python warnings while the model compiles, except ``KNOWN_WARNING``."""
    import mujoco  # comes with dm-control (pinned there): only MuJoCo runs load it here

    def route(message: str) -> None:
        if KNOWN_WARNING not in message:
            warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)

    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(route)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


@ENVS.register("mujoco", config=MuJoCoConfig, observations=ObservationKind.vector, actions=(ActionKind.continuous,))
def make_mujoco(cfg: MuJoCoConfig, render_mode: str | None = None) -> gym.Env:
    os.environ.setdefault("MUJOCO_GL", "disable")  # as env=dmc: no OpenGL context unless asked for (egl to render)
    with known_warning_dropped():
        env = gym.make(cfg.id, render_mode=render_mode)
    space = gym.spaces.Box(-np.inf, np.inf, env.observation_space.shape, np.float32)
    env = TransformObservation(env, lambda obs: obs.astype(np.float32), space)
    low, high = env.action_space.low, env.action_space.high
    if not (np.all(low == -1) and np.all(high == 1)):  # [-1, 1] already (HalfCheetah): no rescaling, no rounding
        one = np.ones(env.action_space.shape, env.action_space.dtype)
        env = RescaleAction(env, -one, one)
    return RecordEpisodeStatistics(env)
