"""DeepMind Control Suite tasks with state observations, through Shimmy's dm_control compatibility wrapper.

``env.id`` is ``<domain>-<task>`` (``cartpole-swingup``, ``walker-walk``). The observation dict is flattened in
the alphabetical order of its keys (Gymnasium's ``Dict`` space sorts them; walker: height, orientations, velocity)
and cast to float32; actions are the suite's, all in [-1, 1]. Episodes
end by the suite's time limit (1,000 physics control steps), which is a truncation: the last step has discount 1,
so the learner bootstraps through it. ``action_repeat`` repeats each agent action that many control steps and
sums their rewards, so an episode is 1000 / action_repeat agent steps and its return stays on the 0-1000 scale.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import FlattenObservation, RecordEpisodeStatistics, TransformObservation

from core.errors import one_of, require
from core.spaces import ActionKind, ObservationKind
from envs.registry import ENVS


@dataclass
class DMCConfig:
    name: str = "dmc"
    id: str = "cartpole-swingup"  # a dm_control <domain>-<task>: cartpole-swingup, walker-walk, ...
    action_repeat: int = 1  # control steps per agent step (1 for state-based SAC, as Haarnoja et al.)
    reward_clip: float | None = None  # learner-side clipping to [-c, c]; null keeps raw rewards

    def validate(self) -> None:
        tasks = dmc_tasks()
        require(self.id in tasks, "id", self.id, one_of(self.id, tasks, "allowed dm_control <domain>-<task> ids"))
        require(self.action_repeat >= 1, "action_repeat", self.action_repeat, "must be >= 1")
        require(self.reward_clip is None or self.reward_clip > 0, "reward_clip", self.reward_clip,
                "must be > 0 or null")


def _import_suite():
    os.environ.setdefault("MUJOCO_GL", "disable")  # state observations only: no OpenGL context (set egl to render)
    from dm_control import suite  # heavy (MuJoCo), and MUJOCO_GL must be set first

    return suite


def dmc_tasks() -> list[str]:
    return [f"{domain}-{task}" for domain, task in _import_suite().ALL_TASKS]


class ActionRepeat(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Repeat an action ``repeat`` times, summing rewards and stopping early at the episode's end."""

    def __init__(self, env: gym.Env, repeat: int):
        gym.utils.RecordConstructorArgs.__init__(self, repeat=repeat)
        super().__init__(env)
        self.repeat = repeat

    def step(self, action):
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


@ENVS.register("dmc", config=DMCConfig, observations=ObservationKind.vector, actions=(ActionKind.continuous,))
def make_dmc(cfg: DMCConfig, render_mode: str | None = None) -> gym.Env:
    _import_suite()
    import shimmy  # heavy (dm_control, MuJoCo): only dm_control runs import it

    gym.register_envs(shimmy)
    env = gym.make(f"dm_control/{cfg.id}-v0", render_mode=render_mode)
    env = FlattenObservation(env)
    space = gym.spaces.Box(-np.inf, np.inf, env.observation_space.shape, np.float32)
    env = TransformObservation(env, lambda obs: obs.astype(np.float32), space)
    if cfg.action_repeat > 1:
        env = ActionRepeat(env, cfg.action_repeat)
    return RecordEpisodeStatistics(env)
